"""ReLU in the DCT domain by Approximated Spatial Masking (ASM), and APX.

For one block of zigzag coefficients F and a frequency budget k (the first k
zigzag coefficients):

* ASM:  G = [IDCT(F[:k]) > 0],  out = DCT(IDCT(F) * G)
* APX:  G = [IDCT(F[:k]) > 0],  out = DCT(IDCT(F[:k]) * G)
* backward (mask held constant): dF = DCT(IDCT(dout) * G), truncated to k for APX.

All three are one per-block routine, ``masked_block``: IDCT of the first
``k_val`` coefficients, times a mask (computed from the first ``k_mask``
coefficients, or read), DCT, keeping the first ``k_out`` outputs. It is built by
:func:`make_masked_block` on the 8x8 transforms of :mod:`dctnet.kernels.blockdct`
(whose truncation argument is the k here) and compiled twice: ``njit`` here
(``prange`` over blocks) and as a CUDA device function in ``asm_cuda``. Each
transform is separable (1,024 multiply-adds per 8x8 block), never the dense
64^3 Harmonic Mixing Tensor.
"""

import numpy as np
from numba import njit, prange

from .blockdct import fdct_block_cpu, idct_block_cpu


def make_masked_block(idct_block, fdct_block):
    """The per-block routine, built on an (njit or CUDA) pair of the blockdct transforms."""

    def masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp):
        """Block b: src, dst (B, 64) zigzag coefficients; mask (B, 64) uint8 in natural order.

        ``k_mask > 0`` computes the mask from the first k_mask coefficients and
        writes it; ``k_mask == 0`` reads it. ``pix``, ``gate``: (1, 8, 8) and
        ``tmp``: (8, 8) scratch arrays of the data's dtype.
        """
        idct_block(src, b, pix, 0, 0, 0, k_val, d, izz, tmp)
        if k_mask > 0:  # compute and store the mask G
            g = pix
            if k_mask != k_val:
                idct_block(src, b, gate, 0, 0, 0, k_mask, d, izz, tmp)
                g = gate
            for m in range(8):
                for j in range(8):
                    mask[b, m * 8 + j] = 1 if g[0, m, j] > 0 else 0
        for m in range(8):
            for j in range(8):
                if mask[b, m * 8 + j] == 0:
                    pix[0, m, j] = 0
        fdct_block(pix, 0, 0, 0, dst, b, k_out, d, izz, tmp)

    return masked_block


_masked_block = njit(make_masked_block(idct_block_cpu, fdct_block_cpu))

CHUNK = 64  # blocks per prange task: amortizes the scratch allocations


@njit(parallel=True, cache=True)
def masked(src, dst, mask, d, izz, k_val, k_mask, k_out):
    """CPU driver over blocks: src, dst (B, 64) zigzag; mask (B, 64) uint8, natural order.

    ``d``, ``izz`` as in :mod:`dctnet.kernels.blockdct`; the k's as in ``masked_block``.
    """
    nblocks = src.shape[0]
    for c in prange((nblocks + CHUNK - 1) // CHUNK):
        pix = np.empty((1, 8, 8), dtype=src.dtype)
        gate = np.empty((1, 8, 8), dtype=src.dtype)
        tmp = np.empty((8, 8), dtype=src.dtype)
        for b in range(c * CHUNK, min(nblocks, (c + 1) * CHUNK)):
            _masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp)
