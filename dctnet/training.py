"""Training runs: the loop with a progress bar, per-epoch checkpoints and exact resume; batched inference.

Epoch ``e`` visits the images in an order drawn from ``(seed, e)`` alone, and
its augmentation draws come from the same generator, so a run stopped after
any epoch and resumed from its checkpoint (model, optimizers, schedule,
history) ends bit-identical to one that never stopped. Models take pixels
``(N, C, H, W)`` or DCT-domain pictures ``(N, C, BH, BW, 64)`` alike.

A non-finite loss or gradient stops training before the optimizer steps
(:class:`NonFiniteError`, a ``ValueError`` naming the epoch, the step and the
likely cause), and :func:`fit` never writes a checkpoint of a model with
non-finite weights, so the last good checkpoint stays intact.

>>> import os, tempfile
>>> import numpy as np
>>> from dctnet import nn, optim
>>> nn.manual_seed(0)
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
>>> x = np.random.default_rng(0).random((16, 1, 2, 2), dtype=np.float32)
>>> y = (x.sum(axis=(1, 2, 3)) > 2).astype(np.int64)
>>> opt = optim.SGD(model.parameters(), lr=0.5)
>>> last = os.path.join(tempfile.mkdtemp(), "last.h5")
>>> history = fit(model, opt, (x, y), (x, y), epochs=3, batch_size=4, checkpoint=last, log=None)
>>> [row["epoch"] for row in history], predict(model, x).shape
([1, 2, 3], (16, 2))
>>> resume(last).start   # the next epoch to train, counting from 0
3
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import datasets, engine, nn, optim
from . import distributed as _mpi  # the module; the functions' ``distributed=`` flags would shadow its name
from .autograd import Tensor, no_grad
from .backend import asnumpy, get_array_module
from .functional import cross_entropy
from .io import load_checkpoint, save
from .progressbar import progress
from .transform import to_dct

__all__ = [
    "NORMALIZATION", "NonFiniteError", "check_finite", "TrainingData", "load_dataset", "predict", "evaluate",
    "Evaluation", "agreement", "Agreement",
    "epoch_order", "train_epoch", "EpochResult", "steps_per_epoch", "cosine_schedule", "fit", "resume", "Resumed", "write_history",
    "add_arguments", "init_distributed",
]

# Per-channel mean and std on the 0..255 scale (for the model's first layer, nn.Normalize).
NORMALIZATION = {"mnist": ([33.32], [76.83]), "cifar10": ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7])}
DATASETS = ("mnist", "cifar10", "sample")
DOMAINS = ("pixel", "jpeg")


# ----------------------------------------------------------------------------- data


class TrainingData(NamedTuple):
    """What :func:`load_dataset` returns: float32 arrays, int64 labels, class names and normalization."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    mean: list
    std: list


