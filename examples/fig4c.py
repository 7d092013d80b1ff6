"""The paper's Figure 4c: networks trained from scratch in the JPEG domain with ASM ReLU, accuracy against n.

    python examples/fig4c.py --dataset mnist --epochs 1 --frequencies 1 2 3 4 6 8 10 15 \\
        --pixel-model runs/mnist/model.h5 --out runs/fig4c-mnist
    python examples/fig4c.py --dataset cifar10 --epochs 2 --pixel-model runs/cifar10/model.h5 --out runs/fig4c-cifar10

For each n in ``--frequencies`` a fresh paper_resnet is converted to the JPEG
domain with ASM on n frequencies and trained there from scratch on DCT
coefficients (``dctnet.training.fit``, SGD with a per-step cosine schedule, the options
of examples/train.py), then tested on the test split. Next to it, Figure 4b:
``--pixel-model`` (a pixel-domain model file, e.g. from examples/train.py)
converted with ASM at the same n, without training. The paper's finding is
that JPEG-trained models cope with fewer frequencies than converted ones.

Writes ``fig4c.csv`` and ``fig4c.md`` (n, accuracy of the JPEG-trained model,
of the converted model) and, with matplotlib, ``fig4c.png`` to ``--out``.
"""

import argparse
import csv
import time

import dctnet
from dctnet import nn, optim, plots, training
from dctnet.augment import augment
from dctnet.models import paper_resnet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    training.add_arguments(p, dataset="mnist", epochs=1, out="runs/fig4c")
    p.add_argument("--frequencies", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 10, 15],
                   help="the values of n, one model trained per value")
    p.add_argument("--pixel-model", help="a pixel-domain model file: its converted accuracy is Figure 4b's curve")
    args = p.parse_args(argv)
    if any(not 1 <= n <= 15 for n in args.frequencies):
        p.error(f"--frequencies are 1..15, found {args.frequencies}")
    if args.distributed:
        p.error("fig4c trains in one process; run examples/train.py --distributed for one model")
    return args


def train_one(args, data, n, log):
    """A fresh JPEG-domain model with ASM on ``n`` frequencies, trained from scratch; its test accuracy."""
    nn.manual_seed(args.seed)
    pixel = paper_resnet(in_channels=data.x_train.shape[1], num_classes=len(data.classes), mean=data.mean,
                         std=data.std)
    model = dctnet.convert(pixel, relu_frequencies=n, relu="asm")
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                    nesterov=True)
    history = training.fit(
        model, opt, (data.x_train, data.y_train), (data.x_test, data.y_test), epochs=args.epochs,
        batch_size=args.batch_size,
        scheduler=training.cosine_schedule(opt, args.epochs, len(data.x_train), args.batch_size, args.warmup),
        seed=args.seed, augment=None if args.dataset == "mnist" or args.no_augment
        else lambda x, rng: augment(x, rng, "jpeg"), log=log)
    return history[-1]["test_acc"] if history else training.evaluate(model, data.x_test, data.y_test).accuracy


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = None if args.no_progress else print
    data = training.load_dataset(args.dataset, "jpeg", limit=args.limit, seed=args.seed, cache=args.out / "cache")
    print(f"{args.dataset}: {len(data.x_train)} train, {len(data.x_test)} test DCT-domain pictures; "
          f"n = {args.frequencies}, {args.epochs} epoch(s) each")
    pixel = dctnet.load(args.pixel_model) if args.pixel_model else None
    rows = []
    for n in args.frequencies:
        t0 = time.perf_counter()
        row = {"frequencies": n, "jpeg_trained": train_one(args, data, n, log), "converted": None}
        if pixel is not None:
            row["converted"] = training.evaluate(dctnet.convert(pixel, relu_frequencies=n), data.x_test,
                                                 data.y_test).accuracy
        rows.append(row)
        converted = "" if row["converted"] is None else f", converted {row['converted']:.4f}"
        print(f"n = {n:2d}: JPEG-trained {row['jpeg_trained']:.4f}{converted} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    with open(args.out / "fig4c.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["frequencies", "jpeg_trained", "converted"])
        writer.writeheader()
        writer.writerows(rows)
    cell = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    table = (f"| n ({args.dataset}, {args.epochs} epoch(s)) | trained in the JPEG domain (Fig. 4c) "
             f"| converted pixel model (Fig. 4b) |\n|---|---|---|\n"
             + "".join(f"| {r['frequencies']} | {cell(r['jpeg_trained'])} | {cell(r['converted'])} |\n" for r in rows))
    (args.out / "fig4c.md").write_text(table)
    print(table)
    n = [r["frequencies"] for r in rows]
    series = [(n, [r["jpeg_trained"] for r in rows], "o-", "trained in the JPEG domain (4c)")]
    if pixel is not None:
        series.append((n, [r["converted"] for r in rows], "s--", "converted pixel model (4b)"))
    if plots.line_chart(args.out / "fig4c.png", series, xlabel="spatial frequencies n", ylabel="test accuracy",
                        title=f"{args.dataset}: ASM ReLU, JPEG-trained vs converted"):
        print(f"wrote {args.out / 'fig4c.png'}")
    return rows


if __name__ == "__main__":
    main()
