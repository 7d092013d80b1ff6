"""The ASM/APX ReLU of the fused engine on channels-last pixels: per 8x8 block,
the mask of the rank-k low-pass projection, in one pass.

The carried evaluation (docs/design.md §4) holds the coefficients of a block as
its pixels P; the ReLU at n < 15 frequencies needs the pixels rebuilt from the
first k = keep(n) zigzag coefficients, the frequencies (a, b) with a + b < n:
``P_k = B_k^T (B_k P)`` with ``B_k`` the first k rows of the zigzag DCT basis.
ASM returns ``P * [P_k > 0]``, APX ``P_k * [P_k > 0]``. The engine runs it in
a conv's epilogue, while the GEMM's output is in cache: one kernel adds the bias
(and the residual) and projects each block separably, the 8-point DCT along
rows for the n horizontal frequencies kept, along columns for the triangle
a + b < n, and back (at n = 6: 1,104 multiply-adds per block and channel
instead of 2,688 for the two rank-k products), all channels of a block at once
with the channel loop innermost. Measured 2-3x faster than gathering the blocks
into a matrix for two BLAS GEMMs.

Serial and ``nogil`` like the other engine kernels (:mod:`.conv`): the engine
runs it on its own threads, one task of images each. No CUDA twin: the engine
is CPU only.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def bias_lowpass_images(y, bias, res, has_res, d, n, apx):
    """In place on ``y`` (M, H, W, C), H and W multiples of 8: ``v = y + bias (+ res)``, then
    per block and channel ASM (``v * [low > 0]``) or APX (``low * [low > 0]``), ``low`` the
    projection of ``v`` onto the frequencies (a, b) with a + b < ``n``; ``d`` is the 8x8
    DCT matrix (``d[u, x]``). All four passes run on (8, 8, C) tiles, channels innermost."""
    m, h, w, c = y.shape
    zero = y.dtype.type(0)
    nb = min(n, 8)
    tile = np.empty((64, c), y.dtype)
    rowt = np.empty((8, 8, c), y.dtype)
    coef = np.empty((8, 8, c), y.dtype)
    lowi = np.empty((8, 8, c), y.dtype)
    acc = np.empty(c, y.dtype)
    for im in range(m):
        for by in range(h // 8):
            for bx in range(w // 8):
                for i in range(8):
                    for j in range(8):
                        for ch in range(c):
                            v = y[im, 8 * by + i, 8 * bx + j, ch] + bias[ch]
                            if has_res:
                                v += res[im, 8 * by + i, 8 * bx + j, ch]
                            tile[8 * i + j, ch] = v
                for i in range(8):
                    for b in range(nb):
                        for ch in range(c):
                            acc[ch] = zero
                        for j in range(8):
                            dv = d[b, j]
                            for ch in range(c):
                                acc[ch] += dv * tile[8 * i + j, ch]
                        for ch in range(c):
                            rowt[i, b, ch] = acc[ch]
                for b in range(nb):
                    for a in range(min(8, n - b)):
                        for ch in range(c):
                            acc[ch] = zero
                        for i in range(8):
                            dv = d[a, i]
                            for ch in range(c):
                                acc[ch] += dv * rowt[i, b, ch]
                        for ch in range(c):
                            coef[a, b, ch] = acc[ch]
                for i in range(8):
                    for b in range(nb):
                        for ch in range(c):
                            acc[ch] = zero
                        for a in range(min(8, n - b)):
                            dv = d[a, i]
                            for ch in range(c):
                                acc[ch] += dv * coef[a, b, ch]
                        for ch in range(c):
                            lowi[i, b, ch] = acc[ch]
                for i in range(8):
                    for j in range(8):
                        for ch in range(c):
                            acc[ch] = zero
                        for b in range(nb):
                            dv = d[b, j]
                            for ch in range(c):
                                acc[ch] += dv * lowi[i, b, ch]
                        p = 8 * i + j
                        for ch in range(c):
                            g = acc[ch]
                            if g > zero:
                                y[im, 8 * by + i, 8 * bx + j, ch] = g if apx else tile[p, ch]
                            else:
                                y[im, 8 * by + i, 8 * bx + j, ch] = zero
