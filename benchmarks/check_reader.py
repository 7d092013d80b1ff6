"""Check dctnet.read_jpegs (Numba) against libjpeg (jpeglib) on every CIFAR-10 JPEG.

    DCTNET_DATA=/work/shared/data python benchmarks/check_reader.py [--limit N] [--chunk 5000]

Reads all 60,000 files (train and test) of $DCTNET_DATA/cifar10-jpeg.zip into memory,
decodes them with ``dctnet.read_jpegs`` in chunks and one by one with
``dctnet.read_jpeg(b, decoder="libjpeg")``, and compares coefficients (every
component), quantization tables, sampling, size and colour space. Prints
``checked N files: M mismatches`` (and the first mismatching names); exit status 1
when M > 0.
"""

import argparse
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

import dctnet

try:
    from tqdm import tqdm
except ImportError:  # the bar is optional
    def tqdm(it, **_):
        return it


def differences(ours, ref):
    """What differs between two JpegImages, as short words (empty when identical)."""
    diff = [what for what, a, b in [("size", (ours.height, ours.width), (ref.height, ref.width)),
                                    ("sampling", ours.sampling, ref.sampling),
                                    ("colour space", ours.color_space, ref.color_space)] if a != b]
    if len(ours.coefficients) != len(ref.coefficients):
        return diff + ["component count"]
    for c, (a, b) in enumerate(zip(ours.coefficients, ref.coefficients)):
        if a.shape != b.shape or not np.array_equal(a, b):
            diff.append(f"coefficients[{c}]")
    for c, (a, b) in enumerate(zip(ours.qtables, ref.qtables)):
        if not np.array_equal(a, b):
            diff.append(f"qtables[{c}]")
    return diff


def read_one(blob, threads):
    """``read_jpegs`` of one file, or the error message as a string."""
    try:
        return dctnet.read_jpegs([blob], threads=threads)[0]
    except dctnet.JpegError as exc:
        return f"dctnet refused: {exc}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="check only the first N files (sorted names)")
    parser.add_argument("--chunk", type=int, default=5000, help="files per read_jpegs call")
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: Numba's)")
    args = parser.parse_args()

    root = os.environ.get("DCTNET_DATA")
    if not root:
        sys.exit("set DCTNET_DATA to the shared data folder (it holds cifar10-jpeg.zip)")
    with zipfile.ZipFile(Path(root) / "cifar10-jpeg.zip") as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))[: args.limit]
        blobs = [z.read(n) for n in tqdm(names, desc="reading zip", unit="file")]

    mismatches = []  # (name, what)
    bar = tqdm(total=len(blobs), desc="comparing", unit="file")
    for start in range(0, len(blobs), args.chunk):
        chunk = blobs[start:start + args.chunk]
        try:
            ours = dctnet.read_jpegs(chunk, threads=args.threads)
        except dctnet.JpegError:  # one bad file fails the call: redo the chunk file by file
            ours = [read_one(b, args.threads) for b in chunk]
        for name, blob, img in zip(names[start:], chunk, ours):
            try:
                ref = dctnet.read_jpeg(blob, decoder="libjpeg")
            except dctnet.JpegError as exc:
                ref = f"libjpeg refused: {exc}"
            if isinstance(img, str) or isinstance(ref, str):
                diff = [] if isinstance(img, str) and isinstance(ref, str) else [img if isinstance(img, str) else ref]
            else:
                diff = differences(img, ref)
            if diff:
                mismatches.append((name, ", ".join(diff)))
        bar.update(len(chunk))
    bar.close()

    print(f"checked {len(blobs)} files: {len(mismatches)} mismatches")
    for name, what in mismatches[:10]:
        print(f"  {name}: {what}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
