"""Train the paper's residual network behind a learnable JPEG layer (JPEG-DL, Salamah et al., ICLR 2025).

    python examples/train_jpeg_dl.py --dataset cifar10 --epochs 30 --out runs/jpegdl
    python examples/train_jpeg_dl.py --dataset cifar10 --epochs 30 --no-jpeg --out runs/jpegdl-base  # baseline
    python examples/train_jpeg_dl.py --dataset sample --epochs 1 --out runs/jpegdl-smoke               # smoke test
    python examples/train_jpeg_dl.py --dataset cifar10 --out runs/jpegdl --resume                      # go on
    python examples/train_jpeg_dl.py --dataset cifar10 --placement conv1 --out runs/jpegdl-conv1       # on features
    OMP_NUM_THREADS=1 mpiexec -n 2 python -m mpi4py examples/train_jpeg_dl.py --distributed --dataset cifar10

The model is ``nn.Sequential(JPEGLayer(...), paper_resnet(...))`` on pixels
0..255: the layer compresses each image with soft quantization and trainable
luma/chroma tables, the network classifies the reconstruction. With
``--placement conv1`` the layer instead compresses the feature maps after the
network's first convolution (``dctnet.jpegdl.insert_after_first_conv``; one
table for all channels, no level shift, small steps). The network is
trained by SGD (Nesterov momentum, cosine schedule, weight decay) exactly as in
``examples/train.py``; the layer's tables (and alpha) by their own Adam
(``--q-lr``, default 3e-3, constant rate, no weight decay). ``--no-jpeg``
trains the same network without the layer (the baseline). Data loading,
augmentation (random crops and flips), seeding, the loop and its checkpoints
are ``dctnet.training``'s, as in ``examples/train.py``.

Checkpoints: every epoch ``<out>/last.h5`` holds the whole model (tables
included), the SGD state and, as JSON metadata, the layer's Adam state
(``optimizers``), the schedule and the history, so ``--resume`` continues
exactly. For ``dctnet.load_checkpoint`` to rebuild the SGD optimizer on
``model.parameters()``, the SGD also lists the layer's parameters, in a group
with learning rate 0 (it never moves them; Adam does). The end writes
``<out>/model.h5``, ``history.csv``/``history.json`` (and ``history.png``),
prints the test accuracy and the learned tables (rounded for a real JPEG
encoder, 8x8 natural order), writes them to ``<out>/qtables.json`` (with the
unrounded initial tables, also kept in the checkpoints' ``qtables_initial``) and, with
matplotlib, heat maps to ``<out>/qtables.png``.

``--distributed`` trains data-parallel over MPI as ``examples/train.py`` does
(each rank its share of every epoch, ``--batch-size`` the global batch,
gradients of the network and the tables averaged before each step, output and
files on rank 0; ``--resume`` reads the checkpoint on rank 0 and sends it to
the others).
"""

import argparse
import builtins
import json
import sys
import time
from pathlib import Path

import numpy as np

import dctnet
from dctnet import distributed, nn, optim, plots, training
from dctnet.augment import random_flip_crop
from dctnet.jpegdl import (
    JPEGLayer,
    find_jpeg_layer,
    insert_after_first_conv,
    sensitivity_tables,
    tables_from_statistics,
)
from dctnet.models import paper_resnet


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    training.add_arguments(p, dataset="cifar10", epochs=30, out="runs/jpegdl")
    p.add_argument("--q-lr", type=float, default=3e-3, help="the JPEG layer's Adam learning rate")
    p.add_argument("--no-jpeg", action="store_true", help="train the network without the JPEG layer (baseline)")
    p.add_argument("--placement", choices=["input", "conv1"], default="input",
                   help="compress the images (the paper's main setting) or the feature maps after the "
                        "network's first convolution (one table for every channel)")
    p.add_argument("--init", choices=["constant", "quality", "statistics", "sensitivity"], default=None,
                   help="initial tables: constant --q-init, the IJG tables of --quality, from the training "
                        "set's mean |DCT coefficient|, or from the sensitivity of --pretrained (the paper's "
                        "choice); the last two scaled so the largest luma step is --q-max. Default: quality "
                        "for --placement input, constant (the only one) for conv1")
    p.add_argument("--pretrained", type=Path, default=None,
                   help="a trained pixel model (.h5) for --init sensitivity")
    p.add_argument("--sensitivity-images", type=int, default=2000,
                   help="training images over which --init sensitivity averages")
    p.add_argument("--q-init", type=float, default=None, help="constant step (default 8; 0.25 for conv1)")
    p.add_argument("--quality", type=int, default=50)
    p.add_argument("--q-max", type=float, default=64.0)
    p.add_argument("--q-min", type=float, default=None, help="smallest step (default 1; 0.01 for conv1)")
    p.add_argument("--alpha", choices=["trainable", "fixed", "hardness"], default="trainable")
    p.add_argument("--alpha-init", type=float, default=None, help="initial alpha (default: hardness / q^2)")
    p.add_argument("--hardness", type=float, default=5.0)
    p.add_argument("--subsampling", choices=["4:4:4", "4:2:2", "4:2:0", "4:4:0"], default="4:4:4",
                   help="chroma resolution of the layer (placement input); --init statistics and "
                        "sensitivity measure the chroma tables at full resolution all the same")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--bits", type=int, default=None, help="index range of the quantizer (default 8; 12 for conv1)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, found {args.epochs}")
    # Feature maps after a convolution are of unit scale, pixels of 255: their steps differ by as much.
    features = args.placement == "conv1"
    defaults = {"init": "constant", "q_init": 0.25, "q_min": 0.01, "bits": 12} if features else \
        {"init": "quality", "q_init": 8.0, "q_min": 1.0, "bits": 8}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if features and args.subsampling != "4:4:4":
        p.error("--subsampling is for images (--placement input); feature maps have no chroma")
    if features and args.init != "constant":
        p.error(f"--placement conv1 takes --init constant only (the other tables are for pixels), found {args.init}")
    if args.init == "sensitivity" and not args.no_jpeg and args.pretrained is None:
        p.error("--init sensitivity needs --pretrained MODEL.h5 (a trained pixel model, e.g. from examples/train.py)")
    return args


