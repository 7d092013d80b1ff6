"""Pooling on DCT coefficients: the block mean is DC / 8; the maximum goes through the pixels."""

from __future__ import annotations

from ..autograd import as_tensor
from ._utils import pair
from .block_dct import block_dct, block_idct
from .carried import CarriedDCT
from .pooling import global_avg_pool, max_pool2d

__all__ = ["dct_global_avg_pool", "dct_max_pool2d"]


def dct_global_avg_pool(x):
    """Global average pooling of DCT-domain ``x`` (N, C, BH, BW, 64) -> (N, C).

    The mean of a block's pixels is its DC coefficient over 8, so the global
    mean is the mean of the DC coefficients over 8 (differentiable); of a
    :class:`~dctnet.functional.CarriedDCT`, the mean of its pixels.

    >>> import numpy as np, dctnet
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 16, 8))
    >>> np.allclose(dct_global_avg_pool(dctnet.to_dct(x)).data, x.mean(axis=(2, 3)))
    True
    """
    if isinstance(x, CarriedDCT):
        return global_avg_pool(x.pixels)
    x = as_tensor(x)
    if x.ndim != 5 or x.shape[-1] != 64:
        raise ValueError(f"dct_global_avg_pool expects (N, C, BH, BW, 64), found shape {x.shape}")
    return x[..., 0].mean(axis=(2, 3)) * 0.125


def dct_max_pool2d(x, kernel_size, stride=None, padding=0):
    """:func:`~dctnet.functional.max_pool2d` of DCT-domain ``x`` (N, C, BH, BW, 64), exactly.

    A maximum is not linear, so it is evaluated in the pixels: IDCT, max-pool,
    DCT (each exact, differentiable). The pooled map must be whole 8x8 blocks.
    A :class:`~dctnet.functional.CarriedDCT` is pooled as its pixels and stays carried.

    >>> import numpy as np, dctnet
    >>> x = np.random.default_rng(0).normal(size=(1, 2, 32, 32))
    >>> y = dct_max_pool2d(dctnet.to_dct(x), 3, 2, 1).data
    >>> np.allclose(dctnet.from_dct(y), max_pool2d(x, 3, 2, 1).data)
    True
    """
    carried = isinstance(x, CarriedDCT)
    x = x if carried else as_tensor(x)
    if len(x.shape) != 5 or x.shape[-1] != 64:
        raise ValueError(f"dct_max_pool2d expects (N, C, BH, BW, 64), found shape {x.shape}")
    kernel = pair(kernel_size, "kernel_size")
    stride, padding = (kernel if stride is None else pair(stride, "stride")), pair(padding, "padding")
    for axis, n, k, s, p in zip("HW", x.shape[2:4], kernel, stride, padding):
        out = (8 * n + 2 * p - k) // s + 1
        if out % 8:
            raise ValueError(f"dct_max_pool2d: the pooled map along {axis} is {out} pixels (input {8 * n}, "
                             f"kernel {k}, stride {s}, padding {p}), not a whole number of 8x8 blocks")
    if carried:
        return CarriedDCT(max_pool2d(x.pixels, kernel, stride, padding))
    return block_dct(max_pool2d(block_idct(x), kernel, stride, padding))
