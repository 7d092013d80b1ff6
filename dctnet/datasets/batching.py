"""Mini-batches: aligned slices of arrays, or of (named) tuples of arrays, in order or shuffled.

>>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
>>> [b[1].tolist() for b in iterate_batches(x, y, batch_size=2)]
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["iterate_batches", "take"]


def take(x, index):
    """``x[index]`` for an array, or for each array of a (named) tuple of them.

    >>> take((np.arange(4), np.arange(4) * 10), slice(1, 3))
    (array([1, 2]), array([10, 20]))
    """
    if isinstance(x, tuple):
        parts = [take(part, index) for part in x]
        return type(x)(*parts) if hasattr(x, "_fields") else tuple(parts)
    return x[index]


def _lengths(x):
    if isinstance(x, tuple):
        return [n for part in x for n in _lengths(part)]
    return [len(x)]


def iterate_batches(*arrays, batch_size: int, shuffle: bool = False, seed=None, drop_last: bool = False):
    """Yield tuples of aligned mini-batches, one entry per input, covering every sample once.

    Inputs are arrays of equal length, or (named) tuples of them such as
    :class:`~dctnet.datasets.JpegCoefficients`. ``shuffle`` draws one
    permutation per call from ``numpy.random.default_rng(seed)``: an int seed
    repeats the order, a ``Generator`` moves on from epoch to epoch.
    ``drop_last`` skips a short final batch. Unshuffled batches are views.

    >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> [b[1].tolist() for b in iterate_batches(x, y, batch_size=2, drop_last=True)]
    [[0, 1], [2, 3]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, found {batch_size!r}")
    if not arrays:
        raise ValueError("iterate_batches needs at least one array")
    lengths = [_lengths(a) for a in arrays]
    n = lengths[0][0]
    if any(m != n for ls in lengths for m in ls):
        raise ValueError(f"iterate_batches needs arrays of one length, found lengths {lengths}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield tuple(take(a, index) for a in arrays)
