"""Optional progress bars: tqdm's when asked for and installed, else silence.

tqdm is an optional extra (``dctnet[examples]``): without it the loaders and
downloads run the same, only quietly.

>>> list(track(range(3), enabled=False, total=3, desc="files", unit="file"))
[0, 1, 2]
>>> with progress_bar(False, total=10, desc="files", unit="file") as bar:
...     bar.update(10)
"""

from __future__ import annotations

__all__ = ["track", "progress_bar"]


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the optional extra is not installed: stay silent
        return None
    return tqdm


def track(iterable, enabled: bool, total, desc: str, unit: str):
    """``iterable``, wrapped in a tqdm bar when ``enabled`` and tqdm is installed."""
    tqdm = _tqdm() if enabled else None
    return iterable if tqdm is None else tqdm(iterable, total=total, desc=desc, unit=unit)


class _Silent:
    """What :func:`progress_bar` gives without a bar: ``update`` and ``with`` do nothing."""

    def update(self, n=1):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(enabled: bool, total, desc: str, unit: str):
    """A bar to ``update(n)`` by hand inside ``with``: tqdm's, or a silent one."""
    tqdm = _tqdm() if enabled else None
    return _Silent() if tqdm is None else tqdm(total=total, desc=desc, unit=unit)
