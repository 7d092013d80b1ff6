"""Train the paper's residual network (Ehrlich & Davis, Fig. 3) on MNIST or CIFAR-10.

    python examples/train.py --dataset mnist --epochs 3 --out runs/mnist
    python examples/train.py --dataset cifar10 --epochs 30 --out runs/cifar10
    python examples/train.py --dataset cifar10 --out runs/cifar10 --resume   # go on after a stop
    python examples/train.py --dataset mnist --domain jpeg --relu-frequencies 6

``--domain pixel`` (default) trains the spatial network on pixels (CIFAR-10's
JPEG files decoded by Pillow; MNIST padded to 32x32). ``--domain jpeg`` trains
the same network converted to the JPEG domain, from scratch, on DCT
coefficients (CIFAR-10: ``JpegImage.to_dct`` of the files, never decoded to
pixels; MNIST: the blockwise DCT of the padded digits), with ASM ReLU on
``--relu-frequencies`` frequencies. ``--dataset sample`` uses the 100 CIFAR-10
JPEGs shipped with dctnet (for a smoke test; it has no separate test split).

Every epoch prints loss and accuracy and saves ``<out>/last.h5`` (model,
optimizer, scheduler and history: ``--resume`` continues from it); the end
writes ``<out>/model.h5``, ``<out>/history.csv`` and, with matplotlib,
``<out>/history.png``.

Data-parallel training on several processes (MPI, through mpi4py)::

    mpiexec -n 2 python -m mpi4py examples/train.py --distributed --dataset mnist --out runs/mnist2
    mpiexec -n 2 python -m mpi4py examples/train.py --distributed --sync-bn ...  # BN over the global batch

Each process trains on its share of every epoch (``DistributedSampler``) with
``--batch-size // processes`` images per step, and the gradients are averaged
before each step, so ``--batch-size`` stays the global batch. Batch norm
normalizes each process's share unless ``--sync-bn``, which computes the
statistics over the global batch (one process on the whole batch, exactly).
Rank 0 prints, evaluates together with the others (each on a share of the
test set), and alone writes checkpoints and history; ``--resume`` reads the
checkpoint on rank 0 and broadcasts it, so a run may go on with a different
number of processes. Run it as ``python -m mpi4py``: then an uncaught
exception on one rank aborts the whole job instead of leaving the other
ranks waiting forever in a collective. Give each process its share of the
cores (e.g. ``OMP_NUM_THREADS=1`` for 2 processes on 2 cores).
"""

import argparse
import builtins
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

import dctnet
from dctnet import datasets, functional as F, nn, optim
from dctnet.models import paper_resnet

# Per-channel statistics on the 0..255 scale, folded into the model's first layer.
STATS = {"mnist": ([33.32], [76.83]), "cifar10": ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7])}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["mnist", "cifar10", "sample"], default="mnist")
    p.add_argument("--domain", choices=["pixel", "jpeg"], default="pixel")
    p.add_argument("--relu-frequencies", type=int, default=15, help="ASM ReLU frequencies (jpeg domain)")
    p.add_argument("--relu", choices=["asm", "apx"], default="asm")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    add_run_args(p, "train.py", Path("runs/train"))
    p.add_argument("--sync-bn", action="store_true", help="with --distributed: batch norm over the global batch")
    args = p.parse_args(argv)
    if args.sync_bn and not args.distributed:
        p.error("--sync-bn needs --distributed")
    return args


def add_run_args(p, script, out):
    """The options every training script shares: data subset, seed, output, resume, progress, MPI."""
    p.add_argument("--limit", type=int, default=None, help="train on this many images (a random subset)")
    p.add_argument("--no-augment", action="store_true", help="CIFAR-10: no random crop / flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.h5")
    p.add_argument("--stop-after", type=int, default=None, metavar="K",
                   help="stop after K epochs of this run (a later --resume goes on)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help=f"data-parallel over MPI: launch with mpiexec -n N python -m mpi4py examples/{script}")


# ----------------------------------------------------------------------------- data


def load_data(args):
    """``(x_train, y_train, x_test, y_test)``: float32 pixels (N, C, 32, 32) or DCT (N, C, 4, 4, 64)."""
    jpeg = args.domain == "jpeg"
    if args.dataset == "mnist":
        (xtr, ytr), (xte, yte) = datasets.load_mnist("train"), datasets.load_mnist("test")
        xtr, xte = datasets.pad_mnist(xtr), datasets.pad_mnist(xte)
        if jpeg:  # MNIST is not JPEG: its lossless DCT
            xtr, xte = dctnet.to_dct(xtr), dctnet.to_dct(xte)
        return (*subset(xtr, ytr, args), xte, yte)
    form = "dct" if jpeg else "pixels"
    if args.dataset == "sample":
        ds = datasets.sample_cifar10(form)
        return ds.data.astype(np.float32), ds.labels, ds.data.astype(np.float32), ds.labels
    cache = Path(args.out) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    train = datasets.load_cifar10("train", form, cache=cache / f"train-{form}.h5", progress=not args.no_progress)
    test = datasets.load_cifar10("test", form, cache=cache / f"test-{form}.h5", progress=not args.no_progress)
    return (*subset(train.data, train.labels, args), test.data.astype(np.float32), test.labels)


def subset(x, y, args):
    """A random ``--limit`` images (files come sorted by class, so not the first ones), float32."""
    if args.limit is not None and args.limit < len(x):
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(x))[: args.limit])
        x, y = x[keep], y[keep]
    return x.astype(np.float32, copy=False), y


