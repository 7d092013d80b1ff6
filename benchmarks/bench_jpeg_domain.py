"""The JPEG-domain paper_resnet next to the pixel-domain one: network alone, and end to end from JPEG files.

    python benchmarks/bench_jpeg_domain.py [--repeat 3] [--files 512]

1. Network only, on 3x32x32 images: inference (batch 40 and 128) and an SGD
   training step (batch 40) for the pixel network and its JPEG-domain
   conversion with exact ReLU (n = 15) and with ASM on n = 6 frequencies.
2. End to end from CIFAR-10 JPEG bytes ($DCTNET_DATA/cifar10-jpeg.zip, else the
   package sample), batch 128: ``read_stacked`` + ``dct_picture`` + JPEG-domain network
   vs Pillow's full decode + pixel network (+ PyTorch network when installed).
Everything is measured in this one run; ratios are relative to the pixel network.
"""

import argparse
import io
import os

import numpy as np
from common import best_seconds, cifar10_jpegs

import dctnet
from dctnet import functional as F, optim
from dctnet.models import paper_resnet

MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]


def infer(model, x):
    model.eval()
    with dctnet.no_grad():
        return model(dctnet.Tensor(x)).numpy()


def train_step(model, opt, x, y):
    model.train()
    loss = F.cross_entropy(model(dctnet.Tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    pixel = paper_resnet(3, 10, mean=MEAN, std=STD)
    # Non-trivial batch-norm statistics, so the conversion is exercised as in use.
    for _ in range(3):
        train_step(pixel, optim.SGD(pixel.parameters(), lr=0.0), rng.uniform(0, 255, (64, 3, 32, 32)).astype(np.float32),
                   rng.integers(0, 10, 64))
    nets = {"pixel": pixel,
            "JPEG n=15 (exact)": dctnet.convert(pixel, relu_frequencies=15),
            "JPEG n=6 (ASM)": dctnet.convert(pixel, relu_frequencies=6)}
    x = rng.uniform(0, 255, (128, 3, 32, 32)).astype(np.float32)
    c = dctnet.to_dct(x)
    err = np.abs(infer(nets["JPEG n=15 (exact)"], c) - infer(pixel, x)).max()
    print(f"{os.cpu_count()} cores; best of {args.repeat}; |logits JPEG n=15 - pixel| max = {err:.1e}\n")

    print(f"{'network only':24s} {'batch':>5s} {'img/s':>9s} {'vs pixel':>9s}")
    for what, batch in (("inference", 40), ("inference", 128), ("train step", 40)):
        base = None
        for name, net in nets.items():
            data = x[:batch] if name == "pixel" else c[:batch]
            y = rng.integers(0, 10, batch)
            if what == "inference":
                seconds = best_seconds(lambda: infer(net, data), args.repeat)
            else:
                opt = optim.SGD(net.parameters(), lr=1e-9)  # tiny steps: the shared weights barely move
                seconds = best_seconds(lambda: train_step(net, opt, data, y), args.repeat)
            rate = batch / seconds
            base = base or rate
            print(f"{what + ' ' + name:24.24s} {batch:5d} {rate:9,.0f} {rate / base:8.2f}x")

    source, files = cifar10_jpegs(args.files)
    print(f"\nend to end, {len(files)} JPEG files from {source}, batch 128")
    jpeg_net, batches = nets["JPEG n=15 (exact)"], range(0, len(files), 128)

    first = dctnet.read_jpeg(files[0])  # the geometry every CIFAR-10 file shares

    def jpeg_pipeline():
        for s in batches:  # one parallel decode and one DCT-domain colour/upsampling pass per batch
            coefs, qtables = dctnet.read_stacked(files[s:s + 128])
            infer(jpeg_net, dctnet.dct_picture(coefs, qtables.transpose(1, 0, 2), first.sampling,
                                               first.color_space, first.height, first.width, "rgb"))

    rows = [("read_stacked + dct_picture + JPEG net (n=15)", jpeg_pipeline)]
    try:
        from PIL import Image

        def decode(b):
            with Image.open(io.BytesIO(b)) as im:
                return np.asarray(im.convert("RGB")).transpose(2, 0, 1)

        def pixel_pipeline():
            for s in batches:
                infer(pixel, np.stack([decode(b) for b in files[s:s + 128]]).astype(np.float32))

        rows.insert(0, ("Pillow decode + pixel net", pixel_pipeline))
        try:
            import torch

            from bench_train import torch_model

            net = torch_model(pixel).eval()

            def torch_pipeline():
                with torch.no_grad():
                    for s in batches:
                        net(torch.from_numpy(np.stack([decode(b) for b in files[s:s + 128]]).astype(np.float32)))

            rows.append(("Pillow decode + PyTorch net", torch_pipeline))
        except ImportError:
            print("torch not installed: no PyTorch pipeline")
    except ImportError:
        print("Pillow not installed: no pixel pipeline")
    base = None
    for name, fn in rows:
        rate = len(files) / best_seconds(fn, args.repeat)
        base = base or rate
        print(f"{name:40s} {rate:9,.0f} img/s {rate / base:6.2f}x")


if __name__ == "__main__":
    main()
