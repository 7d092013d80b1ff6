"""The ASM/APX ReLU of the fused engine on channels-last pixels: per 8x8 block,
the mask of the rank-k low-pass projection, in one pass.

The carried evaluation (docs/design.md §4) holds the coefficients of a block as
its pixels P; the ReLU at n < 15 frequencies needs the pixels rebuilt from the
first k = keep(n) zigzag coefficients, the frequencies (a, b) with a + b < n:
``P_k = B_k^T (B_k P)`` with ``B_k`` the first k rows of the zigzag DCT basis.
ASM returns ``P * [P_k > 0]``, APX ``P_k * [P_k > 0]``. The engine runs it in
a conv's epilogue, while the GEMM's output is in cache: one kernel adds the bias
(and the residual) and projects each block separably, the 8-point DCT along
columns, along rows for the triangle a + b < n, and back.

Every 8-point transform is split in its even and odd halves: the DCT basis is
even or odd about the block's middle (``d[u, 7 - x] = (-1)^u d[u, x]``), so a
frequency is a 4-term sum of the sums ``v[x] + v[7 - x]`` (u even) or of the
differences (u odd), and the way back gives ``v[x]`` and ``v[7 - x]`` from one
even and one odd 4-term sum. The horizontal part is applied as the projection
itself (per vertical frequency a, onto b < n - a: two 4x4 halves), not through
its coefficients. A row of blocks is held as its 8 image rows: the vertical
passes loop over whole contiguous image rows, the horizontal one over the
channels of each block column, and every loop body keeps the 8 values of a
column of the block in registers (one load and one store each). No loop body
branches (a branch stops LLVM's vectorization): the bias and residual are
added in place first, the mask is a pass of its own. The channels of a block
column go in runs of exactly 16: LLVM leaves a loop of 16-32 unknown trips
scalar, but vectorizes a loop of a known 16 trips whole when its body is too
big to unroll. Measured against the previous form (sweeps of four-term sums
over a row of blocks gathered as (row, column, block and channel)): 24 -> 9.7,
11 -> 4.6, 5.2 -> 2.4 us per image for the 32x32x16, 16x16x32 and 8x8x64 maps
at n = 6, one thread.

Serial and ``nogil`` like the other engine kernels (:mod:`.conv`): the engine
runs it on its own threads, one task of images each. No CUDA twin: the engine
is CPU only.
"""

import numpy as np
from numba import njit

from .conv import tiled

# fastmath "contract" only: multiply-adds fuse (one rounding instead of two); no reordering
_FLAGS = dict(nogil=True, cache=True, fastmath={"contract"})


@njit(inline="always", **_FLAGS)
def _row4(a, i):
    """Row ``i`` of a (., 4) array as a tuple: loop-invariant weights held in registers."""
    return a[i, 0], a[i, 1], a[i, 2], a[i, 3]


@njit(inline="always", **_FLAGS)
def dot4(w, x0, x1, x2, x3):
    """``w[0] * x0 + ... + w[3] * x3``, summed in this order (one half of an 8-point transform
    split in even and odd halves; :mod:`.jpeg_input` uses it too)."""
    return w[0] * x0 + w[1] * x1 + w[2] * x2 + w[3] * x3


