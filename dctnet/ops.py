"""Elementary differentiable ops: arithmetic with broadcasting, reductions, shapes.

Each op is a :class:`~dctnet.autograd.Function`; the lowercase functions are what
users (and ``Tensor``'s operators) call. Arguments may be Tensors, arrays or
Python scalars; only Tensors with ``requires_grad`` receive gradients. Importing
this module installs Tensor's operators (the end of this file says why).

>>> import numpy as np
>>> from dctnet import Tensor
>>> a = Tensor(np.ones((2, 3)), requires_grad=True)
>>> b = Tensor(np.arange(3.0), requires_grad=True)
>>> (a * b).sum().backward()
>>> b.grad
array([2., 2., 2.])
"""

from __future__ import annotations

import math
import types

import numpy as np

from .autograd import Function, Tensor
from .backend import get_array_module

__all__ = [
    "add", "sub", "mul", "div", "neg", "power", "matmul", "exp", "log",
    "sum", "mean", "reshape", "transpose", "getitem", "astype", "concatenate",
]


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _shape(a):
    return getattr(a, "shape", ())


class Add(Function):
    def forward(ctx, a, b):
        ctx.shapes = _shape(a), _shape(b)
        return a + b

    def backward(ctx, g):
        return unbroadcast(g, ctx.shapes[0]), unbroadcast(g, ctx.shapes[1])


class Sub(Function):
    def forward(ctx, a, b):
        ctx.shapes = _shape(a), _shape(b)
        return a - b

    def backward(ctx, g):
        return unbroadcast(g, ctx.shapes[0]), unbroadcast(-g, ctx.shapes[1])


class Mul(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved
        ga = unbroadcast(g * b, _shape(a)) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * a, _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    def backward(ctx, g):
        a, b = ctx.saved
        ga = unbroadcast(g / b, _shape(a)) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), _shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(ctx, a):
        return -a

    def backward(ctx, g):
        return (-g,)


class Power(Function):
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a**exponent

    def backward(ctx, g):
        (a,) = ctx.saved
        return g * ctx.exponent * a ** (ctx.exponent - 1), None


class MatMul(Function):
    """Matrix product of 2-D (or batched) operands, as ``numpy.matmul``."""

    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul expects operands with ndim >= 2, found {a.shape} @ {b.shape}")
        ctx.save_for_backward(a, b)
        return a @ b

    def backward(ctx, g):
        a, b = ctx.saved
        xp = get_array_module(g)
        ga = unbroadcast(g @ xp.swapaxes(b, -1, -2), a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(xp.swapaxes(a, -1, -2) @ g, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Exp(Function):
    def forward(ctx, a):
        out = get_array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        return (g * ctx.saved[0],)


class Log(Function):
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).log(a)

    def backward(ctx, g):
        return (g / ctx.saved[0],)


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(a % ndim for a in axis)


class Sum(Function):
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.shape, ctx.axes = a.shape, _axes(axis, a.ndim)
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    def backward(ctx, g):
        xp = get_array_module(g)
        g = xp.expand_dims(g, ctx.axes) if g.ndim != len(ctx.shape) else g
        return (xp.broadcast_to(g, ctx.shape).copy(),)


class Reshape(Function):
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Transpose(Function):
    def forward(ctx, a, axes=None):
        ctx.axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
        return a.transpose(ctx.axes)

    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.axes)), None


class GetItem(Function):
    def forward(ctx, a, index=None):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    def backward(ctx, g):
        xp = get_array_module(g)
        out = xp.zeros(ctx.shape, dtype=g.dtype)
        if hasattr(xp, "add") and hasattr(xp.add, "at"):
            xp.add.at(out, ctx.index, g)  # repeated indices accumulate
        else:  # pragma: no cover - cupy exposes cupyx.scatter_add instead
            import cupyx

            cupyx.scatter_add(out, ctx.index, g)
        return (out,)


class AsType(Function):
    def forward(ctx, a, dtype=None):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    def backward(ctx, g):
        return (g.astype(ctx.dtype),)


class Concatenate(Function):
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return get_array_module(*arrays).concatenate(arrays, axis=axis)

    def backward(ctx, g):
        xp = get_array_module(g)
        return tuple(xp.split(g, np.cumsum(ctx.sizes)[:-1], axis=ctx.axis))


def add(a, b):
    """``a + b`` with broadcasting."""
    return Add.apply(a, b)


def sub(a, b):
    """``a - b`` with broadcasting."""
    return Sub.apply(a, b)


def mul(a, b):
    """``a * b`` with broadcasting."""
    return Mul.apply(a, b)


def div(a, b):
    """``a / b`` with broadcasting."""
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def power(a, exponent):
    """``a ** exponent`` for a constant (non-Tensor) exponent."""
    if isinstance(exponent, Tensor):
        raise TypeError("power supports a constant exponent only, found a Tensor")
    return Power.apply(a, exponent)


def matmul(a, b):
    """``a @ b`` (2-D or batched, as ``numpy.matmul``)."""
    return MatMul.apply(a, b)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def sum(a, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy.sum
    """Sum over ``axis`` (all axes by default)."""
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims=False):
    """Mean over ``axis`` (all axes by default)."""
    shape = _shape(a.data if isinstance(a, Tensor) else a)
    count = math.prod(int(shape[i]) for i in _axes(axis, len(shape)))
    return Sum.apply(a, axis=axis, keepdims=keepdims) * (1.0 / count)


def reshape(a, shape):
    return Reshape.apply(a, tuple(shape) if not np.isscalar(shape) else (shape,))


def transpose(a, axes=None):
    return Transpose.apply(a, axes)


def getitem(a, index):
    """``a[index]``; the gradient scatters back (repeated indices accumulate)."""
    if isinstance(index, Tensor):
        index = index.data
    return GetItem.apply(a, index=index)


def astype(a, dtype):
    return AsType.apply(a, dtype=dtype)


def concatenate(tensors, axis=0):
    """Join tensors along ``axis``."""
    return Concatenate.apply(*tensors, axis=axis)


# -- Tensor's operators --------------------------------------------------------
# autograd.py holds the graph core and knows nothing of the ops, so the
# dependency runs one way (ops imports autograd; no import circle, no lazy
# import). The operators are written here, as methods of a plain class next to
# the ops they call, and copied onto Tensor when this module is imported, which
# dctnet/__init__.py does: a Tensor always has them once dctnet is imported.
class _TensorOperators:
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pow__(self, exponent):
        return power(self, exponent)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, index):
        return getitem(self, index)

    def sum(self, axis=None, keepdims=False):
        return sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return reshape(self, shape)

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return transpose(self, axes or None)

    @property
    def T(self):
        return transpose(self, None)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def astype(self, dtype):
        return astype(self, dtype)


for _name, _member in vars(_TensorOperators).items():
    if isinstance(_member, (types.FunctionType, property)):
        for _f in (_member.fget,) if isinstance(_member, property) else (_member,):
            _f.__qualname__ = f"Tensor.{_name}"  # as tracebacks and help() should show it
        setattr(Tensor, _name, _member)
del _name, _member, _f
