"""Loading CIFAR-10 as coefficients: ``dctnet.datasets.load_cifar10`` against a file-by-file read.

    DCTNET_DATA=/work/shared/data python benchmarks/bench_datasets.py [--split test] [--rounds 3]

Both paths start from ``$DCTNET_DATA/cifar10-jpeg.zip`` (no cache) and end with
the stacked coefficient arrays and tables:

- ``load_cifar10``: the data-set loader as installed (listing, reading the zip
  members, decoding, stacking);
- ``file by file``: the zip listed and read the same way, then one
  ``dctnet.read_jpeg`` per file copied into preallocated stacks (the loader's
  method before it used the batched ``read_stacked``).

Prints the median of ``--rounds`` timed rounds after a warm-up round (Numba
compilation, the zip in the page cache) that also checks that both give the
same arrays; the two paths take turns in each round. Then files/s, and the
ratio of the two.
Run it in two checkouts to compare versions of the loader; the file-by-file
figure is the same code in both.
"""

import argparse
import os
import statistics
import time
import zipfile
from pathlib import Path

import numba
import numpy as np

import dctnet
from dctnet import datasets


def file_by_file(path, split):
    """The coefficient stacks of ``path``'s ``split``, one ``read_jpeg`` per file (sorted by class, name)."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.split("/")[-3:-2] == [split] and n.endswith(".jpg"))
        out = None
        for i, name in enumerate(names):
            img = dctnet.read_jpeg(zf.read(name))
            parts = (*img.coefficients, np.stack(img.qtables).astype(np.int32))
            if out is None:
                out = [np.empty((len(names),) + p.shape, p.dtype) for p in parts]
            for o, p in zip(out, parts):
                o[i] = p
    return out


def loader(root, split):
    ds = datasets.load_cifar10(split, "coefficients", root=root)
    return [*ds.data.components, ds.data.qtables]


def median_seconds(fns, rounds):
    """Median seconds of each of ``fns`` over ``rounds`` rounds.

    The functions take turns within each round, so a change in the machine's
    load (other processes) falls on all of them alike.
    """
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    root = os.environ.get("DCTNET_DATA")
    path = Path(root or ".") / "cifar10-jpeg.zip"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set DCTNET_DATA to the folder holding cifar10-jpeg.zip")

    # The warm-up round (compilation, the zip in the page cache), and a check that both paths agree.
    reference, loaded = file_by_file(path, args.split), loader(root, args.split)
    n = len(reference[-1])
    # Same files in the same order (the loader sorts by class, then name; so does file_by_file).
    assert all(np.array_equal(a, b) for a, b in zip(reference, loaded)), "the two paths disagree"
    print(f"CIFAR-10 {args.split}: {n} files, coefficient form, median of {args.rounds} rounds "
          f"(numba threads: {numba.get_num_threads()})")
    slow, fast = median_seconds([lambda: file_by_file(path, args.split), lambda: loader(root, args.split)],
                                args.rounds)
    print(f"  file by file (read_jpeg)  {slow:7.3f} s  {n / slow:9,.0f} files/s")
    print(f"  load_cifar10              {fast:7.3f} s  {n / fast:9,.0f} files/s")
    print(f"  ratio load_cifar10 / file by file: {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
