"""Reading JPEG coefficients vs decoding to pixels, at 1 thread and at all threads; DCT throughput.

    DCTNET_DATA=/work/shared/data python benchmarks/bench_io.py [--files 10000] [--photos 200] [--repeat 3]

Two sets, all in memory: the CIFAR-10 test JPEGs of $DCTNET_DATA/cifar10-jpeg.zip
(32x32 4:2:0; else the sample in the package), and 512x512 photos: random crops of
upscaled photographs of $DCTNET_DATA/jpeg-corpus (testorig.jpg, mjpeg.jpg,
progressive3.jpg, rgb.jpg), written by Pillow at quality 75, half 4:2:0, half 4:4:4.
Files/s, best of ``--repeat`` passes after a warm-up:

- ``dctnet.read_jpegs`` (coefficients, Numba kernel; ``threads=`` 1 and all);
- jpeglib's coefficient read, ``read_jpeg(b, decoder="libjpeg")`` per file (1 thread only);
- simplejpeg's full decode to RGB (when installed; all threads through a
  ThreadPoolExecutor, as it releases the GIL while decoding);
- Pillow's full decode to RGB (1 thread only).

Then ``to_dct`` / ``from_dct`` throughput in GB/s next to ``np.copyto`` of the same bytes.
"""

import argparse
import io
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import best_seconds, cifar10_jpegs
from PIL import Image

import dctnet

try:
    import simplejpeg
except ImportError:
    simplejpeg = None

PHOTOS = ["libjpeg-turbo/testorig.jpg", "jpeg-decoder-reftest/mjpeg.jpg",
          "jpeg-decoder-reftest/progressive3.jpg", "jpeg-decoder-reftest/rgb.jpg"]


def cifar10_test(limit):
    """``(description, [bytes])``: the first ``limit`` CIFAR-10 test files (sorted names)."""
    root = os.environ.get("DCTNET_DATA")
    path = Path(root or ".") / "cifar10-jpeg.zip"
    if not path.is_file():
        source, files = cifar10_jpegs(limit)
        return f"CIFAR-10 sample ({len(files)})", files
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.startswith("cifar10/test/") and n.endswith(".jpg"))
        return f"CIFAR-10 test ({min(limit, len(names))})", [z.read(n) for n in names[:limit]]


def photo_crops(count, size=512, seed=0):
    """``count`` JPEGs of random ``size``-square crops of upscaled corpus photos (half 4:2:0, half 4:4:4)."""
    root = os.environ.get("DCTNET_DATA")
    if not root:
        return None, []
    rng = np.random.default_rng(seed)
    photos = [Image.open(Path(root) / "jpeg-corpus" / p).convert("RGB") for p in PHOTOS]
    files = []
    for i in range(count):
        im = photos[i % len(photos)]
        scale = max(1.0, size / min(im.size)) * rng.uniform(1.0, 1.5)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        x, y = (int(rng.integers(0, d - size + 1)) for d in im.size)
        buf = io.BytesIO()
        im.crop((x, y, x + size, y + size)).save(buf, "JPEG", quality=75, subsampling=2 if i < count // 2 else 0)
        files.append(buf.getvalue())
    return f"{size}x{size} photos ({count})", files


def pillow_decode(b):
    with Image.open(io.BytesIO(b)) as im:
        return np.asarray(im.convert("RGB"))


def rates(files, threads, repeat):
    """``{reader: {threads: files/s}}`` for one set."""
    def per_second(fn):
        return len(files) / best_seconds(fn, repeat)

    out = {"dctnet.read_jpegs (coefficients)": {t: per_second(lambda t=t: dctnet.read_jpegs(files, threads=t))
                                                for t in threads},
           "jpeglib coefficients (1 thread)": {1: per_second(
               lambda: [dctnet.read_jpeg(b, decoder="libjpeg") for b in files])}}
    if simplejpeg is not None:
        out["simplejpeg full decode (RGB)"] = {1: per_second(lambda: [simplejpeg.decode_jpeg(b) for b in files])}
        for t in threads[1:]:
            with ThreadPoolExecutor(t) as pool:
                out["simplejpeg full decode (RGB)"][t] = per_second(
                    lambda: list(pool.map(simplejpeg.decode_jpeg, files, chunksize=64)))
    out["Pillow full decode (RGB, 1 thread)"] = {1: per_second(lambda: [pillow_decode(b) for b in files])}
    return out


def main():
    parser = argparse.ArgumentParser(description="JPEG reading and DCT throughput")
    parser.add_argument("--files", type=int, default=10000, help="CIFAR-10 test files")
    parser.add_argument("--photos", type=int, default=200, help="512x512 photo crops")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    threads = sorted({1, os.cpu_count()})
    sets = [cifar10_test(args.files), photo_crops(args.photos)]
    sets = [(name, files) for name, files in sets if files]
    if simplejpeg is None:
        print("simplejpeg not installed: no simplejpeg column")
    results = [rates(files, threads, args.repeat) for _, files in sets]

    cols = [(name, t) for name, _ in sets for t in threads]
    print(f"\nfiles/s, best of {args.repeat}; {os.cpu_count()} CPUs\n{'':36s}"
          + "".join(f"{name:^{12 * len(threads)}s}" for name, _ in sets))
    print(f"{'reader':36s}" + "".join(f"{f'{t} thread' + 's' * (t > 1):>12s}" for _, t in cols))
    for reader in results[0]:
        print(f"{reader:36s}" + "".join(f"{r[reader][t]:12,.0f}" if t in r[reader] else f"{'-':>12s}"
                                        for r in results for t in threads))
    if simplejpeg is not None:
        print(f"{'dctnet read / simplejpeg decode':36s}" + "".join(
            f"{r['dctnet.read_jpegs (coefficients)'][t] / r['simplejpeg full decode (RGB)'][t]:11.2f}x"
            for r in results for t in threads))

    print(f"\n{'transform (float32)':36s} {'GB/s':>10s} {'vs copy':>13s}")
    x = np.random.default_rng(0).uniform(0, 255, (256, 3, 64, 64)).astype(np.float32)
    c = dctnet.to_dct(x)
    out = np.empty_like(x)
    copy = None
    for name, fn in [("np.copyto (reference)", lambda: np.copyto(out, x)),
                     ("to_dct", lambda: dctnet.to_dct(x)),
                     ("from_dct", lambda: dctnet.from_dct(c))]:
        gbs = 2 * x.nbytes / best_seconds(fn, args.repeat + 2) / 1e9  # read + write
        copy = copy or gbs
        print(f"{name:36s} {gbs:10.2f} {gbs / copy:12.2f}x")
    print(f"({x.nbytes / 1e6:.0f} MB of float32 pixels, Numba's default threads)")


if __name__ == "__main__":
    main()
