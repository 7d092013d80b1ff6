"""Paper Figure 4a: error of ASM and APX ReLU against exact ReLU, n = 1..15.

Random 4x4 blocks uniform in [-1, 1], box-upscaled to 8x8 (as in the paper),
mean per-block RMSE against the exact ReLU. Writes a PNG plot and a CSV table.

    python examples/relu_error.py --blocks 1000000 --out runs/relu_error
"""

import argparse
import time
from pathlib import Path

import numpy as np

import dctnet
from dctnet import plots
from dctnet.functional import apx_relu, asm_relu


def relu_errors(blocks: int, seed: int = 0, chunk: int = 200_000):
    """Mean per-block RMSE of ASM and APX for n = 1..15: dict method -> (15,)."""
    rng = np.random.default_rng(seed)
    sums = {"asm": np.zeros(15), "apx": np.zeros(15)}
    done = 0
    while done < blocks:
        m = min(chunk, blocks - done)
        small = rng.uniform(-1, 1, size=(m, 4, 4))
        pix = small.repeat(2, axis=1).repeat(2, axis=2)[:, None]  # (m, 1, 8, 8)
        x = dctnet.to_dct(pix)[:, 0, 0]  # (m, 64)
        exact = dctnet.to_dct(np.maximum(pix, 0))[:, 0, 0]
        for n in range(1, 16):
            for name, relu in (("asm", asm_relu), ("apx", apx_relu)):
                # orthonormal DCT: coefficient RMSE = pixel RMSE
                err = np.sqrt(((relu(x, n) - exact) ** 2).mean(axis=-1))
                sums[name][n - 1] += err.sum()
        done += m
    return {k: v / blocks for k, v in sums.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/relu_error", help="folder for relu_error.png and .csv")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    err = relu_errors(args.blocks, args.seed)
    lines = ["n,asm_rmse,apx_rmse"] + [f"{n},{err['asm'][n - 1]:.6g},{err['apx'][n - 1]:.6g}" for n in range(1, 16)]
    (out / "relu_error.csv").write_text("\n".join(lines) + "\n")
    print(f"{args.blocks:,} blocks in {time.perf_counter() - t0:.1f} s")
    print(f"{'n':>3} {'ASM RMSE':>12} {'APX RMSE':>12}")
    for n in range(1, 16):
        print(f"{n:>3} {err['asm'][n - 1]:>12.6f} {err['apx'][n - 1]:>12.6f}")
    below = all(err["asm"][i] < err["apx"][i] for i in range(14))
    print(f"ASM below APX for every n < 15: {below}; error at n = 15: ASM {err['asm'][14]:.1e}, APX {err['apx'][14]:.1e}")

    ns = list(range(1, 16))
    if plots.line_chart(out / "relu_error.png", [(ns, err["asm"], "o-", "ASM"), (ns, err["apx"], "s--", "APX")],
                        xlabel="spatial frequencies n", ylabel="mean per-block RMSE",
                        title=f"ReLU approximation error ({args.blocks:,} blocks)"):
        print(f"wrote {out / 'relu_error.png'} and {out / 'relu_error.csv'}")
    else:
        print(f"wrote {out / 'relu_error.csv'} (no plot: matplotlib is not installed)")


if __name__ == "__main__":
    main()
