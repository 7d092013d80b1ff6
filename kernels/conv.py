"""Serial Numba kernels of the CPU convolution engine: im2col in NCHW (for
``conv2d``) and channels-last (for the fused engine), fused epilogues and the
NCHW <-> NHWC conversions.

Every kernel is compiled with ``nogil=True`` and no ``prange``: the engine
runs them on its own threads (:mod:`dctnet.threads`), one chunk of images per
task, next to single-threaded BLAS, so no second thread pool ever spins
against the first. The GPU path does not use them: CuPy keeps the array
expressions of :mod:`dctnet.functional.conv`.

Indexing goes through flat arrays and unsigned offsets where it matters:
Numba then emits no negative-index fix-ups and the copies vectorize
(measured 5x faster than 4-D indexing with signed indices).
"""

import numpy as np
from numba import njit, uintp


# ----------------------------------------------------------------------------- NCHW (conv2d's own path)
#
# Columns use the order of ``weight.reshape(Cout, Cin*kh*kw)``: row
# ``k = (ci*kh + i)*kw + j`` holds kernel tap (i, j) of input channel ci, and
# column ``y*wo + x`` output pixel (y, x), so ``weight2d @ cols`` is one image's
# NCHW output with no transpose.


@njit(nogil=True, cache=True)
def im2col(x, n0, count, kh, kw, sh, sw, top, left, ho, wo, cols, s_img, s_row):
    """Columns of images ``n0 .. n0+count`` of ``x`` (N, C, H, W) into the flat ``cols``.

    ``cols[m*s_img + k*s_row + y*wo + xo] = x[n0+m, ci, y*sh+i-top, xo*sw+j-left]``,
    zero where the window leaves the image (zero padding: ``top``/``left``
    before, and whatever ``ho``/``wo`` imply after). ``s_img``/``s_row`` lay
    the columns out per image (``K*ho*wo``, ``ho*wo``) or as one matrix over
    the chunk (``ho*wo``, ``count*ho*wo``).
    """
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    # Flat arrays and unsigned offsets: Numba then emits no negative-index
    # fix-ups, and the copies vectorize (measured 5x faster than 4-D indexing).
    xf = x.reshape(-1)
    zero = x.dtype.type(0)
    for m in range(count):
        for ci in range(c):
            plane = ((n0 + m) * c + ci) * h * w
            for i in range(kh):
                for j in range(kw):
                    base = m * s_img + ((ci * kh + i) * kw + j) * s_row
                    # output columns whose input column xo*sw + j - left is inside [0, w)
                    lo = min(wo, max(0, -((j - left) // sw)))
                    hi = max(lo, min(wo, (w - 1 - j + left) // sw + 1))
                    if sh == 1 and sw == 1 and w == wo:
                        _shifted_plane(xf, plane, h, w, i - top, j - left, lo, hi, ho, cols, base)
                        continue
                    for y in range(ho):
                        r = y * sh + i - top
                        o = uintp(base + y * wo)
                        if r < 0 or r >= h:
                            for t in range(uintp(wo)):
                                cols[o + t] = zero
                            continue
                        for t in range(uintp(lo)):
                            cols[o + t] = zero
                        for t in range(uintp(hi), uintp(wo)):
                            cols[o + t] = zero
                        d = o + uintp(lo)
                        src = uintp(plane + r * w + lo * sw + j - left)
                        if sw == 1:
                            for t in range(uintp(hi - lo)):
                                cols[d + t] = xf[src + t]
                        else:
                            for t in range(uintp(hi - lo)):
                                cols[d + t] = xf[src + t * uintp(sw)]


@njit(nogil=True, cache=True, inline="always")
def _shifted_plane(xf, plane, h, w, di, dj, lo, hi, ho, cols, base):
    """One tap's rows when input and output rows have the same width (stride 1,
    "same" padding): a single contiguous copy of the shifted plane, then the
    few columns that the shift wrapped into the neighbouring row set to zero."""
    zero = xf.dtype.type(0)
    y0, y1 = min(ho, max(0, -di)), max(0, min(ho, h - di))
    y1 = max(y0, y1)
    for t in range(uintp(y0 * w)):
        cols[uintp(base) + t] = zero
    for t in range(uintp(y1 * w), uintp(ho * w)):
        cols[uintp(base) + t] = zero
    if y1 == y0:
        return
    d = base + y0 * w
    src = plane + (y0 + di) * w + dj
    n = (y1 - y0) * w
    t0, t1 = max(0, plane - src), min(n, plane + h * w - src)  # stay inside this plane
    for t in range(uintp(t0)):
        cols[uintp(d) + t] = zero
    for t in range(uintp(t1), uintp(n)):
        cols[uintp(d) + t] = zero
    dd, ss = uintp(d + t0), uintp(src + t0)
    for t in range(uintp(t1 - t0)):
        cols[dd + t] = xf[ss + t]
    for y in range(y0, y1):
        row = uintp(base + y * w)
        for t in range(uintp(lo)):
            cols[row + t] = zero
        for t in range(uintp(hi), uintp(w)):
            cols[row + t] = zero


@njit(nogil=True, cache=True)
def bias_act(y, bias, relu):
    """In place on ``y`` (M, C, P): ``y += bias[c]``, then ``max(y, 0)`` when ``relu``."""
    zero = y.dtype.type(0)
    for m in range(y.shape[0]):
        for c in range(y.shape[1]):
            b = bias[c]
            if relu:
                for p in range(y.shape[2]):
                    y[m, c, p] = max(y[m, c, p] + b, zero)
            else:
                for p in range(y.shape[2]):
                    y[m, c, p] += b


# ----------------------------------------------------------------------------- channels last (the engine's path)
#
# Rows are output pixels: row ((m*ho + y)*wo + x) of the column matrix holds
# the patch of pixel (y, x) of image m in the order (i, j, ci), so
# ``cols @ weight.transpose(2, 3, 1, 0).reshape(-1, Cout)`` is the NHWC output.


@njit(nogil=True, cache=True, inline="always")
def tiled(v, length):
    """The per-channel vector ``v`` repeated to ``length`` values (a multiple of its size): the
    coefficients of a flat loop over whole channels-last rows, which LLVM vectorizes where a loop
    over one row's 16-32 channels stays scalar (docs/design.md §6)."""
    out = np.empty(length, v.dtype)
    for t in range(length):
        out[t] = v[t % v.size]
    return out


@njit(nogil=True, cache=True)
def im2col_rows(x, n0, count, kh, kw, sh, sw, top, left, ho, wo, cols, scale, shift, relu):
    """Patches of images ``n0 .. n0+count`` of ``x`` (N, H, W, C) as the rows of ``cols``.

    ``cols[((m*ho + y)*wo + xo)*K + (i*kw + j)*C + ci] = x[n0+m, y*sh+i-top, xo*sw+j-left, ci]``
    with ``K = kh*kw*C``, zero where the window leaves the image. Each kernel
    row of a patch is one contiguous run of (up to) ``kw*C`` input values.
    With ``relu``, the patches hold ``max(scale[ci] * x + shift[ci], 0)``
    instead (a batch norm + ReLU applied on the way, so that its output need
    not be stored); the padding stays zero.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    k = kh * kw * c
    zero = x.dtype.type(0)
    # the transform's coefficients tiled along a kernel row: one flat loop per run, where a
    # loop over the 16-64 channels of each tap ran scalar (1.5-1.8x slower)
    run = kw * c if relu else 0
    tscale, tshift = tiled(scale, run), tiled(shift, run)
    for m in range(count):
        img = (n0 + m) * h * w * c
        for y in range(ho):
            for xo in range(wo):
                row = uintp(((m * ho + y) * wo + xo) * k)
                c0 = xo * sw - left  # input column of tap j = 0
                jlo = min(kw, max(0, -c0))
                jhi = max(jlo, min(kw, w - c0))
                for i in range(kh):
                    r = y * sh + i - top
                    d = row + uintp(i * kw * c)
                    if r < 0 or r >= h:
                        for t in range(uintp(kw * c)):
                            cols[d + t] = zero
                        continue
                    for t in range(uintp(jlo * c)):
                        cols[d + t] = zero
                    for t in range(uintp(jhi * c), uintp(kw * c)):
                        cols[d + t] = zero
                    src = uintp(img + (r * w + c0 + jlo) * c)
                    dst = d + uintp(jlo * c)
                    if relu:
                        for t in range(uintp((jhi - jlo) * c)):
                            cols[dst + t] = max(tscale[t] * xf[src + t] + tshift[t], zero)
                    else:
                        for t in range(uintp((jhi - jlo) * c)):
                            cols[dst + t] = xf[src + t]


@njit(nogil=True, cache=True)
def bias_act_rows(y, bias, relu):
    """In place on ``y`` (P, C): ``y += bias``, then ``max(y, 0)`` when ``relu``."""
    zero = y.dtype.type(0)
    for p in range(y.shape[0]):
        if relu:
            for c in range(y.shape[1]):
                y[p, c] = max(y[p, c] + bias[c], zero)
        else:
            for c in range(y.shape[1]):
                y[p, c] += bias[c]


@njit(nogil=True, cache=True)
def bias_add_act_rows(y, bias, res, relu):
    """In place on ``y`` (P, C): ``y += bias + res``, then ``max(y, 0)`` when ``relu``."""
    zero = y.dtype.type(0)
    for p in range(y.shape[0]):
        if relu:
            for c in range(y.shape[1]):
                y[p, c] = max(y[p, c] + bias[c] + res[p, c], zero)
        else:
            for c in range(y.shape[1]):
                y[p, c] += bias[c] + res[p, c]


@njit(nogil=True, cache=True)
def affine_act_rows(x, scale, shift, relu, out):
    """``out = x * scale + shift`` (then ``max(., 0)`` when ``relu``) on (R, L) rows, ``scale`` and
    ``shift`` of length L: per-channel values tiled along a channels-last row (see :func:`tiled`),
    so that the loop runs the row's length where NumPy's broadcast runs 3-channel inner loops."""
    zero = x.dtype.type(0)
    for r in range(x.shape[0]):
        if relu:
            for t in range(x.shape[1]):
                out[r, t] = max(x[r, t] * scale[t] + shift[t], zero)
        else:
            for t in range(x.shape[1]):
                out[r, t] = x[r, t] * scale[t] + shift[t]


@njit(nogil=True, cache=True)
def bias_act_mean_rows(y, bias, res, has_res, relu, out):
    """``out[m] = mean_p act(y[m, p] + bias (+ res[m, p]))`` over the pixels p of
    each image (``y`` is (M, P, C)): global average pooling in the epilogue, the
    activation itself never written. Sums are float64."""
    zero = y.dtype.type(0)
    c = y.shape[2]
    acc = np.empty(c)
    for m in range(y.shape[0]):
        acc[:] = 0.0
        for p in range(y.shape[1]):
            for k in range(c):
                v = y[m, p, k] + bias[k]
                if has_res:
                    v += res[m, p, k]
                if relu:
                    v = max(v, zero)
                acc[k] += v
        for k in range(c):
            out[m, k] = acc[k] / y.shape[1]


# Layout conversions (NCHW <-> NHWC: a transpose of each image's (C, H*W) or
# (H*W, C) matrix) go tile by tile, so that the strided side of the copy stays
# in L1, with flat unsigned offsets (measured 2x faster than 2-D indexing of
# per-image views).
TILE = 8


@njit(nogil=True, cache=True)
def transpose_images(x, n0, count, rows, cols, out):
    """Per image, the (rows, cols) matrix of flat ``x`` transposed into flat ``out``:
    ``out[n, j, i] = x[n, i, j]`` for images ``n0 .. n0+count`` (both C-contiguous).

    The inner loop runs along the long side (contiguous reads of a wide
    source, contiguous writes of a tall one); the short side's stride is then
    a few cache lines, while the long side's stride (4 KiB for 1024 pixels)
    would map every access of a tile to the same cache set.
    """
    xf, of = x.reshape(-1), out.reshape(-1)
    wide = cols >= rows
    for m in range(n0, n0 + count):
        base = uintp(m * rows * cols)
        for i0 in range(0, rows, TILE):
            for j0 in range(0, cols, TILE):
                if wide:
                    for i in range(i0, min(i0 + TILE, rows)):
                        src = base + uintp(i * cols + j0)
                        dst = base + uintp(j0 * rows + i)
                        for t in range(uintp(min(TILE, cols - j0))):
                            of[dst + t * uintp(rows)] = xf[src + t]
                else:
                    for j in range(j0, min(j0 + TILE, cols)):
                        src = base + uintp(i0 * cols + j)
                        dst = base + uintp(j * rows + i0)
                        for t in range(uintp(min(TILE, rows - i0))):
                            of[dst + t] = xf[src + t * uintp(cols)]


@njit(nogil=True, cache=True, fastmath={"contract"})
def affine_planes_nhwc(x, scale, shift, out):
    """``out[n, p, c] = x[n, c, p] * scale[c] + shift[c]``: images' channel planes (N, C, P) to
    channels-last rows (N, P, C) with a per-channel affine map (an input Normalize) on the way,
    one multiply-add per value, so that the map costs no pass of its own (its own pass cost
    the fused engine 2.2-2.9 us per 3x32x32 image and thread). Tiles as :func:`transpose_images`.

    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(1, 2, 3)
    >>> out = np.empty((1, 3, 2))
    >>> affine_planes_nhwc(x, np.array([1.0, 10.0]), np.array([0.0, -30.0]), out)
    >>> out[0].tolist()
    [[0.0, 0.0], [1.0, 10.0], [2.0, 20.0]]
    """
    n, c, p = x.shape
    xf, of = x.reshape(-1), out.reshape(-1)
    for m in range(n):
        base = uintp(m * c * p)
        for j0 in range(0, p, TILE):
            for i in range(c):
                a, b = scale[i], shift[i]
                src = base + uintp(i * p + j0)
                dst = base + uintp(j0 * c + i)
                for t in range(uintp(min(TILE, p - j0))):
                    of[dst + t * uintp(c)] = xf[src + t] * a + b
