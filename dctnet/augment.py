"""Data augmentation of image batches: random flips and crops, in the pixel and in the DCT domain.

A horizontal flip is exact in the DCT domain: reverse the block columns and
negate the odd horizontal frequencies (the basis ``cos((2n+1) v pi / 16)``
changes sign with ``v`` when ``n`` runs backwards).

>>> import numpy as np, dctnet
>>> x = np.random.default_rng(0).random((2, 3, 16, 16))
>>> np.allclose(flip_dct(dctnet.to_dct(x)), dctnet.to_dct(x[..., ::-1]))
True
"""

import numpy as np

from .transform import ZIGZAG

__all__ = ["flip_dct", "random_flip_crop", "random_flip_dct", "augment"]

_FLIP_SIGN = np.where(ZIGZAG % 8 % 2 == 1, -1.0, 1.0).astype(np.float32)  # -1 at odd horizontal frequencies


def flip_dct(x):
    """Mirror DCT-domain pictures ``(..., BH, BW, 64)`` left to right: the DCT of the mirrored pixels.

    The picture width must be whole blocks (as ``to_dct`` makes it).
    """
    x = np.asarray(x)
    _check(x, "DCT-domain pictures (..., BH, BW, 64)", x.ndim >= 3 and x.shape[-1] == 64)
    return x[..., ::-1, :] * _FLIP_SIGN.astype(x.dtype, copy=False)


def random_flip_dct(x, rng):
    """Each picture of ``(N, C, BH, BW, 64)`` mirrored with probability 1/2 (a copy; ``rng`` draws ``N`` floats)."""
    x = np.asarray(x)
    _check(x, "DCT-domain pictures (N, C, BH, BW, 64)", x.ndim == 5 and x.shape[-1] == 64)
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = flip_dct(x[flip])
    return out


def random_flip_crop(x, rng, pad=4):
    """Random crops of the ``pad``-padded (zeros) images ``(N, C, H, W)`` at full size, each mirrored with probability 1/2.

    ``rng`` draws the flips first, then the vertical and the horizontal offsets
    (``0 .. 2 * pad``), one of each per image.
    """
    x = np.asarray(x)
    _check(x, "pixels (N, C, H, W)", x.ndim == 4)
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative number of pixels, found {pad!r}")
    flip = rng.random(len(x)) < 0.5
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)
    cols = dx[:, None] + np.arange(w)
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    out[flip] = out[flip][..., ::-1]
    return out


def augment(x, rng, domain="pixel"):
    """:func:`random_flip_crop` of pixels (``domain="pixel"``) or :func:`random_flip_dct` of DCT pictures (``"jpeg"``).

    The DCT domain has no crops: a shift by less than a block mixes blocks.
    """
    if domain == "pixel":
        return random_flip_crop(x, rng)
    if domain == "jpeg":
        return random_flip_dct(x, rng)
    raise ValueError(f"domain must be 'pixel' or 'jpeg', found {domain!r}")


def _check(x, expected, ok):
    if not ok:
        raise ValueError(f"expected {expected}, found an array of shape {x.shape}")