def build(args, data):
    """``(model, layer or None)``: the paper's network with a JPEGLayer (in front or after conv1) unless --no-jpeg."""
    nn.manual_seed(args.seed)
    xtr, ytr = data.x_train, data.y_train
    net = paper_resnet(in_channels=xtr.shape[1], num_classes=len(data.classes), mean=data.mean, std=data.std)
    if args.no_jpeg:
        return net, None
    if args.init == "quality":
        init = (dctnet.quant_table(args.quality, "luma"), dctnet.quant_table(args.quality, "chroma"))
    elif args.init == "statistics":
        init = tables_from_statistics(dctnet.qtables.dct_statistics(xtr), q_max=args.q_max, q_min=args.q_min)
    elif args.init == "sensitivity":
        pretrained = dctnet.load(args.pretrained)
        x, y, b = xtr[:args.sensitivity_images], ytr[:args.sensitivity_images], args.batch_size
        init = sensitivity_tables(pretrained, (x[i:i + b] for i in range(0, len(x), b)),
                                  (y[i:i + b] for i in range(0, len(y), b)), q_max=args.q_max, q_min=args.q_min)
    else:
        init = "constant"
    features = args.placement == "conv1"
    layer = JPEGLayer(color="rgb" if features else "ycbcr", subsampling="4:4:4" if features else args.subsampling,
                      init=init, q_init=args.q_init, alpha=args.alpha,
                      alpha_init=args.alpha_init, hardness=args.hardness, rounds=args.rounds, q_min=args.q_min,
                      levels=args.levels, bits=args.bits, level_shift=0.0 if features else 128.0)
    if features:
        return insert_after_first_conv(net, layer), layer
    return nn.Sequential(layer, net), layer


def make_optimizers(args, model, layer):
    """SGD for the network (the layer's parameters ride along at lr 0), Adam for the layer."""
    if layer is None:
        sgd = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                        weight_decay=args.weight_decay, nesterov=True)
        return sgd, None
    # Groups are runs of model.parameters() in order (what load_checkpoint rebuilds them from): the
    # layer's runs at lr 0, the network's at the SGD settings, wherever the layer sits.
    own, groups = {id(p) for p in layer.parameters()}, []
    for p in model.parameters():
        frozen = id(p) in own
        if not groups or groups[-1]["frozen"] != frozen:
            groups.append({"frozen": frozen, "params": []})
        groups[-1]["params"].append(p)
    groups = [{"params": g["params"], **({"lr": 0.0, "weight_decay": 0.0} if g["frozen"] else {})} for g in groups]
    sgd = optim.SGD(groups, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, nesterov=True)
    adam = optim.Adam(layer.parameters(), lr=args.q_lr)
    return sgd, adam


def natural(table):
    """A zigzag (64,) table as the 8x8 natural-order block."""
    return np.asarray(table)[np.argsort(dctnet.ZIGZAG)].reshape(8, 8)


