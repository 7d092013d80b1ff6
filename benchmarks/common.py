"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

import os
import time
import zipfile
from importlib import resources
from pathlib import Path


def best_seconds(fn, repeat):
    """The fastest of ``repeat`` timed calls of ``fn``, after one warm-up call (compilation, caches)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cifar10_jpegs(limit):
    """``(source, [bytes, ...])``: up to ``limit`` CIFAR-10 JPEGs spread over the classes.

    From $DCTNET_DATA/cifar10-jpeg.zip when it is there, else the sample in the package.
    """
    root = os.environ.get("DCTNET_DATA")
    path = Path(root) / "cifar10-jpeg.zip" if root else None
    if path is None or not path.is_file():
        path = resources.files("dctnet").joinpath("data", "cifar10-sample.zip")
    with resources.as_file(path) as p, zipfile.ZipFile(p) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        return str(path), [z.read(n) for n in names[:: max(1, len(names) // limit)][:limit]]
