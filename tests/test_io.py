"""HDF5 model files: exact round trips, checkpoints, atomic saves and clear errors."""

import json
import os

import h5py
import numpy as np
import pytest

import dctnet
from dctnet import Tensor, io, models, optim


@pytest.fixture(scope="module")
def nn():
    from dctnet import nn

    return nn


def small_model(nn, dtype=np.float32, seed=0):
    """Conv + BatchNorm + ReLU with non-trivial running statistics, in ``dtype``."""
    nn.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    if dtype != np.float32:
        model.load_state_dict({k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in model.state_dict().items()})
        kinds = {v.dtype for v in model.state_dict().values() if v.dtype.kind == "f"}
        assert kinds == {np.dtype(dtype)}, f"load_state_dict did not give a {np.dtype(dtype)} model: {kinds}"
    model.train()
    model(Tensor(batch(dtype)))  # updates the BatchNorm running statistics
    return model


def batch(dtype=np.float32, seed=1, n=2):
    return np.random.default_rng(seed).standard_normal((n, 3, 6, 6)).astype(dtype)


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        x, y = dctnet.asnumpy(sa[name]), dctnet.asnumpy(sb[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def outputs(model, x):
    model.eval()
    with dctnet.no_grad():
        return dctnet.asnumpy(model(Tensor(x)).data)


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_identical(nn, tmp_path, dtype):
    model = small_model(nn, dtype)
    path = tmp_path / "model.h5"
    dctnet.save(model, path)
    loaded = dctnet.load(path)
    assert not loaded.training  # load() is for inference
    assert_same_state(model, loaded)
    assert loaded.config() == model.config()
    x = batch(dtype)
    np.testing.assert_array_equal(outputs(model, x), outputs(loaded, x))


def test_file_layout(nn, tmp_path):
    model = small_model(nn)
    path = tmp_path / "model.h5"
    dctnet.save(model, path, note="hi")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "dctnet-model"
        assert f.attrs["format_version"] == io.FORMAT_VERSION
        assert f.attrs["dctnet_version"] == dctnet.__version__
        assert json.loads(f.attrs["architecture"]) == model.config()
        assert json.loads(f.attrs["metadata"]) == {"note": "hi"}
        assert bool(f.attrs["training"]) is True
        assert list(f["state"]) == list(model.state_dict())  # order kept
        assert "optimizer" not in f


def test_paper_resnet_round_trip(nn, tmp_path):
    model = models.paper_resnet()
    path = tmp_path / "resnet.h5"
    dctnet.save(model, path)
    loaded = dctnet.load(path)
    assert_same_state(model, loaded)
    assert loaded.config() == model.config()


def test_converted_model_round_trip(nn, tmp_path):
    spatial = models.paper_resnet(mean=[120, 110, 100], std=[60, 61, 62])
    model = dctnet.convert(spatial, relu_frequencies=6, relu="apx")
    path = tmp_path / "converted.h5"
    dctnet.save(model, path)
    loaded = dctnet.load(path)
    assert_same_state(model, loaded)
    assert loaded.config() == model.config()
    x = dctnet.to_dct(np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32))
    assert np.array_equal(outputs(model, x), outputs(loaded, x))


def test_metadata_round_trip(nn, tmp_path):
    meta = {"epoch": 3, "loss": 0.25, "classes": ["cat", "dog"], "nested": {"a": [1, None, True]}, "name": "ü"}
    dctnet.save(small_model(nn), tmp_path / "m.h5", **meta)
    assert dctnet.load_checkpoint(tmp_path / "m.h5").metadata == meta


def test_metadata_must_be_json(nn, tmp_path):
    with pytest.raises(TypeError, match="'weights'"):
        dctnet.save(small_model(nn), tmp_path / "m.h5", epoch=1, weights=np.ones(3))
    assert not os.listdir(tmp_path)


def test_checkpoint_without_optimizer_keeps_training_mode(nn, tmp_path):
    model = small_model(nn)
    model.eval()
    dctnet.save(model, tmp_path / "m.h5")
    ckpt = dctnet.load_checkpoint(tmp_path / "m.h5")
    assert ckpt.optimizer is None and not ckpt.model.training
    model.train()
    dctnet.save(model, tmp_path / "m.h5")
    assert dctnet.load_checkpoint(tmp_path / "m.h5").model.training


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: optim.Adam(p, lr=1e-2, amsgrad=True),
        lambda p: optim.AdamW([{"params": p[:1], "lr": 1e-3}, {"params": p[1:]}], lr=1e-2),
    ],
)
def test_optimizer_resume_is_exact(nn, tmp_path, make):
    k, j = 3, 3
    xs = [batch(seed=s) for s in range(k + j)]

    def train(model, opt, data):
        model.train()
        for x in data:
            out = model(Tensor(x))
            loss = (out * out).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    reference = small_model(nn)
    ref_opt = make(list(reference.parameters()))
    train(reference, ref_opt, xs)

    model = small_model(nn)
    opt = make(list(model.parameters()))
    sched = optim.StepLR(opt, step_size=1, gamma=1.0)  # schedulers add group keys: they must round trip
    train(model, opt, xs[:k])
    sched.step()
    dctnet.save(model, tmp_path / "ckpt.h5", optimizer=opt, scheduler=sched.state_dict())
    model2, opt2, meta = dctnet.load_checkpoint(tmp_path / "ckpt.h5")
    assert type(opt2) is type(opt) and opt2.config() == opt.config()
    assert model2.training
    sched2 = optim.StepLR(opt2, step_size=1, gamma=1.0)
    sched2.load_state_dict(meta["scheduler"])
    train(model2, opt2, xs[k:])
    assert_same_state(reference, model2)


