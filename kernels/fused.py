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

import numpy as np
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
def affine2_relu(y, a, b, r, ar, br, out):
    """``out = max(a * y + b + ar * r + br, 0)``: the end of a residual block."""
    zero = y.dtype.type(0)
    for p in range(y.shape[0]):
        for c in range(y.shape[1]):
            out[p, c] = max(a[c] * y[p, c] + ar[c] * r[p, c] + (b[c] + br[c]), zero)


# Rows per block: the masking loop writes one array and the summing loop then
# reads it back from L1. Each loop vectorizes on its own; fused into one, the
# stores to an output that might alias the inputs keep LLVM scalar (8x slower).
BLOCK = 64


# The masking kernels sum into accumulators of their own (fresh arrays, not
# the caller's ``sums``, which might alias an input): then the row loops
# vectorize, measured 2.5x faster.
@njit(nogil=True, cache=True, inline="always")
def _accumulate2(g, y, p0, p1, s0, s1):
    """Rows p0..p1: ``s0 += sum(g)``, ``s1 += sum(g*y)`` per channel, in float64."""
    for p in range(p0, p1):
        for c in range(g.shape[1]):
            f = float(g[p, c])
            s0[c] += f
            s1[c] += f * y[p, c]


@njit(nogil=True, cache=True, inline="always")
def _accumulate3(g, y, r, p0, p1, s0, s1, s2):
    """Rows p0..p1: ``s0 += sum(g)``, ``s1 += sum(g*y)``, ``s2 += sum(g*r)``, in float64."""
    for p in range(p0, p1):
        for c in range(g.shape[1]):
            f = float(g[p, c])
            s0[c] += f
            s1[c] += f * y[p, c]
            s2[c] += f * r[p, c]


@njit(nogil=True, cache=True, inline="always")
def _add(sums, s0, s1, s2):
    for c in range(s0.size):
        sums[0, c] += s0[c]
        sums[1, c] += s1[c]
    for c in range(s2.size):
        sums[2, c] += s2[c]


@njit(nogil=True, cache=True)
def masked_moments(g, out, y, r, has_r, gm, sums):
    """``gm = g * (out > 0)`` and, in float64, ``sums[0] += gm.sum(0)``,
    ``sums[1] += (gm * y).sum(0)``, ``sums[2] += (gm * r).sum(0)`` (when ``has_r``)."""
    zero = g.dtype.type(0)
    s0, s1, s2 = np.zeros(g.shape[1]), np.zeros(g.shape[1]), np.zeros(g.shape[1] if has_r else 0)
    for p0 in range(0, g.shape[0], BLOCK):
        p1 = min(p0 + BLOCK, g.shape[0])
        for p in range(p0, p1):
            for c in range(g.shape[1]):
                gm[p, c] = g[p, c] if out[p, c] > zero else zero
        if has_r:
            _accumulate3(gm, y, r, p0, p1, s0, s1, s2)
        else:
            _accumulate2(gm, y, p0, p1, s0, s1)
    _add(sums, s0, s1, s2)


@njit(nogil=True, cache=True)
def affine_grad(g, y, a, b, c0, out):
    """``out = a * g + b * y + c0`` with per-channel coefficients: batch norm's input gradient."""
    for p in range(g.shape[0]):
        for c in range(g.shape[1]):
            out[p, c] = a[c] * g[p, c] + b[c] * y[p, c] + c0[c]


@njit(nogil=True, cache=True)
def relu_grad_moments(g, y, a, b, sums):
    """In place ``g *= (a * y + b > 0)``, the mask of ``relu(a * y + b)`` (per-channel
    ``a``, ``b``), then (float64) ``sums[0] += g.sum(0)``, ``sums[1] += (g * y).sum(0)``."""
    zero = g.dtype.type(0)
    s0, s1, s2 = np.zeros(g.shape[1]), np.zeros(g.shape[1]), np.zeros(0)
    for p0 in range(0, g.shape[0], BLOCK):
        p1 = min(p0 + BLOCK, g.shape[0])
        for p in range(p0, p1):
            for c in range(g.shape[1]):
                if not a[c] * y[p, c] + b[c] > zero:
                    g[p, c] = zero
        _accumulate2(g, y, p0, p1, s0, s1)
    _add(sums, s0, s1, s2)
