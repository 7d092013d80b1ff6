"""The 8x8 orthonormal DCT-II and its inverse in JPEG zigzag order, and the
blockwise drivers over images.

:func:`fdct_block` and :func:`idct_block` are the one written form of the 8x8
transform. They are plain Python so that every kernel compiles the same math:
the CPU drivers here (``njit``), the CUDA drivers of
:mod:`dctnet.kernels.blockdct_cuda`, and the ASM/APX ReLU of
:mod:`dctnet.kernels.asm`, which uses their truncation argument ``k`` (the
number of zigzag coefficients kept). Each direction costs two separable passes
of 8x8x8 multiply-adds (1,024 per block) instead of a dense 64x64 product.

Arguments of every driver: ``d`` is the 8x8 DCT matrix and ``izz`` the inverse
zigzag permutation (``izz[natural index] = zigzag position``), both from
:func:`dctnet.transform.kernel_constants`, ``d`` in the dtype of the data.
"""

import numpy as np
from numba import njit, prange


def fdct_block(pix, n, r0, c0, coef, b, k, d, izz, tmp):
    """coef[b, z] = zigzag coefficient z of the DCT of ``pix[n, r0:r0+8, c0:c0+8]`` for z < k, 0 for z >= k.

    ``pix`` is (N, H, W) (images, or one (1, 8, 8) block), ``coef`` (blocks, 64),
    ``tmp`` an 8x8 scratch array of the data's dtype. Both passes hold eight
    inputs in registers, so each output is one fused sum. Blocks are addressed
    by index rather than passed as views (``x[n, r0:r0+8, ...]``): a view per
    block measured 1.7x slower in the parallel CPU driver.
    """
    for j in range(8):  # columns: tmp[u, j] = sum_m D[u, m] pix[m, j]
        p0 = pix[n, r0, c0 + j]
        p1 = pix[n, r0 + 1, c0 + j]
        p2 = pix[n, r0 + 2, c0 + j]
        p3 = pix[n, r0 + 3, c0 + j]
        p4 = pix[n, r0 + 4, c0 + j]
        p5 = pix[n, r0 + 5, c0 + j]
        p6 = pix[n, r0 + 6, c0 + j]
        p7 = pix[n, r0 + 7, c0 + j]
        for u in range(8):
            tmp[u, j] = (
                d[u, 0] * p0 + d[u, 1] * p1 + d[u, 2] * p2 + d[u, 3] * p3
                + d[u, 4] * p4 + d[u, 5] * p5 + d[u, 6] * p6 + d[u, 7] * p7
            )
    for u in range(8):  # rows: F[u, v] = sum_j tmp[u, j] D[v, j], stored zigzag
        t0 = tmp[u, 0]
        t1 = tmp[u, 1]
        t2 = tmp[u, 2]
        t3 = tmp[u, 3]
        t4 = tmp[u, 4]
        t5 = tmp[u, 5]
        t6 = tmp[u, 6]
        t7 = tmp[u, 7]
        for v in range(8):
            coef[b, izz[u * 8 + v]] = (
                t0 * d[v, 0] + t1 * d[v, 1] + t2 * d[v, 2] + t3 * d[v, 3]
                + t4 * d[v, 4] + t5 * d[v, 5] + t6 * d[v, 6] + t7 * d[v, 7]
            )
    # Truncate after the fact: a test per store measured ~12% slower for k = 64.
    for z in range(k, 64):
        coef[b, z] = 0