def augment(x, rng, domain):
    """Random horizontal flips, and in the pixel domain random crops of the 4-pixel-padded image.

    In the DCT domain a flip is exact: reverse the block columns and negate the
    odd horizontal frequencies (the DCT basis cos((2n+1)v pi/16) flips sign with v).
    """
    flip = rng.random(len(x)) < 0.5
    if domain == "jpeg":
        x = x.copy()
        x[flip] = x[flip][:, :, :, ::-1] * _FLIP_SIGN
        return x
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    rows = dy[:, None] + np.arange(h)
    cols = dx[:, None] + np.arange(w)
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    out[flip] = out[flip][..., ::-1]
    return out


_FLIP_SIGN = np.where(dctnet.ZIGZAG % 8 % 2 == 1, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- loop


def progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def evaluate(model, x, y, batch_size=500):
    model.eval()
    correct, loss = 0, 0.0
    with dctnet.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(dctnet.Tensor(x[start:start + batch_size]))
            target = y[start:start + batch_size]
            loss += float(F.cross_entropy(logits, target, reduction="sum").data)
            correct += int((logits.data.argmax(axis=1) == target).sum())
    return loss / len(x), correct / len(x)


def epoch_order(seed, epoch, n, dist=None, sampler=None):
    """This epoch's image order (this rank's share when distributed) and its augmentation generator."""
    if dist:  # the same permutation on every rank, a disjoint share each; own augmentation draws
        return sampler.indices(epoch), np.random.default_rng([seed, epoch, dist.rank()])
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n), rng


def train_epoch(model, optimizers, x, y, order, batch_size, augment_batch, desc, show, dist=None):
    """One SGD pass over ``order``: ``(images, summed loss, correct)``, summed over the ranks."""
    model.train()
    seen = correct = 0
    total_loss = 0.0
    batches = range(0, len(order), batch_size)
    bar = progress(batches, len(batches), desc, show)
    for s in bar:
        idx = order[s:s + batch_size]
        logits = model(dctnet.Tensor(augment_batch(x[idx])))
        loss = F.cross_entropy(logits, y[idx])
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        if dist:
            dist.allreduce_gradients(model)
        for opt in optimizers:
            opt.step()
        seen += len(idx)
        total_loss += float(loss.data) * len(idx)
        correct += int((logits.data.argmax(axis=1) == y[idx]).sum())
        if show:
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    if dist:
        seen, total_loss, correct = dist.allreduce(np.array([seen, total_loss, correct], np.float64)).tolist()
    return int(seen), total_loss, int(correct)


def evaluate_shared(model, x, y, dist=None):
    """:func:`evaluate` on this rank's share of the test set, combined over the ranks."""
    if not dist:
        return evaluate(model, x, y)
    xs, ys = x[dist.rank()::dist.world_size()], y[dist.rank()::dist.world_size()]
    loss, acc = evaluate(model, xs, ys) if len(xs) else (0.0, 0.0)
    total_loss, correct, n = dist.allreduce(np.array([loss * len(xs), round(acc * len(xs)), len(xs)], np.float64))
    return total_loss / n, correct / n


def start_world(args):
    """``(dist, main_rank, print)``: the MPI world under ``--distributed`` (else None) and a print for rank 0 only."""
    dist, main_rank = None, True
    if args.distributed:
        from dctnet import distributed as dist

        dist.init()
        main_rank = dist.is_main()
    return dist, main_rank, (builtins.print if main_rank else lambda *a, **k: None)


def load_data_ranked(args, dist):
    """:func:`load_data`, on rank 0 first when distributed: it writes the data cache the others then read."""
    if dist and not dist.is_main():
        dist.barrier()
    data = load_data(args)
    if dist and dist.is_main():
        dist.barrier()
    return data


def build(args, in_channels):
    mean, std = STATS["mnist" if args.dataset == "mnist" else "cifar10"]
    model = paper_resnet(in_channels=in_channels, num_classes=10, mean=mean, std=std)
    if args.domain == "jpeg":
        model = dctnet.convert(model, relu_frequencies=args.relu_frequencies, relu=args.relu)
    return model