@njit(inline="always", **_FLAGS)
def _project(sb, ch, pe0, pe1, pe2, pe3, po0, po1, po2, po3):
    """In place on the 8 values ``sb[:, ch]``: their projection, from its even (``pe``) and odd
    (``po``) 4x4 halves applied to the sums and differences of the values x and 7 - x."""
    m0, m1, m2, m3 = sb[0, ch], sb[1, ch], sb[2, ch], sb[3, ch]
    m4, m5, m6, m7 = sb[4, ch], sb[5, ch], sb[6, ch], sb[7, ch]
    s0, s1, s2, s3 = m0 + m7, m1 + m6, m2 + m5, m3 + m4
    q0, q1, q2, q3 = m0 - m7, m1 - m6, m2 - m5, m3 - m4
    g0, h0 = dot4(pe0, s0, s1, s2, s3), dot4(po0, q0, q1, q2, q3)
    g1, h1 = dot4(pe1, s0, s1, s2, s3), dot4(po1, q0, q1, q2, q3)
    g2, h2 = dot4(pe2, s0, s1, s2, s3), dot4(po2, q0, q1, q2, q3)
    g3, h3 = dot4(pe3, s0, s1, s2, s3), dot4(po3, q0, q1, q2, q3)
    sb[0, ch], sb[7, ch] = g0 + h0, g0 - h0
    sb[1, ch], sb[6, ch] = g1 + h1, g1 - h1
    sb[2, ch], sb[5, ch] = g2 + h2, g2 - h2
    sb[3, ch], sb[4, ch] = g3 + h3, g3 - h3


