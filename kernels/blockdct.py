"""Blockwise 8x8 orthonormal DCT-II and its inverse, in JPEG zigzag order.

The per-block functions are plain Python so that the CPU driver here and the
CUDA driver in :mod:`dctnet.kernels.blockdct_cuda` compile the same math. Each
block costs two separable passes of 8x8x8 multiply-adds (1,024 per direction)
instead of a dense 64x64 product.
"""

import numpy as np
from numba import njit, prange


def fdct_block(x, n, bi, bj, out, d, izz, tmp):
    """out[n, bi, bj, :] = zigzag(D @ x[n, 8bi:8bi+8, 8bj:8bj+8] @ D.T).

    ``izz[natural] = zigzag position``; ``tmp`` is an 8x8 scratch array. Both
    passes keep eight inputs in registers so each output is one fused sum.
    """
    r0 = bi * 8
    c0 = bj * 8
    for j in range(8):  # columns: tmp[:, j] = D @ block[:, j]
        x0 = x[n, r0, c0 + j]
        x1 = x[n, r0 + 1, c0 + j]
        x2 = x[n, r0 + 2, c0 + j]
        x3 = x[n, r0 + 3, c0 + j]
        x4 = x[n, r0 + 4, c0 + j]
        x5 = x[n, r0 + 5, c0 + j]
        x6 = x[n, r0 + 6, c0 + j]
        x7 = x[n, r0 + 7, c0 + j]
        for u in range(8):
            tmp[u, j] = (
                d[u, 0] * x0 + d[u, 1] * x1 + d[u, 2] * x2 + d[u, 3] * x3
                + d[u, 4] * x4 + d[u, 5] * x5 + d[u, 6] * x6 + d[u, 7] * x7
            )
    for u in range(8):  # rows: coef[u, v] = tmp[u, :] @ D[v, :], stored zigzag
        t0 = tmp[u, 0]
        t1 = tmp[u, 1]
        t2 = tmp[u, 2]
        t3 = tmp[u, 3]
        t4 = tmp[u, 4]
        t5 = tmp[u, 5]
        t6 = tmp[u, 6]
        t7 = tmp[u, 7]
        for v in range(8):
            out[n, bi, bj, izz[u * 8 + v]] = (
                t0 * d[v, 0] + t1 * d[v, 1] + t2 * d[v, 2] + t3 * d[v, 3]
                + t4 * d[v, 4] + t5 * d[v, 5] + t6 * d[v, 6] + t7 * d[v, 7]
            )


def idct_block(c, n, bi, bj, out, d, izz, tmp):
    """out[n, 8bi:8bi+8, 8bj:8bj+8] = D.T @ unzigzag(c[n, bi, bj, :]) @ D."""
    for u in range(8):  # rows: tmp[u, j] = sum_v coef[u, v] D[v, j]
        t0 = c[n, bi, bj, izz[u * 8]]
        t1 = c[n, bi, bj, izz[u * 8 + 1]]
        t2 = c[n, bi, bj, izz[u * 8 + 2]]
        t3 = c[n, bi, bj, izz[u * 8 + 3]]
        t4 = c[n, bi, bj, izz[u * 8 + 4]]
        t5 = c[n, bi, bj, izz[u * 8 + 5]]
        t6 = c[n, bi, bj, izz[u * 8 + 6]]
        t7 = c[n, bi, bj, izz[u * 8 + 7]]
        for j in range(8):
            tmp[u, j] = (
                t0 * d[0, j] + t1 * d[1, j] + t2 * d[2, j] + t3 * d[3, j]
                + t4 * d[4, j] + t5 * d[5, j] + t6 * d[6, j] + t7 * d[7, j]
            )
    r0 = bi * 8
    c0 = bj * 8
    for j in range(8):  # columns: pixel[m, j] = sum_u D[u, m] tmp[u, j]
        t0 = tmp[0, j]
        t1 = tmp[1, j]
        t2 = tmp[2, j]
        t3 = tmp[3, j]
        t4 = tmp[4, j]
        t5 = tmp[5, j]
        t6 = tmp[6, j]
        t7 = tmp[7, j]
        for m in range(8):
            out[n, r0 + m, c0 + j] = (
                d[0, m] * t0 + d[1, m] * t1 + d[2, m] * t2 + d[3, m] * t3
                + d[4, m] * t4 + d[5, m] * t5 + d[6, m] * t6 + d[7, m] * t7
            )


_fdct_block = njit(inline="always")(fdct_block)
_idct_block = njit(inline="always")(idct_block)


@njit(parallel=True, cache=True)
def fdct(x, out, d, izz):
    """CPU driver: x (N, H, W) -> out (N, H/8, W/8, 64), one block row per task."""
    nb, h, w = x.shape
    bh = h // 8
    bw = w // 8
    for t in prange(nb * bh):
        n = t // bh
        bi = t - n * bh
        tmp = np.empty((8, 8), dtype=d.dtype)
        for bj in range(bw):
            _fdct_block(x, n, bi, bj, out, d, izz, tmp)


@njit(parallel=True, cache=True)
def idct(c, out, d, izz):
    """CPU driver: c (N, BH, BW, 64) -> out (N, 8 BH, 8 BW)."""
    nb, bh, bw, _ = c.shape
    for t in prange(nb * bh):
        n = t // bh
        bi = t - n * bh
        tmp = np.empty((8, 8), dtype=d.dtype)
        for bj in range(bw):
            _idct_block(c, n, bi, bj, out, d, izz, tmp)


# Serial drivers, for callers that sit between BLAS calls (the JPEG-domain
# layers): OpenBLAS's worker threads keep spinning for a while after each GEMM,
# and Numba's parallel workers then fight them for the cores. Measured on a
# 2-core machine, the paper network ran ~1.5x faster with these.
@njit(cache=True)
def fdct_serial(x, out, d, izz):
    """:func:`fdct` on the calling thread only."""
    nb, h, w = x.shape
    tmp = np.empty((8, 8), dtype=d.dtype)
    for n in range(nb):
        for bi in range(h // 8):
            for bj in range(w // 8):
                _fdct_block(x, n, bi, bj, out, d, izz, tmp)


@njit(cache=True)
def idct_serial(c, out, d, izz):
    """:func:`idct` on the calling thread only."""
    nb, bh, bw, _ = c.shape
    tmp = np.empty((8, 8), dtype=d.dtype)
    for n in range(nb):
        for bi in range(bh):
            for bj in range(bw):
                _idct_block(c, n, bi, bj, out, d, izz, tmp)
