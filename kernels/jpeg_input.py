"""Quantized JPEG coefficients straight to a network's channels-last input, in one pass.

The folded input map of docs/design.md §4 (dequantization in the inverse-DCT
matrix, box upsampling of the chroma planes, the colour transform, the level
shift and the input normalization, all linear), written into (N, H, W, R)
pixels: per image, each component's blocks are dequantized and transformed
once (skipping their zero coefficients, most of a JPEG's) into a small plane,
and each output pixel is then written once from the planes, weighted by the
folded colour rows. Nothing is transposed or normalized afterwards.

Serial and ``nogil``: callers run it on chunks of images in the engine's
threads (``dctnet.jpeg_batches.jpeg_pixels_nhwc``). No CUDA twin: CuPy arrays
take ``dctnet.jpeg_pixels``' array expressions.
"""

import numpy as np
from numba import njit, uintp


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
def pixels_nhwc(coefs, tables, basis, fy, fx, rows, const, out):
    """``out[m, y, x, r] = const[r] + sum_c rows[r, c] * plane_c[m, y // fy[c], x // fx[c]]`` on (N, H, W, R),
    with ``plane_c`` the inverse DCT of component c's dequantized blocks: ``coefs[c]`` (N, BH, BW, 64)
    int16, zigzag, by ``tables[c]`` (N, 64) and ``basis`` (64 zigzag, 64 natural pixels). Output pixels
    beyond a plane (MCU padding) take nothing from it.

    Per image, each component's plane is made once in a small scratch; then per output row the
    planes' rows are upsampled once and combined a whole row at a time, so ``out`` is written
    once per value and nothing is divided in the pixel loops.
    """
    n, h, w, r = out.shape
    k = len(coefs)
    ph, pw = 0, 0
    for c in range(k):
        ph = max(ph, 8 * coefs[c].shape[1])
        pw = max(pw, 8 * coefs[c].shape[2])
    planes = np.zeros((k, ph, pw), out.dtype)
    row_of = np.empty((k, h), np.int64)  # the plane row (or -1) of each output row, per component
    col_of = np.empty((k, w), np.int64)
    for c in range(k):
        for y in range(h):
            row_of[c, y] = y // fy[c] if y // fy[c] < 8 * coefs[c].shape[1] else -1
        for x in range(w):
            col_of[c, x] = x // fx[c] if x // fx[c] < 8 * coefs[c].shape[2] else -1
    pix = np.empty(64, out.dtype)
    up = np.empty((k, w), out.dtype)
    acc = np.empty(w, out.dtype)
    for m in range(n):
        for c in range(k):
            coef, table = coefs[c], tables[c]
            for by in range(coef.shape[1]):
                for bx in range(coef.shape[2]):
                    _block_idct(coef[m, by, bx], table[m], basis, pix)
                    for i in range(8):
                        for j in range(8):
                            planes[c, 8 * by + i, 8 * bx + j] = pix[8 * i + j]
        for y in range(h):
            for c in range(k):  # each plane's row under output row y, upsampled (zeros beyond the plane)
                py = row_of[c, y]
                for x in range(w):
                    px = col_of[c, x]
                    up[c, x] = planes[c, py, px] if py >= 0 and px >= 0 else 0
            for q in range(r):  # whole rows at a time (vectorized), then one strided store per pixel
                for x in range(w):
                    acc[x] = const[q]
                for c in range(k):
                    weight = rows[q, c]
                    for x in range(w):
                        acc[x] += weight * up[c, x]
                for x in range(w):
                    out[m, y, x, q] = acc[x]


@njit(nogil=True, cache=True)
def blocks_nhwc(pix, out):
    """``out`` (N, 8*BH, 8*BW, C) = the 8x8 pixel blocks ``pix`` (N, C, BH, BW, 64), natural order:
    an inverse DCT done as one GEMM (``coefficients @ block_dct_matrix``), put in the engine's layout."""
    n, c, bh, bw, _ = pix.shape
    of = out.reshape(-1)
    w = 8 * bw
    for m in range(n):
        for ch in range(c):
            for by in range(bh):
                for bx in range(bw):
                    block = pix[m, ch, by, bx]
                    for i in range(8):
                        row = uintp(((m * 8 * bh + 8 * by + i) * w + 8 * bx) * c + ch)
                        for j in range(8):
                            of[row + uintp(j * c)] = block[8 * i + j]
