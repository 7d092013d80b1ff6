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
    _accumulate(y, y, y, 1, 0, y.shape[0], sums)


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
    for p0 in range(0, g.shape[0], BLOCK):
        p1 = min(p0 + BLOCK, g.shape[0])
        for p in range(p0, p1):
            for c in range(g.shape[1]):
                gm[p, c] = g[p, c] if out[p, c] > zero else zero
        _accumulate(gm, y, r, 2 if has_r else 0, p0, p1, sums)


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
    for p0 in range(0, g.shape[0], BLOCK):
        p1 = min(p0 + BLOCK, g.shape[0])
        for p in range(p0, p1):
            for c in range(g.shape[1]):
                if not h[p, c] > zero:
                    g[p, c] = zero
        _accumulate(g, y, y, 0, p0, p1, sums)


# Rows per block: the masking loop writes one array and the summing loop then
# reads it back from L1. Kept apart, each loop vectorizes; fused into one, the
# stores to two arrays that might alias keep LLVM scalar.
BLOCK = 64


@njit(nogil=True, cache=True, inline="always")
def _accumulate(g, y, r, kind, p0, p1, sums):
    """Rows p0..p1 of g into the float64 sums: kind 0: sum(g), sum(g*y); 1: sum(g),
    sum(g*g); 2: sum(g), sum(g*y), sum(g*r). Four rows are added in registers
    before each update of ``sums``, so that the update's store-to-load latency
    is paid once per four rows (measured 3x faster); the order is fixed."""
    p = p0
    while p + 4 <= p1:
        for c in range(g.shape[1]):
            a0, a1, a2, a3 = float(g[p, c]), float(g[p + 1, c]), float(g[p + 2, c]), float(g[p + 3, c])
            sums[0, c] += (a0 + a1) + (a2 + a3)
            if kind == 1:
                sums[1, c] += (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3)
            else:
                sums[1, c] += (a0 * y[p, c] + a1 * y[p + 1, c]) + (a2 * y[p + 2, c] + a3 * y[p + 3, c])
            if kind == 2:
                sums[2, c] += (a0 * r[p, c] + a1 * r[p + 1, c]) + (a2 * r[p + 2, c] + a3 * r[p + 3, c])
        p += 4
    for q in range(p, p1):
        for c in range(g.shape[1]):
            f = float(g[q, c])
            sums[0, c] += f
            sums[1, c] += f * (f if kind == 1 else y[q, c])
            if kind == 2:
                sums[2, c] += f * r[q, c]
