"""Regression tests of issue 19: no silent wrong results, no unbounded costs, clear and early errors.

One test per item (items 3, 7 and 10 concern the JPEG reader and live with it).
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import dctnet
from dctnet import Tensor, nn, optim, training
from dctnet.datasets import JpegDataset, paths


def small_model(seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.GlobalAvgPool(), nn.Linear(4, 3))


def rewrite_dataset(path, name, data):
    """Replace dataset ``state/<name>`` of a saved model file by ``data``."""
    with h5py.File(path, "r+") as f:
        del f["state"][name]
        f["state"].create_dataset(name, data=data)


# -- item 1: a stale dataset cache ---------------------------------------------------------


def sample_tree(folder, per_class=2):
    """A folder tree test/<class>/*.jpg of the bundled CIFAR-10 sample, ``per_class`` files per class."""
    with paths.bundled("cifar10-sample.zip") as zpath, zipfile.ZipFile(zpath) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        taken = {}
        for name in names:
            cls = name.split("/")[-2]
            if taken.get(cls, 0) < per_class:
                taken[cls] = taken.get(cls, 0) + 1
                target = folder / "test" / cls / name.split("/")[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
    return folder


def test_item1_cache_rebuilt_when_a_file_moves_between_classes(tmp_path):
    tree = sample_tree(tmp_path / "tree")
    cache = tmp_path / "cache.h5"
    first = JpegDataset(tree, "test", "coefficients", cache=cache)
    moved = sorted((tree / "test" / "cat").iterdir())[0]
    st = moved.stat()
    target = tree / "test" / "dog" / ("zz-" + moved.name)
    os.rename(moved, target)  # same size and mtime, same count: only the listing differs
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = JpegDataset(tree, "test", "coefficients", cache=cache)
    fresh = JpegDataset(tree, "test", "coefficients")
    assert again.files == fresh.files and again.files != first.files
    np.testing.assert_array_equal(again.labels, fresh.labels)
    for a, b in zip(again.data.components, fresh.data.components):
        np.testing.assert_array_equal(a, b)


# -- item 2: load resolves types by registry, never by the last class of a name --------------


def test_item2_a_user_class_named_relu_does_not_replace_dctnets(tmp_path):
    model = small_model()
    path = tmp_path / "m.h5"
    dctnet.save(model, path)

    class ReLU(nn.Module):  # a user's own layer of the same bare name
        def forward(self, x):
            return dctnet.as_tensor(x) * 0

    loaded = dctnet.load(path)
    assert type(loaded[2]) is nn.ReLU
    assert nn.from_config({"type": "ReLU"}).__class__ is nn.ReLU
    # The user's class is saved and loaded under its own qualified name.
    user = nn.Sequential(ReLU())
    dctnet.save(user, tmp_path / "u.h5")
    assert type(dctnet.load(tmp_path / "u.h5")[0]) is ReLU
    assert user.config()["children"]["0"]["type"].endswith("ReLU") and user.config()["children"]["0"]["type"] != "ReLU"
    # An explicit registration under a name of the user's choosing.
    nn.register_module(ReLU, "myproject.ZeroReLU")
    assert nn.Sequential(ReLU()).config()["children"]["0"]["type"] == "myproject.ZeroReLU"
    assert type(nn.from_config({"type": "myproject.ZeroReLU"})) is ReLU
    with pytest.raises(ValueError, match="dctnet"):
        nn.register_module(ReLU, "ReLU")  # dctnet's own names are not for the taking

    class OldStyle(nn.Module):  # files written before qualified names stored the bare name
        def forward(self, x):
            return x

    assert type(nn.from_config({"type": "OldStyle"})) is OldStyle


# -- item 4: non-finite training ---------------------------------------------------------------


def test_item4_training_stops_on_nan_and_keeps_the_last_good_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 3, 4, 4), dtype=np.float32)
    y = rng.integers(0, 3, 16)
    model = small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    last = tmp_path / "last.h5"
    training.fit(model, opt, (x, y), epochs=1, batch_size=4, checkpoint=last, log=None)
    good = last.read_bytes()
    bad = x.copy()
    bad[9, 0, 1, 1] = np.nan
    order, _ = training.epoch_order(1, 1, len(x))
    step = int(np.flatnonzero(order == 9)[0]) // 4 + 1
    with pytest.raises(training.NonFiniteError, match=rf"step {step} of epoch 2") as info:
        training.fit(model, opt, (bad, y), epochs=2, start=1, batch_size=4, checkpoint=last, log=None, seed=1,
                     history=[])
    assert isinstance(info.value, ValueError) and "input" in str(info.value)
    assert last.read_bytes() == good
    assert all(np.isfinite(p.data).all() for p in model.parameters())  # the step was not taken
    for kwargs in (dict(lr=np.inf), dict(lr=0.1, momentum=np.nan), dict(lr=0.1, weight_decay=np.nan)):
        with pytest.raises(ValueError):
            optim.SGD(model.parameters(), **kwargs)
    with pytest.raises(ValueError):
        optim.Adam(model.parameters(), weight_decay=np.nan)


def test_item4_train_py_exits_non_zero_on_a_huge_learning_rate(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "train.py"
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(script), "--dataset", "sample", "--epochs", "2", "--lr", "1e12",
                           "--limit", "32", "--batch-size", "16", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout
    assert "non-finite" in done.stderr and "epoch" in done.stderr and "step" in done.stderr, done.stderr
    assert not (out / "model.h5").exists()


# -- item 5: channel counts of Normalize -----------------------------------------------------


def test_item5_normalize_refuses_a_batch_of_the_wrong_channel_count():
    norm = nn.Normalize([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"3 channels.*found 1|expects 3.*1 channel"):
        norm(Tensor(x))
    with pytest.raises(ValueError, match=r"3 channels.*found 1|expects 3.*1 channel"):
        dctnet.convert(norm)(Tensor(dctnet.to_dct(x)))


# -- item 6: load checks declared shapes before allocating ---------------------------------


def test_item6_load_checks_declared_shapes_before_building(tmp_path):
    path = tmp_path / "m.h5"
    dctnet.save(nn.Sequential(nn.Linear(3, 2)), path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["architecture"])
        cfg["children"]["0"].update(in_features=200_000, out_features=200_000)  # 160 GB as float32
        f.attrs["architecture"] = json.dumps(cfg)
    state = np.random.get_state(), nn._rng.bit_generator.state
    with pytest.raises(ValueError, match=r"0\.weight.*\(2, 3\).*\(200000, 200000\)"):
        dctnet.load(path)
    # Loading a good file draws no random numbers either.
    dctnet.save(nn.Sequential(nn.Linear(3, 2)), path)
    before = nn._rng.bit_generator.state
    dctnet.load(path)
    assert nn._rng.bit_generator.state == before
    del state


# -- item 8: dtypes at load -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64, np.float16])
def test_item8_load_refuses_weights_of_a_wrong_dtype(tmp_path, dtype):
    path = tmp_path / "m.h5"
    model = small_model()
    dctnet.save(model, path)
    rewrite_dataset(path, "0.weight", model.state_dict()["0.weight"].astype(dtype))
    with pytest.raises(ValueError, match=rf"0\.weight.*{np.dtype(dtype).name}"):
        dctnet.load(path)


# -- item 9: stale temporary files, missing folders ---------------------------------------


def test_item9_stale_temp_files_are_removed_and_a_missing_folder_is_named(tmp_path):
    path = tmp_path / "m.h5"
    stale = tmp_path / f".m.h5.{'ab' * 16}.tmp"
    stale.write_bytes(b"half a file")
    os.utime(stale, (1, 1))  # long ago
    other = tmp_path / f".other.h5.{'cd' * 16}.tmp"
    other.write_bytes(b"another target's")
    os.utime(other, (1, 1))
    dctnet.save(small_model(), path)
    assert not stale.exists() and other.exists()
    missing = tmp_path / "no" / "such" / "m.h5"
    with pytest.raises(FileNotFoundError) as info:
        dctnet.save(small_model(), missing)
    assert str(missing.parent) in str(info.value) and ".tmp" not in str(info.value)


# -- item 11: empty batches ---------------------------------------------------------------


def test_item11_empty_batches():
    model = small_model().eval()
    x = np.zeros((0, 3, 8, 8), np.float32)
    assert dctnet.to_dct(np.zeros((2, 3, 0, 8))).shape == (2, 3, 0, 1, 64)
    assert dctnet.to_dct(np.zeros((2, 3, 8, 0))).shape == (2, 3, 1, 0, 64)
    assert dctnet.to_dct(x).shape == (0, 3, 1, 1, 64)
    assert dctnet.from_dct(np.zeros((0, 3, 1, 1, 64))).shape == (0, 3, 8, 8)
    for net, inputs in ((model, x), (dctnet.convert(model), dctnet.to_dct(x))):
        assert net(Tensor(inputs)).shape == (0, 3)  # as in PyTorch
    assert nn.Flatten()(Tensor(np.zeros((0, 3, 2, 2)))).shape == (0, 12)
    with pytest.raises(ValueError, match="training mode needs more than one value"):
        model.train()(Tensor(x))  # batch statistics of nothing: refused, as PyTorch does


# -- item 12: ASMReLU and relu_frequencies ------------------------------------------------


def test_item12_relu_frequencies_validated_at_construction_and_numpy_integers_accepted():
    for bad in (0, 16, 2.5, True):
        with pytest.raises(ValueError, match="1..15"):
            nn.ASMReLU(bad)
    relu = nn.ASMReLU(np.int64(6))
    assert relu.config()["frequencies"] == 6 and type(relu.frequencies) is int
    jnet = dctnet.convert(nn.Sequential(nn.ReLU()), relu_frequencies=np.int64(6))
    assert jnet[0].frequencies == 6


# -- item 13: wrong domain or shape; deeply nested JSON -----------------------------------


def test_item13_wrong_domain_or_shape_and_deep_json_are_named(tmp_path):
    from dctnet import models

    net = models.paper_resnet(in_channels=3).eval()
    jnet = dctnet.convert(net)
    pixels = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"JPEG-domain.*DCT coefficients.*\(N, C, BH, BW, 64\).*to_dct"):
        jnet(Tensor(pixels))
    with pytest.raises(ValueError, match=r"pixel.*\(N, C, H, W\).*\(3, 32, 32\).*batch axis"):
        net(Tensor(pixels[0]))
    with pytest.raises(ValueError, match=r"pixel.*convert"):
        net(Tensor(dctnet.to_dct(pixels)))
    path = tmp_path / "deep.h5"
    dctnet.save(nn.Sequential(nn.ReLU()), path)
    with h5py.File(path, "r+") as f:
        f.attrs["metadata"] = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nested too deeply") as info:
        dctnet.load(path)
    assert "truncated" not in str(info.value)


# -- beyond the items: what the soak found ----------------------------------------------------


def test_load_refuses_non_finite_weights_and_detects_flipped_weight_bytes(tmp_path):
    path = tmp_path / "m.h5"
    model = small_model()
    good = model.state_dict()["0.weight"].copy()
    model.state_dict()["0.weight"].flat[0] = np.nan  # a diverged model, saved as it is
    dctnet.save(model, path)
    with pytest.raises(ValueError, match=r"'0\.weight' holds 1 NaN"):
        dctnet.load(path)
    model.state_dict()["0.weight"][...] = good
    dctnet.save(model, path)
    with h5py.File(path, "r") as f:
        offset = f["state"]["0.weight"].id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 5] ^= 0x10  # a bit of a weight: still a finite float32, no HDF5 structure touched
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"state/0\.weight does not match its checksum"):
        dctnet.load(path)


def test_a_damaged_dataset_cache_is_refused_not_read(tmp_path):
    tree = sample_tree(tmp_path / "tree", per_class=1)
    cache = tmp_path / "cache.h5"
    JpegDataset(tree, "test", "coefficients", cache=cache)
    with h5py.File(cache, "r") as f:
        info = f["component0"].id.get_chunk_info(0)
    data = bytearray(cache.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0x04  # inside the compressed coefficients
    cache.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        JpegDataset(tree, "test", "coefficients", cache=cache)
