"""One convolution of the CPU engine, whole, in a single call without the GIL.

A channels-last conv is, per cache-sized piece of images, an im2col
(:func:`.conv.im2col_rows`), one GEMM and an epilogue: in inference
(:func:`conv_images`) bias and ReLU, the residual, global average pooling or
the ASM/APX mask of :mod:`.lowpass`; in training (:func:`conv_moments_images`)
the batch-norm moments; and the weight gradient (:func:`weight_grad_images`)
is the same loop with the GEMM ``cols.T @ g``. Called one by one from Python,
that is three calls per piece, and between any two of them an engine thread
takes the GIL back: with two threads each waits for the other's Python work
and for the hand-over (microseconds on a virtual machine). Measured before
these kernels, two one-thread processes ran the paper network's inference
at 1.26x (training step 1.30x) the rate of one process with two threads.
Here the whole loop, GEMM included, is one ``nogil`` call: Numba's
``np.dot`` calls SciPy's BLAS (one thread per engine thread, as
:func:`dctnet.threads.serial_blas` sets it; per thread as fast as NumPy's
build: 296 against 290 us for a 5120x144 by 144x16 product).

>>> import numpy as np
>>> x = np.ones((1, 4, 4, 1), np.float32)
>>> wt, y = np.ones((9, 1), np.float32), np.empty((1, 4, 4, 1), np.float32)
>>> none = np.empty((0, 0), np.float32)
>>> cols = np.empty(9 * 16, np.float32)
>>> b = np.full(1, -5, np.float32)
>>> conv_images(x, wt, 3, 3, 1, 1, 1, 1, 1, cols, y, b, y, False, True, none, False, none, 0, False)[0, :, :, 0]
array([[0., 1., 1., 0.],
       [1., 4., 4., 1.],
       [1., 4., 4., 1.],
       [0., 1., 1., 0.]], dtype=float32)
"""

import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS loaded now, so that threadpoolctl sees it from the start)
import numpy as np
from numba import njit

from .conv import bias_act_mean_rows, bias_act_rows, bias_add_act_rows, im2col_rows
from .fused import moments as add_moments
from .lowpass import bias_lowpass_images


@njit(nogil=True, cache=True, inline="always")
def _piece_rows(x, wt, kh, kw, sh, sw, top, left, ho, wo, piece, cols, rows, s, m, scale, shift, transform):
    """Rows of images ``s .. s+m`` of the conv: their patches into ``cols``, then one GEMM into
    ``rows`` (the output as (M*ho*wo, O)); ``piece = 0`` multiplies ``x`` itself. Returns the piece's rows."""
    hw, k = ho * wo, wt.shape[0]
    part = rows[s * hw : (s + m) * hw]
    if piece > 0:
        im2col_rows(x, s, m, kh, kw, sh, sw, top, left, ho, wo, cols, scale, shift, transform)
        np.dot(cols[: m * hw * k].reshape((m * hw, k)), wt, part)
    else:
        np.dot(x.reshape((x.shape[0] * hw, k)), wt, part)
    return part


@njit(nogil=True, cache=True)
def conv_images(x, wt, kh, kw, sh, sw, top, left, piece, cols, y, bias, res, has_res, relu, pooled, pool, d, n, apx):
    """``y`` (M, ho, wo, O) = the conv of ``x`` (M, H, W, C) by ``wt`` (kh*kw*C, O), then its epilogue.

    ``top``/``left`` pad before the image, ``y``'s size fixes the rest. Per
    ``piece`` images the patches fill ``cols`` (flat, at least
    ``piece*ho*wo*kh*kw*C`` values), one GEMM writes their rows of ``y`` and
    the epilogue runs while they are in cache; ``piece = 0`` multiplies ``x``
    itself (a 1x1 stride-1 unpadded conv). The epilogue adds ``bias`` (and
    ``res``, shaped as ``y``, when ``has_res``), then: with ``pool`` writes the
    per-image channel means of the activation to ``pooled`` (M, O); with
    ``n`` (1-14 frequencies) applies ASM (APX when ``apx``) on each 8x8 block,
    ``d`` the 8x8 DCT matrix (whole images: ``y`` whole blocks); else the
    ReLU when ``relu``. Returns ``y``.
    """
    count = x.shape[0]
    ho, wo, o = y.shape[1], y.shape[2], y.shape[3]
    hw = ho * wo
    rows = y.reshape((count * hw, o))
    res_rows = res.reshape((-1, o))
    none = np.empty(0, x.dtype)
    step = piece if piece > 0 else count
    for s in range(0, count, step):
        m = min(step, count - s)
        part = _piece_rows(x, wt, kh, kw, sh, sw, top, left, ho, wo, piece, cols, rows, s, m, none, none, False)
        r = res_rows[s * hw : (s + m) * hw] if has_res else part
        if pool:
            bias_act_mean_rows(part.reshape((m, hw, o)), bias, r.reshape((m, hw, o)), has_res, relu, pooled[s : s + m])
        elif n > 0:
            bias_lowpass_images(part.reshape((m, ho, wo, o)), bias, r.reshape((m, ho, wo, o)), has_res, d, n, apx)
        elif has_res:
            bias_add_act_rows(part, bias, r, relu)
        else:
            bias_act_rows(part, bias, relu)
    return y


@njit(nogil=True, cache=True)
def conv_moments_images(x, wt, kh, kw, sh, sw, top, left, piece, cols, y, scale, shift, transform, sums, moments):
    """``y`` = the conv of ``x`` as in :func:`conv_images` (of ``max(scale * x + shift, 0)`` per
    channel when ``transform``: a batch norm and ReLU applied while the patches are built), with
    no epilogue or, when ``moments``, each piece's channel sums and sums of squares added to
    ``sums`` (2, O) float64 while in cache: the training engine's forward conv. Returns ``y``."""
    count = x.shape[0]
    ho, wo, o = y.shape[1], y.shape[2], y.shape[3]
    rows = y.reshape((count * ho * wo, o))
    step = piece if piece > 0 else count
    for s in range(0, count, step):
        m = min(step, count - s)
        part = _piece_rows(x, wt, kh, kw, sh, sw, top, left, ho, wo, piece, cols, rows, s, m, scale, shift, transform)
        if moments:
            add_moments(part, sums)
    return y


@njit(nogil=True, cache=True)
def weight_grad_images(x, g, kh, kw, sh, sw, top, left, piece, cols, out, dw, scale, shift, transform):
    """``out`` (kh*kw*C, O) = ``cols.T @ g`` over the images of ``x`` (M, H, W, C) and their output
    gradient ``g`` (M, ho, wo, O): per piece the patches (transformed as in
    :func:`conv_moments_images`), one GEMM, added to ``out`` in piece order (through ``dw``,
    of ``out``'s shape); ``piece = 0`` multiplies ``x`` itself. Returns ``out``."""
    count = x.shape[0]
    ho, wo, o = g.shape[1], g.shape[2], g.shape[3]
    hw, k = ho * wo, out.shape[0]
    rows = g.reshape((count * hw, o))
    if piece == 0:
        np.dot(x.reshape((count * hw, k)).T, rows, out)
        return out
    for s in range(0, count, piece):
        m = min(piece, count - s)
        im2col_rows(x, s, m, kh, kw, sh, sw, top, left, ho, wo, cols, scale, shift, transform)
        patches = cols[: m * hw * k].reshape((m * hw, k))
        if s == 0:
            np.dot(patches.T, rows[: m * hw], out)
        else:
            np.dot(patches.T, rows[s * hw : (s + m) * hw], dw)
            out += dw
    return out
