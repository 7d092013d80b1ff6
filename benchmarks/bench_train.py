"""paper_resnet on 3x32x32 float32 input: inference and SGD training-step throughput, dctnet vs PyTorch (CPU).

    python benchmarks/bench_train.py [--rounds 3] [--seconds 3] [--threads N] [--wait-idle 0.5]

Each framework is measured as users run it: in its own fresh process (two
thread pools in one process slow each other down), one process per framework
per round, the frameworks alternating, for ``--rounds`` rounds; a row shows
the median over rounds of each process's median images/s. Rows:

* inference at batch 40 and 128: the dctnet model itself (``model.eval()``
  under ``no_grad``), the fused engine (``dctnet.engine.fuse(model)``) and
  PyTorch;
* the SGD training step (forward, cross-entropy, backward, momentum update)
  at batch 40 and 128: the model itself, ``dctnet.engine.forward(model, x)``
  (the fused residual blocks) and PyTorch;
* the same step of the JPEG-domain network (``dctnet.convert(model)``, exact
  ReLU, the carried evaluation) on the images' DCT coefficients: its own
  layers and ``engine.forward`` (the ratio is to PyTorch's pixel step).

The GEMM limit is measured in the same run: sgemm GFLOP/s (2048^3, NumPy,
2 threads) divided by the network's FLOPs per image (forward; forward plus
the weight and input gradients for a step, no input gradient for the first
layer). "% limit" is the fraction of that rate reached. The load of the
machine is read before every measurement and printed (others' work on a
shared machine slows both sides; ``--wait-idle`` waits for a quieter moment
before each process). PyTorch (an optional benchmark
dependency) is measured when it is installed, with the same weights (a
separate process first checks that both compute the same logits).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from common import torch_model
from dctnet.training import NORMALIZATION

MEAN, STD = NORMALIZATION["cifar10"]  # the CIFAR-10 statistics the library trains with
BATCHES = (40, 128)
ROWS = {  # row -> (framework, kind); kind decides what is timed
    "inference, model": ("dctnet", "infer"),
    "inference, engine.fuse": ("dctnet", "fused"),
    "inference, torch": ("torch", "infer"),
    "train step, model": ("dctnet", "train"),
    "train step, engine.forward": ("dctnet", "engine"),
    "train step, torch": ("torch", "train"),
    "JPEG train step, model": ("dctnet", "jtrain"),
    "JPEG train step, engine": ("dctnet", "jengine"),
}


def busy_cores(seconds=0.5):
    """CPUs busy (all processes) over ``seconds``, from /proc/stat (None where unavailable)."""
    try:
        def sample():
            with open("/proc/stat") as f:
                v = [int(t) for t in f.readline().split()[1:]]
            return sum(v), v[3] + v[4]

        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))
    except OSError:
        return None


def timed(fn, batch, seconds):
    """Median images/s of repeated calls (at least 5, about ``seconds``), after 2 warm-up calls."""
    fn()
    fn()
    times, end = [], time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def data(batch):
    rng = np.random.default_rng(batch)
    return rng.uniform(0, 255, (batch, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, batch)


def dctnet_model():
    from dctnet import nn
    from dctnet.models import paper_resnet

    nn.manual_seed(0)
    return paper_resnet(3, 10, mean=MEAN, std=STD)


def dctnet_worker(kinds, seconds):
    import dctnet
    from dctnet import engine, functional as F, optim

    results = {}
    for batch in BATCHES:
        x, y = data(batch)
        model = dctnet_model()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        fused = engine.fuse(model.eval())
        jnet = dctnet.convert(dctnet_model())
        jopt = optim.SGD(jnet.parameters(), lr=0.01, momentum=0.9)
        coefficients = dctnet.to_dct(x).astype(np.float32)

        def infer():
            model.eval()
            with dctnet.no_grad():
                model(dctnet.Tensor(x))

        def step(forward, net=model, optimizer=opt, inputs=x):
            def run():
                net.train()
                loss = F.cross_entropy(forward(dctnet.Tensor(inputs)), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            return run

        runs = {"infer": infer, "fused": lambda: fused(x), "train": step(model),
                "engine": step(lambda t: engine.forward(model, t)),
                "jtrain": step(jnet, jnet, jopt, coefficients),
                "jengine": step(lambda t: engine.forward(jnet, t), jnet, jopt, coefficients)}
        for kind in kinds:
            load = busy_cores()
            results[f"{kind} {batch}"] = (timed(runs[kind], batch, seconds), load)
    return results


def torch_worker(kinds, seconds, threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    results = {}
    for batch in BATCHES:
        x, y = data(batch)
        net = torch_model(dctnet_model())  # builds weights only: no dctnet compute runs here
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def infer():
            net.eval()
            with torch.no_grad():
                net(tx)

        def step():
            net.train()
            loss = torch.nn.functional.cross_entropy(net(tx), ty)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for kind in kinds:
            load = busy_cores()
            results[f"{kind} {batch}"] = (timed({"infer": infer, "train": step}[kind], batch, seconds), load)
    results["version"] = (torch.__version__, torch.get_num_threads())
    return results


def check_worker():
    """Max |logit difference| between dctnet (model and engine) and PyTorch on the same weights."""
    import torch

    import dctnet
    from dctnet import engine

    model = dctnet_model().eval()
    net = torch_model(model).eval()
    x, _ = data(8)
    with torch.no_grad(), dctnet.no_grad():
        a, b = net(torch.from_numpy(x)).numpy(), model(dctnet.Tensor(x)).numpy()
    c = engine.fuse(model)(x).numpy()
    return {"model": float(np.abs(a - b).max()), "fused": float(np.abs(a - c).max()), "scale": float(np.abs(a).max())}


def gemm_worker():
    """sgemm GFLOP/s at 2 threads (NumPy's BLAS, 2048^3): the best call of about 4 seconds
    (the quietest moment of a shared machine comes closest to the limit)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    with threadpool_limits(2, "blas"):
        np.matmul(a, b, out=out)
        best, end = float("inf"), time.perf_counter() + 4
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    return {"gflops": 2 * 2048**3 / best / 1e9}


def network_flops():
    """FLOPs per 3x32x32 image: (forward, training step) of paper_resnet."""
    from dctnet import nn

    model = dctnet_model()
    forward = grads = 0
    h = 32
    first = True
    for m in model.modules():
        if isinstance(m, nn.ResidualBlock):
            s = m.conv1.stride
            ho = (h - 1) // s + 1
            convs = [(m.conv1, ho), (m.conv2, ho)]
            if not isinstance(m.shortcut, nn.Identity):
                convs.append((m.shortcut[0], ho))
            for conv, size in convs:
                k = conv.weight.shape
                f = 2 * k[0] * k[1] * k[2] * k[3] * size * size
                forward += f
                # weight gradient always; input gradient except for the convs that read the input image
                grads += f if (first and conv is not m.conv2) else 2 * f
            first, h = False, ho
        elif isinstance(m, nn.Linear):
            f = 2 * m.in_features * m.out_features
            forward += f
            grads += 2 * f
    return forward, forward + grads


def run_worker(args):
    if args.worker == "dctnet":
        return dctnet_worker(args.kinds.split(","), args.seconds)
    if args.worker == "torch":
        return torch_worker(args.kinds.split(","), args.seconds, args.threads)
    return {"check": check_worker, "gemm": gemm_worker}[args.worker]()


def wait_idle(args):
    """With --wait-idle B: poll until fewer than B cores are busy (others' work), at most --wait-max seconds."""
    if args.wait_idle is None:
        return
    end = time.monotonic() + args.wait_max
    while time.monotonic() < end:
        busy = busy_cores(1.0)
        if busy is None or busy < args.wait_idle:
            return


def spawn(worker, kinds, args):
    wait_idle(args)
    cmd = [sys.executable, __file__, "--worker", worker, "--kinds", ",".join(kinds), "--seconds", str(args.seconds)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.threads:
        env["DCTNET_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{worker} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row and process")
    parser.add_argument("--threads", type=int, default=None, help="threads for both frameworks (default: their own)")
    parser.add_argument("--wait-idle", type=float, default=None, metavar="B",
                        help="before each process, wait until fewer than B cores are busy (a shared machine)")
    parser.add_argument("--wait-max", type=float, default=120.0, help="seconds to wait for --wait-idle at most")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kinds", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
        return

    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    dkinds = [k for f, k in ROWS.values() if f == "dctnet"]
    tkinds = [k for f, k in ROWS.values() if f == "torch"]
    gemm = spawn("gemm", [], args)["gflops"]
    fwd, step = network_flops()
    print(f"paper_resnet 3x32x32 float32, {os.cpu_count()} cores; each framework in its own process, "
          f"{args.rounds} alternating rounds, medians")
    print(f"GEMM limit: sgemm {gemm:.0f} GFLOP/s (2 threads); network {fwd / 1e6:.1f} MFLOP/img forward, "
          f"{step / 1e6:.1f} MFLOP/img training step -> {gemm * 1e9 / fwd:,.0f} img/s inference, "
          f"{gemm * 1e9 / step:,.0f} img/s training")
    if have_torch:
        check = spawn("check", [], args)
        print(f"same weights: max |logit difference| vs torch: model {check['model']:.1e}, "
              f"engine.fuse {check['fused']:.1e} (logits up to {check['scale']:.2f})")
    else:
        print("torch is not installed: dctnet numbers only")

    runs = {"dctnet": [], "torch": []}
    for r in range(args.rounds):
        order = ["dctnet", "torch"] if r % 2 == 0 else ["torch", "dctnet"]
        for fw in order:
            if fw == "torch" and not have_torch:
                continue
            runs[fw].append(spawn(fw, dkinds if fw == "dctnet" else tkinds, args))
    if have_torch:
        version, threads = runs["torch"][0]["version"]
        print(f"torch {version}, {threads} threads; dctnet {args.threads or 'default'} threads")

    def median(fw, key):
        vals = [run[key][0] for run in runs[fw] if key in run]
        return float(np.median(vals)) if vals else None

    loads = [v[1] for fw in runs for run in runs[fw] for k, v in run.items() if k != "version" and v[1] is not None]
    if loads:
        print(f"machine load before each measurement: busy cores median {np.median(loads):.2f}, "
              f"max {max(loads):.2f} (of {os.cpu_count()})")
    print(f"\n{'row':28s} {'batch':>5s} {'dctnet img/s':>13s} {'torch img/s':>12s} {'ratio':>7s} "
          f"{'% limit':>8s} {'torch %':>8s}")
    for batch in BATCHES:
        for what, kinds in (("inference", ("infer", "fused")), ("train step", ("train", "engine")),
                            ("JPEG train step", ("jtrain", "jengine"))):
            limit = gemm * 1e9 / (fwd if what == "inference" else step)
            theirs = median("torch", f"{'infer' if what == 'inference' else 'train'} {batch}")
            for kind in kinds:
                ours = median("dctnet", f"{kind} {batch}")
                name = next(row for row, (f, k) in ROWS.items() if f == "dctnet" and k == kind)
                t = f"{theirs:12,.0f} {ours / theirs:6.2f}x" if theirs else f"{'-':>12s} {'-':>7s}"
                tp = f"{100 * theirs / limit:7.1f}%" if theirs else f"{'-':>8s}"
                print(f"{name:28s} {batch:5d} {ours:13,.0f} {t} {100 * ours / limit:7.1f}% {tp}")


if __name__ == "__main__":
    main()
