"""Time dctnet.functional.conv2d on the paper network's conv shapes (batch 128).

Prints forward and forward+backward milliseconds per shape (best of --repeat
runs: on a shared 2-core machine the median wanders by 2x between runs), next to
PyTorch's when ``import torch`` works. The 3-channel input layer's backward
computes the weight gradient only, as in training. ``--alternatives`` also
times the im2col layouts that conv2d's "flat" im2col was chosen over (forward
only): windowed NCHW im2col and NHWC im2col, each chunked the same way.

    python benchmarks/bench_conv.py [--batch 128] [--dtype float32] [--alternatives]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dctnet import Tensor, no_grad
from dctnet.functional import conv2d
from dctnet.functional.conv import CHUNK_BYTES

# (Cin, Cout, H=W, kernel, stride, padding): the paper network (Ehrlich & Davis, Fig. 3)
SHAPES = [
    (3, 16, 32, 3, 1, 1),
    (16, 16, 32, 3, 1, 1),
    (16, 32, 32, 3, 2, 1),
    (32, 32, 16, 3, 1, 1),
    (32, 64, 16, 3, 2, 1),
    (64, 64, 8, 3, 1, 1),
    (16, 32, 32, 1, 2, 0),
    (32, 64, 16, 1, 2, 0),
]
# How often each shape runs in one forward pass of the network.
USES = [1, 2, 1, 1, 1, 1, 1, 1]


def best_ms(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


def _windows(xpad, k, s, ho, wo, nhwc):
    v = np.lib.stride_tricks.sliding_window_view(xpad, (k, k), axis=(1, 2) if nhwc else (2, 3))
    return v[:, ::s, ::s][:, :ho, :wo] if nhwc else v[:, :, ::s, ::s][:, :, :ho, :wo]


def im2col_windowed(x, w, s, p):
    """Alternative: NCHW windowed im2col, columns (Cin*k*k, n*Ho*Wo), one GEMM per chunk."""
    n, c, h, _ = x.shape
    o, k = w.shape[0], w.shape[2]
    ho = (h + 2 * p - k) // s + 1
    v = _windows(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))), k, s, ho, ho, False).transpose(1, 4, 5, 0, 2, 3)
    chunk = max(1, CHUNK_BYTES["numpy"] // (c * k * k * ho * ho * x.itemsize))
    out = np.empty((n, o, ho, ho), x.dtype)
    for i in range(0, n, chunk):
        cols = np.ascontiguousarray(v[:, :, :, i : i + chunk]).reshape(c * k * k, -1)
        out[i : i + chunk] = (w.reshape(o, -1) @ cols).reshape(o, -1, ho, ho).transpose(1, 0, 2, 3)
    return out


def im2col_nhwc(x, w, s, p):
    """Alternative: NHWC im2col, columns (n*Ho*Wo, k*k*Cin) @ W (k*k*Cin, Cout) per chunk."""
    n, c, h, _ = x.shape
    o, k = w.shape[0], w.shape[2]
    ho = (h + 2 * p - k) // s + 1
    xh = np.zeros((n, h + 2 * p, h + 2 * p, c), x.dtype)
    xh[:, p : p + h, p : p + h] = x.transpose(0, 2, 3, 1)
    v = _windows(xh, k, s, ho, ho, True).transpose(0, 1, 2, 4, 5, 3)
    w2 = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, o))
    chunk = max(1, CHUNK_BYTES["numpy"] // (c * k * k * ho * ho * x.itemsize))
    out = np.empty((n, o, ho, ho), x.dtype)
    for i in range(0, n, chunk):
        cols = np.ascontiguousarray(v[i : i + chunk]).reshape(-1, k * k * c)
        out[i : i + chunk] = (cols @ w2).reshape(-1, ho, ho, o).transpose(0, 3, 1, 2)
    return out


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
        row += [best_ms(lambda f=f: f(x, w, s, p), repeat) for f in (im2col_windowed, im2col_nhwc)]
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
    parser.add_argument("--alternatives", action="store_true", help="also time other im2col layouts")
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
    cols = ["fwd", "fwd+bwd"] + (["windowed", "nhwc"] if args.alternatives else [])
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
