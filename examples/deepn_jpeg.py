"""DeepN-JPEG: rate-accuracy of data-designed quantization tables against the IJG tables.

    python examples/deepn_jpeg.py runs/mnist/model.h5 --dataset mnist --out runs/deepn-mnist
    python examples/deepn_jpeg.py runs/cifar10/model.h5 --dataset cifar10 --out runs/deepn-cifar10

Designs DeepN-JPEG tables (Liu et al., DAC 2018) from the DCT statistics of the
training split, re-encodes the test images (4:4:4) with the IJG tables at each
``--qualities`` and with the DeepN tables at each ``--scales``, and measures for
every point the mean file size, the compression ratio against quality 95, and
the accuracy of the pixel model on the decoded images and of its JPEG-domain
conversion on the files' DCT coefficients (the two are equal). Prints the size
each curve needs to stay within 0.5% of the accuracy on uncompressed pixels and
their ratio, and writes ``rate_accuracy.csv`` and ``rate_accuracy.png`` to ``--out``.
"""

import argparse
import csv
from pathlib import Path

import numpy as np

import dctnet
from dctnet import datasets, plots
from dctnet.qtables import dct_statistics, deepn_tables, encode_dataset, file_sizes, scan_sizes
from dctnet.training import predict

TOLERANCE = 0.005  # accuracy loss allowed for "equal accuracy"
FIELDS = ["method", "setting", "bytes", "scan_bytes", "ratio", "acc_pixel", "acc_jpeg"]


def load_data(name, limit):
    """``(train pixels for the statistics, test pixels, test labels, colour)``; pixels (N, C, 32, 32) 0..255."""
    if name == "mnist":
        train = datasets.pad_mnist(datasets.load_mnist("train")[0])
        images, labels = datasets.load_mnist("test")
        return train, datasets.pad_mnist(images[:limit]), labels[:limit], "gray"
    per_class = -(-limit // 10)  # files are sorted by class: take a balanced subset
    if name == "cifar10":
        train = datasets.load_cifar10("train", "pixels", progress=True).data
        test = datasets.load_cifar10("test", "pixels", limit=per_class)
    else:
        train = datasets.sample_cifar10("pixels").data
        test = datasets.sample_cifar10("pixels", limit=per_class)
    return train, test.data[:limit], test.labels[:limit], "rgb"


def evaluate(files, labels, model, jpeg_model, color):
    """Accuracy of the pixel model on the float decodes and of the JPEG-domain model on the coefficients."""
    images = [dctnet.read_jpeg(b) for b in files]
    pixels = np.stack([img.to_pixels(color) for img in images])
    coefs = np.stack([img.to_dct(color) for img in images])
    return (float((predict(model, pixels).argmax(1) == labels).mean()),
            float((predict(jpeg_model, coefs).argmax(1) == labels).mean()))


def size_at_accuracy(rows, target, key="bytes"):
    """Smallest mean size at which the curve reaches ``target`` (linear between points), or None."""
    points = sorted((r[key], r["acc_pixel"]) for r in rows)
    for i, (size, acc) in enumerate(points):
        if acc >= target:
            if i == 0:
                return size
            s0, a0 = points[i - 1]
            return s0 + (target - a0) * (size - s0) / (acc - a0)
    return None


def plot(rows, reference, path, title):
    curves = []
    for method, style, label in (("ijg", "o-", "IJG tables (quality)"), ("deepn", "s-", "DeepN-JPEG (scale)")):
        size, acc = zip(*sorted((r["bytes"], r["acc_pixel"]) for r in rows if r["method"] == method))
        curves.append((size, acc, style, label))
    return plots.line_chart(path, curves, references=[(reference - TOLERANCE, "reference - 0.5%")],
                            xlabel="mean bytes per image", ylabel="test accuracy", title=title, figsize=(5.5, 3.8))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="HDF5 model trained on pixels (dctnet.save)")
    p.add_argument("--dataset", choices=["mnist", "cifar10", "sample"], required=True)
    p.add_argument("--limit", type=int, default=2000, help="number of test images")
    p.add_argument("--qualities", type=int, nargs="+", default=[5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95])
    p.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8])
    p.add_argument("--out", type=Path, default=Path("deepn-jpeg"))
    args = p.parse_args(argv)
    if args.limit < 1:
        p.error(f"--limit must be a positive number of images, found {args.limit}")
    args.out.mkdir(parents=True, exist_ok=True)

    model = dctnet.load(args.model)
    model.eval()
    jpeg_model = dctnet.convert(model)
    train, x, y, color = load_data(args.dataset, args.limit)
    reference = float((predict(model, x.astype(np.float32)).argmax(1) == y).mean())
    stats = dct_statistics(train, progress=True)
    tables = {s: deepn_tables(stats, scale=s) for s in args.scales}
    baseline = file_sizes(encode_dataset(x, quality=95)).mean()  # the ratios' reference

    points = [("ijg", q, {"quality": q}) for q in args.qualities]
    points += [("deepn", s, {"qtables": tables[s]}) for s in args.scales]
    rows = []
    for method, setting, kw in dctnet.progress(points, total=len(points), desc="rate points", unit="point"):
        files = encode_dataset(x, **kw)
        size = float(file_sizes(files).mean())
        acc_pixel, acc_jpeg = evaluate(files, y, model, jpeg_model, color)
        rows.append(dict(method=method, setting=setting, bytes=size, scan_bytes=float(scan_sizes(files).mean()),
                         ratio=baseline / size,
                         acc_pixel=acc_pixel, acc_jpeg=acc_jpeg))

    print(f"{args.dataset}: {len(y)} test images, reference accuracy (uncompressed) {reference:.4f}")
    print(f"{'method':>6} {'setting':>8} {'bytes':>9} {'scan':>9} {'ratio':>6} {'acc pixel':>9} {'acc JPEG':>9}")
    for r in rows:
        print(f"{r['method']:>6} {r['setting']:>8g} {r['bytes']:9.1f} {r['scan_bytes']:9.1f} {r['ratio']:6.2f} "
              f"{r['acc_pixel']:9.4f} {r['acc_jpeg']:9.4f}")
    print(f"largest |pixel - JPEG-domain accuracy| over points: "
          f"{max(abs(r['acc_pixel'] - r['acc_jpeg']) for r in rows):.4f}")
    target = reference - TOLERANCE
    for key, what in (("bytes", "file"), ("scan_bytes", "entropy-coded")):
        sizes = {m: size_at_accuracy([r for r in rows if r["method"] == m], target, key) for m in ("ijg", "deepn")}
        for m, size in sizes.items():
            print(f"{m}: accuracy >= {target:.4f} from "
                  + ("never reached" if size is None else f"{size:.1f} {what} bytes/image"))
        if None not in sizes.values():
            print(f"compression gain at equal accuracy, {what} size (IJG / DeepN): {sizes['ijg'] / sizes['deepn']:.2f}x")

    with open(args.out / "rate_accuracy.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    if plot(rows, reference, args.out / "rate_accuracy.png", f"{args.dataset}: DeepN-JPEG vs IJG"):
        print(f"wrote {args.out / 'rate_accuracy.csv'} and {args.out / 'rate_accuracy.png'}")
    return rows


if __name__ == "__main__":
    main()