def load_dataset(name, domain="pixel", *, limit=None, seed=0, cache=None, show_progress=False,
                 distributed=False) -> TrainingData:
    """MNIST, CIFAR-10 or the bundled CIFAR-10 sample as training arrays, pixels or DCT-domain pictures.

    ``domain="pixel"``: ``(N, C, 32, 32)`` pixels 0..255 (CIFAR-10's JPEG files
    decoded by Pillow when installed; MNIST padded to 32x32). ``"jpeg"``:
    ``(N, C, 4, 4, 64)`` DCT-domain pictures (CIFAR-10: ``JpegImage.to_dct`` of
    the files, never decoded to pixels; MNIST: the blockwise DCT of the padded
    digits). ``"sample"`` is the 100 CIFAR-10 test JPEGs shipped with dctnet,
    for smoke tests: train and test split are the same images. ``limit``
    trains on that many images, a random subset drawn from ``seed`` (the files
    come sorted by class). ``cache``: a folder for the CIFAR-10 HDF5 caches.
    With ``distributed`` (an MPI world joined by :func:`init_distributed`)
    rank 0 loads first, so that it alone writes the caches the others read.

    >>> data = load_dataset("sample", "jpeg")
    >>> data.x_train.shape, data.classes[0], len(data.mean)
    ((100, 3, 4, 4, 64), 'airplane', 3)
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, found {name!r}")
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, found {domain!r}")
    if limit is not None:
        _check_count(limit, "limit", "None or a positive number of images")
    main = not distributed or _mpi.is_main()
    if not main:
        _mpi.barrier()
    xtr, ytr, xte, yte, classes = _load_arrays(name, domain, cache, show_progress and main)
    if main and distributed:
        _mpi.barrier()
    if limit is not None and limit < len(xtr):
        keep = np.sort(np.random.default_rng(seed).permutation(len(xtr))[:limit])
        xtr, ytr = xtr[keep], ytr[keep]
    mean, std = NORMALIZATION["mnist" if name == "mnist" else "cifar10"]
    return TrainingData(xtr.astype(np.float32, copy=False), ytr, xte.astype(np.float32, copy=False), yte,
                        classes, list(mean), list(std))


def _load_arrays(name, domain, cache, show):
    if name == "mnist":
        (xtr, ytr), (xte, yte) = datasets.load_mnist("train"), datasets.load_mnist("test")
        xtr, xte = datasets.pad_mnist(xtr), datasets.pad_mnist(xte)
        if domain == "jpeg":  # MNIST is not JPEG: its lossless DCT
            xtr, xte = to_dct(xtr), to_dct(xte)
        return xtr, ytr, xte, yte, [str(d) for d in range(10)]
    form = "dct" if domain == "jpeg" else "pixels"
    if name == "sample":
        ds = datasets.sample_cifar10(form)
        return ds.data, ds.labels, ds.data, ds.labels, list(ds.classes)
    caches = {}
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        caches = {split: Path(cache) / f"{split}-{form}.h5" for split in ("train", "test")}
    train, test = (datasets.load_cifar10(split, form, cache=caches.get(split), progress=show)
                   for split in ("train", "test"))
    return train.data, train.labels, test.data, test.labels, list(train.classes)


# ----------------------------------------------------------------------------- inference


class Evaluation(NamedTuple):
    loss: float  # mean cross-entropy
    accuracy: float


def predict(model, x, batch_size=500):
    """The logits ``(N, classes)`` of ``model`` on ``x``, as NumPy, computed ``batch_size`` images at a time.

    Evaluation mode without gradients; each module's train/eval mode is
    restored afterwards. ``x``: pixels or DCT-domain pictures (NumPy or CuPy).
    A NumPy model of ``x``'s dtype whose layers the engine takes (pixel or
    JPEG domain) runs as the folded inference network
    :func:`dctnet.engine.fuse` (a snapshot taken now; the same logits up to
    rounding, :func:`dctnet.engine.fuse_if_possible`); any other runs as ``model(x)``.

    >>> import numpy as np
    >>> from dctnet import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    >>> x = np.ones((5, 3, 1, 1), np.float32)
    >>> np.allclose(predict(net, x, batch_size=2), predict(net, x, batch_size=5))
    True
    """
    _check_count(batch_size, "batch_size", "a positive number of images")
    if len(x) == 0:
        raise ValueError("predict needs at least one image, found an empty array")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        run = (engine.fuse_if_possible(model, x.dtype) if isinstance(x, np.ndarray) else None) or model
        with no_grad():
            return np.concatenate([asnumpy(run(Tensor(x[s:s + batch_size])).data)
                                   for s in range(0, len(x), batch_size)])
    finally:
        for module, mode in modes:  # parents first, so every module ends in its own mode
            module.train(mode)


def evaluate(model, x, y, batch_size=500, distributed=False) -> Evaluation:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, by :func:`predict`.

    With ``distributed`` each rank evaluates its share ``x[rank::world_size]``
    and the results are combined over the ranks (every rank gets them).
    """
    y = asnumpy(y)
    if distributed:
        rank, size = _mpi.rank(), _mpi.world_size()
        x, y = x[rank::size], y[rank::size]
    loss = correct = 0.0
    if len(x):
        logits = predict(model, x, batch_size)
        loss = float(cross_entropy(logits, y, reduction="sum").data)
        correct = float((logits.argmax(axis=1) == y).sum())
    n = float(len(x))
    if distributed:
        loss, correct, n = _mpi.allreduce(np.array([loss, correct, n], np.float64)).tolist()
    if n == 0:
        raise ValueError("evaluate needs at least one image, found an empty array")
    return Evaluation(loss / n, correct / n)


