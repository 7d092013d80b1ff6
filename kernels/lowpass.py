"""The ASM/APX ReLU of the fused engine on channels-last pixels: per 8x8 block,
the mask of the rank-k low-pass projection, in one pass.

The carried evaluation (docs/design.md §4) holds the coefficients of a block as
its pixels P; the ReLU at n < 15 frequencies needs the pixels rebuilt from the
first k zigzag coefficients, ``P_k = B_k^T (B_k P)`` with ``B_k`` the first k
rows of the zigzag DCT basis (k x 64). ASM returns ``P * [P_k > 0]``, APX
``P_k * [P_k > 0]``. Here one kernel adds the conv's bias (and the residual)
and applies the mask while the GEMM's output is still in cache, all channels
of a block at once: two (k x 64)(64 x C)-sized products per block, the
channel loop innermost and contiguous.

Serial and ``nogil`` like the other engine kernels (:mod:`.conv`): the engine
runs it on its own threads, one task of images each. No CUDA twin: the engine
is CPU only.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def bias_lowpass_images(y, bias, res, has_res, bk, apx):
    """In place on ``y`` (M, H, W, C), H and W multiples of 8: ``v = y + bias (+ res)``,
    then per block and channel ASM (``v * [low > 0]``) or APX (``low * [low > 0]``)
    with ``low`` the projection of ``v`` onto the rows of ``bk`` (k, 64; natural pixel order)."""
    m, h, w, c = y.shape
    k = bk.shape[0]
    zero = y.dtype.type(0)
    tile = np.empty((64, c), y.dtype)
    coef = np.empty((k, c), y.dtype)
    low = np.empty((64, c), y.dtype)
    for n in range(m):
        for by in range(h // 8):
            for bx in range(w // 8):
                for i in range(8):
                    for j in range(8):
                        p = 8 * i + j
                        for ch in range(c):
                            v = y[n, 8 * by + i, 8 * bx + j, ch] + bias[ch]
                            if has_res:
                                v += res[n, 8 * by + i, 8 * bx + j, ch]
                            tile[p, ch] = v
                coef[:] = zero
                for q in range(k):
                    for p in range(64):
                        b = bk[q, p]
                        for ch in range(c):
                            coef[q, ch] += b * tile[p, ch]
                low[:] = zero
                for p in range(64):
                    for q in range(k):
                        b = bk[q, p]
                        for ch in range(c):
                            low[p, ch] += b * coef[q, ch]
                for i in range(8):
                    for j in range(8):
                        p = 8 * i + j
                        for ch in range(c):
                            g = low[p, ch]
                            if g > zero:
                                y[n, 8 * by + i, 8 * bx + j, ch] = g if apx else tile[p, ch]
                            else:
                                y[n, 8 * by + i, 8 * bx + j, ch] = zero
