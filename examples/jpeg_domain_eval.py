"""The paper's Table 1 and Figure 4b for a trained pixel-domain model.

    python examples/jpeg_domain_eval.py runs/mnist/model.h5 --dataset mnist --out runs/mnist
    python examples/jpeg_domain_eval.py runs/cifar10/model.h5 --dataset cifar10 --out runs/cifar10

Table 1: the pixel model on the float-decoded test images and its JPEG-domain
conversion (exact ReLU, n = 15) on their DCT coefficients: accuracies, their
deviation and the largest logit difference. Both see the same picture:
CIFAR-10 images are ``JpegImage.to_dct('rgb')`` of the JPEG files for the
converted model and its inverse DCT for the pixel model; MNIST digits are
padded to 32x32 and transformed losslessly.

Figure 4b: accuracy of the converted model with ASM and APX ReLU for n = 1..15
spatial frequencies. Writes ``table1.md``, ``relu_accuracy.csv`` and (with
matplotlib) ``relu_accuracy.png`` to ``--out``.
"""

import argparse
import csv
import time
from pathlib import Path

import numpy as np

import dctnet
from dctnet import datasets


def test_set(name, limit):
    """``(dct (N, C, 4, 4, 64) float32, labels)`` of the test split."""
    if name == "mnist":
        images, labels = datasets.load_mnist("test")
        x = dctnet.to_dct(datasets.pad_mnist(images))
    elif name == "cifar10":
        ds = datasets.load_cifar10("test", "dct", progress=True)
        x, labels = ds.data, ds.labels
    else:
        ds = datasets.sample_cifar10("dct")
        x, labels = ds.data, ds.labels
    return x[:limit], labels[:limit]


def logits_of(model, x, batch=500):
    model.eval()
    with dctnet.no_grad():
        return np.concatenate([model(dctnet.Tensor(x[s:s + batch])).numpy() for s in range(0, len(x), batch)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--dataset", choices=["mnist", "cifar10", "sample"], required=True)
    p.add_argument("--out", type=Path, default=None, help="folder for the table and plot (default: beside the model)")
    p.add_argument("--limit", type=int, default=None, help="first N test images only")
    p.add_argument("--frequencies", type=int, nargs="*", default=list(range(1, 16)))
    args = p.parse_args(argv)
    out = args.out or args.model.parent
    out.mkdir(parents=True, exist_ok=True)

    model = dctnet.load(args.model)
    x, y = test_set(args.dataset, args.limit)
    pixels = dctnet.from_dct(x)  # the float decode: the very picture the JPEG-domain model sees

    t0 = time.perf_counter()
    pixel_logits = logits_of(model, pixels)
    t_pixel = time.perf_counter() - t0
    t0 = time.perf_counter()
    jpeg_logits = logits_of(dctnet.convert(model, relu_frequencies=15, relu="asm"), x)
    t_jpeg = time.perf_counter() - t0
    acc_pixel = float((pixel_logits.argmax(1) == y).mean())
    acc_jpeg = float((jpeg_logits.argmax(1) == y).mean())
    diff = float(np.abs(pixel_logits - jpeg_logits).max())
    agree = float((pixel_logits.argmax(1) == jpeg_logits.argmax(1)).mean())
    # Where the two disagree, how close was the pixel model's own call? (a float tie, or a real difference)
    differ = pixel_logits.argmax(1) != jpeg_logits.argmax(1)
    top2 = np.sort(pixel_logits[differ], axis=1)[:, -2:]
    gap = float((top2[:, 1] - top2[:, 0]).max()) if differ.any() else 0.0
    table = (
        f"| {args.dataset} ({len(y)} test images) | accuracy |\n|---|---|\n"
        f"| pixel-domain model | {acc_pixel:.4f} |\n| JPEG-domain model (ASM, n = 15) | {acc_jpeg:.4f} |\n"
        f"| deviation | {acc_jpeg - acc_pixel:+.4f} |\n| predictions that agree | {agree:.4f} |\n"
        f"| largest logit difference | {diff:.2e} |\n"
        f"| disagreeing predictions (largest top-2 logit gap of the pixel model among them) | "
        f"{int(differ.sum())} ({gap:.1e}) |\n"
        f"| evaluation time pixel / JPEG domain | {t_pixel:.1f} s / {t_jpeg:.1f} s |\n"
    )
    (out / "table1.md").write_text(table)
    print(table)

    rows = []
    for n in args.frequencies:
        row = {"frequencies": n}
        for method in ("asm", "apx"):
            logits = logits_of(dctnet.convert(model, relu_frequencies=n, relu=method), x)
            row[method] = float((logits.argmax(1) == y).mean())
        rows.append(row)
        print(f"n = {n:2d}: ASM {row['asm']:.4f}  APX {row['apx']:.4f}", flush=True)
    with open(out / "relu_accuracy.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["frequencies", "asm", "apx"])
        writer.writeheader()
        writer.writerows(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return rows
    fig, ax = plt.subplots(figsize=(5, 3.5))
    n = [r["frequencies"] for r in rows]
    ax.plot(n, [r["asm"] for r in rows], "o-", label="ASM")
    ax.plot(n, [r["apx"] for r in rows], "s--", label="APX")
    ax.axhline(acc_pixel, color="gray", lw=0.8, label="pixel model")
    ax.set(xlabel="spatial frequencies n", ylabel="test accuracy", title=f"{args.dataset}: ReLU approximation")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "relu_accuracy.png", dpi=120)
    print(f"wrote {out / 'table1.md'}, {out / 'relu_accuracy.csv'}, {out / 'relu_accuracy.png'}")
    return rows


if __name__ == "__main__":
    main()
