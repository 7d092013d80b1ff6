"""Constant padding of the last two axes.

>>> import numpy as np
>>> pad(np.ones((1, 2)), (0, 1, 2, 0)).data
array([[0., 0., 1., 1.],
       [0., 0., 0., 0.]])
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ._utils import shape_of

__all__ = ["pad"]


def _padding4(padding):
    """int, (ph, pw) or (top, bottom, left, right) -> (top, bottom, left, right)."""
    p = (padding,) if np.ndim(padding) == 0 else tuple(padding)
    if not all(isinstance(v, (int, np.integer)) for v in p) or len(p) not in (1, 2, 4):
        raise ValueError(f"padding must be an int, (ph, pw) or (top, bottom, left, right) of ints, found {padding!r}")
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:
        p = (p[0], p[0], p[1], p[1])
    if min(p) < 0:
        raise ValueError(f"padding must be >= 0, found {padding!r}")
    return tuple(int(v) for v in p)


class Pad(Function):
    def forward(ctx, x, padding=(0, 0, 0, 0), value=0.0):
        xp = get_array_module(x)
        top, bottom, left, right = padding
        h, w = x.shape[-2:]
        out = xp.full(x.shape[:-2] + (h + top + bottom, w + left + right), value, dtype=x.dtype)
        ctx.window = (Ellipsis, slice(top, top + h), slice(left, left + w))
        out[ctx.window] = x
        return out

    def backward(ctx, g):
        return (g[ctx.window].copy(),)


def pad(x, padding, value=0.0):
    """Pad the last two axes of ``x`` with ``value``.

    ``padding`` is an int (all sides), ``(ph, pw)`` or ``(top, bottom, left, right)``.

    >>> import numpy as np
    >>> pad(np.zeros((2, 3, 4, 4)), 1).shape
    (2, 3, 6, 6)
    """
    if len(shape_of(x)) < 2:
        raise ValueError(f"pad expects an array with at least 2 axes (..., H, W), found shape {shape_of(x)}")
    return Pad.apply(x, padding=_padding4(padding), value=value)
