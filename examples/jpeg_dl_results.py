"""JPEG-DL against its baseline over seeds: accuracy, the learned tables, and the files they make.

    python examples/jpeg_dl_results.py --jpeg runs/jpegdl/jpeg-s0 runs/jpegdl/jpeg-s1 runs/jpegdl/jpeg-s2 \\
        --baseline runs/jpegdl/base-s0 runs/jpegdl/base-s1 runs/jpegdl/base-s2 --out runs/jpegdl

Reads the ``history.json``, ``model.h5`` and ``qtables.json`` that
``examples/train_jpeg_dl.py`` leaves in each run folder (with and without
``--no-jpeg``, one folder per seed) and writes to ``--out``:

- ``results.md`` (also printed): final test accuracy of every run, mean ± std
  (sample std) of each arm, and the per-seed difference when the two arms
  share their seeds;
- ``accuracy.png``: test accuracy per epoch, mean and range over the seeds;
- ``qtables.png``: heat maps of the luma and chroma tables, unrounded, means
  over the runs: the initial ones (kept by train_jpeg_dl.py), the learned ones
  and each run's change from its own start (runs that kept their start);
- the mean size of ``--images`` CIFAR-10 test images encoded by
  :func:`dctnet.encode_jpeg` (with the layers' chroma subsampling) with each
  run's exported tables and with the IJG
  tables at ``--qualities`` (whole file and entropy-coded bytes).
"""

import argparse
import json
from pathlib import Path

import numpy as np

import dctnet
from dctnet import datasets, plots
from dctnet.jpegdl import find_jpeg_layer
from dctnet.qtables import encode_dataset, file_sizes, scan_sizes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jpeg", type=Path, nargs="+", required=True, help="run folders trained with the JPEG layer")
    p.add_argument("--baseline", type=Path, nargs="+", required=True, help="run folders trained with --no-jpeg")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset", choices=["cifar10", "sample"], default="cifar10", help="images for the file sizes")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--qualities", type=int, nargs="+", default=[50, 75, 90, 95, 100])
    return p.parse_args(argv)


def read_run(folder):
    """``{"seed", "history", "final", "luma", "chroma", "initial"}`` of one finished run of train_jpeg_dl.py."""
    for name in ("history.json", "model.h5", "last.h5"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder} has no {name}: pass folders of finished train_jpeg_dl.py runs")
    history = json.loads((folder / "history.json").read_text())
    ckpt = dctnet.load_checkpoint(folder / "model.h5")
    seed = int(dctnet.load_checkpoint(folder / "last.h5").metadata["args"]["seed"])  # the run's arguments
    run = {"folder": folder, "seed": seed, "history": history, "final": history[-1]["test_acc"]}
    model = ckpt.model
    if ckpt.metadata.get("jpeg_layer"):
        layer = find_jpeg_layer(model)
        run["luma"], run["chroma"] = (np.asarray(layer.q_luma.data, np.float64),
                                      np.asarray(layer.q_chroma.data, np.float64))
        # JPEG tables for the file sizes: only a layer in front of the network compresses images
        run["exported"] = layer.export_qtables() if ckpt.metadata.get("placement", "input") == "input" else None
        run["subsampling"] = layer.subsampling
        run["initial"] = ckpt.metadata.get("qtables_initial")
    return run


def summary(jpeg, base):
    """Markdown lines: every run's final accuracy, each arm's mean ± std, the same-seed differences."""
    a, b = np.array([r["final"] for r in jpeg]), np.array([r["final"] for r in base])

    def std(v):
        return v.std(ddof=1) if len(v) > 1 else float("nan")

    lines = ["| arm | seed | final test accuracy |", "|---|---|---|"]
    lines += [f"| JPEG layer | {r['seed']} | {r['final']:.4f} |" for r in jpeg]
    lines += [f"| baseline | {r['seed']} | {r['final']:.4f} |" for r in base]
    lines += ["", "| arm | runs | mean ± std |", "|---|---|---|",
              f"| JPEG layer | {len(a)} | {a.mean():.4f} ± {std(a):.4f} |",
              f"| baseline | {len(b)} | {b.mean():.4f} ± {std(b):.4f} |"]
    paired = {r["seed"]: r["final"] for r in base}
    diffs = np.array([r["final"] - paired[r["seed"]] for r in jpeg if r["seed"] in paired])
    if len(diffs):
        listed = ", ".join(f"{d:+.4f}" for d in diffs)
        lines += ["", f"JPEG layer - baseline, same seed ({len(diffs)} pairs): {listed}; "
                  + f"mean {diffs.mean():+.4f} ± {std(diffs):.4f}"]
    return lines


