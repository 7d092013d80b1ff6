"""The JPEG-domain paper_resnet against the pixel one, per evaluation; and JPEG bytes to logits against PyTorch.

    python benchmarks/bench_jpeg_domain.py [--rounds 3] [--files 2048] [--repeat 5] [--no-dense]

1. Network only, on 3x32x32 inputs: inference at batch 40 and 128 and an SGD
   training step at batch 40, for the pixel network and its JPEG-domain
   conversion in each evaluation (carried, spatial, dense; exact n = 15 and
   ASM at n = 6), as ratios to the pixel network in the same engine: the
   autograd models against the pixel model, and the fused inference engine
   (``dctnet.engine.fuse``; JPEG-domain: coefficients in) against the fused
   pixel network ("fused" rows; inference only).
2. End to end: CIFAR-10 test JPEGs held in memory as bytes -> logits, batch 128:
   ``dctnet.predict_jpegs`` (read_stacked, the folded input map, the
   JPEG-domain network: by default the fused engine fed channels-last by
   ``jpeg_pixels_nhwc``, without and with reading ahead in a thread; the
   autograd model in the carried and spatial evaluations) against simplejpeg
   decode + the same network in PyTorch (CPU) and Pillow decode + PyTorch.
   Exactness: the logits against the dctnet pixel model on the float decode
   (max |difference| / max |logit|).

Every measurement runs in a fresh process of its own (two frameworks' thread
pools in one process slow each other), the rounds alternate the order, and each
row is the median over the rounds (within a process: the best of --repeat
after a warm-up for network rows, one full pass for end-to-end rows). The
network rows of one column are timed in turns, one call of each per turn, so
that load which comes and goes falls on all of them alike; their ratios are
taken within each round, then the median.
``--no-dense`` leaves out the paper's dense evaluation, which runs at a few
images per second and takes most of a round.
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from common import best_seconds_interleaved, cifar10_jpegs
from dctnet.training import NORMALIZATION

MEAN, STD = NORMALIZATION["cifar10"]  # the CIFAR-10 statistics the library trains with
NETS = [("pixel", None, 15), ("carried n=15", "carried", 15), ("carried n=6", "carried", 6),
        ("spatial n=15", "spatial", 15), ("spatial n=6", "spatial", 6), ("dense n=15", "dense", 15),
        ("fused pixel", "fused", None), ("fused n=15", "fused", 15), ("fused n=6", "fused", 6)]
END_TO_END = ["dctnet fused", "dctnet fused, read-ahead", "dctnet fused n=6", "dctnet carried", "dctnet spatial",
              "simplejpeg + PyTorch", "Pillow + PyTorch"]


def pixel_model():
    """The paper network with non-trivial batch-norm statistics, the same in every process."""
    import dctnet
    from dctnet import nn
    from dctnet.models import paper_resnet

    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    net = paper_resnet(3, 10, mean=MEAN, std=STD)
    net.train()
    with dctnet.no_grad():
        for _ in range(3):
            net(dctnet.Tensor(rng.uniform(0, 255, (64, 3, 32, 32)).astype(np.float32)))
    return net.eval()


def network_worker(repeat, dense=True):
    import dctnet
    from dctnet import engine, functional as F, optim

    rng = np.random.default_rng(1)
    pixel = pixel_model()
    x = rng.uniform(0, 255, (128, 3, 32, 32)).astype(np.float32)
    c = dctnet.to_dct(x)
    y = rng.integers(0, 10, 128)
    calls = {"autograd": {}, "fused": {}}  # key -> (images, callable); each group is timed in turns
    for name, evaluation, n in NETS:
        if evaluation == "dense" and not dense:
            continue
        if evaluation == "fused":
            net = engine.fuse(pixel if n is None else dctnet.convert(pixel, relu_frequencies=n))
            data = x if n is None else c
            for b in (40, 128):
                calls["fused"][f"inference {name} b{b}"] = (b, lambda net=net, data=data, b=b: net(data[:b]))
            continue
        net = pixel if evaluation is None else dctnet.convert(pixel, relu_frequencies=n, evaluation=evaluation)
        data = x if evaluation is None else c

        def infer(b, net=net, data=data):
            net.eval()
            with dctnet.no_grad():
                return net(dctnet.Tensor(data[:b])).data

        opt = optim.SGD(net.parameters(), lr=1e-9)  # tiny steps: the shared weights barely move

        def step(net=net, data=data, opt=opt):
            net.train()
            loss = F.cross_entropy(net(dctnet.Tensor(data[:40])), y[:40])
            opt.zero_grad()
            loss.backward()
            opt.step()

        calls["autograd"][f"inference {name} b40"] = (40, lambda infer=infer: infer(40))
        calls["autograd"][f"inference {name} b128"] = (128, lambda infer=infer: infer(128))
        calls["autograd"][f"train step {name} b40"] = (40, step)
    rows = {}
    for group in calls.values():
        for cell in ("b40", "b128", "train"):  # the evaluations of one cell in turns
            part = {k: v for k, v in group.items() if _cell(k) == cell}
            best = best_seconds_interleaved({k: fn for k, (_, fn) in part.items()}, repeat)
            rows.update({k: part[k][0] / best[k] for k in part})
    return rows


def _cell(key):
    """``"b40"``, ``"b128"`` or ``"train"``: which column a network row's key belongs to."""
    return "train" if key.startswith("train") else key.rsplit(" ", 1)[1]


