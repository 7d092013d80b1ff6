"""Progress bars: tqdm when it is installed (an optional extra), silence otherwise.

Every loop in dctnet that shows progress goes through this module, so the
optional dependency is handled in one place.

>>> sum(progress(range(4), desc="adding", enabled=False))
6
>>> with progress_bar(total=10, desc="files", unit="file", enabled=False) as bar:
...     bar.update(10)
"""

__all__ = ["progress", "progress_bar"]


def _tqdm():
    try:
        from tqdm.auto import tqdm  # imported here: optional, and slow to import
    except ImportError:
        return None
    return tqdm


def progress(iterable, total=None, desc=None, unit="it", enabled=True, **options):
    """``iterable`` wrapped in a tqdm bar, or ``iterable`` itself when not ``enabled`` or without tqdm.

    ``total``, ``desc``, ``unit`` and any further ``options`` (``leave=False``,
    ...) go to ``tqdm.auto.tqdm``. The bar has ``set_postfix``; the plain
    iterable has not, so test for it (``hasattr(bar, "set_postfix")``) before
    writing to the bar.

    >>> [x * x for x in progress([1, 2, 3], total=3, desc="squares", unit="number", enabled=False)]
    [1, 4, 9]
    """
    tqdm = _tqdm() if enabled else None
    return iterable if tqdm is None else tqdm(iterable, total=total, desc=desc, unit=unit, **options)


class _Silent:
    """What :func:`progress_bar` gives without a bar: ``update`` and ``with`` do nothing."""

    def update(self, n=1):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(total=None, desc=None, unit="it", enabled=True):
    """A bar to ``update(n)`` by hand inside ``with``: tqdm's, or a silent one."""
    tqdm = _tqdm() if enabled else None
    return _Silent() if tqdm is None else tqdm(total=total, desc=desc, unit=unit)
