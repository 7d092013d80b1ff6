"""Differentiable (soft) quantization of DCT coefficients: JPEG-DL's quantizer.

Salamah et al., *JPEG Inspired Deep Learning* (ICLR 2025): a coefficient ``z``
with step ``q`` is not rounded to ``round(z/q) q`` but replaced by the expected
reconstruction point under a softmax over nearby levels,

    P(i) = softmax_i(-alpha (z - i q)^2),    y = sum_i P(i) i q,

over the ``levels`` integers nearest to ``z/q``. ``alpha`` is the hardness: as
it grows, ``y`` tends to hard rounding; it is differentiable in ``z``, ``q``
and ``alpha`` everywhere. The window indices are constants of the backward
pass, clamped into the signed ``bits`` range ``[-2^(bits-1), 2^(bits-1) - 1]``
(the window slides to stay inside it, so it always holds ``levels`` distinct
levels, or the whole range when that is shorter).

Gradients (analytic; ``E``, ``Var``, ``Cov`` under ``P``, ``d_i = z - i q``):

* ``dy/dz     = 2 alpha q^2 Var(i)``
* ``dy/dq     = E[i] + 2 alpha q Cov(i, i d)``
* ``dy/dalpha = -q Cov(i, d^2)``

>>> import numpy as np
>>> z = np.array([0.2, 3.9, -7.4])
>>> soft_quantize(z, 2.0, alpha=1e4).data      # hard: round(z / 2) * 2
array([ 0.,  4., -8.])
>>> y = soft_quantize(z, 2.0, alpha=0.5).data  # soft: pulled towards the levels
>>> bool(np.all(np.abs(y - z) < 1.0))
True
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..ops import unbroadcast

__all__ = ["SoftQuantize", "soft_quantize"]


def _window(xp, t, levels, lo, hi, dtype):
    """Indices (t.shape + (L,)) of the ``levels`` integers nearest to ``t``, inside [lo, hi]."""
    span = hi - lo + 1
    n = min(levels, span)
    start = xp.floor(t + (1.0 - n / 2.0))  # odd n: round(t) - (n-1)/2; even n: floor(t) - n/2 + 1
    start = xp.clip(start, lo, hi - n + 1)
    return start[..., None] + xp.arange(n, dtype=dtype)


class SoftQuantize(Function):
    """``sum_i softmax_i(-alpha (z - i q)^2) i q`` over a window of levels; see the module docstring."""

    def forward(ctx, z, q, alpha, levels=5, bits=8):
        xp = get_array_module(z, q, alpha)
        ctx.shapes = tuple(np.shape(a) for a in (z, q, alpha))
        ctx.dtypes = tuple(getattr(a, "dtype", None) for a in (z, q, alpha))
        z, q, alpha = xp.broadcast_arrays(*(xp.asarray(a) for a in (z, q, alpha)))
        dtype = z.dtype
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        idx = _window(xp, z / q, levels, lo, hi, dtype)  # (..., L), constant in backward
        d = z[..., None] - idx * q[..., None]
        logits = -alpha[..., None] * (d * d)
        logits -= logits.max(axis=-1, keepdims=True)  # stable softmax
        p = xp.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        mean = (p * idx).sum(axis=-1)
        ctx.save_for_backward(z, q, alpha, idx, p, mean)
        return mean * q

    def backward(ctx, g):
        z, q, alpha, idx, p, mean = ctx.saved
        need = ctx.needs_input_grad
        centred = idx - mean[..., None]  # i - E[i]
        d = z[..., None] - idx * q[..., None]
        grads = []
        if need[0]:
            var = (p * centred * centred).sum(axis=-1)
            grads.append(g * 2.0 * alpha * q * q * var)
        else:
            grads.append(None)
        if need[1]:
            cov_id = (p * centred * (idx * d)).sum(axis=-1)
            grads.append(g * (mean + 2.0 * alpha * q * cov_id))
        else:
            grads.append(None)
        if need[2]:
            cov_d2 = (p * centred * (d * d)).sum(axis=-1)
            grads.append(g * (-q * cov_d2))
        else:
            grads.append(None)
        out = []
        for grad, shape, dtype in zip(grads, ctx.shapes, ctx.dtypes):
            if grad is not None:
                grad = unbroadcast(grad, shape)
                if dtype is not None:
                    grad = grad.astype(dtype, copy=False)
            out.append(grad)
        return tuple(out)


def check_window(levels, bits):
    """Raise ValueError unless ``levels`` >= 1 and ``bits`` in 2..32 are integers (soft_quantize's window)."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, found {levels!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 32:
        raise ValueError(f"bits must be an integer in 2..32, found {bits!r}")


def _operand(a, name, dtype, xp):
    """A Tensor/array operand of ``z``'s float dtype; scalars and integer arrays are cast."""
    if isinstance(a, Tensor):
        if a.dtype != dtype:
            raise TypeError(
                f"soft_quantize expects {name} of the coefficients' dtype {dtype}, found {a.dtype}; "
                "cast them to one floating dtype"
            )
        return a, a.data
    if get_array_module(a) is not xp and hasattr(a, "dtype"):
        raise TypeError(f"soft_quantize expects {name} on the coefficients' device")
    raw = xp.asarray(a)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"soft_quantize expects a numeric {name}, found dtype {raw.dtype}")
    raw = raw.astype(dtype, copy=False)
    return raw, raw


def soft_quantize(z, q, alpha, levels: int = 5, bits: int = 8):
    """Soft quantization of coefficients ``z`` with steps ``q`` and hardness ``alpha``.

    ``z``: Tensor or float array; ``q``, ``alpha``: Tensors, arrays or scalars
    broadcastable against ``z`` (e.g. a (64,) zigzag table against
    (N, C, BH, BW, 64) coefficients), positive. ``levels`` (>= 1) nearest
    levels of ``z/q`` enter the softmax; level indices stay within the signed
    ``bits`` (>= 2) range. Returns a Tensor of the broadcast shape; gradients
    reach every Tensor argument with ``requires_grad`` (summed over broadcast
    axes). Large ``alpha q^2`` gives ``round(z/q) q`` (ties aside).
    """
    check_window(levels, bits)
    zr = z.data if isinstance(z, Tensor) else z
    xp = get_array_module(z, q, alpha)
    zr = xp.asarray(zr)
    if zr.dtype.kind != "f":
        if isinstance(z, Tensor):
            raise TypeError(f"soft_quantize expects floating-point coefficients, found {zr.dtype}")
        zr = zr.astype(np.float32)
        z = zr
    q, qr = _operand(q, "q", zr.dtype, xp)
    alpha, ar = _operand(alpha, "alpha", zr.dtype, xp)
    for name, raw in (("q", qr), ("alpha", ar)):
        if raw.size and not bool(xp.all(raw > 0)):
            raise ValueError(
                f"soft_quantize expects positive {name}, found min {float(raw.min())!r}; "
                f"clamp it first (JPEGLayer clamps q to [q_min, 255] and alpha to >= 1e-5)"
            )
    try:
        np.broadcast_shapes(zr.shape, qr.shape, ar.shape)
    except ValueError:
        raise ValueError(
            f"soft_quantize: z {zr.shape}, q {qr.shape} and alpha {ar.shape} do not broadcast together"
        ) from None
    return SoftQuantize.apply(z, q, alpha, levels=int(levels), bits=int(bits))
