"""paper_resnet on 3x32x32 input: inference and training-step throughput, dctnet vs PyTorch (CPU).

    python benchmarks/bench_train.py [--repeat 5] [--threads N]

Prints images/s for inference at batch 40 and 128 and for an SGD training step
at batch 40 and 128, for the pixel-domain dctnet network and, when torch is
installed (an optional benchmark dependency), the same architecture in
PyTorch with the same weights (their logits are compared first). Ratios are
dctnet / PyTorch from this one run.
"""

import argparse
import os

import numpy as np
from common import best_seconds

import dctnet
from dctnet import functional as F, optim
from dctnet.models import paper_resnet


def dctnet_runs(model, x, y):
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def infer():
        model.eval()
        with dctnet.no_grad():
            return model(dctnet.Tensor(x))

    def step():
        model.train()
        loss = F.cross_entropy(model(dctnet.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return infer, step


def torch_model(model):
    """The same network in PyTorch, weights copied from the dctnet model in registration order."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class Net(nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.blocks = nn.Sequential(Block(3, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.blocks((x - self.mean) / self.std)
            return self.fc(x.mean(dim=(2, 3)))

    net = Net(MEAN, STD)
    ours = [p.numpy() for _, p in model.named_parameters()]
    theirs = list(net.parameters())
    if [a.shape for a in ours] != [tuple(t.shape) for t in theirs]:
        raise RuntimeError("parameter layouts differ between the dctnet and PyTorch networks")
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            t.copy_(torch.from_numpy(a))
    return net


MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: its own)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    model = paper_resnet(3, 10, mean=MEAN, std=STD)
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        net = torch_model(model)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        torch = net = None
        print("torch is not installed: dctnet numbers only")
    if net is not None:  # same weights, same function: check before any training step changes ours
        x = rng.uniform(0, 255, (8, 3, 32, 32)).astype(np.float32)
        net.eval()
        model.eval()
        with torch.no_grad(), dctnet.no_grad():
            a, b = net(torch.from_numpy(x)).numpy(), model(dctnet.Tensor(x)).numpy()
        print(f"same weights: max |logit difference| dctnet vs torch = {np.abs(a - b).max():.2e} "
              f"(logits up to {np.abs(a).max():.2f})")
    print(f"{os.cpu_count()} cores, best of {args.repeat}\n")

    rows = []
    for batch in (40, 128):
        x = rng.uniform(0, 255, (batch, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        infer, step = dctnet_runs(model, x, y)
        ours = {"inference": batch / best_seconds(infer, args.repeat),
                "train step": batch / best_seconds(step, args.repeat)}
        theirs = {}
        if net is not None:
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            topt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

            def tinfer():
                net.eval()
                with torch.no_grad():
                    net(tx)

            def tstep():
                net.train()
                loss = torch.nn.functional.cross_entropy(net(tx), ty)
                topt.zero_grad()
                loss.backward()
                topt.step()

            theirs = {"inference": batch / best_seconds(tinfer, args.repeat),
                      "train step": batch / best_seconds(tstep, args.repeat)}
        for what in ("inference", "train step"):
            rows.append((what, batch, ours[what], theirs.get(what)))

    print(f"\n{'paper_resnet 3x32x32':22s} {'batch':>5s} {'dctnet img/s':>13s} {'torch img/s':>12s} {'dctnet/torch':>13s}")
    for what, batch, a, b in rows:
        t = f"{b:12,.0f} {a / b:12.2f}x" if b else f"{'-':>12s} {'-':>13s}"
        print(f"{what:22s} {batch:5d} {a:13,.0f} {t}")


if __name__ == "__main__":
    main()
