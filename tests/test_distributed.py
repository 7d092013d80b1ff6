"""dctnet.distributed: the one-process world in-process, and two MPI processes via mpiexec.

The multi-process tests write a helper script to ``tmp_path`` and run it with
``mpiexec -n 2 python -m mpi4py``; each rank saves its results with NumPy,
and the test compares them with one process on the whole batch, computed here.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import distributed as dist, functional as F, nn, optim
from dctnet.models import paper_resnet

ROOT = Path(__file__).resolve().parents[1]


def _mpiexec():
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install mpi4py mpich)")
    for candidate in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip("no mpiexec next to the Python executable or on PATH")


def _launch(script, tmp_path, timeout=120, n=2):
    path = tmp_path / "helper.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", str(path), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


# ----------------------------------------------------------------------------- one process


def test_single_process_world_is_a_no_op():
    assert dist.init() == (0, 1)
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    dist.barrier()
    nn.manual_seed(0)
    model = paper_resnet(in_channels=1, widths=(2, 2, 2))
    x = np.random.default_rng(0).normal(size=(2, 1, 32, 32)).astype(np.float32)
    F.cross_entropy(model(dctnet.Tensor(x)), np.array([1, 2])).backward()
    before = [p.grad.copy() for p in model.parameters()]
    ids = [id(p.grad) for p in model.parameters()]
    dist.allreduce_gradients(model)
    dist.broadcast_parameters(model, optim.SGD(model.parameters(), lr=0.1))
    assert [id(p.grad) for p in model.parameters()] == ids
    for a, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, p.grad)
    np.testing.assert_array_equal(dist.allreduce(np.arange(3.0)), np.arange(3.0))
    assert dist.broadcast_object({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("n, world, drop_last", [(10, 1, False), (10, 3, False), (10, 3, True), (2, 4, False)])
def test_sampler_shares(n, world, drop_last):
    shares = [dist.DistributedSampler(n, seed=3, drop_last=drop_last, rank=r, world_size=world).indices(5)
              for r in range(world)]
    expected = len(dist.DistributedSampler(n, drop_last=drop_last, rank=0, world_size=world))
    assert [len(s) for s in shares] == [expected] * world
    flat = np.concatenate(shares)
    if drop_last:
        assert len(flat) == n // world * world and len(set(flat)) == len(flat)
    else:
        assert set(flat) == set(range(n)) and len(flat) == -(-n // world) * world
    perm = np.random.default_rng(3 + 5).permutation(n)
    if world == 1:
        np.testing.assert_array_equal(shares[0], perm)
    with pytest.raises(ValueError):
        dist.DistributedSampler(n, rank=world, world_size=world)


def test_sync_batchnorm_conversion_shares_parameters_and_round_trips():
    nn.manual_seed(0)
    model = paper_resnet(in_channels=1, widths=(2, 2, 2))
    synced = dist.convert_sync_batchnorm(model)
    kinds = {type(m).__name__ for m in synced.modules()}
    assert "SyncBatchNorm2d" in kinds and "BatchNorm2d" not in kinds
    assert "SyncBatchNorm2d" not in {type(m).__name__ for m in model.modules()}  # unchanged
    assert [id(p) for p in synced.parameters()] == [id(p) for p in model.parameters()]
    assert list(synced.state_dict()) == list(model.state_dict())
    assert nn.from_config(synced.config()).config() == synced.config()
    # dctnet.convert takes plain BN: revert (sharing), convert, then sync again.
    jpeg = dist.convert_sync_batchnorm(dctnet.convert(dist.revert_sync_batchnorm(synced)))
    assert "SyncDCTBatchNorm" in {type(m).__name__ for m in jpeg.modules()}
    assert [id(p) for p in jpeg.parameters()] == [id(p) for p in model.parameters()]
    # One process: the synchronized model computes what the plain one does.
    x = np.random.default_rng(1).normal(size=(3, 1, 32, 32))
    model.astype(np.float64)
    a = model(dctnet.Tensor(x)).data
    b = jpeg(dctnet.to_dct(x)).data
    np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("sync, plain, make, bn", [
    (dist.SyncBatchNorm2d, nn.BatchNorm2d, lambda x: x, F.batch_norm),
    (dist.SyncDCTBatchNorm, nn.DCTBatchNorm, dctnet.to_dct, F.dct_batch_norm),
], ids=["pixels", "dct"])
def test_sync_batchnorm_in_one_process_is_plain_batchnorm_and_gradchecks(sync, plain, make, bn):
    rng = np.random.default_rng(4)  # not gradcheck's seed: x must not lie along its probe direction
    x = make(rng.normal(1.0, 2.0, size=(3, 2, 8, 8)))
    a, b = sync(2).astype(np.float64), plain(2).astype(np.float64)
    for m in (a, b):
        m.weight.data[...] = [0.5, 2.0]
        m.bias.data[...] = [0.1, -0.3]
    np.testing.assert_array_equal(a(dctnet.Tensor(x)).data, b(dctnet.Tensor(x)).data)
    np.testing.assert_array_equal(a.running_var, b.running_var)
    t = dctnet.Tensor(x, requires_grad=True)
    # The Sync layer's own reduction hook (the allreduce; the identity in a one-process world).
    assert dctnet.gradcheck(lambda t, w, bias: bn(t, None, None, w, bias, True, reduce=sync.reduce),
                            [t, a.weight, a.bias])
    assert dctnet.gradcheck(lambda t: a(t), [t])  # the module in training mode


# ----------------------------------------------------------------------------- two processes

TRAIN = """
import sys
import numpy as np
import dctnet
from dctnet import distributed as dist, functional as F, nn, optim
from dctnet.models import paper_resnet

