"""Fuzz dctnet's Numba JPEG decoder against libjpeg (jpeglib) with mutated real files.

    DCTNET_DATA=/work/shared/data python benchmarks/fuzz_reader.py --cases 100000 --seed 0
    NUMBA_BOUNDSCHECK=1 python benchmarks/fuzz_reader.py --cases 3000     # index checks in the kernel
    python benchmarks/fuzz_reader.py --seed 0 --case 1234                 # replay one case, full traceback

Bases: three CIFAR-10 files from $DCTNET_DATA/cifar10-jpeg.zip (when there) and six
Pillow files (4:2:0, 4:4:4, grey; restart markers; optimize=True; 17x33, 64x48, ...).
Case ``i`` mutates base ``i % len(bases)`` with ``np.random.default_rng([seed, i])``:
bit flips, byte changes, a truncation, a deleted or duplicated byte run, a deleted or
duplicated marker segment (sometimes two of these).

Reference: ``dctnet.read_jpeg(data, decoder="libjpeg")``, refused when it raises
JpegError (libjpeg warnings included). Ours: ``dctnet.jpeg.huffman.read``.
Every case must either read exactly what libjpeg reads or raise JpegError naming
the file. Problems (exit status 1): ours reads what libjpeg refuses, different
results, an exception other than JpegError (or one not naming the file). Where our
reader is stricter than libjpeg 6b (e.g. a zero run past the 64th coefficient,
which libjpeg folds into coefficient 63, or bytes left after a segment's last
block, which it drops), the case is counted by reason and ``dctnet.read_jpeg``
(which then falls back to libjpeg) must return libjpeg's result.
"""

import argparse
import io
import os
import re
import sys
import tempfile
import traceback
import zipfile
from collections import Counter
from pathlib import Path

if os.environ.get("NUMBA_BOUNDSCHECK", "0") not in ("", "0"):
    # Numba's cache key ignores the boundscheck flag: with the usual cache it would load the
    # unchecked kernels (no checks at all), or save checked ones that later runs would load.
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "dctnet-numba-boundscheck"))

import numba  # noqa: E402  (after the cache folder is chosen)
import numpy as np  # noqa: E402

import dctnet  # noqa: E402
from dctnet.jpeg import huffman  # noqa: E402


