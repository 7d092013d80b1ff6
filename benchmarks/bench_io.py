"""Reading JPEG coefficients vs decoding to pixels, and the blockwise DCT vs a plain copy.

    python benchmarks/bench_io.py [--files 2000] [--repeat 5]

Uses the CIFAR-10 JPEGs of $DCTNET_DATA/cifar10-jpeg.zip (else the 100-file
sample in the package). All rates come from this one run, single-threaded:
``dctnet.read_jpeg`` (entropy decoding only, through jpeglib), Pillow's full
decode to RGB pixels, and simplejpeg's when it is installed. Then ``to_dct`` /
``from_dct`` throughput in GB/s (input + output bytes) next to ``np.copyto`` of
the same bytes.
"""

import argparse
import io
import os

import numpy as np
from common import best_seconds, cifar10_jpegs

import dctnet


def best_rate(fn, items, repeat):
    """Items per second of the fastest of ``repeat`` passes over ``items``."""
    return len(items) / best_seconds(lambda: [fn(item) for item in items], max(1, repeat - 1))


def main():
    parser = argparse.ArgumentParser(description="JPEG reading and DCT throughput")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    source, files = cifar10_jpegs(args.files)
    print(f"{len(files)} JPEG files from {source}, one thread, best of {args.repeat}")
    rows = []
    coef = best_rate(dctnet.read_jpeg, files, args.repeat)
    rows.append(("dctnet.read_jpeg (coefficients)", coef))
    rows.append(("read_jpeg + to_dct('rgb')", best_rate(lambda b: dctnet.read_jpeg(b).to_dct("rgb"), files, args.repeat)))
    try:
        from PIL import Image

        def pillow(b):
            with Image.open(io.BytesIO(b)) as im:
                return np.asarray(im.convert("RGB"))

        rows.append(("Pillow full decode (pixels)", best_rate(pillow, files, args.repeat)))
    except ImportError:
        print("Pillow not installed: no pixel-decode baseline")
    try:
        import simplejpeg

        rows.append(("simplejpeg full decode (pixels)", best_rate(simplejpeg.decode_jpeg, files, args.repeat)))
    except ImportError:
        print("simplejpeg not installed: skipped")
    print(f"\n{'reader':36s} {'files/s':>10s} {'vs read_jpeg':>13s}")
    for name, rate in rows:
        print(f"{name:36s} {rate:10,.0f} {rate / coef:12.2f}x")

    print(f"\n{'transform (float32)':36s} {'GB/s':>10s} {'vs copy':>13s}")
    x = np.random.default_rng(0).uniform(0, 255, (1024, 3, 64, 64)).astype(np.float32)
    c = dctnet.to_dct(x)
    out = np.empty_like(x)
    nbytes = 2 * x.nbytes  # read + write
    copy = None
    for name, fn in [("np.copyto (baseline)", lambda: np.copyto(out, x)),
                     ("to_dct", lambda: dctnet.to_dct(x)),
                     ("from_dct", lambda: dctnet.from_dct(c))]:
        gbs = nbytes / best_seconds(fn, args.repeat + 2) / 1e9
        copy = copy or gbs
        print(f"{name:36s} {gbs:10.2f} {gbs / copy:12.2f}x")
    print(f"\n({x.nbytes / 1e6:.0f} MB of float32 pixels, {x.size // 64:,} blocks, "
          f"{os.cpu_count()} cores available to Numba)")


if __name__ == "__main__":
    main()
