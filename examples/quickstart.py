"""Quickstart: JPEG files as DCT coefficients, without decoding them to pixels.

Reads the 100 CIFAR-10 test JPEGs shipped with dctnet (or, with --data, the
first files of $DCTNET_DATA/cifar10-jpeg.zip), shows how sparse their quantized
coefficients are, turns them into the DCT-domain picture a JPEG-domain network
consumes, and checks the pixel <-> DCT round trip.

    python examples/quickstart.py
"""

import argparse
import time
import zipfile
from importlib import resources

import numpy as np

import dctnet
from dctnet import datasets


def sample_zip():
    return resources.as_file(resources.files("dctnet").joinpath("data", "cifar10-sample.zip"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="store_true", help="read $DCTNET_DATA/cifar10-jpeg.zip instead of the sample")
    parser.add_argument("--limit", type=int, default=10, help="files per class (default 10)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.data:
        ds = datasets.load_cifar10("test", "coefficients", limit=args.limit)
    else:
        ds = datasets.sample_cifar10("coefficients", limit=args.limit)
    seconds = time.perf_counter() - t0
    (y, cb, cr), tables = ds.data
    print(f"read {len(ds)} JPEG files ({len(ds.classes)} classes) in {seconds:.2f} s: "
          f"Y {y.shape}, Cb {cb.shape}, Cr {cr.shape} int16 coefficients, tables {tables.shape}")

    # Sparsity: what the entropy coder saw, per zigzag position.
    zero = np.mean([(c == 0).mean() for c in (y, cb, cr)])
    print(f"zero quantized coefficients: {zero:.1%} (Y {(y == 0).mean():.1%}, chroma {(cb == 0).mean():.1%})")
    nonzero_y = (y != 0).mean(axis=(0, 1, 2))
    last = int(np.nonzero(nonzero_y > 0.01)[0].max()) + 1
    print(f"luma: DC nonzero in {nonzero_y[0]:.0%} of blocks; positions past zigzag {last} "
          f"are nonzero in under 1% of blocks")
    for n in (1, 3, 6, 10, 15):
        k = dctnet.frequency_count(n)
        energy = (y[..., :k].astype(float) ** 2).sum() / (y.astype(float) ** 2).sum()
        print(f"  {n:2d} spatial frequencies = first {k:2d} coefficients: {energy:6.1%} of quantized luma energy")

    # The DCT-domain picture: dequantized, chroma upsampled, RGB, level shift undone.
    with sample_zip() as path:
        with zipfile.ZipFile(path) as z:
            first = sorted(n for n in z.namelist() if n.endswith(".jpg"))[0]
            img = dctnet.read_jpeg(z.read(first))
    x = img.to_dct("rgb")
    print(f"{first}: {img} -> to_dct('rgb') {x.shape} {x.dtype}; "
          f"mean colour {np.round(x[..., 0].mean(axis=(1, 2)) / 8, 1)} (DC / 8)")

    # Pixel <-> DCT: the transform is orthonormal and the round trip exact to rounding.
    pixels = img.to_pixels("rgb", np.float64, crop=False)
    back = dctnet.from_dct(dctnet.to_dct(pixels))
    print(f"pixels {pixels.shape} -> DCT -> pixels: max error {np.abs(back - pixels).max():.1e}; "
          f"to_dct(float decode) == to_dct(): {np.allclose(dctnet.to_dct(pixels), img.to_dct('rgb', np.float64))}")
    print("summary: coefficients read, DCT-domain input built, transform exact.")


if __name__ == "__main__":
    main()
