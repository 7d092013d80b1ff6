"""Soak test of issue 19: mutate real model files and JPEG trees; every outcome must be right or a clear error.

    python benchmarks/soak_reliability.py [--flips 60] [--seed 0] [--verbose]

Model files: the trained models of ``examples/models`` as shipped (written
before checksums) and re-saved by this dctnet (with Fletcher-32 checksums),
copied to a temporary folder, then truncated, byte-flipped, their datasets
given other dtypes or shapes or NaN, their JSON changed or nested deeply, and
saves killed mid-write. Data sets: a folder tree of the bundled CIFAR-10
sample, with files moved between classes, renamed, replaced, truncated,
flipped, added and deleted under a cache, and the cache itself damaged. Inputs:
pixels into a JPEG-domain model and the reverse, missing batch axis, wrong
channels, empty batches, NaN training, bad optimizer options.

Each case ends as one of:

- ``correct``: the result equals the reference (the model's logits on fixed
  images, bit for bit or, after a lossless float64 cast, to 1e-5; a data set
  loaded through its cache equals the same tree read without one);
- ``clear error``: a ValueError or TypeError (or FileNotFoundError naming the
  path) with a message;
- ``changed, undetectable``: a model file without checksums (written before
  them) whose weight bytes were flipped loads with other (finite) weights, or a
  JPEG edited in place with its name, size and mtime restored is still read
  from the cache (nothing the file or the cache holds can tell);
- ``WRONG``: a different result without an error, or an unclear error.

It prints the counts by outcome and section, lists every WRONG case, and exits
1 if there is one.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

import dctnet
from dctnet import Tensor, nn, optim, training
from dctnet.datasets import JpegDataset, paths

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "examples" / "models").glob("*.h5"))
CLEAR = (ValueError, TypeError)
counts = collections.Counter()
wrong = []
cases = []  # (section, case, outcome, detail), printed with --verbose


def record(section, case, outcome, detail=""):
    counts[(section, outcome)] += 1
    cases.append((section, case, outcome, detail))
    if outcome == "WRONG":
        wrong.append(f"{section}: {case}: {detail}")


def classify_error(exc, path=None):
    message = str(exc)
    if isinstance(exc, CLEAR) and message:
        return "clear error"
    if isinstance(exc, FileNotFoundError) and path is not None and str(path) in message:
        return "clear error"
    return "WRONG"


# ----------------------------------------------------------------------------- model files


def logits(model, x):
    with dctnet.no_grad():
        return dctnet.asnumpy(model.eval()(Tensor(x)).data)


def check_model(section, case, path, reference, x, checksummed, tolerance=0.0):
    try:
        model = dctnet.load(path)
        out = logits(model, x)
    except Exception as exc:  # noqa: BLE001 - classifying every outcome is the point
        outcome = classify_error(exc, path)
        record(section, case, outcome, f"{type(exc).__name__}: {exc}")
        return
    if out.shape == reference.shape and np.allclose(out, reference, rtol=tolerance, atol=tolerance):
        record(section, case, "correct")
    elif not checksummed:
        record(section, case, "changed, undetectable")
    else:
        record(section, case, "WRONG", f"loaded, logits differ by {np.abs(out - reference).max()}")


def rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def replace_dataset(name, data):
    def edit(f):
        del f["state"][name]
        f["state"].create_dataset(name, data=data)
    return edit


def set_attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


def edit_architecture(change):
    def edit(f):
        cfg = json.loads(f.attrs["architecture"])
        change(cfg)
        f.attrs["architecture"] = json.dumps(cfg)
    return edit


def first_of(cfg, kind):
    """The first sub-config of type ``kind`` (depth first)."""
    if cfg.get("type") == kind:
        return cfg
    for child in cfg.get("children", {}).values():
        found = first_of(child, kind)
        if found is not None:
            return found
    return None


def soak_models(tmp, rng, flips):
    for original in MODELS:
        model = dctnet.load(original)
        x = rng.uniform(0, 255, (2, _in_channels(model), 32, 32)).astype(np.float32)
        reference = logits(model, x)
        resaved = tmp / f"resaved-{original.name}"
        dctnet.save(model, resaved)
        for source, checksummed in ((original, False), (resaved, True)):
            section = f"model file {source.name}"
            data = source.read_bytes()
            work = tmp / "work.h5"
            for fraction in np.linspace(0, 0.99, 12):  # truncation
                work.write_bytes(data[: int(len(data) * fraction)])
                check_model(section, f"truncated to {fraction:.0%}", work, reference, x, checksummed)
            for _ in range(flips):  # flipped bytes
                damaged = bytearray(data)
                at = int(rng.integers(len(damaged)))
                damaged[at] ^= 1 << int(rng.integers(8))
                work.write_bytes(bytes(damaged))
                check_model(section, f"bit flip at byte {at}", work, reference, x, checksummed)
            state = model.state_dict()
            weight = next(name for name in state if name.endswith("conv1.weight"))
            mutations = {
                **{f"{weight} as {np.dtype(t).name}": replace_dataset(weight, state[weight].astype(t))
                   for t in (np.int32, np.bool_, np.complex64, np.float16, np.uint8)},
                f"{weight} transposed": replace_dataset(weight, state[weight].swapaxes(0, 1).copy()),
                f"{weight} flattened": replace_dataset(weight, state[weight].ravel()),
                f"{weight} one row more": replace_dataset(weight, np.concatenate([state[weight], state[weight][:1]])),
                f"{weight} with a NaN": replace_dataset(weight, np.where(np.arange(state[weight].size).reshape(
                    state[weight].shape) == 0, np.nan, state[weight]).astype(np.float32)),
                f"{weight} with an inf": replace_dataset(weight, np.full_like(state[weight], np.inf)),
                "num_batches_tracked as float": replace_dataset(
                    next(n for n in state if n.endswith("num_batches_tracked")), np.float32(3)),
                "architecture not JSON": set_attr("architecture", "{not json"),
                "architecture nested 100,000 deep": set_attr("architecture", "[" * 100_000 + "]" * 100_000),
                "metadata nested 100,000 deep": set_attr("metadata", "{\"a\":" * 50_000 + "1" + "}" * 50_000),
                "metadata a list": set_attr("metadata", "[1, 2]"),
                "format attribute removed": lambda f: f.attrs.__delitem__("format"),
                "format_version 99": set_attr("format_version", 99),
                "unknown layer type": edit_architecture(lambda c: c["children"]["1"].update(type="NoSuchLayer")),
                "Conv2d declares 100,000 input channels": edit_architecture(
                    lambda c: first_of(c, "Conv2d").update(in_channels=100_000)),
                "Linear declares 300,000 x 300,000": edit_architecture(
                    lambda c: first_of(c, "Linear").update(in_features=300_000, out_features=300_000)),
                "Linear declares -5 inputs": edit_architecture(lambda c: first_of(c, "Linear").update(in_features=-5)),
                "Linear declares 2.5 inputs": edit_architecture(
                    lambda c: first_of(c, "Linear").update(in_features=2.5)),
                "ReLU made ASMReLU(0)": edit_architecture(lambda c: first_of(c, "ReLU").update(type="ASMReLU",
                                                                                                frequencies=0)),
                "a layer's children a list": edit_architecture(lambda c: c["children"]["1"].update(children=[1])),
                "a config argument unknown": edit_architecture(lambda c: first_of(c, "Conv2d").update(colour=1)),
                "modules nested 300 deep": edit_architecture(lambda c: c.update(_nest(300))),
                "a weight removed": lambda f: f["state"].__delitem__(weight),
                "an extra weight": lambda f: f["state"].create_dataset("extra", data=np.zeros(3, np.float32)),
                "a weight as a string": replace_dataset(weight, np.bytes_("weights")),
                "Normalize with 2 entries": edit_architecture(
                    lambda c: first_of(c, "Normalize").update(mean=[1.0, 2.0], std=[1.0, 1.0])),
            }
            for case, edit in mutations.items():
                shutil.copy(source, work)
                rewrite(work, edit)
                check_model(section, case, work, reference, x, True)
            shutil.copy(source, work)
            rewrite(work, replace_dataset(weight, state[weight].astype(np.float64)))
            check_model(section, f"{weight} alone as float64 (mixed dtypes)", work, reference, x, True, tolerance=1e-5)
        soak_killed_saves(tmp, original)


def _in_channels(model):
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels


def _nest(depth):
    cfg = {"type": "ReLU"}
    for _ in range(depth):
        cfg = {"type": "Sequential", "children": {"0": cfg}}
    return cfg


def soak_killed_saves(tmp, original, kills=5):
    """Saves killed mid-write (SIGKILL) leave temp files; the next save removes the stale ones."""
    section = "killed saves"
    folder = tmp / "kills"
    folder.mkdir(exist_ok=True)
    target = folder / "model.h5"
    shutil.copy(original, target)
    script = ("import sys, dctnet\nm = dctnet.load(sys.argv[1])\nprint('ready', flush=True)\n"
              "while True:\n    dctnet.save(m, sys.argv[2])\n")
    for k in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", script, str(original), str(target)], stdout=subprocess.PIPE)
        proc.stdout.readline()
        time.sleep(0.05 + 0.07 * k)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = list(folder.glob(".model.h5.*.tmp"))
    try:
        dctnet.load(target)
        record(section, "the target after the kills", "correct")
    except Exception as exc:  # noqa: BLE001
        record(section, "the target after the kills", "WRONG", f"{type(exc).__name__}: {exc}")
    for p in leftovers:  # they are fresh: age them past the stale limit
        os.utime(p, (time.time() - 3600,) * 2)
    dctnet.save(dctnet.load(original), target)
    left = list(folder.glob(".model.h5.*.tmp"))
    record(section, f"{len(leftovers)} temp files left by {kills} kills, {len(left)} after the next save",
           "correct" if not left else "WRONG", str(left))


# ----------------------------------------------------------------------------- data sets


def make_tree(folder, per_class=3):
    with paths.bundled("cifar10-sample.zip") as zpath, zipfile.ZipFile(zpath) as z:
        taken = collections.Counter()
        for name in sorted(n for n in z.namelist() if n.endswith(".jpg")):
            cls = name.split("/")[-2]
            if taken[cls] < per_class:
                taken[cls] += 1
                target = folder / "test" / cls / name.split("/")[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
    return folder


def same_dataset(a, b):
    if a.files != b.files or not np.array_equal(a.labels, b.labels):
        return False
    pa = a.data.components + (a.data.qtables,) if a.form == "coefficients" else (a.data,)
    pb = b.data.components + (b.data.qtables,) if b.form == "coefficients" else (b.data,)
    return all(np.array_equal(x, y) for x, y in zip(pa, pb))


def check_tree(section, case, tree, cache, form):
    # The cache compares names, sizes and mtimes, not contents: an edit that keeps all three is invisible.
    invisible = "mtime restored" in case
    try:
        fresh = JpegDataset(tree, "test", form)
    except Exception as exc:  # noqa: BLE001
        record(section, case + " (without cache)", classify_error(exc, tree), f"{type(exc).__name__}: {exc}")
        fresh = None
    try:
        cached = JpegDataset(tree, "test", form, cache=cache)
    except Exception as exc:  # noqa: BLE001
        record(section, case, classify_error(exc, cache), f"{type(exc).__name__}: {exc}")
        return
    if fresh is not None and same_dataset(cached, fresh):
        record(section, case, "correct")
    elif invisible:
        record(section, case, "changed, undetectable")
    elif fresh is None:
        record(section, case, "WRONG", "the cache gave a data set the files do not")
    else:
        record(section, case, "WRONG", "the cached data set differs from the files")


def soak_datasets(tmp, rng, flips):
    for form in ("coefficients", "pixels"):
        section = f"data set ({form})"
        base = make_tree(tmp / f"tree-{form}-base")
        cases = {
            "unchanged": lambda t: None,
            "a file moved to another class, mtime kept": lambda t: _move(t, "cat", "dog", keep_mtime=True),
            "a file moved to another class": lambda t: _move(t, "bird", "ship"),
            "a file renamed within its class": lambda t: _rename(t, "frog"),
            "a file replaced by another of its class": lambda t: _replace(t, "horse"),
            "a file deleted": lambda t: next((t / "test" / "truck").iterdir()).unlink(),
            "a file added": lambda t: shutil.copy(next((t / "test" / "cat").iterdir()),
                                                  t / "test" / "deer" / "new.jpg"),
            "a class emptied": lambda t: [p.unlink() for p in (t / "test" / "airplane").iterdir()],
            "a file truncated": lambda t: _truncate(t, "automobile"),
            "a text file named .jpg": lambda t: (t / "test" / "dog" / "note.jpg").write_text("not a JPEG"),
            "two files swapped between classes": lambda t: _swap(t, "cat", "dog"),
        }
        for i in range(flips // 4):
            cases[f"bit flip {i}"] = lambda t: _flip(t, rng, keep_mtime=False)
            cases[f"bit flip {i} in place, mtime restored"] = lambda t: _flip(t, rng, keep_mtime=True)
        for case, mutate in cases.items():
            tree = tmp / f"tree-{form}"
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(base, tree, copy_function=shutil.copy2)
            cache = tmp / f"cache-{form}.h5"
            cache.unlink(missing_ok=True)
            JpegDataset(tree, "test", form, cache=cache)  # the cache of the tree before the change
            time.sleep(0.01)
            mutate(tree)
            check_tree(section, case, tree, cache, form)
        # The cache file itself damaged.
        tree = tmp / f"tree-{form}"
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(base, tree, copy_function=shutil.copy2)
        cache = tmp / f"cache-{form}.h5"
        cache.unlink(missing_ok=True)
        JpegDataset(tree, "test", form, cache=cache)
        good = cache.read_bytes()
        damages = {
            "cache truncated": lambda: cache.write_bytes(good[: len(good) // 2]),
            "cache labels tampered": lambda: _tamper(cache, "labels", lambda a: a[::-1].copy()),
            "cache files tampered": lambda: _tamper(cache, "files", lambda a: a[::-1].copy()),
            "cache not HDF5": lambda: cache.write_bytes(b"plain text"),
        }
        for i in range(flips // 4):
            damages[f"cache bit flip {i}"] = lambda: cache.write_bytes(_flipped(good, rng))
        for case, damage in damages.items():
            cache.write_bytes(good)
            damage()
            check_tree(section, case, tree, cache, form)


def _move(tree, source, dest, keep_mtime=False):
    moved = sorted((tree / "test" / source).iterdir())[0]
    st = moved.stat()
    target = tree / "test" / dest / ("moved-" + moved.name)
    os.rename(moved, target)
    if keep_mtime:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _rename(tree, cls):
    p = sorted((tree / "test" / cls).iterdir())[0]
    st = p.stat()
    q = p.with_name("renamed-" + p.name)
    os.rename(p, q)
    os.utime(q, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace(tree, cls):
    a, b = sorted((tree / "test" / cls).iterdir())[:2]
    st = a.stat()
    a.write_bytes(b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only the size (and digest) differ


def _truncate(tree, cls):
    p = sorted((tree / "test" / cls).iterdir())[0]
    p.write_bytes(p.read_bytes()[:300])


def _swap(tree, a, b):
    pa = sorted((tree / "test" / a).iterdir())[0]
    pb = sorted((tree / "test" / b).iterdir())[0]
    tmp = pa.with_name("swap.tmp")
    os.rename(pa, tmp)
    os.rename(pb, tree / "test" / a / pb.name)
    os.rename(tmp, tree / "test" / b / pa.name)


def _flipped(data, rng):
    data = bytearray(data)
    at = int(rng.integers(len(data)))
    data[at] ^= 1 << int(rng.integers(8))
    return bytes(data)


def _flip(tree, rng, keep_mtime):
    files = sorted(tree.rglob("*.jpg"))
    p = files[int(rng.integers(len(files)))]
    st = p.stat()
    p.write_bytes(_flipped(p.read_bytes(), rng))
    if keep_mtime:  # same name, size and mtime: no stamp can tell
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _tamper(cache, name, change):
    with h5py.File(cache, "r+") as f:
        data = change(f[name][()])
        del f[name]
        f.create_dataset(name, data=data, dtype=h5py.string_dtype() if name == "files" else None)


# ----------------------------------------------------------------------------- inputs and training


def expect_error(section, case, fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        record(section, case, classify_error(exc), f"{type(exc).__name__}: {exc}")
    else:
        record(section, case, "WRONG", "accepted")


def soak_inputs(rng):
    section = "inputs"
    model = dctnet.load(MODELS[0])
    jmodel = dctnet.convert(model)
    c = _in_channels(model)
    pixels = rng.uniform(0, 255, (2, c, 32, 32)).astype(np.float32)
    expect_error(section, "pixels into the JPEG-domain model", lambda: jmodel(Tensor(pixels)))
    expect_error(section, "coefficients into the pixel model", lambda: model(Tensor(dctnet.to_dct(pixels))))
    expect_error(section, "no batch axis (pixels)", lambda: model(Tensor(pixels[0])))
    expect_error(section, "no batch axis (coefficients)", lambda: jmodel(Tensor(dctnet.to_dct(pixels)[0])))
    other = 3 if c == 1 else 1
    expect_error(section, f"{other} channels", lambda: model(Tensor(np.zeros((2, other, 32, 32), np.float32))))
    expect_error(section, f"{other} channels (JPEG domain)",
                 lambda: jmodel(Tensor(np.zeros((2, other, 4, 4, 64), np.float32))))
    for name, net, inputs in (("", model, pixels), (" (JPEG domain)", jmodel, dctnet.to_dct(pixels))):
        out = net.eval()(Tensor(inputs[:0]))
        record(section, "empty batch" + name, "correct" if out.shape == (0, 10) else "WRONG", str(out.shape))
        expect_error(section, "empty batch in training mode" + name, lambda net=net, inputs=inputs: net.train()(
            Tensor(inputs[:0])))
        net.eval()
    for bad in (0, 16, 2.5, -1, True, "6"):
        expect_error(section, f"ASMReLU({bad!r})", lambda bad=bad: nn.ASMReLU(bad))
        expect_error(section, f"convert(relu_frequencies={bad!r})", lambda bad=bad: dctnet.convert(model, bad))
    for n in (np.int64(6), np.int32(3), 6):
        try:
            dctnet.convert(model, relu_frequencies=n)
            nn.ASMReLU(n)
            record(section, f"frequencies {n!r}", "correct")
        except Exception as exc:  # noqa: BLE001
            record(section, f"frequencies {n!r}", "WRONG", f"{type(exc).__name__}: {exc}")
    for shape in ((2, 3, 0, 8), (2, 3, 8, 0), (0, 3, 8, 8)):
        out = dctnet.to_dct(np.zeros(shape, np.float32))
        back = dctnet.from_dct(out)
        ok = out.shape == shape[:-2] + (shape[-2] // 8, shape[-1] // 8, 64) and back.shape == shape
        record(section, f"to_dct/from_dct of {shape}", "correct" if ok else "WRONG", f"{out.shape} {back.shape}")
    params = model.parameters()
    for kwargs in (dict(lr=np.inf), dict(lr=np.nan), dict(lr=-1), dict(lr=0.1, momentum=np.nan),
                   dict(lr=0.1, weight_decay=np.nan), dict(lr=0.1, weight_decay=np.inf),
                   dict(lr=0.1, dampening=np.nan)):
        expect_error(section, f"SGD({kwargs})", lambda kwargs=kwargs: optim.SGD(params, **kwargs))
    for kwargs in (dict(lr=np.inf), dict(eps=np.nan), dict(weight_decay=np.nan), dict(betas=(np.nan, 0.9))):
        expect_error(section, f"Adam({kwargs})", lambda kwargs=kwargs: optim.Adam(params, **kwargs))


def soak_training(tmp, rng):
    section = "training"
    x = rng.uniform(0, 255, (32, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    for case in ("NaN pixel", "inf pixel", "lr 1e12"):
        nn.manual_seed(0)
        model = nn.Sequential(nn.Normalize([128.0], [64.0]), nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
                              nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(4, 3))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        last = tmp / "last.h5"
        training.fit(model, opt, (x, y), epochs=1, batch_size=8, checkpoint=last, log=None)
        good = last.read_bytes()
        bad = x.copy()
        if case == "NaN pixel":
            bad[int(rng.integers(32)), 0, 3, 3] = np.nan
        elif case == "inf pixel":
            bad[int(rng.integers(32)), 1, 2, 2] = np.inf
        else:
            for group in opt.param_groups:
                group["lr"] = 1e12
        try:
            training.fit(model, opt, (bad, y), epochs=4, start=1, history=[], batch_size=8, checkpoint=last, log=None)
        except training.NonFiniteError as exc:
            intact = last.read_bytes() == good and all(np.isfinite(p.data).all() for p in model.parameters())
            named = "epoch" in str(exc)
            record(section, case, "clear error" if intact and named else "WRONG", str(exc))
        except Exception as exc:  # noqa: BLE001
            record(section, case, "WRONG", f"{type(exc).__name__}: {exc}")
        else:
            finite = all(np.isfinite(p.data).all() for p in model.parameters())
            record(section, case, "correct" if finite else "WRONG", "ran to the end")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flips", type=int, default=60, help="bit flips per model file (a quarter as many per tree)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="print every case with its outcome and message")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    np.seterr(all="ignore")  # diverging training and damaged weights overflow on purpose
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        soak_models(tmp, rng, args.flips)
        soak_datasets(tmp, rng, args.flips)
        soak_inputs(rng)
        soak_training(tmp, rng)
    if args.verbose:
        for section, case, outcome, detail in cases:
            print(f"{section} | {case} | {outcome} | {detail[:300]}")
    sections = sorted({s for s, _ in counts})
    outcomes = ["correct", "clear error", "changed, undetectable", "WRONG"]
    width = max(len(s) for s in sections)
    print(f"{'section':<{width}}  " + "  ".join(f"{o:>21}" for o in outcomes))
    for s in sections:
        print(f"{s:<{width}}  " + "  ".join(f"{counts[(s, o)]:>21}" for o in outcomes))
    totals = collections.Counter()
    for (_, o), n in counts.items():
        totals[o] += n
    print(f"{'total':<{width}}  " + "  ".join(f"{totals[o]:>21}" for o in outcomes))
    print(f"{sum(totals.values())} cases in {time.perf_counter() - tic:.0f} s")
    for line in wrong:
        print("WRONG:", line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