def idct_block(coef, b, pix, n, r0, c0, k, d, izz, tmp):
    """pix[n, r0:r0+8, c0:c0+8] = ``D.T @ F @ D``, F the first k zigzag coefficients of ``coef[b]`` (the rest 0).

    Arguments as in :func:`fdct_block`; coefficients at zigzag positions >= k
    are not read, so they may hold anything.
    """
    zero = coef.dtype.type(0)  # a literal 0.0 would make the sums below float64 for float32 data
    for u in range(8):  # rows: tmp[u, j] = sum_v F[u, v] D[v, j], F held in registers
        z = izz[u * 8]
        f0 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 1]
        f1 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 2]
        f2 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 3]
        f3 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 4]
        f4 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 5]
        f5 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 6]
        f6 = coef[b, z] if z < k else zero
        z = izz[u * 8 + 7]
        f7 = coef[b, z] if z < k else zero
        for j in range(8):
            tmp[u, j] = (
                f0 * d[0, j] + f1 * d[1, j] + f2 * d[2, j] + f3 * d[3, j]
                + f4 * d[4, j] + f5 * d[5, j] + f6 * d[6, j] + f7 * d[7, j]
            )
    for j in range(8):  # columns: pix[m, j] = sum_u D[u, m] tmp[u, j]
        t0 = tmp[0, j]
        t1 = tmp[1, j]
        t2 = tmp[2, j]
        t3 = tmp[3, j]
        t4 = tmp[4, j]
        t5 = tmp[5, j]
        t6 = tmp[6, j]
        t7 = tmp[7, j]
        for m in range(8):
            pix[n, r0 + m, c0 + j] = (
                d[0, m] * t0 + d[1, m] * t1 + d[2, m] * t2 + d[3, m] * t3
                + d[4, m] * t4 + d[5, m] * t5 + d[6, m] * t6 + d[7, m] * t7
            )


fdct_block_cpu = njit(inline="always")(fdct_block)
idct_block_cpu = njit(inline="always")(idct_block)


@njit(inline="always")
def _fdct_row(x, out, t, d, izz, tmp):
    """Block row t (= n * BH + bi) of x (N, H, W) into out (N * BH * BW, 64)."""
    bh = x.shape[1] // 8
    bw = x.shape[2] // 8
    n = t // bh
    r0 = (t - n * bh) * 8
    for bj in range(bw):
        fdct_block_cpu(x, n, r0, bj * 8, out, t * bw + bj, 64, d, izz, tmp)


@njit(inline="always")
def _idct_row(c, out, t, d, izz, tmp):
    """Block row t of c (N * BH * BW, 64) into out (N, 8 BH, 8 BW)."""
    bh = out.shape[1] // 8
    bw = out.shape[2] // 8
    n = t // bh
    r0 = (t - n * bh) * 8
    for bj in range(bw):
        idct_block_cpu(c, t * bw + bj, out, n, r0, bj * 8, 64, d, izz, tmp)


@njit(parallel=True, cache=True)
def fdct(x, out, d, izz):
    """CPU driver: x (N, H, W) -> out (N, H/8, W/8, 64), C-contiguous; one block row per task."""
    coefs = out.reshape(-1, 64)
    for t in prange(out.shape[0] * out.shape[1]):
        tmp = np.empty((8, 8), dtype=x.dtype)
        _fdct_row(x, coefs, t, d, izz, tmp)


@njit(parallel=True, cache=True)
def idct(c, out, d, izz):
    """CPU driver: c (N, BH, BW, 64), C-contiguous -> out (N, 8 BH, 8 BW); one block row per task."""
    coefs = c.reshape(-1, 64)
    for t in prange(c.shape[0] * c.shape[1]):
        tmp = np.empty((8, 8), dtype=c.dtype)
        _idct_row(coefs, out, t, d, izz, tmp)


# Serial drivers, for callers that sit between BLAS calls (the JPEG-domain
# layers): OpenBLAS's worker threads keep spinning for a while after each GEMM,
# and Numba's parallel workers then fight them for the cores. Measured on a
# 2-core machine, the paper network ran ~1.5x faster with these.
@njit(cache=True)
def fdct_serial(x, out, d, izz):
    """:func:`fdct` on the calling thread only."""
    coefs = out.reshape(-1, 64)
    tmp = np.empty((8, 8), dtype=x.dtype)
    for t in range(out.shape[0] * out.shape[1]):
        _fdct_row(x, coefs, t, d, izz, tmp)


@njit(cache=True)
def idct_serial(c, out, d, izz):
    """:func:`idct` on the calling thread only."""
    coefs = c.reshape(-1, 64)
    tmp = np.empty((8, 8), dtype=c.dtype)
    for t in range(c.shape[0] * c.shape[1]):
        _idct_row(coefs, out, t, d, izz, tmp)
