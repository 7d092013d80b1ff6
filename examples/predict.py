"""Classify JPEG files with a model, in the JPEG domain: the files are never decoded to pixels.

    python examples/predict.py runs/cifar10/model.h5 photo1.jpg photo2.jpg [--top 3]
    python examples/predict.py model.h5 images/*.jpg --relu-frequencies 6
    python examples/predict.py model.h5          # a few of the CIFAR-10 JPEGs shipped with dctnet
    python examples/predict.py --arch resnet50 --weights resnet50.safetensors --labels labels.txt photo.jpg

Each file is entropy-decoded (``read_jpeg``) and turned into its DCT-domain
picture (``JpegImage.to_dct``: dequantized coefficients, chroma upsampled and
colour-mapped in the DCT domain). A pixel-domain model is converted first
(``dctnet.convert``, exact ReLU unless ``--relu-frequencies`` < 15); a model
that is already JPEG-domain is used as it is. Prints the top classes with
their softmax scores.

With ``--arch`` (resnet18, resnet34, resnet50) the weights come from a
safetensors file of torchvision's parameter names (e.g. written by
``safetensors.torch.save_file(torchvision_model.state_dict(), path)``); the
photo's coefficients are brought to ``--size`` (default 256) in the DCT domain
(``dctnet.resize.fit_image``: a centred window of the coefficients, cut on
MCU boundaries, downscaled by 1/2, 1/4 or 1/8 where the photo is large
enough), and torchvision's normalization is folded into the model
(``DCTNormalize``). A grey photo is read as three equal planes. ``--labels`` names the classes, one a line; the top 5 are
printed.
"""

import argparse
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

import dctnet
from dctnet import models, nn, resize

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's, on 0..1 pixels


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


def pretrained(arch, weights, labels=None):
    """A torchvision-layout ResNet with the weights of a safetensors file, normalizing 0..255 pixels as torchvision does."""
    state = dctnet.load_safetensors(weights)
    if "fc.weight" not in state:
        raise ValueError(f"{weights} has no fc.weight: not a torchvision-layout {arch} state_dict")
    num_classes = state["fc.weight"].shape[0]
    mean, std = (255 * np.array(IMAGENET_MEAN)).tolist(), (255 * np.array(IMAGENET_STD)).tolist()
    model = models.build_model(arch, num_classes=num_classes, mean=mean, std=std)
    model.load_state_dict(state)
    classes = None
    if labels is not None:
        classes = [line.strip() for line in Path(labels).read_text().splitlines() if line.strip()]
        if len(classes) != num_classes:
            raise ValueError(f"{labels} names {len(classes)} classes, the weights have {num_classes}")
    return model, classes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, nargs="?", help="an HDF5 model saved by dctnet.save (not with --arch)")
    p.add_argument("images", nargs="*", type=Path, help="JPEG files (default: 5 bundled CIFAR-10 samples)")
    p.add_argument("--arch", choices=ARCHS, help="a torchvision-layout ResNet; needs --weights")
    p.add_argument("--weights", type=Path, help="safetensors file of the --arch model's state_dict")
    p.add_argument("--labels", type=Path, help="class names, one a line (with --arch)")
    p.add_argument("--size", type=int, default=256, help="input side with --arch: a multiple of 256 (default 256)")
    p.add_argument("--relu-frequencies", type=int, default=15)
    p.add_argument("--relu", choices=["asm", "apx"], default="asm")
    p.add_argument("--top", type=int, default=None, help="classes to print (default 3; 5 with --arch)")
    args = p.parse_args(argv)

    if args.arch:
        if args.weights is None:
            p.error("--arch needs --weights (a safetensors file)")
        images = ([args.model] if args.model else []) + args.images  # no model file: the first path is an image
        if not images:
            p.error("--arch needs JPEG files")
        model, classes = pretrained(args.arch, args.weights, args.labels)
        models.check_jpeg_size(args.size, args.size)  # before any file is read
        top_k, color = args.top or 5, "rgb"  # torchvision's models take RGB
    else:
        if args.model is None:
            p.error("give an HDF5 model, or --arch and --weights")
        images = args.images
        model, _, metadata = dctnet.load_checkpoint(args.model)
        classes = metadata.get("classes")
        top_k = args.top or 3
    if dctnet.model_domain(model) == "pixel":  # a JPEG-domain model is used as it is
        model = dctnet.convert(model, relu_frequencies=args.relu_frequencies, relu=args.relu)
    model.eval()
    if not args.arch:
        color = "gray" if input_channels(model) == 1 else "rgb"

    sources = [(str(p), p) for p in images] or bundled_samples(5)
    results, failed = [], 0
    with dctnet.no_grad():
        for path, source in sources:
            try:
                img = dctnet.read_jpeg(source)
                # with --arch, to the network's size in the DCT domain: a centred window, downscaled
                x = resize.fit_image(img, args.size, color) if args.arch else img.to_dct(color)
                logits = model(dctnet.Tensor(x[None])).numpy()[0]  # (1, C, BH, BW, 64)
            except (ValueError, TypeError) as exc:  # JpegError included: report and go on
                print(f"{path}: {exc}", file=sys.stderr)
                failed += 1
                continue
            scores = np.exp(logits - logits.max())
            scores /= scores.sum()
            top = np.argsort(scores)[::-1][:top_k]
            names = [classes[i] if classes else str(i) for i in top]
            print(f"{path}: " + ", ".join(f"{n} {scores[i]:.3f}" for n, i in zip(names, top)))
            results.append((path, names[0]))
    return results, failed


if __name__ == "__main__":
    sys.exit(1 if main()[1] else 0)
