"""The fused JPEG-domain paper_resnet against the fused pixel one, in alternating pairs of calls.

    python benchmarks/bench_fused_pairs.py [--pairs 200] [--batches 40,128]

``bench_jpeg_domain.py`` times each plan as the best of a few calls, which
on a shared machine wanders by a few percent between runs. Here, in one
process, the two plans (``engine.fuse`` of the pixel model, pixels in, and of
its conversion at n = 15 and n = 6, coefficients in) run in pairs, one call of
each, the order alternating; a pair's ratio is the pixel plan's time over the
JPEG-domain plan's (above 1: the JPEG-domain plan is faster), and the median
over the pairs is printed with its quartiles. Load that comes and goes falls
on both calls of a pair alike.
"""

import argparse
import statistics
import time

import numpy as np
from bench_jpeg_domain import pixel_model


def pair_ratios(first, second, pairs):
    """Per pair, ``time(first) / time(second)``, the order of the two calls alternating."""
    ratios = []
    for i in range(pairs):
        seconds = {}
        for key, fn in ((("a", first), ("b", second)) if i % 2 else (("b", second), ("a", first))):
            t0 = time.perf_counter()
            fn()
            seconds[key] = time.perf_counter() - t0
        ratios.append(seconds["a"] / seconds["b"])
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--batches", default="40,128")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.pairs < 1 or min(batches) < 1:
        parser.error(f"--pairs and --batches must be positive, found {args.pairs} and {args.batches}")
    import dctnet
    from dctnet import engine

    pixel = pixel_model()
    x = np.random.default_rng(1).uniform(0, 255, (max(batches), 3, 32, 32)).astype(np.float32)
    c = dctnet.to_dct(x)
    plans = {"pixel": engine.fuse(pixel)}
    for n in (15, 6):
        plans[f"n={n}"] = engine.fuse(dctnet.convert(pixel, relu_frequencies=n))
    for name, plan in plans.items():  # warm-up: scratch buffers, compiled kernels loaded
        plan(x if name == "pixel" else c)
    print(f"fused paper_resnet, float32, {dctnet.threads.num_threads()} threads, {args.pairs} pairs per cell")
    print(f"{'JPEG-domain plan / pixel plan':30s} " + " ".join(f"{f'b{b}':>20s}" for b in batches))
    for name in ("n=15", "n=6"):
        cells = []
        for b in batches:
            ratios = pair_ratios(lambda b=b: plans["pixel"](x[:b]), lambda b=b, name=name: plans[name](c[:b]), args.pairs)
            q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            cells.append(f"{q2:.3f}x ({q1:.3f}-{q3:.3f})")
        print(f"{'fused ' + name:30s} " + " ".join(f"{cell:>20s}" for cell in cells))
    print("(median of the pairs, quartiles in brackets)")


if __name__ == "__main__":
    main()