def plot_tables(luma, chroma, path):
    plt = plots.pyplot()
    if plt is None:
        return False
    panels = [(luma, "luma (Y)"), (chroma, "chroma (Cb, Cr)")] if chroma is not None else [(luma, "feature-map")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    for ax, (table, title) in zip(axes[0], panels):
        plots.table_heatmap(fig, ax, table, f"learned {title}", "{}" if table.dtype.kind == "i" else "{:.2f}")
    return plots.save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    main_rank = training.init_distributed(args.distributed)
    print = builtins.print if main_rank else lambda *a, **k: None  # noqa: A001 - rank 0 prints
    show = main_rank and not args.no_progress and sys.stderr.isatty()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = training.load_dataset(args.dataset, "pixel", limit=args.limit, seed=args.seed,
                                 cache=args.out / "cache", show_progress=show, distributed=args.distributed)
    print(f"{args.dataset}: {len(data.x_train)} train {data.x_train.shape[1:]}, {len(data.x_test)} test, "
          f"loaded in {time.perf_counter() - t0:.1f} s")

    last = args.out / "last.h5"
    run = training.resume(last, distributed=args.distributed) if args.resume else None
    if run is not None:
        model, optimizers, sched = run.model, run.optimizers, run.scheduler
        start, epochs, history = run.start, run.epochs, run.history
        layer = find_jpeg_layer(model)
        initial = run.metadata.get("qtables_initial")
        # the run's own setting, whatever this command line says
        args.placement = "input" if layer is None or model[0] is layer else "conv1"
        args.init = run.metadata.get("args", {}).get("init", args.init)
        print(f"resumed from {last} after epoch {start} of {epochs}")
    else:
        if args.resume:
            print(f"no checkpoint at {last}: starting afresh")
        model, layer = build(args, data)
        optimizers = [opt for opt in make_optimizers(args, model, layer) if opt is not None]
        world = distributed.world_size() if args.distributed else 1
        sched = training.cosine_schedule(optimizers[0], args.epochs, len(data.x_train), args.batch_size, args.warmup,
                                         world)
        start, history, epochs = 0, [], args.epochs
        initial = None if layer is None else {"luma": layer.q_luma.data.tolist(), "chroma": layer.q_chroma.data.tolist()}
    kind = "no JPEG layer (baseline)" if layer is None else \
        f"JPEG layer ({args.placement}, {args.init} init, alpha {layer.alpha_mode})"
    print(kind)
    if args.distributed:  # same start on every rank, whatever each built or read
        distributed.broadcast_parameters(model, optimizers[0])
        if layer is not None:
            distributed.broadcast_parameters(layer, optimizers[1])

    def table_means():
        if layer is None:
            return {}
        return {"q_luma_mean": float(layer.q_luma.data.mean()), "q_chroma_mean": float(layer.q_chroma.data.mean())}

    history = training.fit(
        model, optimizers, (data.x_train, data.y_train), (data.x_test, data.y_test), epochs=epochs,
        batch_size=args.batch_size, scheduler=sched, seed=args.seed, start=start, history=history,
        augment=None if args.dataset == "mnist" or args.no_augment else random_flip_crop,
        stop_after=args.stop_after, checkpoint=last, columns=table_means,
        metadata={"qtables_initial": initial, "args": {k: str(v) for k, v in vars(args).items()}},
        show_progress=show, distributed=args.distributed, log=print)
    if len(history) < epochs or not main_rank:
        return history
    model.eval()
    meta = {"dataset": args.dataset, "jpeg_layer": layer is not None,
            "test_accuracy": history[-1]["test_acc"] if history else None}
    if layer is not None:
        meta["placement"], meta["qtables_initial"] = args.placement, initial
        if args.placement == "input":  # real JPEG tables; steps for feature maps are not
            luma, chroma = layer.export_qtables()
            meta["qtables"] = {"luma": luma.tolist(), "chroma": chroma.tolist()}
        else:
            luma, chroma = np.asarray(layer.q_luma.data, np.float64).round(4), None
            meta["qtables"] = {"features": luma.tolist()}
    dctnet.save(model, args.out / "model.h5", **meta)
    training.write_history(history, args.out)
    plots.plot_history(history, args.out / "history.png")
    if history:
        print(f"final test accuracy {history[-1]['test_acc']:.4f} ({args.dataset}, {kind}); "
              f"model in {args.out / 'model.h5'}")
    if layer is not None:
        (args.out / "qtables.json").write_text(json.dumps({**meta["qtables"], "initial": initial}, indent=1))
        with np.printoptions(linewidth=120):
            print(f"learned {'luma' if chroma is not None else 'feature-map'} table "
                  "(8x8, natural order; zigzag in qtables.json):")
            print(natural(luma))
            if chroma is not None:
                print("learned chroma table:")
                print(natural(chroma))
        if plot_tables(luma, chroma, args.out / "qtables.png"):
            print(f"heat maps in {args.out / 'qtables.png'}")
    return history


if __name__ == "__main__":
    main()
