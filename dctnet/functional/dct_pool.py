"""Pooling on DCT coefficients: the block mean is DC / 8."""

from __future__ import annotations

from ..autograd import as_tensor
from .carried import CarriedDCT
from .pooling import global_avg_pool

__all__ = ["dct_global_avg_pool"]


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
