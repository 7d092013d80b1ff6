"""Serial Numba kernels of the fused training layers (:mod:`dctnet.functional.fused`).

Batch-norm moments taken in the conv's epilogue, BN + (BN'd shortcut) + ReLU
in one pass, and the backward passes that mask by the ReLU and take the
moments the BN gradient needs in the same sweep. Arrays are (n, C, P) views
of NCHW activations; moments are float64 sums per channel, one row per
quantity, accumulated into the caller's per-task rows. Like
:mod:`dctnet.kernels.conv` they run on the engine's threads (``nogil``, no
``prange``); CuPy arrays take the unfused array ops instead.
"""

from numba import njit

# Reductions may be reassociated, so that LLVM vectorizes them (a float64 sum
# in program order runs one add per 4 cycles); the order is still fixed for
# a given machine, so results are reproducible.
REDUCE = {"reassoc"}


@njit(nogil=True, cache=True, fastmath=REDUCE)
def moments(y, sums):
    """``sums[0, c] += sum(y[:, c])``, ``sums[1, c] += sum(y[:, c]**2)``."""
    for m in range(y.shape[0]):
        for c in range(y.shape[1]):
            s = 0.0
            q = 0.0
            for p in range(y.shape[2]):
                v = y[m, c, p]
                s += v
                q += v * v
            sums[0, c] += s
            sums[1, c] += q


@njit(nogil=True, cache=True)
def affine_relu(y, a, b, out):
    """``out = max(a[c] * y + b[c], 0)`` (``out`` may be ``y``)."""
    zero = y.dtype.type(0)
    for m in range(y.shape[0]):
        for c in range(y.shape[1]):
            ac, bc = a[c], b[c]
            for p in range(y.shape[2]):
                out[m, c, p] = max(ac * y[m, c, p] + bc, zero)


@njit(nogil=True, cache=True)
def affine2_relu(y, a, b, r, ar, br, out):
    """``out = max(a[c] * y + b[c] + ar[c] * r + br[c], 0)``: the end of a residual block."""
    zero = y.dtype.type(0)
    for m in range(y.shape[0]):
        for c in range(y.shape[1]):
            ac, arc, bc = a[c], ar[c], b[c] + br[c]
            for p in range(y.shape[2]):
                out[m, c, p] = max(ac * y[m, c, p] + arc * r[m, c, p] + bc, zero)


@njit(nogil=True, cache=True, fastmath=REDUCE)
def masked_moments(g, out, y, r, has_r, gm, sums):
    """``gm = g * (out > 0)`` and its moments: ``sums[0] += sum(gm)``,
    ``sums[1] += sum(gm * y)``, ``sums[2] += sum(gm * r)`` (when ``has_r``)."""
    zero = g.dtype.type(0)
    for m in range(g.shape[0]):
        for c in range(g.shape[1]):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            for p in range(g.shape[2]):
                v = g[m, c, p] if out[m, c, p] > zero else zero
                gm[m, c, p] = v
                s0 += v
                s1 += v * y[m, c, p]
                if has_r:
                    s2 += v * r[m, c, p]
            sums[0, c] += s0
            sums[1, c] += s1
            sums[2, c] += s2


@njit(nogil=True, cache=True)
def affine_grad(g, y, a, b, c0, out):
    """``out = a[c] * g + b[c] * y + c0[c]``: batch norm's input gradient, given its coefficients."""
    for m in range(g.shape[0]):
        for c in range(g.shape[1]):
            ac, bc, cc = a[c], b[c], c0[c]
            for p in range(g.shape[2]):
                out[m, c, p] = ac * g[m, c, p] + bc * y[m, c, p] + cc


@njit(nogil=True, cache=True, fastmath=REDUCE)
def relu_grad_moments(g, h, y, sums):
    """In place ``g *= (h > 0)``, then ``sums[0] += sum(g)``, ``sums[1] += sum(g * y)``."""
    zero = g.dtype.type(0)
    for m in range(g.shape[0]):
        for c in range(g.shape[1]):
            s0 = 0.0
            s1 = 0.0
            for p in range(g.shape[2]):
                v = g[m, c, p] if h[m, c, p] > zero else zero
                g[m, c, p] = v
                s0 += v
                s1 += v * y[m, c, p]
            sums[0, c] += s0
            sums[1, c] += s1
