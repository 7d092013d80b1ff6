"""Quantized JPEG coefficients straight to a network's channels-last input, in one pass.

The folded input map of docs/design.md §4 (dequantization in the inverse-DCT
matrix, box upsampling of the chroma planes, the colour transform, the level
shift and the input normalization, all linear), written into (N, H, W, R)
pixels: per image, each component's blocks are dequantized and transformed
once (skipping their zero coefficients, most of a JPEG's) into a small plane,
and each output pixel is then written once from the planes, weighted by the
folded colour rows. Nothing is transposed or normalized afterwards.
:func:`idct_nhwc` is the fused engine's input for dense float coefficients
(``FusedNet`` called on an (N, C, BH, BW, 64) array): a separable inverse DCT
vectorized across blocks, also written channels-last.

Serial and ``nogil``: callers run it on chunks of images in the engine's
threads (``dctnet.jpeg_batches.jpeg_pixels_nhwc``). No CUDA twin: CuPy arrays
take ``dctnet.jpeg_pixels``' array expressions.
"""

import numpy as np
from numba import njit, uintp

from .lowpass import dot4


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


# The dense inverse DCT below: fastmath "contract" only (multiply-adds fuse, one rounding instead
# of two; nothing is reordered)
_DENSE = dict(nogil=True, cache=True, fastmath={"contract"})
LANES = 64
"""Blocks transformed at once by :func:`idct_nhwc` (the contiguous axis of its scratch)."""


@njit(inline="always", **_DENSE)
def _idct8(s, base, step, m, e0, e1, e2, e3, o0, o1, o2, o3):
    """In place on the rows ``base + i*step`` (i < 8, each ``m`` lanes long) of the flat ``s``: the
    8-point inverse DCT along i, from the even (``e``) and odd (``o``) 4x4 halves of the basis."""
    for l in range(m):
        v0, v1, v2, v3 = s[base + l], s[base + step + l], s[base + 2 * step + l], s[base + 3 * step + l]
        v4, v5, v6, v7 = s[base + 4 * step + l], s[base + 5 * step + l], s[base + 6 * step + l], s[base + 7 * step + l]
        g0, h0 = dot4(e0, v0, v2, v4, v6), dot4(o0, v1, v3, v5, v7)
        g1, h1 = dot4(e1, v0, v2, v4, v6), dot4(o1, v1, v3, v5, v7)
        g2, h2 = dot4(e2, v0, v2, v4, v6), dot4(o2, v1, v3, v5, v7)
        g3, h3 = dot4(e3, v0, v2, v4, v6), dot4(o3, v1, v3, v5, v7)
        s[base + l], s[base + 7 * step + l] = g0 + h0, g0 - h0
        s[base + step + l], s[base + 6 * step + l] = g1 + h1, g1 - h1
        s[base + 2 * step + l], s[base + 5 * step + l] = g2 + h2, g2 - h2
        s[base + 3 * step + l], s[base + 4 * step + l] = g3 + h3, g3 - h3


@njit(**_DENSE)
def idct_nhwc(coefs, d, zigzag, scale, shift, out):
    """``out`` (N, 8*BH, 8*BW, C) = the inverse DCT of the dense coefficients ``coefs`` (N, C, BH,
    BW, 64), C-contiguous, zigzag (``zigzag[q]`` the natural index of position q), by the 8x8
    DCT matrix ``d`` (``d[u, x]``): ``from_dct`` of each channel, times ``scale[c]`` plus
    ``shift[c]`` (an input Normalize, one multiply-add per pixel in the scatter; ones and zeros
    for none), written channels-last.

    Separable and vectorized across blocks: LANES blocks at a time, in the order of ``coefs``
    (one read stream: interleaving the channels' planes, as the output does, cost 2 us per
    image more with the input out of cache, on one thread), are held with coefficient (u, v)
    as row ``8u + v`` of a scratch whose lanes are the blocks; each 8-point transform (along v, then
    along u, in place) is then one loop over whole contiguous rows, split in the even and odd
    halves of the basis (``d[u, 7 - x] = (-1)^u d[u, x]``): 4 multiply-adds per output and pass,
    8 per pixel where the 64x64 product takes 64. Measured on one thread (AVX2), a 3x32x32
    image: 3.6-4.0 us (the gather 1.4, the passes 0.9, the scatter 1.8), where that product
    (BLAS) and its reordering took 5.1 + 1.1 us.

    >>> import numpy as np
    >>> from dctnet.transform import ZIGZAG, dct_matrix, to_dct
    >>> x = np.arange(2 * 8 * 16, dtype=np.float32).reshape(1, 2, 8, 16)
    >>> out = np.empty((1, 8, 16, 2), np.float32)
    >>> one, zero = np.ones(2, np.float32), np.zeros(2, np.float32)
    >>> idct_nhwc(to_dct(x), dct_matrix(np.float32), ZIGZAG, one, zero, out)
    >>> bool(np.allclose(out, x.transpose(0, 2, 3, 1), atol=1e-4))
    True
    """
    n, c, bh, bw, _ = coefs.shape
    of = out.reshape(-1)
    w = 8 * bw
    ev = np.empty((4, 4), out.dtype)  # ev[x, k] = d[2k, x], od[x, k] = d[2k + 1, x] (x < 4)
    od = np.empty((4, 4), out.dtype)
    for x in range(4):
        for k in range(4):
            ev[x, k] = d[2 * k, x]
            od[x, k] = d[2 * k + 1, x]
    e0, e1, e2, e3 = ev[0], ev[1], ev[2], ev[3]
    o0, o1, o2, o3 = od[0], od[1], od[2], od[3]
    s = np.empty(64 * LANES, out.dtype)
    total = n * c * bh * bw
    blocks = coefs.reshape((total, 64))
    im, ch, by, bx = 0, 0, 0, 0  # the first lane's block
    for j0 in range(0, total, LANES):
        m = min(LANES, total - j0)
        for l in range(m):  # gather: coefficient q of lane l's block to row zigzag[q]
            block = blocks[j0 + l]
            for q in range(64):
                s[uintp(zigzag[q] * LANES + l)] = block[q]
        for u in range(8):  # along v: row 8u + v -> 8u + x
            _idct8(s, 8 * u * LANES, LANES, m, e0, e1, e2, e3, o0, o1, o2, o3)
        for x in range(8):  # along u: row 8u + x -> 8y + x
            _idct8(s, x * LANES, 8 * LANES, m, e0, e1, e2, e3, o0, o1, o2, o3)
        for l in range(m):  # scatter: lane l's block, (im, ch, by, bx), into its channel of the output
            a, b = scale[ch], shift[ch]
            for y in range(8):
                row = uintp(((im * 8 * bh + 8 * by + y) * w + 8 * bx) * c + ch)
                for x in range(8):
                    of[row + uintp(x * c)] = s[uintp((8 * y + x) * LANES + l)] * a + b
            bx += 1
            if bx == bw:
                bx, by = 0, by + 1
                if by == bh:
                    by, ch = 0, ch + 1
                    if ch == c:
                        ch, im = 0, im + 1