out = sys.argv[1]
rank, world = dist.init()
assert world == 2, world
rng = np.random.default_rng(7)
x = rng.normal(size=(8, 1, 32, 32))
y = rng.integers(0, 10, size=8)
results = {}
for domain in ("pixel", "jpeg"):
    nn.manual_seed(rank)  # different on purpose: broadcast_parameters makes them equal
    model = paper_resnet(in_channels=1, widths=(4, 8, 8)).astype(np.float64)
    inputs = x
    if domain == "jpeg":
        model, inputs = dctnet.convert(model), dctnet.to_dct(x)
    model = dist.convert_sync_batchnorm(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    dist.broadcast_parameters(model, opt)
    local = inputs[rank::world]
    for step in range(3):
        loss = F.cross_entropy(model(dctnet.Tensor(local)), y[rank::world])
        opt.zero_grad()
        loss.backward()
        dist.allreduce_gradients(model)
        if step == 0:
            for i, p in enumerate(model.parameters()):
                results[f"{domain}/grad/{i}"] = p.grad
        opt.step()
    for key, value in model.state_dict().items():
        results[f"{domain}/state/{key}"] = np.asarray(value)
    # A fresh optimizer on rank 1 takes rank 0's momentum buffers.
    fresh = opt if rank == 0 else optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    dist.broadcast_parameters(model, fresh)
    for key, value in fresh.state_dict()["state"].items():
        results[f"{domain}/opt/{key}"] = value
    results[f"{domain}/lr"] = np.array(fresh.param_groups[0]["lr"])
sampler = dist.DistributedSampler(11, seed=4)
results["sampler"] = sampler.indices(2)
results["sum"] = dist.allreduce(np.array([rank + 1.0]))
np.savez(f"{out}/rank{rank}.npz", **results)
"""


def _reference(domain, x, y):
    nn.manual_seed(0)
    model = paper_resnet(in_channels=1, widths=(4, 8, 8)).astype(np.float64)
    inputs = x
    if domain == "jpeg":
        model, inputs = dctnet.convert(model), dctnet.to_dct(x)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads = None
    for step in range(3):
        loss = F.cross_entropy(model(dctnet.Tensor(inputs)), y)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grads = [p.grad.copy() for p in model.parameters()]
        opt.step()
    state = {k: np.asarray(v) for k, v in model.state_dict().items()}
    momentum = {k: v for k, v in opt.state_dict()["state"].items()}
    return grads, state, momentum


def test_two_processes_train_like_one(tmp_path):
    proc, _ = _launch(TRAIN, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 1, 32, 32))
    y = rng.integers(0, 10, size=8)
    for domain in ("pixel", "jpeg"):
        grads, state, momentum = _reference(domain, x, y)
        for res in ranks:
            # (b) the averaged gradients are the one-process gradients of the mean loss
            for i, g in enumerate(grads):
                np.testing.assert_allclose(res[f"{domain}/grad/{i}"], g, rtol=0, atol=1e-10,
                                           err_msg=f"{domain} grad {i}")
            # (a) parameters and running statistics after 3 steps
            for key, value in state.items():
                np.testing.assert_allclose(res[f"{domain}/state/{key}"], value, rtol=0, atol=1e-10,
                                           err_msg=f"{domain} {key}")
            for key, value in momentum.items():
                np.testing.assert_allclose(res[f"{domain}/opt/{key}"], value, rtol=0, atol=1e-10)
            assert float(res[f"{domain}/lr"]) == 0.1  # the configuration came from rank 0
        assert int(state["1.bn1.num_batches_tracked"]) == 3
    # (c) the sampler's shares are disjoint and cover the epoch (11 -> padded to 12)
    a, b = ranks[0]["sampler"], ranks[1]["sampler"]
    assert len(a) == len(b) == 6 and set(a) | set(b) == set(range(11))
    assert len(set(a) & set(b)) == 1  # the one wrapped-around index
    assert float(ranks[0]["sum"][0]) == float(ranks[1]["sum"][0]) == 3.0


UNEVEN = """
import sys
import numpy as np
import dctnet
from dctnet import distributed as dist

out = sys.argv[1]
rank, world = dist.init()
x = np.random.default_rng(3).normal(1.0, 2.0, size=(5, 2, 8, 8))
g = np.cos(3 * x)
results = {}
for name, cls, make in (("pixels", dist.SyncBatchNorm2d, lambda a: a), ("dct", dist.SyncDCTBatchNorm, dctnet.to_dct)):
    bn = cls(2).astype(np.float64)
    share = slice(0, 5) if rank == 0 else slice(5, 5)  # rank 1 holds no images at all
    t = dctnet.Tensor(make(x)[share], requires_grad=True)
    bn(t).backward(make(g)[share])
    results.update({f"{name}/out": bn(t).data, f"{name}/grad": t.grad, f"{name}/running_var": bn.running_var,
                    f"{name}/weight_grad": bn.weight.grad})
np.savez(f"{out}/rank{rank}.npz", **results)
"""


def test_synchronized_batchnorm_with_an_empty_share(tmp_path):
    proc, _ = _launch(UNEVEN, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    x = np.random.default_rng(3).normal(1.0, 2.0, size=(5, 2, 8, 8))
    g = np.cos(3 * x)
    for name, cls, make in (("pixels", nn.BatchNorm2d, lambda a: a), ("dct", nn.DCTBatchNorm, dctnet.to_dct)):
        bn = cls(2).astype(np.float64)
        t = dctnet.Tensor(make(x), requires_grad=True)
        bn(t).backward(make(g))
        out = bn(t).data
        np.testing.assert_allclose(ranks[0][f"{name}/out"], out, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ranks[0][f"{name}/grad"], t.grad, rtol=0, atol=1e-12)
        assert ranks[1][f"{name}/out"].shape == ranks[1][f"{name}/grad"].shape == (0,) + out.shape[1:]
        for res in ranks:  # the same running statistics on every rank: the whole batch's
            np.testing.assert_allclose(res[f"{name}/running_var"], bn.running_var, rtol=1e-13)
        np.testing.assert_allclose(ranks[0][f"{name}/weight_grad"] + ranks[1][f"{name}/weight_grad"], bn.weight.grad,
                                   rtol=1e-12)


FAIL = """
import sys
import numpy as np
from dctnet import distributed as dist

rank, world = dist.init()
if rank == 1:
    raise RuntimeError("deliberate failure on rank 1")
buf = np.zeros(4)
dist._bcast_inplace(buf, root=1)  # rank 0 would wait forever for rank 1
np.save(f"{sys.argv[1]}/rank{rank}.npy", buf)
"""


def test_exception_on_one_rank_ends_the_job(tmp_path):
    proc, seconds = _launch(FAIL, tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "deliberate failure" in proc.stderr + proc.stdout
    assert seconds < 20, f"the job took {seconds:.1f} s to end"


def test_convert_maps_sync_batchnorm_to_its_dct_form():
    from dctnet import distributed as dist

    model = dist.convert_sync_batchnorm(dctnet.models.paper_resnet(in_channels=1, widths=(2, 4, 4)))
    jpeg = dctnet.convert(model)
    kinds = {type(m).__name__ for m in jpeg.modules()}
    assert "SyncDCTBatchNorm" in kinds and not kinds & {"SyncBatchNorm2d", "BatchNorm2d", "DCTBatchNorm"}
    assert [id(p) for p in jpeg.parameters()] == [id(p) for p in model.parameters()]


# ----------------------------------------------------------------------------- the dataset cache under MPI

SAMPLE = ROOT / "dctnet" / "data" / "cifar10-sample.zip"

CACHE = """
import sys
from pathlib import Path
import numpy as np
import dctnet
from dctnet import datasets, distributed as dist
from dctnet.datasets import forms

out = sys.argv[1]
rank, world = dist.init()
assert world == 2, world
calls = []
read_stacked = forms.read_stacked
forms.read_stacked = lambda files: calls.extend(files) or read_stacked(files)  # counts the files this rank decodes
sample = Path(dctnet.__file__).parent / "data" / "cifar10-sample.zip"
ds = datasets.JpegDataset(sample, "test", "coefficients", cache=f"{out}/cache/c.h5", progress=True, comm=dist)
np.savez(f"{out}/rank{rank}.npz", *ds.data.components, ds.data.qtables, labels=ds.labels, calls=len(calls))
"""


def _arrays(ds):
    return [*ds.data.components, ds.data.qtables]


def _assert_same(arrays, reference):
    assert len(arrays) == len(reference)
    for a, b in zip(arrays, reference):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_two_processes_build_the_cache_in_parallel(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    from dctnet import datasets
    from dctnet.datasets import forms

    proc, _ = _launch(CACHE, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache = tmp_path / "cache" / "c.h5"
    shards = [cache.with_name(f"c.h5.shard{r}-of-2.h5") for r in range(2)]
    assert sorted(p.name for p in cache.parent.iterdir()) == sorted(p.name for p in [cache, *shards])  # no temporaries
    reference = datasets.JpegDataset(SAMPLE, "test", "coefficients")  # one process, no cache
    n = len(reference)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    assert [int(res["calls"]) for res in ranks] == [n // 2, n - n // 2]  # each rank decoded its share only
    for res in ranks:
        _assert_same([res[f"arr_{i}"] for i in range(4)], _arrays(reference))
        np.testing.assert_array_equal(res["labels"], reference.labels)
    with h5py.File(cache, "r") as f:
        names = list(f.attrs["arrays"])
        assert names == ["component0", "component1", "component2", "qtables"]
        assert all(f[name].is_virtual for name in names) and not f["labels"].is_virtual
        assert sorted(m.file_name for m in f["qtables"].virtual_sources()) == [p.name for p in shards]  # relative
    for r, shard in enumerate(shards):
        with h5py.File(shard, "r") as f:
            assert f.attrs["format"] == "dctnet.datasets.cache" and len(f["qtables"]) == n // 2
            assert not f["qtables"].is_virtual

    # Read back here, in one process and without decoding: the arrays of a single-process build.
    def no_decoding(*args):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr(forms, "read_stacked", no_decoding)
    monkeypatch.setattr(dctnet.jpeg, "read_jpeg", no_decoding)
    cached = datasets.JpegDataset(SAMPLE, "test", "coefficients", cache=cache)
    _assert_same(_arrays(cached), _arrays(reference))
    assert (cached.files, cached.classes) == (reference.files, reference.classes)
    np.testing.assert_array_equal(cached.labels, reference.labels)

    # A second two-process run loads the cache: nothing decoded, nothing rewritten.
    stamps = [p.stat().st_mtime_ns for p in [cache, *shards]]
    proc, _ = _launch(CACHE, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.stat().st_mtime_ns for p in [cache, *shards]] == stamps
    for r in range(2):
        res = dict(np.load(tmp_path / f"rank{r}.npz"))
        assert int(res["calls"]) == 0
        _assert_same([res[f"arr_{i}"] for i in range(4)], _arrays(reference))

    # The folder moves as a whole (relative shard names); a lost shard is an error, not zeros.
    moved = tmp_path / "moved"
    cache.parent.rename(moved)
    _assert_same(_arrays(datasets.JpegDataset(SAMPLE, "test", "coefficients", cache=moved / "c.h5")),
                 _arrays(reference))
    (moved / shards[1].name).unlink()
    with pytest.raises(ValueError, match="shard"):
        datasets.JpegDataset(SAMPLE, "test", "coefficients", cache=moved / "c.h5")


CACHE_FAIL = """
import sys
from pathlib import Path
import dctnet
from dctnet import datasets, distributed as dist
from dctnet.datasets import forms

rank, world = dist.init()
if rank == 1:
    def broken(*args):
        raise RuntimeError("deliberate decoding failure on rank 1")
    forms.read_stacked = broken
sample = Path(dctnet.__file__).parent / "data" / "cifar10-sample.zip"
datasets.JpegDataset(sample, "test", "coefficients", cache=f"{sys.argv[1]}/c.h5", comm=dist)
"""


def test_a_failing_rank_ends_the_parallel_cache_build(tmp_path):
    proc, seconds = _launch(CACHE_FAIL, tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "deliberate decoding failure" in proc.stderr + proc.stdout
    assert seconds < 30, f"the job took {seconds:.1f} s to end"
    assert not (tmp_path / "c.h5").exists()


def test_training_scripts_run_distributed(tmp_path):
    """train.py (JPEG domain, synchronized BN) and train_jpeg_dl.py on 2 processes: one set of files, loadable."""
    proc, _ = _launch("""
        import sys
        from pathlib import Path
        sys.path.insert(0, "examples")
        import train, train_jpeg_dl
        out = Path(sys.argv[1])
        common = ["--distributed", "--dataset", "sample", "--epochs", "1", "--batch-size", "50", "--no-progress"]
        train.main(common + ["--domain", "jpeg", "--sync-bn", "--out", str(out / "jpeg")])
        train_jpeg_dl.main(common + ["--out", str(out / "jpegdl")])
    """, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("final test accuracy") == 2  # rank 0 alone prints
    for name in ("jpeg", "jpegdl"):
        model = dctnet.load(tmp_path / name / "model.h5")
        assert model.parameters() and (tmp_path / name / "history.csv").is_file()
    assert dctnet.load_checkpoint(tmp_path / "jpegdl" / "model.h5").metadata["qtables"]["luma"]