class Agreement(NamedTuple):
    """What :func:`agreement` returns."""

    accuracy: float  # of the reference logits
    other_accuracy: float
    agree: float  # fraction of images with the same predicted class
    max_difference: float  # largest |logit difference|
    flips: int  # images with different predicted classes
    flip_margin: float  # among those, the reference's largest gap between its top two logits (0 without flips)


def agreement(reference, other, labels) -> Agreement:
    """How closely two models' logits ``(N, classes)`` on the same images agree, e.g. a model and its conversion.

    A flip whose ``flip_margin`` is at float rounding level (1e-6 for float32
    logits of order 10) is a tie that either model could break either way.

    >>> import numpy as np
    >>> a = np.array([[2.0, 1.0], [0.5, 0.5000001]]); b = a + np.array([[0.0, 0.0], [1e-6, 0.0]])
    >>> r = agreement(a, b, np.array([0, 1]))
    >>> r.accuracy, r.other_accuracy, r.flips, r.flip_margin < 1e-6
    (1.0, 0.5, 1, True)
    """
    reference, other, labels = asnumpy(reference), asnumpy(other), asnumpy(labels)
    if reference.shape != other.shape or reference.ndim != 2 or labels.shape != reference.shape[:1]:
        raise ValueError(f"expected two logit arrays (N, classes) of one shape and N labels, found shapes "
                         f"{reference.shape}, {other.shape} and {labels.shape}")
    a, b = reference.argmax(axis=1), other.argmax(axis=1)
    flipped = a != b
    top2 = np.sort(reference[flipped], axis=1)[:, -2:]
    return Agreement(float((a == labels).mean()), float((b == labels).mean()), float((~flipped).mean()),
                     float(np.abs(reference - other).max()), int(flipped.sum()),
                     float((top2[:, 1] - top2[:, 0]).max()) if flipped.any() else 0.0)


# ----------------------------------------------------------------------------- the loop


class NonFiniteError(ValueError):
    """Training met a NaN or infinite loss, gradient or weight; the message names where and the likely cause."""


def check_finite(model, loss=None, inputs=None, optimizers=(), where="training"):
    """Raise :class:`NonFiniteError` unless ``loss`` and every gradient of ``model`` are finite.

    Call it after ``loss.backward()`` and before ``optimizer.step()``, so a
    bad step is never taken (:func:`train_epoch` does). ``inputs`` (the
    batch) and ``optimizers`` only sharpen the diagnosis; ``where`` (e.g.
    ``"step 3 of epoch 2"``) starts the message.

    >>> import numpy as np
    >>> from dctnet import nn, Tensor
    >>> net = nn.Linear(2, 1)
    >>> net(Tensor(np.array([[np.nan, 1.0]], np.float32))).sum().backward()
    >>> try:
    ...     check_finite(net, inputs=np.array([[np.nan, 1.0]]), where="step 1 of epoch 1")
    ... except NonFiniteError as exc:
    ...     print(str(exc).split(";")[0])
    non-finite gradient of 'weight' at step 1 of epoch 1: the input batch holds 1 NaN or infinite value(s)
    """
    problem = None
    value = None if loss is None else float(asnumpy(getattr(loss, "data", loss)))
    if value is not None and not np.isfinite(value):
        problem = f"non-finite loss ({value})"
    else:
        for name, p in model.named_parameters():
            if p.grad is not None and not bool(_isfinite_all(p.grad)):
                problem = f"non-finite gradient of {name!r}"
                break
    if problem is not None:
        raise NonFiniteError(f"{problem} at {where}: {_likely_cause(model, inputs, optimizers)}")


def _isfinite_all(array):
    return get_array_module(array).isfinite(array).all()


