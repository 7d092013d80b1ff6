"""A small reverse-mode autograd over NumPy/CuPy arrays.

An op is a :class:`Function` subclass with ``forward(ctx, *arrays)`` and
``backward(ctx, grad)`` on raw arrays; ``ctx`` is the op's node in the graph and
keeps what backward needs. Users call lowercase wrappers that go through
``Op.apply``. :meth:`Tensor.backward` walks the graph in an iterative
topological order, so depth is limited by memory, not by Python's recursion.

This module is the graph core (grad mode, :class:`Function`, :class:`Tensor`'s
data and backward) and imports no op: :mod:`dctnet.ops` imports it and installs
Tensor's operators (see there why).

>>> import numpy as np
>>> x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.])
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from .backend import asnumpy, get_array_module

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "as_tensor"]

_state = threading.local()


def is_grad_enabled() -> bool:
    """False inside :func:`no_grad`: ops then record no graph."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled):
    previous = is_grad_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = previous


def no_grad():
    """Context manager (or decorator) that records no graph, as ``torch.no_grad``."""
    return _grad_mode(False)


def enable_grad():
    """Context manager that re-enables graph recording inside :func:`no_grad`."""
    return _grad_mode(True)


class Function:
    """Base class of differentiable ops.

    Subclasses define ``forward(ctx, *args, **kwargs)`` returning one array and
    ``backward(ctx, grad)`` returning one gradient (or None) per positional
    argument. Tensor arguments arrive as raw arrays; ``ctx.needs_input_grad``
    tells backward which gradients are wanted.
    """

    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(ctx, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def save_for_backward(ctx, *arrays):
        ctx.saved = arrays

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls()
        get_array_module(*args)  # refuse mixed NumPy/CuPy operands early
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = ctx.forward(*raw, **kwargs)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        if not (any(needs) and is_grad_enabled()):
            return Tensor(out)
        ctx.parents = args
        ctx.needs_input_grad = needs
        result = Tensor(out, requires_grad=True)
        result._ctx = ctx
        return result


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    xp = get_array_module(data)
    is_array = hasattr(data, "dtype")
    arr = xp.asarray(data, dtype=dtype)
    if dtype is None and not is_array and arr.dtype == np.float64:
        arr = arr.astype(np.float32)  # Python floats become float32, as in PyTorch
    return arr


class Tensor:
    """An ``xp`` array with an optional gradient.

    ``Tensor(data, requires_grad=False, dtype=None)``; ``.data`` is the NumPy or
    CuPy array, ``.grad`` the accumulated gradient after :meth:`backward`.

    The operators and array methods (``+ - * / ** @ []``, ``sum``, ``mean``,
    ``reshape``, ``transpose``, ``.T``, ``exp``, ``log``, ``astype``) are
    installed by :mod:`dctnet.ops`, next to the ops they call; ``import dctnet``
    always loads it.
    """

    _is_tensor = True  # recognised by backend.is_tensor: the array layer cannot import this class
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, found dtype "
                f"{self.data.dtype}; create it with dtype=np.float32 or np.float64"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._ctx = None

    # -- array-like properties ------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    xp = property(lambda self: get_array_module(self.data))
    is_leaf = property(lambda self: self._ctx is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return asnumpy(self.data)

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    # -- backward -------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a single-element tensor. Intermediate
        gradients are freed as soon as they have been passed on.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of "
                "the computation had requires_grad=True (or it ran under no_grad)"
            )
        xp = self.xp
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element output, "
                    f"found shape {self.shape}; pass grad= of that shape"
                )
            grad = xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = _as_array(grad).astype(self.dtype, copy=False)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, expected {self.shape}")
        grads = {id(self): grad}
        for node in _toposort(self):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None:  # a leaf
                node.grad = g if node.grad is None else node.grad + g
                continue
            in_grads = ctx.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, need, pg in zip(ctx.parents, ctx.needs_input_grad, in_grads):
                if not need or pg is None:
                    continue
                if pg.shape != parent.shape:
                    raise RuntimeError(
                        f"{type(ctx).__name__}.backward returned a gradient of shape "
                        f"{pg.shape} for an input of shape {parent.shape}"
                    )
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg


def as_tensor(x):
    """``x`` if it is a Tensor, else a constant Tensor wrapping it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _toposort(root):
    """Nodes reachable from ``root``, each after every node that consumes it.

    Iterative depth-first search (HIPS autograd's toposort), so a 10,000-op
    chain needs no recursion.
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent, need in zip(node._ctx.parents, node._ctx.needs_input_grad):
                if need and id(parent) not in visited:
                    stack.append((parent, False))
    return reversed(order)
