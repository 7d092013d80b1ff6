"""One convolution of the fused inference engine, whole, in a single call without the GIL.

A conv step of :class:`dctnet.engine.FusedNet` is, per cache-sized piece of
images, an im2col (:func:`.conv.im2col_rows`), one GEMM and an epilogue (bias
and ReLU, the residual, global average pooling or the ASM/APX mask of
:mod:`.lowpass`). Called one by one from Python, that is three calls per
piece, and between any two of them the engine thread takes the GIL back:
with two threads each waits for the other's Python work and for the hand-over
(microseconds on a virtual machine). Measured before this kernel, two
single-thread processes ran the paper network at 1.26x the rate of one
process with two threads. Here the whole step, GEMM included, runs as one
``nogil`` call: Numba's ``np.dot`` calls SciPy's BLAS (one thread per engine
thread, as :func:`dctnet.threads.serial_blas` sets it; as fast per thread as
NumPy's build on the engine's shapes).

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
from .lowpass import bias_lowpass_images


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
    hw, k = ho * wo, wt.shape[0]
    rows = y.reshape((count * hw, o))
    res_rows = res.reshape((-1, o))
    none = np.empty(0, x.dtype)
    step = piece if piece > 0 else count
    for s in range(0, count, step):
        m = min(step, count - s)
        part = rows[s * hw : (s + m) * hw]
        if piece > 0:
            im2col_rows(x, s, m, kh, kw, sh, sw, top, left, ho, wo, cols, none, none, False)
            np.dot(cols[: m * hw * k].reshape((m * hw, k)), wt, part)
        else:
            np.dot(x.reshape((count * hw, k)), wt, part)
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
