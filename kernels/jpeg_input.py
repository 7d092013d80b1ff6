"""Quantized JPEG coefficients straight to a network's channels-last input, in one pass.

The folded input map of docs/design.md §4 (dequantization in the inverse-DCT
matrix, box upsampling of the chroma planes, the colour transform, the level
shift and the input normalization, all linear), written per block into
(N, H, W, R) pixels: each component's block is dequantized and transformed
once (skipping its zero coefficients, most of a JPEG's), and each of its
pixels is added, weighted by the folded colour row, into every output pixel
it covers. Nothing is transposed or normalized afterwards.

Serial and ``nogil``: batches are read on the caller's thread or a read-ahead
thread (``dctnet.JpegBatches``) while the engine's threads run the network;
the work is a few percent of the network's. No CUDA twin: CuPy arrays take
``dctnet.jpeg_pixels``' array expressions.
"""

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def fill_channels(out, const):
    """``out[..., r] = const[r]`` on (N, H, W, R)."""
    n, h, w, r = out.shape
    for m in range(n):
        for y in range(h):
            for x in range(w):
                for c in range(r):
                    out[m, y, x, c] = const[c]


@njit(nogil=True, cache=True, inline="always")
def _block_idct(block, table, basis, pix):
    """``pix`` (64 natural pixels) = the inverse DCT of ``block * table`` (64 zigzag), skipping zero coefficients."""
    pix[:] = 0
    for q in range(64):
        c = block[q]
        if c != 0:
            v = c * table[q]
            for p in range(64):
                pix[p] += v * basis[q, p]


@njit(nogil=True, cache=True)
def add_component(coef, tables, basis, fy, fx, weights, out):
    """``out[m, y, x, :] += weights * plane[m, y // fy, x // fx]`` with ``plane`` the
    inverse DCT of the dequantized blocks ``coef`` (N, BH, BW, 64) int16, zigzag,
    by ``tables`` (N, 64) and ``basis`` (64 zigzag, 64 natural pixels); output
    pixels beyond ``out``'s (N, H, W, R) are cropped."""
    n, bh, bw, _ = coef.shape
    _, h, w, r = out.shape
    pix = np.empty(64, out.dtype)
    for m in range(n):
        for by in range(bh):
            for bx in range(bw):
                _block_idct(coef[m, by, bx], tables[m], basis, pix)
                for i in range(8):
                    for j in range(8):
                        v = pix[8 * i + j]
                        for dy in range(fy):
                            y = (8 * by + i) * fy + dy
                            if y >= h:
                                break
                            for dx in range(fx):
                                x = (8 * bx + j) * fx + dx
                                if x >= w:
                                    break
                                for c in range(r):
                                    out[m, y, x, c] += weights[c] * v


@njit(nogil=True, cache=True)
def idct_nhwc(coef, basis, out):
    """``out`` (N, 8*BH, 8*BW, C) = the blockwise inverse DCT of ``coef`` (N, C, BH, BW, 64),
    zigzag, by ``basis`` (64 zigzag, 64 natural pixels): coefficients to the engine's input."""
    n, c, bh, bw, _ = coef.shape
    pix = np.empty(64, out.dtype)
    ones = np.ones(64, out.dtype)  # the coefficients come dequantized
    for m in range(n):
        for ch in range(c):
            for by in range(bh):
                for bx in range(bw):
                    _block_idct(coef[m, ch, by, bx], ones, basis, pix)
                    for i in range(8):
                        for j in range(8):
                            out[m, 8 * by + i, 8 * bx + j, ch] = pix[8 * i + j]
