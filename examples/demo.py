"""dctnet's main job: a trained CIFAR-10 network run on JPEG files in the pixel and in the JPEG domain, side by side.

    python examples/demo.py                        # the 100 CIFAR-10 test JPEGs bundled with dctnet
    python examples/demo.py --data --per-class 30  # 300 test files of $DCTNET_DATA/cifar10-jpeg.zip

Loads ``examples/models/cifar10_paper_resnet.h5`` (the paper's network,
trained by ``examples/train.py`` to 79.45% on the 10,000 CIFAR-10 test JPEGs),
converts it to the JPEG domain (``dctnet.convert``: the same weights; ASM ReLU
on 15 frequencies is exact) and runs both on the same files: the pixel model
on their float decode (inverse DCT of the coefficients), the JPEG-domain model
on their DCT coefficients (entropy decoding only, never an inverse DCT). The
table gives accuracy, agreement, the largest logit difference and images per
second of each path, file bytes to logits and network alone, timed in this
run after a warm-up pass (Numba compiles its kernels on first use). Then a
few files are classified straight from their coefficients, true label first.
"""

import argparse
import time
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

import dctnet
from dctnet import datasets
from dctnet.training import agreement, predict

MODEL = Path(__file__).resolve().parent / "models" / "cifar10_paper_resnet.h5"
WARMUP = 8  # images of the warm-up pass


def test_files(use_data, per_class):
    """``(names, bytes, labels, classes)`` of CIFAR-10 test JPEGs, ``per_class`` of each class."""
    if use_data:
        return _read_files(datasets.data_root() / "cifar10-jpeg.zip", per_class)
    with resources.as_file(resources.files("dctnet").joinpath("data", "cifar10-sample.zip")) as path:
        return _read_files(path, per_class)


def _read_files(zip_path, per_class):
    listing = datasets.JpegDataset(zip_path, "test", classes=datasets.CIFAR10_CLASSES, limit=per_class)
    with zipfile.ZipFile(zip_path) as z:
        blobs = [z.read(name) for name in listing.files]
    return listing.files, blobs, listing.labels, list(listing.classes)


def dct_pictures(blobs):
    """The files' DCT-domain pictures ``(N, 3, 4, 4, 64)``: entropy decoding and dequantization, no inverse DCT."""
    return np.stack([img.to_dct("rgb") for img in dctnet.read_jpegs(blobs)])


def pixel_path(model, blobs):
    """Files -> float decode (the inverse DCT of the same coefficients) -> pixel model: ``(logits, seconds, network seconds)``."""
    t0 = time.perf_counter()
    pixels = dctnet.from_dct(dct_pictures(blobs))
    t1 = time.perf_counter()
    logits = predict(model, pixels)
    t2 = time.perf_counter()
    return logits, t2 - t0, t2 - t1


def jpeg_path(model, blobs):
    """Files -> DCT coefficients -> JPEG-domain model: ``(logits, seconds, network seconds)``."""
    t0 = time.perf_counter()
    x = dct_pictures(blobs)
    t1 = time.perf_counter()
    logits = predict(model, x)
    t2 = time.perf_counter()
    return logits, t2 - t0, t2 - t1


def classify(model, name, data, label, classes):
    """Print the JPEG-domain model's prediction for one file next to its true label; True when right."""
    logits = predict(model, dctnet.read_jpeg(data).to_dct("rgb")[None])[0]
    scores = np.exp(logits - logits.max())
    scores /= scores.sum()
    guess = int(scores.argmax())
    print(f"  {'/'.join(Path(name).parts[-2:]):<22} true {classes[label]:<10} predicted {classes[guess]:<10} "
          f"{scores[guess]:6.1%}  {'ok' if guess == label else 'WRONG'}")
    return guess == label