def write_plots(jpeg, base, out):
    plt = plots.pyplot()
    if plt is None:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for runs, label in ((jpeg, "JPEG layer"), (base, "baseline")):
        n = min(len(r["history"]) for r in runs)
        acc = np.array([[row["test_acc"] for row in r["history"][:n]] for r in runs])
        epochs = np.arange(1, n + 1)
        ax.plot(epochs, acc.mean(axis=0), label=f"{label} (mean of {len(runs)})")
        ax.fill_between(epochs, acc.min(axis=0), acc.max(axis=0), alpha=0.25)
    ax.set(xlabel="epoch", ylabel="test accuracy", title="CIFAR-10, paper_resnet")
    ax.grid(alpha=0.3)
    ax.legend()
    plots.save_figure(fig, out / "accuracy.png")

    rows = [("learned", np.mean([r["luma"] for r in jpeg], 0), np.mean([r["chroma"] for r in jpeg], 0))]
    known = [r for r in jpeg if r.get("initial")]  # runs that recorded where they started
    if known:  # the start, and how far each run moved from its own start
        start = [np.mean([r["initial"][k] for r in known], 0) for k in ("luma", "chroma")]
        moved = [np.mean([r[k] - np.asarray(r["initial"][k]) for r in known], 0) for k in ("luma", "chroma")]
        rows = [("initial", *start), rows[0], ("learned - initial", *moved)]
    fig, axes = plt.subplots(len(rows), 2, figsize=(8.5, 3.9 * len(rows)), squeeze=False)
    for (kind, luma, chroma), row in zip(rows, axes):
        change = kind == "learned - initial"
        for ax, table, name in zip(row, (luma, chroma), ("luma (Y)", "chroma (Cb, Cr)")):
            plots.table_heatmap(fig, ax, np.asarray(table, np.float64), f"{kind} {name}",
                                "{:+.2f}" if change else "{:.1f}", change)
    plots.save_figure(fig, out / "qtables.png")
    return [out / "accuracy.png", out / "qtables.png"]


def sizes(jpeg, args):
    """Markdown lines: mean file and scan bytes of test images under each run's tables and the IJG tables."""
    if args.dataset == "sample":
        images = datasets.sample_cifar10("pixels").data[: args.images]
    else:
        images = datasets.load_cifar10("test", "pixels", limit=-(-args.images // 10)).data[: args.images]
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    lines = [f"Mean size of {len(images)} CIFAR-10 test images encoded by dctnet.encode_jpeg:", "",
             "| tables | subsampling | file bytes | entropy-coded bytes |", "|---|---|---|---|"]

    def row(name, sub, **tables):
        files = encode_dataset(images, subsampling=sub, **tables)
        lines.append(f"| {name} | {sub} | {file_sizes(files).mean():,.1f} | {scan_sizes(files).mean():,.1f} |")

    for r in jpeg:
        if r["exported"] is not None:
            row(f"learned, seed {r['seed']}", r["subsampling"], qtables=r["exported"])
    for sub in dict.fromkeys(r["subsampling"] for r in jpeg if r["exported"] is not None) or ["4:4:4"]:
        for q in args.qualities:
            row(f"IJG quality {q}", sub, quality=q)
    return lines


def main(argv=None):
    args = parse_args(argv)
    jpeg, base = [read_run(f) for f in args.jpeg], [read_run(f) for f in args.baseline]
    if missing := [str(r["folder"]) for r in jpeg if "luma" not in r]:
        raise SystemExit(f"--jpeg folders must hold runs with the JPEG layer; these have none: {missing}")
    if extra := [str(r["folder"]) for r in base if "luma" in r]:
        raise SystemExit(f"--baseline folders must hold --no-jpeg runs; these have a JPEG layer: {extra}")
    args.out.mkdir(parents=True, exist_ok=True)
    lines = summary(jpeg, base) + [""] + sizes(jpeg, args)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (args.out / "results.md").write_text(text)
    for path in write_plots(jpeg, base, args.out):
        print(f"wrote {path}")
    print(f"wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
