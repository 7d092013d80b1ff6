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
Data, loop, checkpoints and history come from ``dctnet.training``.

Every epoch prints loss and accuracy and saves ``<out>/last.h5`` (model,
optimizer, scheduler and history: ``--resume`` continues from it); the end
writes ``<out>/model.h5``, ``<out>/history.csv`` and, with matplotlib,
``<out>/history.png``.
A NaN or infinite loss or gradient (too high a ``--lr``, a NaN pixel) stops the
run with a message naming the epoch, the step and the likely cause, and exit
status 1; ``<out>/last.h5`` then still holds the last good epoch.

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
import sys
import time

import dctnet
from dctnet import distributed, nn, optim, plots, training
from dctnet.augment import augment
from dctnet.models import paper_resnet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    training.add_arguments(p, dataset="mnist", epochs=3, out="runs/train")
    p.add_argument("--domain", choices=["pixel", "jpeg"], default="pixel")
    p.add_argument("--relu-frequencies", type=int, default=15, help="ASM ReLU frequencies (jpeg domain)")
    p.add_argument("--relu", choices=["asm", "apx"], default="asm")
    p.add_argument("--sync-bn", action="store_true", help="with --distributed: batch norm over the global batch")
    args = p.parse_args(argv)
    if args.sync_bn and not args.distributed:
        p.error("--sync-bn needs --distributed")
    return args


def build(args, data):
    model = paper_resnet(in_channels=data.x_train.shape[1], num_classes=len(data.classes), mean=data.mean, std=data.std)
    if args.domain == "jpeg":
        model = dctnet.convert(model, relu_frequencies=args.relu_frequencies, relu=args.relu)
    return model


def main(argv=None):
    args = parse_args(argv)
    main_rank = training.init_distributed(args.distributed)
    print = builtins.print if main_rank else lambda *a, **k: None  # noqa: A001 - rank 0 prints
    show = main_rank and not args.no_progress and sys.stderr.isatty()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = training.load_dataset(args.dataset, args.domain, limit=args.limit, seed=args.seed,
                                 cache=args.out / "cache", show_progress=show, distributed=args.distributed)
    if args.distributed:
        print(f"distributed: {distributed.world_size()} processes, "
              f"{args.batch_size // distributed.world_size()} images each per step"
              f"{', synchronized batch norm' if args.sync_bn else ''}")
    print(f"{args.dataset} ({args.domain} domain): {len(data.x_train)} train {data.x_train.shape[1:]}, "
          f"{len(data.x_test)} test, loaded in {time.perf_counter() - t0:.1f} s")

    last = args.out / "last.h5"
    run = training.resume(last, distributed=args.distributed) if args.resume else None
    if run is not None:
        model, (opt,), sched = run.model, run.optimizers, run.scheduler
        start, epochs, history = run.start, run.epochs, run.history
        print(f"resumed from {last} after epoch {start} of {epochs}")
    else:
        if args.resume:
            print(f"no checkpoint at {last}: starting afresh")
        nn.manual_seed(args.seed)
        model = build(args, data)
        opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                        weight_decay=args.weight_decay, nesterov=True)
        world = distributed.world_size() if args.distributed else 1
        sched = training.cosine_schedule(opt, args.epochs, len(data.x_train), args.batch_size, args.warmup, world)
        start, epochs, history = 0, args.epochs, []
    if args.distributed:
        if args.sync_bn:
            model = distributed.convert_sync_batchnorm(model)  # shares the parameters the optimizer holds
        distributed.broadcast_parameters(model, opt)

    try:
        history = training.fit(
            model, opt, (data.x_train, data.y_train), (data.x_test, data.y_test), epochs=epochs,
            batch_size=args.batch_size, scheduler=sched, seed=args.seed, start=start, history=history,
            augment=None if args.dataset == "mnist" or args.no_augment else lambda x, rng: augment(x, rng, args.domain),
            stop_after=args.stop_after, checkpoint=last, metadata={"args": {k: str(v) for k, v in vars(args).items()}},
            show_progress=show, distributed=args.distributed, log=print)
    except training.NonFiniteError as exc:  # a message and a non-zero exit; last.h5 stays the last good epoch
        raise SystemExit(f"train.py: training stopped: {exc}") from None
    if len(history) < epochs or not main_rank:
        return history
    saved = distributed.revert_sync_batchnorm(model) if args.sync_bn else model  # files load without MPI
    dctnet.save(saved.eval(), args.out / "model.h5", dataset=args.dataset, domain=args.domain, classes=data.classes,
                test_accuracy=history[-1]["test_acc"] if history else None)
    training.write_history(history, args.out)
    plots.plot_history(history, args.out / "history.png")
    if history:
        print(f"final test accuracy {history[-1]['test_acc']:.4f} ({args.dataset}, {args.domain} domain); "
              f"model in {args.out / 'model.h5'}, total {sum(r['seconds'] for r in history) / 60:.1f} min of training")
    return history


if __name__ == "__main__":
    main()
