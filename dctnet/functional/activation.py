"""Element-wise activations and the log-softmax.

>>> import numpy as np
>>> relu(np.array([-1.0, 0.5])).data
array([0. , 0.5])
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from ._utils import check_float

__all__ = ["relu", "log_softmax"]


class ReLU(Function):
    def forward(ctx, x):
        out = get_array_module(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved
        return (g * (out > 0),)


def relu(x):
    """``max(x, 0)``; the gradient at 0 is taken as 0 (PyTorch's convention).

    >>> import numpy as np
    >>> relu(np.array([[-2.0, 3.0]], np.float32)).data
    array([[0., 3.]], dtype=float32)
    """
    check_float("relu", x=x)
    return ReLU.apply(x)


def log_softmax_array(x, axis):
    """``x - logsumexp(x)`` along ``axis``; shifting by the max keeps exp in range."""
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(ctx, x, axis=-1):
        out = log_softmax_array(x, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    def backward(ctx, g):
        (out,) = ctx.saved
        xp = get_array_module(g)
        return (g - xp.exp(out) * g.sum(axis=ctx.axis, keepdims=True),)


def log_softmax(x, axis=-1):
    """Logarithm of the softmax along ``axis``, numerically stable for any logits.

    >>> import numpy as np
    >>> np.exp(log_softmax(np.array([1e4, 1e4])).data)
    array([0.5, 0.5])
    """
    check_float("log_softmax", x=x)
    return LogSoftmax.apply(x, axis=axis)