def main(argv=None):
    args = parse_args(argv)
    dist, main_rank, print = start_world(args)  # noqa: A001 - rank 0 prints
    args.no_progress = args.no_progress or not main_rank
    args.out.mkdir(parents=True, exist_ok=True)
    show = not args.no_progress and sys.stderr.isatty()
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = load_data_ranked(args, dist)
    if dist:
        print(f"distributed: {dist.world_size()} processes, {args.batch_size // dist.world_size()} images each per step"
              f"{', synchronized batch norm' if args.sync_bn else ''}")
    print(f"{args.dataset} ({args.domain} domain): {len(xtr)} train {xtr.shape[1:]}, {len(xte)} test, "
          f"loaded in {time.perf_counter() - t0:.1f} s")

    last = args.out / "last.h5"
    resume = args.resume and last.is_file()
    if dist:
        resume = dist.broadcast_object(resume)  # rank 0's file decides
    if resume:
        if main_rank:
            model, opt, meta = dctnet.load_checkpoint(last)
        if dist:  # the others rebuild rank 0's model and optimizer; broadcast_parameters fills them below
            cfg = dist.broadcast_object((model.config(), opt.config(), meta) if main_rank else None)
            if not main_rank:
                model = nn.from_config(cfg[0])
                opt, meta = optim.from_config(cfg[1], model.parameters()), cfg[2]
        sched = optim.CosineAnnealingLR(opt, T_max=meta["epochs"])
        sched.load_state_dict(meta["scheduler"])
        start, history = meta["epoch"] + 1, meta["history"]
        print(f"resumed from {last} after epoch {meta['epoch'] + 1} of {meta['epochs']}")
        epochs = meta["epochs"]
    else:
        if args.resume:
            print(f"no checkpoint at {last}: starting afresh")
        nn.manual_seed(args.seed)
        model = build(args, xtr.shape[1])
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                        weight_decay=args.weight_decay, nesterov=True)
        sched = optim.CosineAnnealingLR(opt, T_max=args.epochs)
        start, history, epochs = 0, [], args.epochs
    sampler = None
    if dist:
        if args.sync_bn:
            model = dist.convert_sync_batchnorm(model)  # shares the parameters the optimizer holds
        dist.broadcast_parameters(model, opt)
        sampler = dist.DistributedSampler(len(xtr), seed=args.seed)
    saved = dist.revert_sync_batchnorm(model) if dist and args.sync_bn else model  # files load without MPI
    batch_size = args.batch_size // dist.world_size() if dist else args.batch_size
    if dist and batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} is smaller than the {dist.world_size()} processes")
    augment_on = args.dataset != "mnist" and not args.no_augment

    stop = epochs if args.stop_after is None else min(epochs, start + args.stop_after)
    for epoch in range(start, stop):
        order, rng = epoch_order(args.seed, epoch, len(xtr), dist, sampler)
        tic = time.perf_counter()
        seen, total_loss, correct = train_epoch(
            model, [opt], xtr, ytr, order, batch_size,
            lambda xb: augment(xb, rng, args.domain) if augment_on else xb,  # noqa: B023 - used within the epoch
            f"epoch {epoch + 1}/{epochs}", show, dist)
        sched.step()
        seconds = time.perf_counter() - tic
        test_loss, test_acc = evaluate_shared(model, xte, yte, dist)
        row = {"epoch": epoch + 1, "train_loss": total_loss / seen, "train_acc": correct / seen,
               "test_loss": test_loss, "test_acc": test_acc, "seconds": seconds, "img_per_s": seen / seconds}
        history.append(row)
        print(f"epoch {epoch + 1:3d}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f} | {seconds:.0f} s, {row['img_per_s']:.0f} img/s",
              flush=True)
        if main_rank:
            dctnet.save(saved, last, optimizer=opt, epoch=epoch, epochs=epochs, history=history,
                        scheduler=sched.state_dict(), args={k: str(v) for k, v in vars(args).items()})

    if stop < epochs:
        print(f"stopped after epoch {stop} of {epochs}; continue with --resume")
        return history
    model.eval()
    if not main_rank:
        return history
    classes = [str(d) for d in range(10)] if args.dataset == "mnist" else list(datasets.CIFAR10_CLASSES)
    dctnet.save(saved, args.out / "model.h5", dataset=args.dataset, domain=args.domain, classes=classes,
                test_accuracy=history[-1]["test_acc"] if history else None)
    write_history(history, args.out)
    if history:
        print(f"final test accuracy {history[-1]['test_acc']:.4f} ({args.dataset}, {args.domain} domain); "
              f"model in {args.out / 'model.h5'}, total {sum(r['seconds'] for r in history) / 60:.1f} min of training")
    return history


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None without matplotlib (an optional extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_history(history, out):
    if not history:
        return
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    plt = pyplot()
    if plt is None:
        return
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [r["train_loss"] for r in history], label="train")
    a.plot(epochs, [r["test_loss"] for r in history], label="test")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    b.plot(epochs, [r["train_acc"] for r in history], label="train")
    b.plot(epochs, [r["test_acc"] for r in history], label="test")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "history.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