def _likely_cause(model, inputs, optimizers):
    if inputs is not None:
        bad = int((~np.isfinite(asnumpy(inputs))).sum())
        if bad:
            return (f"the input batch holds {bad} NaN or infinite value(s); clean the data "
                    "(e.g. np.nan_to_num) or drop those images")
    for name, p in model.named_parameters():
        if not bool(_isfinite_all(p.data)):
            return f"the weight {name!r} is already non-finite: resume from the last good checkpoint"
    lrs = sorted({group["lr"] for opt in optimizers for group in opt.param_groups})
    hint = f" (lr {', '.join(f'{lr:g}' for lr in lrs)})" if lrs else ""
    return (f"the learning rate{hint} is probably too high for this model and data, so the weights "
            "diverged: lower it (e.g. 10x) and start again, or resume from the last good checkpoint")


class EpochResult(NamedTuple):
    seen: int  # images
    loss: float  # summed cross-entropy
    correct: int


def epoch_order(seed, epoch, n, sampler=None):
    """``(indices, rng)``: epoch ``epoch``'s image order and the generator of its augmentation draws.

    Both follow from ``(seed, epoch)`` alone. With a
    :class:`dctnet.distributed.DistributedSampler` the indices are this rank's
    share of the common permutation, and the generator is this rank's own.
    """
    if sampler is not None:
        return sampler.indices(epoch), np.random.default_rng([seed, epoch, _mpi.rank()])
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n), rng


def train_epoch(model, optimizers, x, y, order, batch_size, augment=None, desc=None, show_progress=False,
                distributed=False, epoch=None, scheduler=None) -> EpochResult:
    """One pass of cross-entropy descent over ``x[order]``, ``batch_size`` images per step.

    ``optimizers``: one or several (all step on every batch). ``augment(batch)``
    transforms each batch of inputs. With ``distributed`` the gradients are
    averaged over the ranks before each step and the result is summed over the ranks.
    Before each step :func:`check_finite` checks the loss and the gradients
    (with ``distributed``, the averaged gradients, the same on every rank, so
    all stop together); ``epoch`` (counting from 1) is named in its error.
    ``scheduler`` (one whose ``per_step`` is True, such as
    :class:`dctnet.optim.WarmupCosineLR`) steps after every optimizer step.
    The forward pass is :func:`dctnet.engine.forward`: ``model(x)``, with its
    stock residual blocks (pixel-domain, or JPEG-domain in the carried
    evaluation with exact ReLU) computed by the fused CPU op: the same results
    up to rounding, the same parameters and running statistics updated. Other
    layers, CuPy arrays and synchronized batch norms run as ``model(x)``.
    """
    optimizers = _as_list(optimizers)
    model.train()
    seen = correct = 0
    total = 0.0
    starts = range(0, len(order), batch_size)
    bar = progress(starts, total=len(starts), desc=desc, unit="batch", enabled=show_progress,
                   leave=False, dynamic_ncols=True)
    for step, s in enumerate(bar, 1):
        idx = order[s:s + batch_size]
        xb, yb = x[idx], y[idx]
        inputs = xb if augment is None else augment(xb)
        logits = engine.forward(model, Tensor(inputs))
        loss = cross_entropy(logits, yb)
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        if distributed:
            _mpi.allreduce_gradients(model)
        where = f"step {step} of epoch {'?' if epoch is None else epoch} ({len(idx)} images)"
        # Distributed: the local loss may differ between ranks, the averaged gradients do not.
        check_finite(model, None if distributed else loss, inputs, optimizers, where)
        for opt in optimizers:
            opt.step()
        if scheduler is not None:
            scheduler.step()
        seen += len(idx)
        total += float(loss.data) * len(idx)
        correct += int((asnumpy(logits.data).argmax(axis=1) == asnumpy(yb)).sum())
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.3f}")
    if distributed:
        seen, total, correct = _mpi.allreduce(np.array([seen, total, correct], np.float64)).tolist()
    return EpochResult(int(seen), total, int(correct))


