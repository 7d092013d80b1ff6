"""Progress bars: tqdm when it is installed (an optional extra), the plain iterable otherwise.

>>> sum(progress(range(4), desc="adding", enabled=False))
6
"""

__all__ = ["progress"]


def progress(iterable, total=None, desc=None, unit="it", enabled=True, **options):
    """``iterable`` wrapped in a tqdm bar, or ``iterable`` itself when not ``enabled`` or without tqdm.

    ``total``, ``desc``, ``unit`` and any further ``options`` (``leave=False``,
    ...) go to ``tqdm.auto.tqdm``. The bar has ``set_postfix``; the plain
    iterable has not, so test for it (``hasattr(bar, "set_postfix")``) before
    writing to the bar.

    >>> [x * x for x in progress([1, 2, 3], total=3, desc="squares", unit="number", enabled=False)]
    [1, 4, 9]
    """
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm  # imported here: optional, and slow to import
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, **options)