# -- atomic saves --------------------------------------------------------------------


def _write_previous(nn, path):
    dctnet.save(small_model(nn, seed=5), path, version="old")
    return path.read_bytes()


@pytest.mark.parametrize("target", ["create_dataset", "replace", "interrupt"])
def test_interrupted_save_keeps_previous_file(nn, tmp_path, monkeypatch, target):
    path = tmp_path / "model.h5"
    before = _write_previous(nn, path)
    model = small_model(nn)
    if target == "replace":
        def fail(*args, **kwargs):
            raise OSError("disk full")
        monkeypatch.setattr(io.os, "replace", fail)
        error = OSError
    else:
        original = h5py.Group.create_dataset
        calls = []
        error = KeyboardInterrupt if target == "interrupt" else RuntimeError

        def fail_midway(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise error("interrupted")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_dataset", fail_midway)
    with pytest.raises(error):
        dctnet.save(model, path, version="new")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.h5"]  # no temporary file left behind
    assert dctnet.load_checkpoint(path).metadata == {"version": "old"}


def test_save_replaces_existing_file(nn, tmp_path):
    path = tmp_path / "model.h5"
    _write_previous(nn, path)
    dctnet.save(small_model(nn), path, version="new")
    assert dctnet.load_checkpoint(path).metadata == {"version": "new"}
    assert os.listdir(tmp_path) == ["model.h5"]


# -- unreadable files -----------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        dctnet.load(tmp_path / "nope.h5")


@pytest.mark.parametrize("content", ["truncated", "random", "empty"])
def test_damaged_file(nn, tmp_path, content):
    path = tmp_path / "bad.h5"
    if content == "truncated":
        dctnet.save(small_model(nn), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"bad\.h5 is not a readable dctnet model file \(truncated or not HDF5\)"):
        dctnet.load(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"foreign\.h5 is a foreign HDF5 file"):
        dctnet.load(path)


def _tamper(path, **attrs):
    with h5py.File(path, "a") as f:
        for key, value in attrs.items():
            f.attrs[key] = value


def test_newer_format_version(nn, tmp_path):
    path = tmp_path / "future.h5"
    dctnet.save(small_model(nn), path)
    _tamper(path, format_version=io.FORMAT_VERSION + 1, dctnet_version="9.0")
    with pytest.raises(ValueError, match=r"future\.h5 uses model file format version 2.*upgrade dctnet"):
        dctnet.load(path)


@pytest.mark.parametrize(
    "architecture,match",
    [
        (json.dumps({"type": "os.system", "args": ["echo pwned"]}), "cannot rebuild the architecture"),
        ("{not json", "not valid JSON"),
    ],
)
def test_tampered_architecture(nn, tmp_path, architecture, match):
    path = tmp_path / "tampered.h5"
    dctnet.save(small_model(nn), path)
    _tamper(path, architecture=architecture)
    with pytest.raises(ValueError, match=rf"tampered\.h5.*{match}"):
        dctnet.load(path)


def test_weights_that_do_not_fit(nn, tmp_path):
    path = tmp_path / "bad.h5"
    model = small_model(nn)
    dctnet.save(model, path)
    first = next(iter(model.state_dict()))
    with h5py.File(path, "a") as f:
        data = f["state"][first][()]
        del f["state"][first]
        f["state"].create_dataset(first, data=np.zeros(data.shape[:-1]))
    with pytest.raises(ValueError, match=rf"bad\.h5: weight '{first}' has shape"):
        dctnet.load(path)
    with h5py.File(path, "a") as f:
        del f["state"][first]
    with pytest.raises(ValueError, match=rf"bad\.h5: saved weights do not fit.*missing \['{first}'\]"):
        dctnet.load(path)


def test_non_numeric_dataset_refused(nn, tmp_path):
    path = tmp_path / "strings.h5"
    model = small_model(nn)
    dctnet.save(model, path)
    first = next(iter(model.state_dict()))
    with h5py.File(path, "a") as f:
        del f["state"][first]
        f["state"].create_dataset(first, data=np.array([b"payload"], dtype=object), dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match="not a numeric dataset"):
        dctnet.load(path)


def test_tampered_optimizer(nn, tmp_path):
    path = tmp_path / "ckpt.h5"
    model = small_model(nn)
    dctnet.save(model, path, optimizer=optim.SGD(model.parameters(), lr=0.1))
    with h5py.File(path, "a") as f:
        f["optimizer"].attrs["config"] = json.dumps({"type": "os.system", "param_groups": []})
    with pytest.raises(ValueError, match=r"ckpt\.h5: cannot restore the optimizer"):
        dctnet.load_checkpoint(path)
    dctnet.load(path)  # load() ignores the optimizer


def test_load_onto_cpu_and_gpu(nn, tmp_path):
    model = small_model(nn)
    dctnet.save(model, tmp_path / "m.h5")
    assert_same_state(model, dctnet.load(tmp_path / "m.h5", device="cpu"))
    if not dctnet.cupy_available():
        pytest.skip("needs CuPy with a GPU")
    loaded = dctnet.load(tmp_path / "m.h5", device="gpu")
    assert all(dctnet.get_array_module(v) is not np for v in loaded.state_dict().values())
    assert_same_state(model, loaded)


def test_save_into_missing_folder_leaves_nothing(nn, tmp_path):
    with pytest.raises(OSError):
        dctnet.save(small_model(nn), tmp_path / "no" / "such" / "m.h5")
    assert os.listdir(tmp_path) == []
