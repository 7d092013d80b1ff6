"""The ASM/APX ReLU of the fused engine on channels-last pixels: per 8x8 block,
the mask of the rank-k low-pass projection, in one pass.

The carried evaluation (docs/design.md §4) holds the coefficients of a block as
its pixels P; the ReLU at n < 15 frequencies needs the pixels rebuilt from the
first k = keep(n) zigzag coefficients, the frequencies (a, b) with a + b < n:
``P_k = B_k^T (B_k P)`` with ``B_k`` the first k rows of the zigzag DCT basis.
ASM returns ``P * [P_k > 0]``, APX ``P_k * [P_k > 0]``. The engine runs it in
a conv's epilogue, while the GEMM's output is in cache: one kernel adds the bias
(and the residual) and projects each block separably, the 8-point DCT along
columns for the min(n, 8) vertical frequencies kept, along rows for the
triangle a + b < n, and back (at n = 6: 1,104 multiply-adds per block and
channel instead of 2,688 for the two rank-k products). A row of blocks is held
so that every pass is a weighted sum of contiguous vectors that span all its
blocks and channels, four terms per sweep: 2x faster than the per-block form
with channel vectors (47 -> 22 us per 16x32x32 map), which itself was 2-3x
faster than gathering the blocks into a matrix for two BLAS GEMMs.

Serial and ``nogil`` like the other engine kernels (:mod:`.conv`): the engine
runs it on its own threads, one task of images each. No CUDA twin: the engine
is CPU only.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _combine(out, weights, rows, k):
    """``out = 0 + weights[0] * rows[0] + ... + weights[k-1] * rows[k-1]``, summed in this order,
    four rows per sweep of ``out`` (the partial sums stay in registers)."""
    zero = out.dtype.type(0)
    for t in range(out.shape[0]):
        out[t] = zero
    r = 0
    while r + 4 <= k:
        e0, e1, e2, e3 = weights[r], weights[r + 1], weights[r + 2], weights[r + 3]
        for t in range(out.shape[0]):
            out[t] = out[t] + e0 * rows[r, t] + e1 * rows[r + 1, t] + e2 * rows[r + 2, t] + e3 * rows[r + 3, t]
        r += 4
    while r < k:
        e0 = weights[r]
        for t in range(out.shape[0]):
            out[t] += e0 * rows[r, t]
        r += 1


@njit(nogil=True, cache=True)
def bias_lowpass_images(y, bias, res, has_res, d, n, apx):
    """In place on ``y`` (M, H, W, C), H and W multiples of 8: ``v = y + bias (+ res)``, then
    per block and channel ASM (``v * [low > 0]``) or APX (``low * [low > 0]``), ``low`` the
    projection of ``v`` onto the frequencies (a, b) with a + b < ``n``; ``d`` is the 8x8
    DCT matrix (``d[u, x]``).

    One row of blocks at a time, held as (8, 8, W/8, C): (row or vertical frequency,
    column in the block, block, channel). Every pass then runs on contiguous vectors of all
    the row's blocks and channels: the vertical passes (the min(n, 8) vertical frequencies
    kept, and back) on (8, W/8, C), the horizontal ones over the triangle a + b < n on
    (W/8, C).
    """
    m, h, w, c = y.shape
    zero = y.dtype.type(0)
    na = min(n, 8)
    span = (w // 8) * c  # one column-in-block of all the row's blocks
    tile = np.empty((8, 8, span), y.dtype)  # v: (i, j, block and channel)
    vert = np.empty((8, 8, span), y.dtype)  # vertical frequency a: (a, j, ...)
    coef = np.empty((8, span), y.dtype)     # one a's horizontal frequencies b: (b, ...)
    back = np.empty((8, 8, span), y.dtype)  # rebuilt horizontally: (a, j, ...)
    low = np.empty((8, span), y.dtype)      # one image row: (j, ...)
    for im in range(m):
        for by in range(h // 8):
            for i in range(8):
                r = 8 * by + i
                for x in range(w):
                    j, at = x % 8, (x // 8) * c
                    for ch in range(c):
                        v = y[im, r, x, ch] + bias[ch]
                        if has_res:
                            v += res[im, r, x, ch]
                        tile[i, j, at + ch] = v
            for a in range(na):  # vertical forward
                for j in range(8):
                    _combine(vert[a, j], d[a], tile[:, j], 8)
                kb = min(8, n - a)  # horizontal, the triangle: forward and back
                for b in range(kb):
                    _combine(coef[b], d[b], vert[a], 8)
                for j in range(8):
                    _combine(back[a, j], d[:, j], coef, kb)
            for i in range(8):  # vertical back, then the mask
                for j in range(8):
                    _combine(low[j], d[:, i], back[:, j], na)
                r = 8 * by + i
                for x in range(w):
                    j, at = x % 8, (x // 8) * c
                    for ch in range(c):
                        g = low[j, at + ch]
                        if g > zero:
                            y[im, r, x, ch] = g if apx else tile[i, j, at + ch]
                        else:
                            y[im, r, x, ch] = zero