def pillow_file(h, w, mode, quality, **kw):
    """A Pillow JPEG of smooth noise with texture (many coefficient sizes, long AC runs)."""
    from PIL import Image

    rng = np.random.default_rng(h * 1000 + w)
    channels = 1 if mode == "gray" else 3
    coarse = rng.integers(0, 256, (h // 5 + 2, w // 5 + 2, channels), dtype=np.uint8)
    im = Image.fromarray(coarse[..., 0] if channels == 1 else coarse).resize((w, h), Image.BILINEAR)
    x = np.clip(np.asarray(im).astype(np.int16) + rng.integers(-20, 21, np.shape(im)), 0, 255).astype(np.uint8)
    extra = {} if mode == "gray" else {"subsampling": {"4:4:4": 0, "4:2:0": 2}[mode]}
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=quality, **extra, **kw)
    return buf.getvalue()


def bases():
    files = [pillow_file(17, 33, "4:2:0", 75), pillow_file(48, 64, "4:4:4", 90),
             pillow_file(33, 17, "gray", 50), pillow_file(48, 64, "4:2:0", 80, restart_marker_blocks=2),
             pillow_file(17, 33, "4:4:4", 60, optimize=True),
             pillow_file(48, 64, "gray", 70, optimize=True, restart_marker_rows=1)]
    root = os.environ.get("DCTNET_DATA")
    if root and (Path(root) / "cifar10-jpeg.zip").is_file():
        with zipfile.ZipFile(Path(root) / "cifar10-jpeg.zip") as z:
            names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
            files += [z.read(n) for n in names[:: len(names) // 3][:3]]
    else:
        print("DCTNET_DATA not set: Pillow bases only")
    return files


def segments(data):
    """``(start, end)`` of each marker segment before the entropy-coded data (SOS header included)."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        out.append((pos, end))
        if data[pos + 1] == 0xDA:
            break
        pos = end
    return out


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(1 + (rng.random() < 0.25)):
        kind = rng.integers(0, 7)
        n = len(data)
        if n < 4:
            break
        if kind == 0:  # bit flips
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(2, n)] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # bytes changed
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(2, n)] = rng.choice([0x00, 0xFF, 0xD9, 0xDA, 0xD0 + int(rng.integers(0, 8)),
                                                       int(rng.integers(0, 256))])
        elif kind == 2:  # truncation
            data = data[: rng.integers(2, n)]
        elif kind in (3, 4):  # a run of bytes deleted or duplicated
            a = int(rng.integers(2, n - 1))
            b = min(n, a + int(rng.integers(1, 17)))
            data = data[:a] + data[b:] if kind == 3 else data[:b] + data[a:b] + data[b:]
        else:  # a whole marker segment deleted or duplicated
            segs = segments(data)
            if segs:
                a, b = segs[rng.integers(0, len(segs))]
                data = data[:a] + data[b:] if kind == 5 else data[:b] + data[a:b] + data[b:]
    return bytes(data)


def same(a, b):
    return ((a.height, a.width, a.sampling, a.color_space) == (b.height, b.width, b.sampling, b.color_space)
            and len(a.coefficients) == len(b.coefficients)
            and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a.coefficients, b.coefficients))
            and all(np.array_equal(x, y) for x, y in zip(a.qtables, b.qtables)))


def reason(exc):
    """An error message without the file name and position, numbers as N: to group by."""
    text = re.sub(r",? (near byte|at offset) \d+", "", str(exc).removeprefix("fuzz: "))
    return re.sub(r"\b\d+\b", "N", text)[:80]


def run_case(data):
    """``(category, detail)`` of one mutated file; a category starting with "PROBLEM" fails the run."""
    try:
        ref = dctnet.read_jpeg(data, decoder="libjpeg")
    except dctnet.JpegError:
        ref = None
    except Exception as exc:
        return "PROBLEM: libjpeg side raised " + type(exc).__name__, traceback.format_exc(limit=-3)
    try:
        ours = huffman.read(data, "fuzz")
    except dctnet.JpegError as exc:
        if not str(exc).startswith("fuzz: "):
            return "PROBLEM: JpegError without the file name", str(exc)
        if ref is None:
            return "both refused", ""
        if not same(dctnet.read_jpeg(data), ref):
            return "PROBLEM: read_jpeg differs from libjpeg after our refusal", str(exc)
        return "stricter than libjpeg (read_jpeg falls back): " + reason(exc), ""
    except Exception as exc:
        return "PROBLEM: ours raised " + type(exc).__name__, traceback.format_exc(limit=-3)
    if ours is None:
        return "progressive (ours: None)", ""
    if ref is None:
        return "PROBLEM: ours read, libjpeg refused", ""
    return ("identical", "") if same(ours, ref) else ("PROBLEM: mismatch", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", type=int, default=None, help="replay only this case and print its detail")
    args = parser.parse_args()

    files = bases()
    for i, f in enumerate(files):  # the unmutated bases must read identically
        assert run_case(f)[0] == "identical", (i, run_case(f))
    cases = [args.case] if args.case is not None else range(args.cases)
    counts, problems = Counter(), []
    for i in cases:
        data = mutate(files[i % len(files)], np.random.default_rng([args.seed, i]))
        category, detail = run_case(data)
        counts[category] += 1
        if category.startswith("PROBLEM") or args.case is not None:
            problems.append((i, category, detail))

    print(f"{sum(counts.values())} cases, seed {args.seed}, {len(files)} bases, "
          f"NUMBA_BOUNDSCHECK={numba.config.BOUNDSCHECK}, cache {numba.config.CACHE_DIR or 'default'}")
    width = max(len(c) for c in counts)
    for category, n in sorted(counts.items(), key=lambda kv: (kv[0].startswith("PROBLEM"), -kv[1])):
        print(f"  {category:{width}s} {n:8d}")
    shown = Counter()
    for i, category, detail in problems:  # the first few of every kind, to replay
        shown[category] += 1
        if shown[category] <= 3:
            print(f"\ncase {i} (replay: --seed {args.seed} --case {i}): {category}\n{detail}".rstrip())
    bad = sum(n for c, n in counts.items() if c.startswith("PROBLEM"))
    print(f"\n{bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