def steps_per_epoch(n, batch_size, world_size=1) -> int:
    """Optimizer steps in one epoch of :func:`fit` over ``n`` images (``batch_size`` in all per step).

    The ``total_steps`` a per-step schedule needs: with ``world_size`` ranks each
    takes ``ceil(n / world_size)`` images, ``batch_size // world_size`` per step.

    >>> steps_per_epoch(60000, 128), steps_per_epoch(100, 32, world_size=2)
    (469, 4)
    """
    share, step_batch = -(-n // world_size), batch_size // world_size
    return -(-share // step_batch)


def cosine_schedule(optimizer, epochs, n, batch_size, warmup=0.0, world_size=1):
    """A :class:`dctnet.optim.WarmupCosineLR` over every step of ``epochs`` epochs of ``n`` images.

    ``warmup`` epochs (a fraction is fine) of linear warm-up from a tenth of
    the rate, then one cosine to 0, so that a run of any length ends annealed.

    >>> import numpy as np
    >>> from dctnet import Tensor, optim
    >>> opt = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    >>> s = cosine_schedule(opt, epochs=2, n=1000, batch_size=100, warmup=0.5)
    >>> s.total_steps, s.warmup_steps
    (20, 5)
    """
    per_epoch = steps_per_epoch(n, batch_size, world_size)
    total = max(1, per_epoch * int(epochs))
    return optim.WarmupCosineLR(optimizer, total_steps=total, warmup_steps=min(total - 1, round(warmup * per_epoch)))


def fit(model, optimizers, train, test=None, *, epochs, batch_size, scheduler=None, seed=0, augment=None,
        start=0, history=None, stop_after=None, checkpoint=None, metadata=None, columns=None,
        show_progress=False, distributed=False, log=print) -> list:
    """Train ``model`` on ``train = (x, y)`` from epoch ``start`` up to ``epochs``; returns the history.

    Each epoch is :func:`train_epoch` over :func:`epoch_order`'s order (``batch_size``
    images per step in all), then ``scheduler.step()`` (after every optimizer
    step instead when ``scheduler.per_step``), then :func:`evaluate` on
    ``test``. It appends a row to ``history`` (``epoch`` counting from 1, train
    and test loss and accuracy, ``seconds``, ``img_per_s``, and the dict that
    ``columns()`` returns, if given), logs it as one line (``log=None``: silent)
    and saves ``checkpoint`` (a path): the model, the first optimizer, and as
    metadata ``epoch`` (from 0), ``epochs``, ``history``, the scheduler's
    state, the further optimizers (JSON, for small ones such as a JPEG layer's
    tables), and ``metadata`` (a dict, or a function returning one, called at
    every save). :func:`resume` reads it back; since ``load_checkpoint``
    rebuilds the first optimizer on ``model.parameters()``, it must hold every
    parameter (those another optimizer trains in a group of their own with
    ``lr=0``). ``augment(batch, rng)`` transforms each batch with the epoch's
    generator. ``stop_after=K`` trains at most K epochs of this call; a later
    resume goes on.

    ``distributed=True`` trains data-parallel over the MPI world of
    :func:`init_distributed`: every rank a disjoint share of each epoch
    (``batch_size`` stays the global batch, ``batch_size // world_size`` per
    rank), gradients averaged before each step, evaluation shared. Rank 0 alone
    logs and writes the checkpoint, of the model with plain batch norm
    (``revert_sync_batchnorm``), so it loads without MPI; every rank waits for
    it at the end. Broadcast the starting parameters first
    (``dctnet.distributed.broadcast_parameters``).
    """
    optimizers = _as_list(optimizers)
    _check_count(batch_size, "batch_size", "a positive number of images")
    _check_count(epochs, "epochs", "a number of epochs (0 or more)", smallest=0)
    x, y = train
    history = list(history or [])
    sampler, main, step_batch = None, True, batch_size
    if distributed:
        size, main = _mpi.world_size(), _mpi.is_main()
        step_batch = batch_size // size
        if step_batch < 1:
            raise ValueError(f"batch_size {batch_size} is smaller than the {size} processes")
        sampler = _mpi.DistributedSampler(len(x), seed=seed)
    log = log if main else None
    stop = epochs if stop_after is None else min(epochs, start + stop_after)
    per_step = scheduler is not None and getattr(scheduler, "per_step", False)
    for epoch in range(start, stop):
        order, rng = epoch_order(seed, epoch, len(x), sampler)
        tic = time.perf_counter()
        result = train_epoch(model, optimizers, x, y, order, step_batch,
                             None if augment is None else lambda xb: augment(xb, rng),  # noqa: B023
                             f"epoch {epoch + 1}/{epochs}", show_progress and main, distributed, epoch + 1,
                             scheduler if per_step else None)
        if scheduler is not None and not per_step:
            scheduler.step()
        seconds = time.perf_counter() - tic
        row = {"epoch": epoch + 1, "train_loss": result.loss / result.seen, "train_acc": result.correct / result.seen}
        if test is not None:
            row["test_loss"], row["test_acc"] = evaluate(model, *test, distributed=distributed)
        row.update(seconds=seconds, img_per_s=result.seen / seconds, **(columns() if columns else {}))
        history.append(row)
        if log:
            log(_epoch_line(row, epochs), flush=True)
        if checkpoint is not None and main:
            _check_weights(model, f"after epoch {epoch + 1}; {checkpoint} keeps the last good checkpoint")
            extra = metadata() if callable(metadata) else dict(metadata or {})
            saved = _mpi.revert_sync_batchnorm(model) if distributed else model
            save(saved, checkpoint, optimizer=optimizers[0], epoch=epoch, epochs=epochs, history=history,
                 scheduler=None if scheduler is None else scheduler.state_dict(),
                 optimizers=[_optimizer_json(model, opt) for opt in optimizers[1:]], **extra)
    if distributed and checkpoint is not None:
        _mpi.barrier()  # the last checkpoint is on disk before any rank goes on
    if stop < epochs and log:
        log(f"stopped after epoch {stop} of {epochs}; resume to go on", flush=True)
    return history


def _check_weights(model, where):
    """NonFiniteError if a parameter or floating-point buffer of ``model`` holds NaN or inf."""
    for name, array in model.state_dict().items():
        if array.dtype.kind == "f" and not bool(_isfinite_all(array)):
            raise NonFiniteError(f"the model's {name!r} is non-finite {where}; lower the learning rate")


def _epoch_line(row, epochs):
    line = f"epoch {row['epoch']:3d}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
    if "test_acc" in row:
        line += f" | test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}"
    line += f" | {row['seconds']:.0f} s, {row['img_per_s']:.0f} img/s"
    known = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "img_per_s"}
    extra = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k not in known]
    return line + (" | " + ", ".join(extra) if extra else "")