def print_table(header, rows, spanning):
    """A text table: ``rows`` of one value per column, then ``spanning`` rows of one value across both columns."""
    width = max(len(row[0]) for row in rows + spanning)
    cols = [max(len(row[i]) for row in rows + [header]) for i in (1, 2)]
    span = max(cols[0] + cols[1] + 3, *(len(value) for _, value in spanning))
    cols[1] = span - cols[0] - 3
    line = f"+-{'-' * width}-+-{'-' * cols[0]}-+-{'-' * cols[1]}-+"
    print(line)
    print(f"| {header[0]:{width}} | {header[1]:>{cols[0]}} | {header[2]:>{cols[1]}} |")
    print(line)
    for name, a, b in rows:
        print(f"| {name:{width}} | {a:>{cols[0]}} | {b:>{cols[1]}} |")
    print(line)
    for name, value in spanning:
        print(f"| {name:{width}} | {value:^{span}} |")
    print(f"+-{'-' * width}-+-{'-' * span}-+")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="store_true", help="test files of $DCTNET_DATA/cifar10-jpeg.zip instead of the bundled 100")
    p.add_argument("--per-class", type=int, default=10, help="files of each class (default 10: all of the bundled sample)")
    p.add_argument("--show", type=int, default=10, help="files to classify one by one at the end")
    p.add_argument("--model", type=Path, default=MODEL)
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error(f"--per-class must be a positive number of files, found {args.per_class}")

    t_start = time.perf_counter()
    pixel_model, _, metadata = dctnet.load_checkpoint(args.model)
    t0 = time.perf_counter()
    jpeg_model = dctnet.convert(pixel_model)  # exact: ASM ReLU on all 15 frequencies
    t_convert = time.perf_counter() - t0
    names, blobs, labels, classes = test_files(args.data, args.per_class)
    source = "$DCTNET_DATA/cifar10-jpeg.zip" if args.data else "the CIFAR-10 sample bundled with dctnet"
    trained = metadata.get("test_accuracy")
    print(f"model: {args.model.name} (the paper's ResNet, {sum(p.data.size for p in pixel_model.parameters()):,} "
          f"parameters{f', {trained:.2%} on the CIFAR-10 test set' if trained else ''}), "
          f"converted to the JPEG domain in {t_convert * 1000:.0f} ms")
    print(f"files: {len(blobs)} CIFAR-10 test JPEGs ({len(blobs) // len(classes)} per class) from {source}, "
          f"{sum(map(len, blobs)) / len(blobs):.0f} bytes each on average")

    pixel_path(pixel_model, blobs[:WARMUP])  # warm-up: Numba compiles on first use
    jpeg_path(jpeg_model, blobs[:WARMUP])
    pixel_logits, t_pixel, net_pixel = pixel_path(pixel_model, blobs)
    jpeg_logits, t_jpeg, net_jpeg = jpeg_path(jpeg_model, blobs)
    r = agreement(pixel_logits, jpeg_logits, labels)
    n = len(blobs)
    rows = [
        ("input", "float decode (N, 3, 32, 32)", "DCT coefficients (N, 3, 4, 4, 64)"),
        ("accuracy", f"{r.accuracy:.2%}", f"{r.other_accuracy:.2%}"),
        ("images/s, file to logits", f"{n / t_pixel:,.0f}", f"{n / t_jpeg:,.0f}"),
        ("images/s, network alone", f"{n / net_pixel:,.0f}", f"{n / net_jpeg:,.0f}"),
    ]
    flips = str(r.flips)
    if r.flips:  # how close the pixel model's own call was: a tie at float rounding, or a real difference
        flips += f" (the pixel model's top-2 logits within {r.flip_margin:.1e}{': float ties' if r.flip_margin < 1e-4 else ''})"
    both = [
        ("same prediction", f"{round(r.agree * n)} of {n}"),
        ("flipped predictions", flips),
        ("largest logit difference", f"{r.max_difference:.1e}"),
    ]
    print()
    print_table((f"{n} CIFAR-10 test JPEGs", "pixel domain", "JPEG domain"), rows, both)
    print("\nClassified straight from their coefficients (dctnet.read_jpeg(file).to_dct(), no decoding to pixels):")
    first = {}
    for i, label in enumerate(labels):  # the first file of each class
        first.setdefault(int(label), i)
    chosen = sorted(first.values())[: args.show]
    right = sum(classify(jpeg_model, names[i], blobs[i], labels[i], classes) for i in chosen)
    print(f"{right} of {len(chosen)} right; {time.perf_counter() - t_start:.1f} s in all")
    return r


if __name__ == "__main__":
    main()
