"""Fully connected layer: ``y = x @ weight.T + bias`` (PyTorch's layout).

>>> import numpy as np
>>> linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0)).data
array([[3., 4., 5., 6.],
       [3., 4., 5., 6.]])
"""

from __future__ import annotations

from ..autograd import Function
from ._utils import check_float, shape_of

__all__ = ["linear"]


class Linear(Function):
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(ctx, g):
        x, weight = ctx.saved
        need = ctx.needs_input_grad
        gx = g @ weight if need[0] else None
        # leading axes of x (batch, sequence, ...) all sum into the weight gradient
        gw = g.reshape(-1, g.shape[-1]).T @ x.reshape(-1, x.shape[-1]) if need[1] else None
        gb = g.reshape(-1, g.shape[-1]).sum(axis=0) if ctx.has_bias and need[2] else None
        return gx, gw, gb


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` for ``x`` (..., in), ``weight`` (out, in), ``bias`` (out,).

    >>> import numpy as np
    >>> linear(np.ones((5, 3), np.float32), np.ones((2, 3), np.float32)).shape
    (5, 2)
    """
    xs, ws = shape_of(x), shape_of(weight)
    if len(ws) != 2:
        raise ValueError(f"linear expects weight of shape (out_features, in_features), found {ws}")
    if len(xs) < 1 or xs[-1] != ws[1]:
        raise ValueError(f"linear expects x of shape (..., {ws[1]}) for weight {ws}, found {xs}")
    if bias is not None and shape_of(bias) != (ws[0],):
        raise ValueError(f"linear expects bias of shape ({ws[0]},) for weight {ws}, found {shape_of(bias)}")
    check_float("linear", x=x, weight=weight, bias=bias)
    return Linear.apply(x, weight, bias)