class Resumed(NamedTuple):
    """What :func:`resume` returns."""

    model: Any
    optimizers: list  # as given to fit: the first in the file's optimizer group, the others rebuilt from JSON
    scheduler: Any  # a dctnet.optim.LRScheduler, or None
    start: int  # the next epoch, counting from 0
    epochs: int
    history: list
    metadata: dict


def resume(path, distributed=False):
    """The run that :func:`fit` checkpointed at ``path``, ready to go on; None when there is no file.

    Pass its fields back to :func:`fit` (``start``, ``epochs``, ``history``,
    ``scheduler``, ``optimizers``). With ``distributed`` rank 0 reads the file
    and sends model and optimizer configurations and the metadata to the
    others, which rebuild them (fill in the arrays with
    ``dctnet.distributed.broadcast_parameters`` before training); so the file
    need only be on rank 0's disk and a run may go on with another number of
    processes.
    """
    path = Path(path)
    main = not distributed or _mpi.is_main()
    found = path.is_file() if main else None
    if distributed:
        found = _mpi.broadcast_object(found)  # rank 0's file decides
    if not found:
        return None
    if main:
        model, first, meta = load_checkpoint(path)
    if distributed:
        cfg = _mpi.broadcast_object((model.config(), first.config(), meta) if main else None)
        if not main:
            model = nn.from_config(cfg[0])
            first, meta = optim.from_config(cfg[1], model.parameters()), cfg[2]
    for key in ("epoch", "epochs", "history"):
        if key not in meta:
            raise ValueError(f"{path} is not a checkpoint written by dctnet.training.fit: its metadata has no "
                             f"{key!r}; resume a file fit wrote (e.g. <run>/last.h5), or start afresh")
    if first is None:
        raise ValueError(f"{path} holds no optimizer: resume a checkpoint written by dctnet.training.fit")
    optimizers = [first] + [_optimizer_from_json(model, saved) for saved in meta.get("optimizers", [])]
    state = meta.get("scheduler")
    scheduler = None if state is None else _scheduler_from_state(first, state, path)
    return Resumed(model, optimizers, scheduler, int(meta["epoch"]) + 1, int(meta["epochs"]),
                   list(meta["history"]), meta)


