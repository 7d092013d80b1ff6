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

import dctnet
from dctnet import datasets, plots
from dctnet.training import agreement, predict


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
    pixel_logits = predict(model, pixels)
    t_pixel = time.perf_counter() - t0
    t0 = time.perf_counter()
    jpeg_logits = predict(dctnet.convert(model, relu_frequencies=15, relu="asm"), x)
    t_jpeg = time.perf_counter() - t0
    r = agreement(pixel_logits, jpeg_logits, y)
    acc_pixel = r.accuracy
    table = (
        f"| {args.dataset} ({len(y)} test images) | accuracy |\n|---|---|\n"
        f"| pixel-domain model | {r.accuracy:.4f} |\n| JPEG-domain model (ASM, n = 15) | {r.other_accuracy:.4f} |\n"
        f"| deviation | {r.other_accuracy - r.accuracy:+.4f} |\n| predictions that agree | {r.agree:.4f} |\n"
        f"| largest logit difference | {r.max_difference:.2e} |\n"
        f"| disagreeing predictions (largest top-2 logit gap of the pixel model among them) | "
        f"{r.flips} ({r.flip_margin:.1e}) |\n"
        f"| evaluation time pixel / JPEG domain | {t_pixel:.1f} s / {t_jpeg:.1f} s |\n"
    )
    (out / "table1.md").write_text(table)
    print(table)

    rows = []
    for n in args.frequencies:
        row = {"frequencies": n}
        for method in ("asm", "apx"):
            logits = predict(dctnet.convert(model, relu_frequencies=n, relu=method), x)
            row[method] = float((logits.argmax(1) == y).mean())
        rows.append(row)
        print(f"n = {n:2d}: ASM {row['asm']:.4f}  APX {row['apx']:.4f}", flush=True)
    with open(out / "relu_accuracy.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["frequencies", "asm", "apx"])
        writer.writeheader()
        writer.writerows(rows)
    n = [r["frequencies"] for r in rows]
    if not plots.line_chart(out / "relu_accuracy.png", [(n, [r["asm"] for r in rows], "o-", "ASM"),
                                                      (n, [r["apx"] for r in rows], "s--", "APX")],
                            references=[(acc_pixel, "pixel model")], xlabel="spatial frequencies n",
                            ylabel="test accuracy", title=f"{args.dataset}: ReLU approximation"):
        return rows
    print(f"wrote {out / 'table1.md'}, {out / 'relu_accuracy.csv'}, {out / 'relu_accuracy.png'}")
    return rows


if __name__ == "__main__":
    main()
