"""Classify JPEG files with a model, in the JPEG domain: the files are never decoded to pixels.

    python examples/predict.py runs/cifar10/model.h5 photo1.jpg photo2.jpg [--top 3]
    python examples/predict.py model.h5 images/*.jpg --relu-frequencies 6
    python examples/predict.py model.h5          # a few of the CIFAR-10 JPEGs shipped with dctnet

Each file is entropy-decoded (``read_jpeg``) and turned into its DCT-domain
picture (``JpegImage.to_dct``: dequantized coefficients, chroma upsampled and
colour-mapped in the DCT domain). A pixel-domain model is converted first
(``dctnet.convert``, exact ReLU unless ``--relu-frequencies`` < 15); a model
that is already JPEG-domain is used as it is. Prints the top classes with
their softmax scores.
"""

import argparse
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

import dctnet
from dctnet import nn


def input_channels(model):
    """Channels of the first layer that has a fixed number of input channels."""
    for _, m in model.named_modules():
        for attr in ("in_channels", "num_features"):
            if hasattr(m, attr):
                return getattr(m, attr)
        if isinstance(m, (nn.Normalize, nn.DCTNormalize)):
            return len(np.atleast_1d(m.mean))
    raise ValueError("cannot tell how many input channels the model takes")


def bundled_samples(count):
    """``(name, bytes)`` of the first ``count`` files of one class after another in the shipped sample."""
    with resources.as_file(resources.files("dctnet").joinpath("data", "cifar10-sample.zip")) as path:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
            by_class = {}
            for n in names:
                by_class.setdefault(n.split("/")[-2], n)
            return [(f"{path.name}:{n}", z.read(n)) for n in list(by_class.values())[:count]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an HDF5 model saved by dctnet.save")
    p.add_argument("images", nargs="*", type=Path, help="JPEG files (default: 5 bundled CIFAR-10 samples)")
    p.add_argument("--relu-frequencies", type=int, default=15)
    p.add_argument("--relu", choices=["asm", "apx"], default="asm")
    p.add_argument("--top", type=int, default=3)
    args = p.parse_args(argv)

    model, _, metadata = dctnet.load_checkpoint(args.model)
    classes = metadata.get("classes")
    if dctnet.model_domain(model) == "pixel":  # a JPEG-domain model is used as it is
        model = dctnet.convert(model, relu_frequencies=args.relu_frequencies, relu=args.relu)
    model.eval()
    color = "gray" if input_channels(model) == 1 else "rgb"

    sources = [(str(p), p) for p in args.images] or bundled_samples(5)
    results, failed = [], 0
    with dctnet.no_grad():
        for path, source in sources:
            try:
                x = dctnet.read_jpeg(source).to_dct(color)[None]  # (1, C, BH, BW, 64)
                logits = model(dctnet.Tensor(x)).numpy()[0]
            except (ValueError, TypeError) as exc:  # JpegError included: report and go on
                print(f"{path}: {exc}", file=sys.stderr)
                failed += 1
                continue
            scores = np.exp(logits - logits.max())
            scores /= scores.sum()
            top = np.argsort(scores)[::-1][: args.top]
            names = [classes[i] if classes else str(i) for i in top]
            print(f"{path}: " + ", ".join(f"{n} {scores[i]:.3f}" for n, i in zip(names, top)))
            results.append((path, names[0]))
    return results, failed


if __name__ == "__main__":
    sys.exit(1 if main()[1] else 0)
