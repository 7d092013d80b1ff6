"""ResNet-18/50 at real photo sizes: dctnet pixel, dctnet JPEG domain (exact) and PyTorch CPU, one run.

    python benchmarks/bench_resnet.py                       # the full table (several minutes on 2 cores)
    python benchmarks/bench_resnet.py --archs resnet18 --batches 1 8 --no-torch   # fewer rows

Every row runs in a fresh subprocess (so its peak resident memory,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, is its own) with random
weights and batch-norm statistics, in float32, in eval mode under no_grad:

1. inference at batch 1, 8, 32 (``--batches``): 256x256 for the pixel, JPEG-domain
   and PyTorch rows, 224x224 for the pixel and PyTorch rows (the JPEG-domain
   ResNet refuses 224: its layer2 would be 28x28 pixels, not whole blocks);
   images/s (best of ``--repeat`` after a warm-up), peak RSS, and the growth of
   RSS during the row per image (peak minus the RSS before the first batch,
   over the batch size);
2. one SGD training step of resnet18 at batch 8, 256x256 (pixel, JPEG domain, PyTorch);
3. reading photos (``--photos`` synthetic 640x480 4:2:0 JPEGs, quality 90) to a
   256x256 network input: dctnet's ``read_jpeg`` + ``resize.fit_image`` (entropy
   decode, then only the window's coefficients dequantized, upsampled and
   colour-mapped; no IDCT) and the whole picture's ``to_dct`` + ``resize.fit``,
   against a full decode by simplejpeg and by Pillow plus the same centre crop.
The JPEG-domain rows use the spatial evaluation (IDCT, pixel op, DCT): memory
stays a small multiple of the activations, never a dense exploded map.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys

import numpy as np
from common import best_seconds

ROWS_TIMEOUT = 1800


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def randomize(state, rng):
    """Random weights and non-trivial BN statistics in a dict of arrays (in place)."""
    for key, value in state.items():
        if key.endswith("running_mean"):
            value[...] = rng.normal(0, 0.2, value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif value.ndim == 1 and key.endswith("weight"):
            value[...] = rng.uniform(0.2, 1.0, value.shape)
        elif value.ndim in (2, 4):
            value[...] = rng.normal(0, np.sqrt(1.0 / np.prod(value.shape[1:])), value.shape)


# -- one row, in its own process ------------------------------------------------------------------


def row_dctnet(arch, domain, size, batch, mode, repeat):
    import dctnet
    from dctnet import functional as F, models, optim

    rng = np.random.default_rng(0)
    net = models.build_model(arch, num_classes=1000)
    randomize(net.state_dict(), rng)
    x = rng.uniform(0, 1, (batch, 3, size, size)).astype(np.float32)
    if domain == "jpeg":
        net = dctnet.convert(net)
        x = dctnet.to_dct(x)
    before = current_rss_mb()
    if mode == "infer":
        net.eval()

        def step():
            with dctnet.no_grad():
                net(dctnet.Tensor(x))
    else:
        net.train()
        opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        y = rng.integers(0, 1000, batch)

        def step():
            loss = F.cross_entropy(net(dctnet.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = best_seconds(step, repeat)
    return seconds, before


def row_torch(arch, size, batch, mode, repeat):
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from test_resnet import torch_resnet  # the plain-torch torchvision layout the tests check against

    torch.manual_seed(0)
    block, layers = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}[arch]
    net = torch_resnet(torch, block, layers, 1000)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    randomize(state, np.random.default_rng(0))
    x = torch.rand(batch, 3, size, size)
    before = current_rss_mb()
    if mode == "infer":
        net.eval()

        def step():
            with torch.no_grad():
                net(x)
    else:
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        y = torch.randint(0, 1000, (batch,))

        def step():
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return best_seconds(step, repeat), before


def row(spec):
    engine, arch, domain, size, batch, mode, repeat = spec
    if engine == "torch":
        seconds, before = row_torch(arch, size, batch, mode, repeat)
    else:
        seconds, before = row_dctnet(arch, domain, size, batch, mode, repeat)
    peak = rss_mb()
    return {"seconds": seconds, "images_per_s": batch / seconds, "peak_mb": peak,
            "mb_per_image": (peak - before) / batch}


def photos(count):
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640] / 480.0
    out = []
    for _ in range(count):
        p = rng.uniform(0, 6.3, 6)
        rgb = np.stack([0.5 + 0.4 * np.sin(7 * xx + p[c]) * np.cos(5 * yy + p[c + 3]) for c in range(3)], -1)
        rgb += 0.04 * rng.normal(size=rgb.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(255 * rgb, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90, subsampling=2)
        out.append(buf.getvalue())
    return out


def read_rows(count, repeat):
    """Seconds per photo to a 256x256 network input, for each reader."""
    import dctnet
    from dctnet import resize
    from PIL import Image

    blobs = photos(count)

    def dctnet_read():
        for b in blobs:
            resize.fit_image(dctnet.read_jpeg(b), 256, "rgb")

    def dctnet_whole():
        for b in blobs:
            img = dctnet.read_jpeg(b)
            resize.fit(img.to_dct("rgb"), 256, picture=(img.height, img.width))

    def pillow_decode():
        for b in blobs:
            a = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))
            np.ascontiguousarray(a[112:368, 192:448].transpose(2, 0, 1), dtype=np.float32)

    readers = {"dctnet read_jpeg + resize.fit_image (no IDCT)": dctnet_read,
               "dctnet read_jpeg + whole to_dct + resize.fit": dctnet_whole,
               "Pillow full decode + crop": pillow_decode}
    try:
        import simplejpeg

        def simplejpeg_decode():
            for b in blobs:
                a = simplejpeg.decode_jpeg(b, colorspace="RGB")
                np.ascontiguousarray(a[112:368, 192:448].transpose(2, 0, 1), dtype=np.float32)
        readers["simplejpeg full decode + crop"] = simplejpeg_decode
    except ImportError:
        pass
    return {name: best_seconds(fn, repeat) / count for name, fn in readers.items()}


# -- the table ------------------------------------------------------------------------------------


def run_row(spec):
    out = subprocess.run([sys.executable, __file__, "--row", json.dumps(spec)], capture_output=True, text=True,
                         timeout=ROWS_TIMEOUT)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 224])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--photos", type=int, default=32)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument("--no-train", action="store_true", help="skip the training-step rows")
    p.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row, printed as JSON
    args = p.parse_args()
    if args.row:
        print(json.dumps(row(json.loads(args.row))))
        return
    torch = None
    if not args.no_torch:
        try:
            out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                                 capture_output=True, text=True)
            torch = out.stdout.strip() if out.returncode == 0 else None
        except OSError:
            torch = None
    engines = [("dctnet", "pixel"), ("dctnet", "jpeg")] + ([("torch", "pixel")] if torch else [])
    label = {("dctnet", "pixel"): "dctnet pixel", ("dctnet", "jpeg"): "dctnet JPEG (exact)",
             ("torch", "pixel"): f"PyTorch {torch} CPU"}
    print(f"{os.cpu_count()} cores; float32; best of {args.repeat} after a warm-up; each row in a fresh process")
    print("peak = peak resident memory of the row's process; growth/img = (peak - RSS before the first batch) / batch\n")
    header = f"| {'model':8} | {'size':>4} | {'batch':>5} | {'engine':24} | {'images/s':>9} | {'peak MB':>8} | {'growth/img MB':>13} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")

    def show(arch, size, batch, key, mode):
        engine, domain = key
        if domain == "jpeg" and size % 256:
            r = {"error": "refused: layer2 would be 28x28 pixels, not whole 8x8 blocks"}
        else:
            r = run_row([engine, arch, domain, size, batch, mode, args.repeat])
        name = label[key] + (" train step" if mode == "train" else "")
        if "error" in r:
            print(f"| {arch:8} | {size:>4} | {batch:>5} | {name:24} | {r['error']} |", flush=True)
        else:
            print(f"| {arch:8} | {size:>4} | {batch:>5} | {name:24} | {r['images_per_s']:9.2f} | "
                  f"{r['peak_mb']:8.0f} | {r['mb_per_image']:13.1f} |", flush=True)

    for arch in args.archs:
        for size in args.sizes:
            for batch in args.batches:
                for key in engines:
                    if key[1] == "jpeg" and size % 256:
                        continue  # refused (see the note below the table)
                    show(arch, size, batch, key, "infer")
    if not args.no_train:
        for key in engines:
            show("resnet18", 256, 8, key, "train")
    print("\nThe JPEG-domain ResNet refuses 224x224 (layer2 would be 28x28 pixels); 256x256 runs exactly.")
    print(f"\nReading {args.photos} photos (640x480, 4:2:0, quality 90) to a 256x256 input, ms per photo:")
    for name, seconds in read_rows(args.photos, max(args.repeat, 2)).items():
        print(f"  {name:52} {1000 * seconds:7.2f}")


if __name__ == "__main__":
    main()
