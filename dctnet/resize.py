"""Reaching a network's input size in the DCT domain: block-aligned crops and 1/2, 1/4, 1/8 downscaling.

Plain arrays (NumPy or CuPy), no autograd: these act on pictures
``(..., BH, BW, 64)`` (zigzag, pixel units, e.g. ``JpegImage.to_dct()``)
before a network sees them, and none decodes the picture.

* :func:`crop` / :func:`center_crop` select whole blocks: exact, no arithmetic.
* :func:`downscale` by ``f`` in (2, 4, 8) maps each block's 64 coefficients
  linearly to ``k x k`` pixels (``k = 8 / f``), in floating point, and returns
  the smaller picture as DCT blocks again. Two exact maps, each against a
  stated reference:

  - ``method="box"`` (the default): the mean of each ``f x f`` group of the
    block's pixels, i.e. the area downscaling of the float decode
    (``JpegImage.to_pixels``). libjpeg-turbo's scaled decode (``scale_denom =
    f``; what Pillow's ``draft`` and simplejpeg produce) measures within 0.53
    grey levels of it (its integer rounding);
  - ``method="lowpass"``: the k-point inverse DCT of the low ``k x k``
    coefficients times ``k / 8``, i.e. ``scipy.fft.idctn(F[:k, :k] * k / 8,
    norm="ortho")``: the scaled IDCT of IJG libjpeg 7 and later (jidctint.c).

  Factor 8 is the block mean (DC / 8) for both.
* :func:`fit` chains them: the largest downscaling that still covers
  ``size``, then a centre crop.
* :func:`crop_image` and :func:`fit_image` do the same on a
  :class:`~dctnet.JpegImage` before its DCT-domain picture is built, cropping
  the quantized coefficients of every component on MCU boundaries: exact (the
  chroma upsampling is per block), and only the window is dequantized,
  upsampled and colour-converted.

>>> import numpy as np, dctnet
>>> x = dctnet.to_dct(np.random.default_rng(0).normal(size=(3, 48, 64)))
>>> center_crop(x, 32).shape, downscale(x[..., :4, :8, :], 2).shape
((3, 4, 4, 64), (3, 2, 4, 64))
>>> fit(x, 16, picture=(48, 64)).shape
(3, 2, 2, 64)
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module
from .transform import ZIGZAG, from_dct, to_dct

__all__ = ["crop", "center_crop", "downscale", "scaled_idct", "fit", "crop_image", "fit_image", "FACTORS", "METHODS"]

FACTORS = (1, 2, 4, 8)
_NATURAL = np.argsort(ZIGZAG)  # position in the zigzag of each row-major coefficient


def _check_picture(x, op):
    if x.ndim < 3 or x.shape[-1] != 64:
        raise ValueError(f"{op} expects DCT coefficients (..., BH, BW, 64), found shape {x.shape}")


def _size(size, op):
    h, w = (size, size) if np.ndim(size) == 0 else tuple(size)
    if not all(isinstance(v, (int, np.integer)) and v > 0 and v % 8 == 0 for v in (h, w)):
        raise ValueError(f"{op}: sizes are positive multiples of 8 pixels (whole blocks), found {size!r}")
    return int(h), int(w)


def crop(x, top, left, height, width):
    """The blocks of ``x`` (..., BH, BW, 64) covering pixels ``top:top+height, left:left+width``.

    All four are multiples of 8 (block boundaries); the window must lie in
    the grid. Exact: the result is a view of whole blocks.

    >>> crop(np.zeros((2, 4, 4, 64)), 8, 0, 16, 32).shape
    (2, 2, 4, 64)
    """
    _check_picture(x, "crop")
    if any(not isinstance(v, (int, np.integer)) or v < 0 or v % 8 for v in (top, left)):
        raise ValueError(f"crop: top and left must be non-negative multiples of 8 (block boundaries), found {top}, {left}")
    height, width = _size((height, width), "crop")
    bh, bw = x.shape[-3:-1]
    if top + height > 8 * bh or left + width > 8 * bw:
        raise ValueError(f"crop: the window {height}x{width} at ({top}, {left}) leaves the picture's "
                         f"{8 * bh}x{8 * bw} pixels ({bh}x{bw} blocks)")
    return x[..., top // 8:(top + height) // 8, left // 8:(left + width) // 8, :]


def center_crop(x, size, picture=None):
    """The centred ``size`` (int or (h, w), multiples of 8) pixels of ``x``, in whole blocks.

    ``picture`` = (height, width) of the real image (``JpegImage.height``,
    ``.width``): the crop is then centred in the blocks that hold only real
    pixels, never in the padding to whole blocks. The centre is rounded down
    to a block boundary.

    >>> center_crop(np.zeros((1, 5, 5, 64)), 16).shape
    (1, 2, 2, 64)
    """
    _check_picture(x, "center_crop")
    h, w = _size(size, "center_crop")
    bh, bw = x.shape[-3:-1]
    if picture is not None:
        bh, bw = min(bh, picture[0] // 8), min(bw, picture[1] // 8)
    if 8 * bh < h or 8 * bw < w:
        raise ValueError(f"center_crop: the picture has {8 * bh}x{8 * bw} pixels in whole blocks, "
                         f"fewer than the {h}x{w} asked for; downscale less or pad the picture")
    return crop(x, 8 * ((bh - h // 8) // 2), 8 * ((bw - w // 8) // 2), h, w)


METHODS = ("box", "lowpass")


def _dct_matrix(k):
    """The orthonormal k-point DCT-II matrix D[u, m] (its transpose is the inverse)."""
    u, m = np.arange(k)[:, None], np.arange(k)[None, :]
    d = np.sqrt(2.0 / k) * np.cos((2 * m + 1) * u * np.pi / (2 * k))
    d[0] /= np.sqrt(2.0)
    return d


def _scaling_matrix(k, method):
    """S (k, 8): one axis of a block's k output pixels from its 8 coefficients (pixels = S F S^T)."""
    if method == "box":  # the mean of each group of 8 / k pixels of the 8-point inverse DCT
        return _dct_matrix(8).T.reshape(k, 8 // k, 8).mean(axis=1)
    s = np.zeros((k, 8))
    s[:, :k] = _dct_matrix(k).T * np.sqrt(k / 8)  # k/8 in 2-D: sqrt(k/8) per axis, so flat stays flat
    return s


def scaled_idct(x, factor, method="box"):
    """Pixels (..., 8 BH / factor, 8 BW / factor) of the blocks of ``x``, each scaled to k x k (``k = 8 / factor``).

    ``method``: ``"box"`` (the mean of each factor x factor group of the
    block's pixels; libjpeg-turbo's scaled decode up to its rounding) or
    ``"lowpass"`` (the k-point inverse DCT of the low k x k coefficients times
    k / 8; IJG libjpeg 7+). Factor 8 gives each block's mean (DC / 8) for both,
    factor 1 the full IDCT.

    >>> px = np.random.default_rng(0).normal(size=(16, 16))
    >>> bool(np.allclose(scaled_idct(to_dct(px), 2), px.reshape(8, 2, 8, 2).mean(axis=(1, 3))))
    True
    """
    _check_picture(x, "scaled_idct")
    if factor not in FACTORS:
        raise ValueError(f"scaled_idct: factor must be one of {FACTORS} (libjpeg's scales), found {factor!r}")
    if method not in METHODS:
        raise ValueError(f"scaled_idct: method must be one of {METHODS}, found {method!r}")
    if factor == 1:
        return from_dct(x)
    xp = get_array_module(x)
    k = 8 // factor
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    natural = x[..., xp.asarray(_NATURAL)].reshape(x.shape[:-1] + (8, 8)).astype(dtype)
    s = xp.asarray(_scaling_matrix(k, method).astype(dtype))
    blocks = s @ natural @ s.T  # (..., BH, BW, k, k)
    lead, (bh, bw) = x.shape[:-3], x.shape[-3:-1]
    order = tuple(range(len(lead))) + tuple(len(lead) + i for i in (0, 2, 1, 3))
    return blocks.transpose(order).reshape(lead + (bh * k, bw * k))


def downscale(x, factor, method="box"):
    """``x`` (..., BH, BW, 64) downscaled by ``factor`` in (1, 2, 4, 8), as DCT blocks again.

    The DCT of :func:`scaled_idct` (``method`` as there). The grid must be a multiple of ``factor``
    blocks along both axes, so that the result is whole blocks (crop first).

    >>> downscale(np.zeros((1, 8, 4, 64), np.float32), 4).shape
    (1, 2, 1, 64)
    """
    _check_picture(x, "downscale")
    if factor not in FACTORS:
        raise ValueError(f"downscale: factor must be one of {FACTORS} (libjpeg's scales), found {factor!r}")
    bh, bw = x.shape[-3:-1]
    if bh % factor or bw % factor or bh < factor or bw < factor:
        raise ValueError(f"downscale by {factor} needs a grid of multiples of {factor} blocks, found {bh}x{bw} "
                         f"blocks; crop to {bh - bh % factor}x{bw - bw % factor} blocks first (dctnet.resize.crop)")
    return x if factor == 1 else to_dct(scaled_idct(x, factor, method))


def _factor(ph, pw, h, w, op):
    """The largest of FACTORS whose downscaling of a ph x pw picture still covers h x w."""
    if ph < h or pw < w:
        raise ValueError(f"{op}: the picture ({ph}x{pw} pixels) is smaller than {h}x{w}; pad or upscale it first")
    return max(f for f in FACTORS if ph // f >= h and pw // f >= w)


def fit(x, size, picture=None, method="box"):
    """``x`` brought to ``size`` (int or (h, w)): the largest downscaling that still covers it, then a centre crop.

    With ``picture`` = (height, width) of the real image, only its real pixels
    are used (see :func:`center_crop`). For example a 640x480 photo and size 256
    gives a factor 1 crop; a 1600x1200 photo is downscaled by 4 (400x300) and
    cropped.
    """
    _check_picture(x, "fit")
    h, w = _size(size, "fit")
    bh, bw = x.shape[-3:-1]
    ph, pw = (8 * bh, 8 * bw) if picture is None else (min(8 * bh, picture[0]), min(8 * bw, picture[1]))
    factor = _factor(ph, pw, h, w, "fit")
    # crop at full resolution to exactly what the downscaling turns into the target
    return downscale(center_crop(x, (h * factor, w * factor), (ph, pw)), factor, method)


def _mcu(image):
    """The MCU size (rows, columns) in pixels: the crop granularity that keeps every component's blocks whole."""
    return (8 * max(v for v, _ in image.sampling), 8 * max(h for _, h in image.sampling))


def crop_image(image, top, left, height, width):
    """The ``height`` x ``width`` window at (``top``, ``left``) of a :class:`~dctnet.JpegImage`, as a JpegImage.

    ``top`` and ``left`` are multiples of the MCU size (8 times the largest
    sampling factor: 16 for 4:2:0, 8 for 4:4:4) and the window lies in the
    picture. Only coefficients are selected (no decode); its ``to_dct()``
    equals the same window of the whole image's ``to_dct()``.

    >>> import dctnet
    >>> img = dctnet.encode_jpeg(np.zeros((3, 48, 64), np.uint8), subsampling="4:2:0")
    >>> crop_image(img, 16, 16, 32, 32)
    JpegImage(32x32 ycbcr, sampling 22x11x11, baseline)
    """
    mh, mw = _mcu(image)
    if any(not isinstance(v, (int, np.integer)) or v < 0 for v in (top, left)) or top % mh or left % mw:
        raise ValueError(f"crop_image: top and left must be non-negative multiples of the MCU size {mh}x{mw} "
                         f"pixels (sampling {image.sampling}), found {top}, {left}")
    height, width = _size((height, width), "crop_image")
    if top + height > image.height or left + width > image.width:
        raise ValueError(f"crop_image: the window {height}x{width} at ({top}, {left}) leaves the "
                         f"{image.height}x{image.width} picture")
    vmax, hmax = mh // 8, mw // 8
    parts = []
    for coef, (v, h) in zip(image.coefficients, image.sampling):
        # component blocks of the window: libjpeg's ceil(size * f / (8 * f_max)) from the window's first block
        t, l = top * v // mh, left * h // mw
        rows, cols = -(-height * v // mh), -(-width * h // mw)
        part = coef[t:t + rows, l:l + cols]
        if part.shape[:2] != (rows, cols):
            raise ValueError(f"crop_image: the window {height}x{width} at ({top}, {left}) needs {rows}x{cols} "
                             f"blocks of a component sampled {(v, h)}, beyond its {coef.shape[0]}x{coef.shape[1]}")
        parts.append(part)
    return type(image)(tuple(parts), image.qtables, image.sampling, height, width, image.color_space,
                       image.progressive)


def fit_image(image, size, color=None, dtype=np.float32, method="box"):
    """A :class:`~dctnet.JpegImage` as a network input (C, size/8, size/8, 64), like :func:`fit` but cheaper.

    The largest downscaling in (1, 2, 4, 8) whose result still covers ``size``
    (int or (h, w)), of the centred window (on MCU boundaries) that it turns
    into exactly ``size``; only that window's DCT-domain picture is built
    (``color``, ``dtype`` as in ``JpegImage.to_dct``).

    >>> import dctnet
    >>> img = dctnet.encode_jpeg(np.zeros((3, 300, 400), np.uint8))
    >>> fit_image(img, 128).shape
    (3, 16, 16, 64)
    """
    h, w = _size(size, "fit_image")
    factor = _factor(image.height, image.width, h, w, "fit_image")
    mh, mw = _mcu(image)
    top = (image.height - h * factor) // 2 // mh * mh
    left = (image.width - w * factor) // 2 // mw * mw
    window = crop_image(image, top, left, h * factor, w * factor)
    return downscale(window.to_dct(color, dtype), factor, method)
