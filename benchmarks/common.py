"""Helpers shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

import os
import time
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np


def best_seconds(fn, repeat):
    """The fastest of ``repeat`` timed calls of ``fn``, after one warm-up call (compilation, caches)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_seconds_interleaved(fns, repeat):
    """``{key: fastest of repeat timed calls}`` for a dict of callables, taken in turns (one
    call of each per turn, after a warm-up turn): load that comes and goes during the
    measurement then falls on all of them alike, which keeps their ratios honest."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t0)
    return best


def cifar10_jpegs(limit):
    """``(source, [bytes, ...])``: up to ``limit`` CIFAR-10 JPEGs spread over the classes.

    From $DCTNET_DATA/cifar10-jpeg.zip when it is there, else the sample in the package.
    """
    root = os.environ.get("DCTNET_DATA")
    path = Path(root) / "cifar10-jpeg.zip" if root else None
    if path is None or not path.is_file():
        path = resources.files("dctnet").joinpath("data", "cifar10-sample.zip")
    with resources.as_file(path) as p, zipfile.ZipFile(p) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        return str(path), [z.read(n) for n in names[:: max(1, len(names) // limit)][:limit]]


def torch_model(model):
    """The same network as ``model`` (a :func:`dctnet.models.paper_resnet`) in PyTorch, with its weights.

    The layout (input normalization, residual blocks, global average pool,
    linear) is read from ``model``; parameters and batch-norm statistics are
    copied in registration order, so only the framework differs. PyTorch (an
    optional benchmark dependency) is imported here, when a twin is asked for.

    >>> from dctnet.models import paper_resnet
    >>> net = torch_model(paper_resnet(1, 10, mean=[33.3], std=[76.8]))   # doctest: +SKIP
    """
    import torch
    from torch import nn as tnn

    from dctnet import nn

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.shortcut = tnn.Identity() if stride == 1 and cin == cout else tnn.Sequential(
                tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class Net(tnn.Module):
        def __init__(self, blocks, features, classes, normalize):
            super().__init__()
            # dctnet's Normalize multiplies by 1/std in the input's dtype: the same here, to the last bit
            mean, scale = ((0.0,), (1.0,)) if normalize is None else (normalize.mean, 1 / normalize.std)
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.blocks = tnn.Sequential(*blocks)
            self.fc = tnn.Linear(features, classes)

        def forward(self, x):
            x = self.blocks((x - self.mean) * self.scale)
            return self.fc(x.mean(dim=(2, 3)))

    layers = list(model.children()) if isinstance(model, nn.Sequential) else []
    normalize = next((m for m in layers if isinstance(m, nn.Normalize)), None)
    blocks = [m for m in layers if isinstance(m, nn.ResidualBlock)]
    fc = layers[-1] if layers else None
    if not blocks or not isinstance(fc, nn.Linear):
        raise ValueError(f"torch_model needs a dctnet.models.paper_resnet (Sequential of residual blocks, "
                         f"global average pool, linear), found {type(model).__name__}")
    net = Net([Block(b.conv1.weight.shape[1], b.conv1.weight.shape[0], b.conv1.stride) for b in blocks],
              fc.in_features, fc.out_features, normalize)
    ours = [p.numpy() for _, p in model.named_parameters()]
    theirs = list(net.parameters())
    if [a.shape for a in ours] != [tuple(t.shape) for t in theirs]:
        raise RuntimeError("parameter layouts differ between the dctnet and PyTorch networks")
    ours_bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    theirs_bn = [m for m in net.modules() if isinstance(m, tnn.BatchNorm2d)]
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            t.copy_(torch.from_numpy(a))
        for a, t in zip(ours_bn, theirs_bn):
            t.running_mean.copy_(torch.from_numpy(np.asarray(a.running_mean)))
            t.running_var.copy_(torch.from_numpy(np.asarray(a.running_var)))
            t.momentum, t.eps = a.momentum, a.eps
    return net
