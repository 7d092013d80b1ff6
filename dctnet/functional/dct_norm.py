"""Normalization computed on DCT coefficients, equal to the pixel-domain one.

:func:`dct_batch_norm` is spatial batch norm on DCT blocks: the shared
arithmetic of :mod:`dctnet.functional.norm` in its ``DCT_BLOCKS`` layout
(mean from the DC, variance from the sum of squares of all 64 coefficients
of the centred blocks; docs/design.md §3). :func:`dct_normalize` is the
input normalization ``(x - mean) / std``, which only moves the DC.

>>> import numpy as np, dctnet
>>> x = np.random.default_rng(0).normal(size=(4, 2, 8, 8))
>>> c = dctnet.to_dct(x)
>>> y = dct_batch_norm(c, None, None, training=True)
>>> z = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
>>> np.allclose(dctnet.from_dct(y.data), z)
True
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .carried import CarriedDCT
from .norm import DCT_BLOCKS, BatchNorm, batch_norm

__all__ = ["dct_batch_norm", "dct_normalize"]


def dct_batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
                   reduce=None):
    """Batch norm of DCT-domain ``x`` (N, C, BH, BW, 64), exactly spatial BN's.

    Arguments and running-statistics semantics are those of
    :func:`dctnet.functional.batch_norm` (PyTorch's): in training mode the batch
    statistics normalize and update ``running_mean``/``running_var`` in place
    (the variance unbiased); in eval mode the running statistics are used.
    ``reduce`` sums the statistics over processes, as there. A
    :class:`~dctnet.functional.CarriedDCT` is normalized as its pixels (the same
    statistics, docs/design.md §3) and stays carried.
    """
    if isinstance(x, CarriedDCT):
        return CarriedDCT(batch_norm(x.pixels, running_mean, running_var, weight, bias, training, momentum, eps,
                                     reduce=reduce))
    return BatchNorm.apply(x, running_mean, running_var, weight, bias, training=training, momentum=momentum,
                           eps=eps, layout=DCT_BLOCKS, reduce=reduce)


def dct_normalize(x, mean, std):
    """``(pixels - mean) / std`` per channel, on DCT-domain ``x`` (N, C, BH, BW, 64).

    Every coefficient is divided by ``std``; the mean, a constant per channel,
    only moves the DC (by ``8 * mean / std``). Exactly the pixel-domain
    normalization, without leaving the DCT domain. A
    :class:`~dctnet.functional.CarriedDCT` is normalized as its pixels and stays carried.
    """
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    c = x.shape[1]
    if mean.size not in (1, c) or std.size not in (1, c) or not np.all(std > 0):
        raise ValueError(f"mean and std must have 1 or {c} entries and std > 0, found mean {mean}, std {std}")
    dtype = np.dtype(x.dtype)
    if isinstance(x, CarriedDCT):
        xp = x.pixels.xp
        scale, shift = np.broadcast_to(1 / std, (c,)), np.broadcast_to(-mean / std, (c,))
        return CarriedDCT(x.pixels * xp.asarray(scale.astype(dtype)).reshape(c, 1, 1)
                          + xp.asarray(shift.astype(dtype)).reshape(c, 1, 1))
    xp = get_array_module(x)
    scale = np.broadcast_to(1 / std, (c,))
    shift = np.zeros((c, 64))
    shift[:, 0] = -8 * mean / std
    return x * xp.asarray(scale.astype(dtype)).reshape(c, 1, 1, 1) + xp.asarray(shift.astype(dtype)).reshape(c, 1, 1, 64)
