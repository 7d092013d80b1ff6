"""Serial Numba kernels of the fused training layers (:mod:`dctnet.functional.fused`).

Batch-norm moments taken in the conv's epilogue, BN + (BN'd shortcut) + ReLU
in one pass, and the backward passes that mask by the ReLU and take the
moments the BN gradient needs in the same sweep. Arrays are channels-last
(P, C): P pixels (of one or more images) by C channels; per-channel vectors
run along the contiguous axis, so every loop vectorizes and the float64
moments accumulate channel by channel in a fixed order (reproducible). Like
:mod:`dctnet.kernels.conv` they run on the engine's threads (``nogil``, no
``prange``); CuPy arrays take the unfused array ops instead.
"""

from numba import njit


@njit(nogil=True, cache=True)
def moments(y, sums):
    """``sums[0] += y.sum(axis=0)``, ``sums[1] += (y * y).sum(axis=0)``, in float64."""
    for p in range(y.shape[0]):
        for c in range(y.shape[1]):
            v = float(y[p, c])
            sums[0, c] += v
            sums[1, c] += v * v


@njit(nogil=True, cache=True)
def affine_relu(y, a, b, out):
    """``out = max(a * y + b, 0)`` with per-channel ``a``, ``b`` (``out`` may be ``y``)."""
    zero = y.dtype.type(0)
    for p in range(y.shape[0]):
        for c in range(y.shape[1]):
            out[p, c] = max(a[c] * y[p, c] + b[c], zero)


@njit(nogil=True, cache=True)
def affine2_relu(y, a, b, r, ar, br, out):
    """``out = max(a * y + b + ar * r + br, 0)``: the end of a residual block."""
    zero = y.dtype.type(0)
    for p in range(y.shape[0]):
        for c in range(y.shape[1]):
            out[p, c] = max(a[c] * y[p, c] + ar[c] * r[p, c] + (b[c] + br[c]), zero)


@njit(nogil=True, cache=True)
def masked_moments(g, out, y, r, has_r, gm, sums):
    """``gm = g * (out > 0)`` and, in float64, ``sums[0] += gm.sum(0)``,
    ``sums[1] += (gm * y).sum(0)``, ``sums[2] += (gm * r).sum(0)`` (when ``has_r``)."""
    zero = g.dtype.type(0)
    for p in range(g.shape[0]):
        for c in range(g.shape[1]):
            v = g[p, c] if out[p, c] > zero else zero
            gm[p, c] = v
            f = float(v)
            sums[0, c] += f
            sums[1, c] += f * y[p, c]
            if has_r:
                sums[2, c] += f * r[p, c]


@njit(nogil=True, cache=True)
def affine_grad(g, y, a, b, c0, out):
    """``out = a * g + b * y + c0`` with per-channel coefficients: batch norm's input gradient."""
    for p in range(g.shape[0]):
        for c in range(g.shape[1]):
            out[p, c] = a[c] * g[p, c] + b[c] * y[p, c] + c0[c]


@njit(nogil=True, cache=True)
def relu_grad_moments(g, h, y, sums):
    """In place ``g *= (h > 0)``, then (float64) ``sums[0] += g.sum(0)``, ``sums[1] += (g * y).sum(0)``."""
    zero = g.dtype.type(0)
    for p in range(g.shape[0]):
        for c in range(g.shape[1]):
            v = g[p, c] if h[p, c] > zero else zero
            g[p, c] = v
            f = float(v)
            sums[0, c] += f
            sums[1, c] += f * y[p, c]
