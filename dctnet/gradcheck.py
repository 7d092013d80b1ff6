"""Gradient checking by a random-direction vector–Jacobian product.

For random directions ``v`` (on the output) and ``u`` (on each input), the
analytic ``<v, J u>`` from one backward pass must equal the central difference
``(<v, f(x + eps u)> - <v, f(x - eps u)>) / (2 eps)`` (HIPS autograd's
``check_vjp``). Run it in float64 and away from kinks (ReLU at 0, ...).

>>> import numpy as np
>>> from dctnet import Tensor, gradcheck
>>> x = Tensor(np.random.rand(3, 4), requires_grad=True)
>>> gradcheck(lambda t: (t * t).sum(axis=1), [x])
True
"""

from __future__ import annotations

import numpy as np

from .autograd import Tensor, no_grad
from .backend import get_array_module

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """The analytic and numerical directional derivatives disagree."""


def _inner(a, b):
    return float((a * b).sum())


def gradcheck(f, inputs, eps=1e-6, rtol=1e-6, atol=1e-9, seed=0, trials=2):
    """Check ``f``'s gradients w.r.t. every input Tensor with ``requires_grad``.

    ``inputs`` is a list passed as ``f(*inputs)``; non-Tensor entries and Tensors
    without ``requires_grad`` are held fixed. Each differentiable input is
    checked separately (so a failure names it), ``trials`` random directions
    each. Inputs must be float64. Returns True or raises :class:`GradcheckError`.
    """
    inputs = list(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck needs at least one Tensor input with requires_grad=True")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck needs float64 inputs for a meaningful central difference, "
                f"input {i} is {inputs[i].dtype}; cast with Tensor(x.data.astype(np.float64), requires_grad=True)"
            )
    xp = get_array_module(*[x for x in inputs if isinstance(x, Tensor)])
    rng = np.random.default_rng(seed)

    def evaluate(i, delta):
        args = list(inputs)
        args[i] = Tensor(inputs[i].data + delta)
        with no_grad():
            return f(*args).data

    for _ in range(trials):
        for x in inputs:
            if isinstance(x, Tensor):
                x.grad = None
        out = f(*inputs)
        v = xp.asarray(rng.standard_normal(out.shape))
        out.backward(v)
        for i in wrt:
            u = xp.asarray(rng.standard_normal(inputs[i].shape))
            grad = inputs[i].grad
            analytic = 0.0 if grad is None else _inner(grad, u)
            numeric = (_inner(v, evaluate(i, eps * u)) - _inner(v, evaluate(i, -eps * u))) / (2 * eps)
            if not abs(analytic - numeric) <= atol + rtol * max(abs(analytic), abs(numeric)):
                raise GradcheckError(
                    f"gradient w.r.t. input {i} (shape {inputs[i].shape}) is wrong: "
                    f"<v, J u> analytic {analytic!r} vs numerical {numeric!r}"
                )
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    return True
