"""ReLU in the DCT domain by Approximated Spatial Masking (ASM), and APX.

For one block of zigzag coefficients F and a frequency budget k (the first k
zigzag coefficients):

* ASM:  G = [IDCT(F[:k]) > 0],  out = DCT(IDCT(F) * G)
* APX:  G = [IDCT(F[:k]) > 0],  out = DCT(IDCT(F[:k]) * G)
* backward (mask held constant): dF = DCT(IDCT(dout) * G), truncated to k for APX.

All three are one per-block routine, ``masked_block``: IDCT of the first
``k_val`` coefficients, times a mask (computed from the first ``k_mask``
coefficients, or read), DCT, keeping the first ``k_out`` outputs. It is written
once in plain Python from two 8x8 helpers and compiled twice: ``njit`` here
(``prange`` over blocks) and as a CUDA device function in ``asm_cuda``. Each
transform is separable (1,024 multiply-adds per 8x8 block), never the dense
64^3 Harmonic Mixing Tensor.
"""

import numpy as np
from numba import njit, prange


def idct8(src, b, izz, k, d, pix, tmp):
    """pix = IDCT of the first k zigzag coefficients of src[b] (the rest taken as 0)."""
    for u in range(8):  # rows: tmp[u, j] = sum_v F[u, v] D[v, j], F held in registers
        z = izz[u * 8]
        f0 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 1]
        f1 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 2]
        f2 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 3]
        f3 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 4]
        f4 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 5]
        f5 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 6]
        f6 = src[b, z] if z < k else 0.0
        z = izz[u * 8 + 7]
        f7 = src[b, z] if z < k else 0.0
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
            pix[m, j] = (
                d[0, m] * t0 + d[1, m] * t1 + d[2, m] * t2 + d[3, m] * t3
                + d[4, m] * t4 + d[5, m] * t5 + d[6, m] * t6 + d[7, m] * t7
            )


def fdct8(pix, d, izz, k, dst, b, tmp):
    """dst[b] = zigzag DCT of pix, with zigzag positions >= k set to 0."""
    for j in range(8):  # columns: tmp[u, j] = sum_m D[u, m] pix[m, j]
        p0 = pix[0, j]
        p1 = pix[1, j]
        p2 = pix[2, j]
        p3 = pix[3, j]
        p4 = pix[4, j]
        p5 = pix[5, j]
        p6 = pix[6, j]
        p7 = pix[7, j]
        for u in range(8):
            tmp[u, j] = (
                d[u, 0] * p0 + d[u, 1] * p1 + d[u, 2] * p2 + d[u, 3] * p3
                + d[u, 4] * p4 + d[u, 5] * p5 + d[u, 6] * p6 + d[u, 7] * p7
            )
    for u in range(8):  # rows: F[u, v] = sum_j tmp[u, j] D[v, j]
        t0 = tmp[u, 0]
        t1 = tmp[u, 1]
        t2 = tmp[u, 2]
        t3 = tmp[u, 3]
        t4 = tmp[u, 4]
        t5 = tmp[u, 5]
        t6 = tmp[u, 6]
        t7 = tmp[u, 7]
        for v in range(8):
            z = izz[u * 8 + v]
            s = (
                t0 * d[v, 0] + t1 * d[v, 1] + t2 * d[v, 2] + t3 * d[v, 3]
                + t4 * d[v, 4] + t5 * d[v, 5] + t6 * d[v, 6] + t7 * d[v, 7]
            )
            dst[b, z] = s if z < k else 0.0


def make_masked_block(idct, fdct):
    """The per-block routine, built on an (njit or CUDA) pair of 8x8 transforms."""

    def masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp):
        idct(src, b, izz, k_val, d, pix, tmp)
        if k_mask > 0:  # compute and store the mask G
            if k_mask != k_val:
                idct(src, b, izz, k_mask, d, gate, tmp)
            else:
                for m in range(8):
                    for j in range(8):
                        gate[m, j] = pix[m, j]
            for m in range(8):
                for j in range(8):
                    mask[b, m * 8 + j] = 1 if gate[m, j] > 0 else 0
        for m in range(8):
            for j in range(8):
                if mask[b, m * 8 + j] == 0:
                    pix[m, j] = 0.0
        fdct(pix, d, izz, k_out, dst, b, tmp)

    return masked_block


_masked_block = njit(make_masked_block(njit(idct8), njit(fdct8)))

CHUNK = 64  # blocks per prange task: amortizes the scratch allocations


@njit(parallel=True, cache=True)
def masked(src, dst, mask, d, izz, k_val, k_mask, k_out):
    """CPU driver over blocks: src, dst (B, 64); mask (B, 64) uint8, natural order.

    ``k_mask > 0`` computes the mask from the first k_mask coefficients and
    writes it; ``k_mask == 0`` reads it.
    """
    nblocks = src.shape[0]
    for c in prange((nblocks + CHUNK - 1) // CHUNK):
        pix = np.empty((8, 8), dtype=d.dtype)
        gate = np.empty((8, 8), dtype=d.dtype)
        tmp = np.empty((8, 8), dtype=d.dtype)
        for b in range(c * CHUNK, min(nblocks, (c + 1) * CHUNK)):
            _masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp)
