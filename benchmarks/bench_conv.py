"""Time dctnet.functional.conv2d on the paper network's conv shapes (batch 128).

Prints forward and forward+backward milliseconds per shape (best of --repeat
runs: on a shared 2-core machine the median wanders by 2x between runs), next to
PyTorch's when ``import torch`` works. The 3-channel input layers' backward
computes the weight gradient only, as in training. ``--alternatives`` also
times the fused engine's channels-last conv (forward only, input already NHWC,
as :mod:`dctnet.engine` keeps it between layers), which ``conv2d`` itself does
not use: converting NCHW to NHWC and back at every op cost more than it saved.

    python benchmarks/bench_conv.py [--batch 128] [--dtype float32] [--alternatives]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dctnet import Tensor, no_grad
from dctnet.functional import channels_last
from dctnet.functional.conv import chunking, conv2d
from dctnet.threads import parallel_for

# (Cin, Cout, H=W, kernel, stride, padding): the paper network (Ehrlich & Davis, Fig. 3)
SHAPES = [
    (3, 16, 32, 3, 1, 1),
    (3, 16, 32, 1, 1, 0),
    (16, 16, 32, 3, 1, 1),
    (16, 32, 32, 3, 2, 1),
    (32, 32, 16, 3, 1, 1),
    (32, 64, 16, 3, 2, 1),
    (64, 64, 8, 3, 1, 1),
    (16, 32, 32, 1, 2, 0),
    (32, 64, 16, 1, 2, 0),
]
# How often each shape runs in one forward pass of the network.
USES = [1] * len(SHAPES)


def best_ms(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def channels_last_engine(x, w, s, p):
    """The fused engine's conv: NHWC in, tasks of images, patches + one GEMM per piece."""
    xh = channels_last.to_nhwc(x)
    wt = channels_last.weight_matrix(w)
    k = w.shape[2]
    ho = (x.shape[2] + 2 * p - k) // s + 1
    out = np.empty((x.shape[0], ho, ho, w.shape[0]), x.dtype)
    chunk, tasks = chunking(x.shape[0], wt.shape[0] * ho * ho * x.itemsize)

    def task(worker, t):
        part = slice(t * chunk, (t + 1) * chunk)
        channels_last.forward_images(xh[part], wt, (k, k), (s, s), p, p, out[part])

    return lambda: parallel_for(task, tasks)


def dctnet_times(x, w, s, p, repeat, alternatives):
    input_grad = x.shape[1] != 3  # no network needs the gradient of its input image

    def forward():
        with no_grad():
            conv2d(x, w, stride=s, padding=p)

    def train_step():
        xt, wt = Tensor(x, requires_grad=input_grad), Tensor(w, requires_grad=True)
        y = conv2d(xt, wt, stride=s, padding=p)
        y.backward(y.data)

    row = [best_ms(forward, repeat), best_ms(train_step, repeat)]
    if alternatives:
        row.append(best_ms(channels_last_engine(x, w, s, p), repeat))
    return row


def torch_times(torch, x, w, s, p, repeat):
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    input_grad = x.shape[1] != 3

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)

    def train_step():
        xt, wt = tx.clone().requires_grad_(input_grad), tw.clone().requires_grad_()
        y = torch.nn.functional.conv2d(xt, wt, stride=s, padding=p)
        y.backward(y.detach())

    return [best_ms(forward, repeat), best_ms(train_step, repeat)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--alternatives", action="store_true", help="also time the engine's channels-last conv")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch not installed: printing dctnet only (pip install torch to compare)")
    rng = np.random.default_rng(0)
    data = []
    for cin, cout, hw, k, s, p in SHAPES:
        x = rng.standard_normal((args.batch, cin, hw, hw)).astype(args.dtype)
        w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(args.dtype)
        data.append((x, w, s, p))
    # All dctnet timings first: PyTorch's OpenMP threads keep spinning after each
    # call and would steal one of the two cores from the next NumPy measurement.
    rows = [dctnet_times(*d, args.repeat, args.alternatives) for d in data]
    cols = ["fwd", "fwd+bwd"] + (["nhwc fwd"] if args.alternatives else [])
    if torch:
        rows = [row + torch_times(torch, *d, args.repeat) for row, d in zip(rows, data)]
        cols += ["torch fwd", "torch f+b"]
    print(f"batch {args.batch}, {args.dtype}, milliseconds (best of {args.repeat})")
    print(f"{'Cin->Cout k s  HxW':<24}" + "".join(f"{c:>11}" for c in cols))
    for (cin, cout, hw, k, s, _), uses, row in zip(SHAPES, USES, rows):
        label = f"{cin:>2}->{cout:<2} {k}x{k} s{s}  {hw}x{hw}" + (" (x2)" if uses > 1 else "")
        print(f"{label:<24}" + "".join(f"{t:>11.2f}" for t in row))
    totals = np.array(USES) @ np.array(rows)
    print(f"{'network total':<24}" + "".join(f"{t:>11.2f}" for t in totals))
    print(f"{'img/s (convs only)':<24}" + "".join(f"{1e3 * args.batch / t:>11.0f}" for t in totals))


if __name__ == "__main__":
    main()