def end_to_end_worker(what, files):
    if what.startswith("dctnet"):
        import dctnet

        pixel = pixel_model()
        n = 6 if "n=6" in what else 15
        net = dctnet.convert(pixel, relu_frequencies=n, evaluation="spatial" if "spatial" in what else "carried")
        prefetch = "read-ahead" in what
        fused = None if "fused" in what else False

        def run(part=files):
            return dctnet.predict_jpegs(net, part, batch_size=128, prefetch=prefetch, fused=fused)

        run(files[:256])
        t0 = time.perf_counter()
        logits = run()
        seconds = time.perf_counter() - t0
        # exactness: the pixel model on the float decode (float64 IDCT of dct_picture), batch by batch
        want = []
        with dctnet.no_grad():
            for s in range(0, len(files), 128):
                batch = files[s:s + 128]
                first = dctnet.read_jpeg(batch[0])
                coefs, qt = dctnet.read_stacked(batch)
                pic = dctnet.dct_picture(coefs, qt.transpose(1, 0, 2), first.sampling, first.color_space,
                                         first.height, first.width, "rgb", np.float64)
                want.append(pixel(dctnet.Tensor(dctnet.from_dct(pic).astype(np.float32))).data)
        want = np.concatenate(want)
        error = float(np.abs(logits - want).max() / np.abs(want).max())
        return {"rate": len(files) / seconds, "error": error if n == 15 else None}
    import torch
    from common import torch_model

    net = torch_model(pixel_model()).eval()
    if what.startswith("simplejpeg"):
        import simplejpeg

        def decode(b):
            return simplejpeg.decode_jpeg(b, colorspace="RGB")
    else:
        from PIL import Image

        def decode(b):
            with Image.open(io.BytesIO(b)) as im:
                return np.asarray(im.convert("RGB"))

    def run(part):
        out = []
        with torch.no_grad():
            for s in range(0, len(part), 128):
                x = np.stack([decode(b) for b in part[s:s + 128]]).transpose(0, 3, 1, 2).astype(np.float32)
                out.append(net(torch.from_numpy(x)).numpy())
        return out

    run(files[:256])
    t0 = time.perf_counter()
    run(files)
    return {"rate": len(files) / (time.perf_counter() - t0), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def spawn(args, worker):
    cmd = [sys.executable, __file__, "--worker", worker, "--files", str(args.files), "--repeat", str(args.repeat)]
    cmd += ["--no-dense"] if args.no_dense else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    if done.returncode:
        raise RuntimeError(f"worker {worker} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-dense", action="store_true", help="leave out the (very slow) dense evaluation")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker == "network":
            print(json.dumps(network_worker(args.repeat, not args.no_dense)))
        else:
            print(json.dumps(end_to_end_worker(args.worker, cifar10_jpegs(args.files)[1])))
        return
    source, files = cifar10_jpegs(args.files)
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {args.rounds} rounds, each measurement "
          f"in its own process; {len(files)} JPEGs from {source}")
    workers = ["network"] + END_TO_END
    results = {w: [] for w in workers}
    for r in range(args.rounds):
        for w in workers[r % len(workers):] + workers[:r % len(workers)]:  # alternate the order
            results[w].append(spawn(args, w))
    net = {k: statistics.median(d[k] for d in results["network"]) for k in results["network"][0]}
    print(f"\n{'network only (img/s, median)':34s} {'b40':>7s} {'vs px':>6s} {'b128':>7s} {'vs px':>6s} "
          f"{'train b40':>9s} {'vs px':>6s}")
    for name, evaluation, _ in NETS:
        cells = []
        for key in (f"inference {name} b40", f"inference {name} b128", f"train step {name} b40"):
            if key not in net:
                cells.append(f"{'-':>7s} {'':6s}")
                continue
            base = key.replace(name, "fused pixel" if evaluation == "fused" else "pixel")
            # the ratio within each round (the two timed in turns in one process), then the median
            ratio = statistics.median(d[key] / d[base] for d in results["network"])
            cells.append(f"{net[key]:7.0f} {ratio:5.2f}x")
        print(f"{name:34s} " + " ".join(cells))
    e2e = {w: statistics.median(d["rate"] for d in results[w]) for w in END_TO_END}
    print(f"\n{'end to end, bytes -> logits, b128':34s} {'img/s':>7s} {'vs simplejpeg+PT':>17s} "
          f"{'vs Pillow+PT':>13s} {'rel. error':>11s}")
    for w in END_TO_END:
        err = results[w][0].get("error")
        err = f"{max(d['error'] for d in results[w]):11.1e}" if err is not None else f"{'-':>11s}"  # n = 6: approximate
        print(f"{w:34s} {e2e[w]:7.0f} {e2e[w] / e2e['simplejpeg + PyTorch']:16.2f}x "
              f"{e2e[w] / e2e['Pillow + PyTorch']:12.2f}x {err}")
    info = results["simplejpeg + PyTorch"][0]
    print(f"\nPyTorch {info['torch']} ({info['threads']} threads); rounds per row: "
          + ", ".join(f"{w}: " + "/".join(f"{d['rate']:.0f}" for d in results[w]) for w in END_TO_END)
          + f"; load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
