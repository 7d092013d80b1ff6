"""Data-parallel training over MPI: images/s of paper_resnet for 1 and N processes.

    python benchmarks/bench_distributed.py [--processes 2] [--steps 5] [--batch 128] [--sync-bn]
    mpiexec -n 2 python -m mpi4py benchmarks/bench_distributed.py --worker   # one configuration

Without MPI the script launches itself with ``mpiexec -n 1`` and ``mpiexec -n
N`` (the mpiexec next to this Python, or on PATH), giving each process
``cores // processes`` BLAS/OpenMP/Numba threads: oversubscribed threads
ruin the timing. A training step (3x32x32, pixel domain, SGD, global batch
``--batch`` split over the processes, gradients averaged by
``dctnet.distributed.allreduce_gradients``) is timed over ``--steps`` steps;
the time of one ``allreduce_gradients`` alone is shown next to it. Efficiency
is speed-up / processes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--sync-bn", action="store_true", help="synchronized batch norm")
    p.add_argument("--worker", action="store_true", help="measure in this MPI world and print one JSON line")
    return p.parse_args(argv)


def worker(args):
    import dctnet
    from dctnet import distributed as dist, functional as F, nn, optim
    from dctnet.models import paper_resnet

    dist.init()
    world = dist.world_size()
    nn.manual_seed(0)
    model = paper_resnet(in_channels=3, num_classes=10)
    if args.sync_bn:
        model = dist.convert_sync_batchnorm(model)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dist.broadcast_parameters(model, opt)
    per_rank = args.batch // world
    rng = np.random.default_rng(dist.rank())
    x = rng.normal(size=(per_rank, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=per_rank)
    model.train()

    def step():
        loss = F.cross_entropy(model(dctnet.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        dist.allreduce_gradients(model)
        opt.step()

    step()  # warm-up: kernel compilation, allocations, NCCL/MPI setup
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dist.barrier()
    step_s = (time.perf_counter() - t0) / args.steps
    reps = 5
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        dist.allreduce_gradients(model)
    dist.barrier()
    allreduce_s = (time.perf_counter() - t0) / reps
    n_params = sum(p.data.size for p in model.parameters())
    if dist.is_main():
        print(json.dumps({"processes": world, "threads": os.environ.get("OMP_NUM_THREADS", "?"),
                          "step_s": step_s, "img_per_s": per_rank * world / step_s,
                          "allreduce_s": allreduce_s, "parameters": int(n_params)}), flush=True)


def mpiexec():
    for candidate in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    sys.exit("no mpiexec found next to this Python or on PATH; install mpi4py with an MPI (e.g. pip install mpich mpi4py)")


def launch(n, args):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // n))
    env = {**os.environ, **{var: threads for var in THREAD_VARS}}
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", __file__, "--worker",
           "--steps", str(args.steps), "--batch", str(args.batch)] + (["--sync-bn"] if args.sync_bn else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker or any(os.environ.get(v, "1") not in ("", "1") for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")):
        return worker(args)
    rows = [launch(1, args)] + ([launch(args.processes, args)] if args.processes > 1 else [])
    base = rows[0]["img_per_s"]
    print(f"paper_resnet 3x32x32, global batch {args.batch}, {args.steps} timed steps, "
          f"{rows[0]['parameters']} parameters (float32){', sync BN' if args.sync_bn else ''}")
    print(f"{'processes':>9} {'threads':>7} {'step ms':>8} {'img/s':>7} {'allreduce ms':>12} {'speed-up':>8} {'efficiency':>10}")
    for r in rows:
        speedup = r["img_per_s"] / base
        print(f"{r['processes']:>9} {r['threads']:>7} {r['step_s'] * 1e3:>8.1f} {r['img_per_s']:>7.0f} "
              f"{r['allreduce_s'] * 1e3:>12.3f} {speedup:>8.2f} {speedup / r['processes']:>10.2f}")


if __name__ == "__main__":
    main()