@njit(**_FLAGS)
def _weights(d, n, dtype):
    """The half-transform weights: ``fw`` (8, 4), frequency u from the sums (u even) or
    differences (u odd) of x and 7 - x; ``hp`` (8, 2, 4, 4), per vertical frequency a the
    even and odd halves of the horizontal projection onto b < n - a; ``vb`` (2, 4, 4), row
    x < 4 back from the even and odd vertical frequencies kept (zero weight for a >= n)."""
    fw = np.empty((8, 4), dtype)
    hp = np.zeros((8, 2, 4, 4))  # summed in float64, then rounded once
    vb = np.zeros((2, 4, 4), dtype)
    for u in range(8):
        for x in range(4):
            fw[u, x] = d[u, x]
            if u < n:
                vb[u % 2, x, u // 2] = d[u, x]
    for a in range(min(n, 8)):
        for b in range(min(8, n - a)):
            for x in range(4):
                for k in range(4):
                    hp[a, b % 2, x, k] += np.float64(d[b, x]) * np.float64(d[b, k])
    return fw, hp.astype(dtype), vb


@njit(**_FLAGS)
def bias_lowpass_images(y, bias, res, has_res, d, n, apx):
    """In place on ``y`` (M, H, W, C), C-contiguous, H and W multiples of 8: ``v = y + bias
    (+ res)``, then per block and channel ASM (``v * [low > 0]``) or APX (``low * [low > 0]``),
    ``low`` the projection of ``v`` onto the frequencies (a, b) with a + b < ``n``; ``d`` is the
    8x8 DCT matrix (``d[u, x]``).

    One row of blocks at a time, in three passes that each keep a block column's values in
    registers: vertical forward over whole image rows (8 frequencies), the horizontal
    projection per vertical frequency kept (over channel vectors, block by block), then
    vertical back with the mask.
    """
    m, h, w, c = y.shape
    zero = y.dtype.type(0)
    na, wc = min(n, 8), w * c
    yf = y.reshape((m, h, wc))
    rf = res.reshape((m, h, wc))
    brow = tiled(bias, wc)
    fw, hp, vb = _weights(d, n, y.dtype)
    f0, f1, f2, f3 = _row4(fw, 0), _row4(fw, 1), _row4(fw, 2), _row4(fw, 3)
    f4, f5, f6, f7 = _row4(fw, 4), _row4(fw, 5), _row4(fw, 6), _row4(fw, 7)
    e0, e1, e2, e3 = _row4(vb[0], 0), _row4(vb[0], 1), _row4(vb[0], 2), _row4(vb[0], 3)
    o0, o1, o2, o3 = _row4(vb[1], 0), _row4(vb[1], 1), _row4(vb[1], 2), _row4(vb[1], 3)
    # the block row's vertical frequencies, then each kept one projected horizontally (in place),
    # then the rows rebuilt from them
    vert = np.empty((8, wc), y.dtype)
    vert4 = vert.reshape((8, w // 8, 8, c))  # (frequency, block, column in block, channel)
    for im in range(m):
        for r0 in range(0, h, 8):
            rows = yf[im, r0 : r0 + 8]
            rres = rf[im, r0 : r0 + 8]
            # the bias (and residual) added in place; a branch inside the loop would stop its vectorization
            if has_res:
                for k in range(8):
                    for t in range(wc):
                        rows[k, t] = rows[k, t] + brow[t] + rres[k, t]
            else:
                for k in range(8):
                    for t in range(wc):
                        rows[k, t] += brow[t]
            for t in range(wc):  # vertical forward
                v0, v1, v2, v3 = rows[0, t], rows[1, t], rows[2, t], rows[3, t]
                v4, v5, v6, v7 = rows[4, t], rows[5, t], rows[6, t], rows[7, t]
                s0, s1, s2, s3 = v0 + v7, v1 + v6, v2 + v5, v3 + v4
                q0, q1, q2, q3 = v0 - v7, v1 - v6, v2 - v5, v3 - v4
                vert[0, t] = dot4(f0, s0, s1, s2, s3)
                vert[1, t] = dot4(f1, q0, q1, q2, q3)
                vert[2, t] = dot4(f2, s0, s1, s2, s3)
                vert[3, t] = dot4(f3, q0, q1, q2, q3)
                vert[4, t] = dot4(f4, s0, s1, s2, s3)
                vert[5, t] = dot4(f5, q0, q1, q2, q3)
                vert[6, t] = dot4(f6, s0, s1, s2, s3)
                vert[7, t] = dot4(f7, q0, q1, q2, q3)
            for a in range(na):  # horizontal projection, block by block
                p = hp[a]
                pe0, pe1, pe2, pe3 = _row4(p[0], 0), _row4(p[0], 1), _row4(p[0], 2), _row4(p[0], 3)
                po0, po1, po2, po3 = _row4(p[1], 0), _row4(p[1], 1), _row4(p[1], 2), _row4(p[1], 3)
                for bx in range(w // 8):
                    sb = vert4[a, bx]  # (column in block, channel)
                    # the channels in runs of exactly 16: a loop of a known 16 trips and a big body is
                    # vectorized whole, where one of ``c`` trips (16-64 here) ran scalar (2x slower)
                    for c0 in range(0, c - c % 16, 16):
                        for cc in range(16):
                            _project(sb, c0 + cc, pe0, pe1, pe2, pe3, po0, po1, po2, po3)
                    for ch in range(c - c % 16, c):
                        _project(sb, ch, pe0, pe1, pe2, pe3, po0, po1, po2, po3)
            for t in range(wc):  # vertical back (the frequencies a < n: zero weight for the others) in place
                u0, u1, u2, u3 = vert[0, t], vert[1, t], vert[2, t], vert[3, t]
                u4, u5, u6, u7 = vert[4, t], vert[5, t], vert[6, t], vert[7, t]
                g0, h0 = dot4(e0, u0, u2, u4, u6), dot4(o0, u1, u3, u5, u7)
                g1, h1 = dot4(e1, u0, u2, u4, u6), dot4(o1, u1, u3, u5, u7)
                g2, h2 = dot4(e2, u0, u2, u4, u6), dot4(o2, u1, u3, u5, u7)
                g3, h3 = dot4(e3, u0, u2, u4, u6), dot4(o3, u1, u3, u5, u7)
                vert[0, t], vert[7, t], vert[1, t], vert[6, t] = g0 + h0, g0 - h0, g1 + h1, g1 - h1
                vert[2, t], vert[5, t], vert[3, t], vert[4, t] = g2 + h2, g2 - h2, g3 + h3, g3 - h3
            if apx:  # the mask
                for k in range(8):
                    for t in range(wc):
                        g = vert[k, t]
                        rows[k, t] = g if g > zero else zero
            else:
                for k in range(8):
                    for t in range(wc):
                        rows[k, t] = rows[k, t] if vert[k, t] > zero else zero
