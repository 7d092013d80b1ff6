"""paper_resnet on MNIST, one training recipe in dctnet and in PyTorch (CPU): test accuracy and training time.

    python benchmarks/bench_recipe.py [--epochs 1,4] [--seeds 1] [--first-seed 0] [--limit N] [--out runs/bench_recipe]

The recipe, the same on both sides: ``dctnet.models.paper_resnet`` (1 input
channel, 10 classes, the input normalization in the model), MNIST padded to
32x32 as ``dctnet.training.load_dataset("mnist", "pixel")`` gives it; SGD, lr
0.1, Nesterov momentum 0.9, weight decay 5e-4 (on every parameter, batch-norm
ones included, as both frameworks' SGD does), batch 128 (the last batch of an
epoch smaller), cross-entropy, no augmentation, and the learning rate annealed
by a cosine over every step of the run, stepped after each optimizer step
(dctnet: ``training.cosine_schedule``; PyTorch: ``CosineAnnealingLR`` with
``T_max`` the run's steps; ``--warmup`` adds the same linear warm-up to both).
Both start from the same weights (dctnet's initialization for the seed, copied
into the PyTorch twin, ``common.torch_model``) and visit the images in the same
order (``dctnet.training.epoch_order(seed, epoch)``), so only the frameworks
differ. Each run of ``--epochs`` (1 and 4: a 4-epoch run is its own run with its
own schedule) is one fresh process per framework, as users run them; dctnet
trains with ``dctnet.training.fit``, PyTorch with the plain loop. The training
time is the loop alone (no data loading or evaluation; dctnet's includes its
first-call compilation, as a user's does). PyTorch is measured when installed.

The table (printed, and written as ``table.md`` and ``table.csv`` to ``--out``,
with every run's details in ``runs.json``) has one row per length and seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import torch_model

BATCH, LR, MOMENTUM, WEIGHT_DECAY = 128, 0.1, 0.9, 5e-4
FRAMEWORKS = ("dctnet", "torch")


def mnist(limit):
    """The MNIST arrays (the first ``limit`` test images and a random ``limit`` of the training images)."""
    from dctnet import training

    data = training.load_dataset("mnist", "pixel", limit=limit, seed=0)
    if limit is not None:
        data = data._replace(x_test=data.x_test[:limit], y_test=data.y_test[:limit])
    return data


def dctnet_model(seed, data):
    from dctnet import nn
    from dctnet.models import paper_resnet

    nn.manual_seed(seed)
    return paper_resnet(1, 10, mean=data.mean, std=data.std)


def dctnet_worker(args):
    from dctnet import optim, training

    data = mnist(args.limit)
    model = dctnet_model(args.seed, data)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    sched = training.cosine_schedule(opt, args.run_epochs, len(data.x_train), BATCH, args.warmup)
    tic = time.perf_counter()
    history = training.fit(model, opt, (data.x_train, data.y_train), epochs=args.run_epochs, batch_size=BATCH,
                           scheduler=sched, seed=args.seed, log=None)
    seconds = time.perf_counter() - tic
    test = training.evaluate(model, data.x_test, data.y_test)
    return {"test_acc": test.accuracy, "test_loss": test.loss, "train_seconds": seconds,
            "train_loss": [row["train_loss"] for row in history], "last_lr": sched.get_last_lr()[0],
            "images": len(data.x_train)}


def torch_worker(args):
    import torch
    import torch.nn.functional as F

    from dctnet import optim, training

    if args.threads:
        torch.set_num_threads(args.threads)
    data = mnist(args.limit)
    model = dctnet_model(args.seed, data)
    net = torch_model(model)  # dctnet only builds the starting weights here
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    n = len(data.x_train)
    # the steps of dctnet's schedule for this run (nothing is trained with its optimizer)
    plan = training.cosine_schedule(optim.SGD(model.parameters(), lr=LR), args.run_epochs, n, BATCH, args.warmup)
    total, warmup = plan.total_steps, plan.warmup_steps
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup)
    sched = cosine if warmup == 0 else torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=warmup), cosine], milestones=[warmup])
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    losses = []
    tic = time.perf_counter()
    for epoch in range(args.run_epochs):
        order = torch.from_numpy(training.epoch_order(args.seed, epoch, n)[0])
        net.train()
        summed = 0.0
        for s in range(0, n, BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            summed += loss.item() * len(idx)
        losses.append(summed / n)
    seconds = time.perf_counter() - tic
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(torch.from_numpy(data.x_test[s:s + 500])) for s in range(0, len(data.x_test), 500)])
    ty = torch.from_numpy(data.y_test)
    return {"test_acc": float((logits.argmax(1) == ty).double().mean()),
            "test_loss": float(F.cross_entropy(logits, ty)), "train_seconds": seconds, "train_loss": losses,
            "last_lr": sched.get_last_lr()[0], "images": n,
            "version": torch.__version__, "threads": torch.get_num_threads()}


def spawn(framework, epochs, seed, args):
    """One training run in a fresh process; its result dict (with the load average before it)."""
    cmd = [sys.executable, __file__, "--worker", framework, "--run-epochs", str(epochs), "--seed", str(seed),
           "--warmup", str(args.warmup)]
    if args.limit is not None:
        cmd += ["--limit", str(args.limit)]
    env = dict(os.environ)
    if args.threads:
        cmd += ["--threads", str(args.threads)]
        env["DCTNET_NUM_THREADS"] = str(args.threads)
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the {framework} run ({epochs} epochs, seed {seed}) failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_before"] = load
    return result


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def positive_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected epoch counts like 1,4 (positive integers), found {text!r}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_list, default=[1, 4],
                        help="run lengths, each its own run with its own schedule (default 1,4)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, each reported (default 1)")
    parser.add_argument("--first-seed", type=int, default=0, help="the seeds are K, K+1, ... (default 0)")
    parser.add_argument("--limit", type=int, default=None,
                        help="this many training images (a random subset) and test images at most (a quick or smoke run)")
    parser.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS",
                        help="linear warm-up over the first EPOCHS epochs, on both sides (default none)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="which sides to run (default dctnet,torch; torch only when installed)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default: their own)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_recipe"))
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--run-epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps((dctnet_worker if args.worker == "dctnet" else torch_worker)(args)))
        return None
    if args.seeds < 1 or args.first_seed < 0 or (args.limit is not None and args.limit < 1):
        parser.error("--seeds and --limit must be positive, --first-seed 0 or more")
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown or not frameworks:
        parser.error(f"--frameworks takes a comma list of {', '.join(FRAMEWORKS)}, found {args.frameworks!r}")
    if "torch" in frameworks and not have_torch():
        print("torch is not installed: dctnet runs only")
        frameworks.remove("torch")

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"paper_resnet on MNIST (1x32x32), SGD lr {LR} Nesterov {MOMENTUM} wd {WEIGHT_DECAY}, batch {BATCH}, "
          f"per-step cosine{f' after {args.warmup:g} epochs of warm-up' if args.warmup else ''}; "
          f"same initial weights and data order; each run in its own process, {os.cpu_count()} cores"
          f"{f'; a subset: {args.limit} training images, {args.limit} test images at most' if args.limit else ''}")
    rows, runs = [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for i, epochs in enumerate(args.epochs):
            order = frameworks if (seed + i) % 2 == 0 else frameworks[::-1]  # alternate who goes first
            result = {f: spawn(f, epochs, seed, args) for f in order}
            runs.append({"epochs": epochs, "seed": seed, **result})
            row = {"epochs": epochs, "seed": seed}
            for f in FRAMEWORKS:
                r = result.get(f)
                row[f"{f}_test_acc"] = None if r is None else round(r["test_acc"], 4)
                row[f"{f}_train_s"] = None if r is None else round(r["train_seconds"], 1)
            rows.append(row)
            print(f"  {epochs} epoch(s), seed {seed}: " + ", ".join(
                f"{f} {result[f]['test_acc']:.4f} in {result[f]['train_seconds']:.0f} s" for f in order), flush=True)
            write(args.out, rows, runs)  # after every row, so that a stopped run keeps what it has
    if "torch" in frameworks:
        r = runs[0]["torch"]
        print(f"torch {r['version']}, {r['threads']} threads")
    print("\n" + markdown(rows))
    print(f"\nwritten: {args.out / 'table.md'}, {args.out / 'table.csv'}, {args.out / 'runs.json'}")
    return rows


def write(out, rows, runs):
    """``table.md``, ``table.csv`` and ``runs.json`` (every run's details) in ``out``."""
    (out / "table.md").write_text(markdown(rows) + "\n")
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "runs.json").write_text(json.dumps(runs, indent=1))


def markdown(rows):
    def cell(value, form, unit=""):
        return "-" if value is None else format(value, form) + unit

    lines = ["| epochs | seed | dctnet test accuracy | torch test accuracy | dctnet train time | torch train time |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['epochs']} | {r['seed']} | {cell(r['dctnet_test_acc'], '.2%')} | "
                     f"{cell(r['torch_test_acc'], '.2%')} | {cell(r['dctnet_train_s'], '.0f', ' s')} | "
                     f"{cell(r['torch_train_s'], '.0f', ' s')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