def _check_count(value, name, expected, smallest=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < smallest:
        raise ValueError(f"{name} must be {expected}, found {value!r}")


def _as_list(optimizers):
    return list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers]


def _optimizer_json(model, opt):
    """An optimizer as JSON: its config and state, and which of ``model.parameters()`` it holds."""
    position = {id(p): i for i, p in enumerate(model.parameters())}
    params = [p for group in opt.param_groups for p in group["params"]]
    if any(id(p) not in position for p in params):
        raise ValueError("every optimizer given to fit must hold parameters of the model only")
    state = opt.state_dict()
    return {"parameters": [position[id(p)] for p in params], "config": state["config"],
            "state": {k: asnumpy(v).tolist() for k, v in state["state"].items()}}


def _optimizer_from_json(model, saved):
    params = model.parameters()
    opt = optim.from_config(saved["config"], [params[i] for i in saved["parameters"]])
    opt.load_state_dict({"config": saved["config"], "state": {k: np.asarray(v) for k, v in saved["state"].items()}})
    return opt


def _scheduler_from_state(optimizer, state, path):
    """The schedule of ``LRScheduler.state_dict()``: its options are the constructor's arguments."""
    kind = getattr(optim, str(state.get("type")), None)
    if not (isinstance(kind, type) and issubclass(kind, optim.LRScheduler)):
        raise ValueError(f"{path}: unknown learning-rate schedule {state.get('type')!r}")
    options = {k: v for k, v in state.items() if k not in ("type", "last_epoch", "base_lrs")}
    scheduler = kind(optimizer, **options)
    scheduler.load_state_dict(state)
    return scheduler


# ----------------------------------------------------------------------------- outputs, command line, MPI


def write_history(history, folder):
    """``history.csv`` and ``history.json`` in ``folder``: one row per epoch, as :func:`fit` returns them."""
    folder = Path(folder)
    if not history:
        return
    with open(folder / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (folder / "history.json").write_text(json.dumps(history, indent=1))


def add_arguments(parser: argparse.ArgumentParser, *, dataset="mnist", epochs=3, out="runs/train"):
    """The options of a training script, added to ``parser``: data set, schedule, SGD, run folder, resume, MPI.

    ``--dataset --epochs --batch-size --lr --warmup --momentum --weight-decay --limit
    --no-augment --seed --out --resume --stop-after --no-progress --distributed``.

    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["--epochs", "2"])
    >>> args.epochs, args.batch_size, args.out
    (2, 128, PosixPath('runs/train'))
    """
    p = parser
    p.add_argument("--dataset", choices=DATASETS, default=dataset,
                   help="sample: the 100 CIFAR-10 JPEGs shipped with dctnet (train = test, a smoke test)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1,
                   help="the network's SGD learning rate (annealed by a cosine over all steps)")
    p.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS",
                   help="linear learning-rate warm-up over the first EPOCHS epochs (may be a fraction)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--limit", type=int, default=None, help="train on this many images (a random subset)")
    p.add_argument("--no-augment", action="store_true", help="CIFAR-10: no random crop / flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.h5")
    p.add_argument("--stop-after", type=int, default=None, metavar="K",
                   help="stop after K epochs of this run (a later --resume goes on)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help=f"data-parallel over MPI: launch with mpiexec -n N python -m mpi4py {p.prog}")
    return p


def init_distributed(enabled=True) -> bool:
    """Join the MPI world when ``enabled`` (``dctnet.distributed.init``); True on rank 0 or when alone."""
    if not enabled:
        return True
    _mpi.init()
    return _mpi.is_main()
