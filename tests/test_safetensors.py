"""Weights through safetensors: round trips, strict loading, and clear errors for bad files."""

import pickle

import numpy as np
import pytest
import safetensors.numpy

import dctnet
from dctnet import models, nn


def small_resnet():
    nn.manual_seed(0)
    return models.resnet18(num_classes=5, in_channels=1)


def test_round_trip_through_safetensors_numpy(tmp_path):
    net = small_resnet()
    rng = np.random.default_rng(0)
    for key, value in net.state_dict().items():
        if value.dtype.kind == "f":
            value[...] = rng.normal(size=value.shape)
    path = tmp_path / "w.safetensors"
    dctnet.save_safetensors(net, path, metadata={"arch": "resnet18"})
    raw = safetensors.numpy.load_file(path)  # the package's own reader sees the same arrays
    assert set(raw) == set(net.state_dict())
    again = models.resnet18(num_classes=5, in_channels=1)
    again.load_state_dict(dctnet.load_safetensors(path))
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key], value, err_msg=key)
        assert again.state_dict()[key].dtype == value.dtype
    assert again.state_dict()["bn1.num_batches_tracked"].shape == ()
    # a file written by safetensors.numpy itself loads too
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({k: np.asarray(v) for k, v in raw.items()}, other)
    models.resnet18(num_classes=5, in_channels=1).load_state_dict(dctnet.load_safetensors(other))


def test_num_batches_tracked_is_optional():
    net = small_resnet()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    models.resnet18(num_classes=5, in_channels=1).load_state_dict(state)


def test_strict_loading_names_missing_unexpected_and_misshaped_keys():
    net = small_resnet()
    state = dict(net.state_dict())
    state.pop("layer1.0.conv1.weight")
    state["layer9.weight"] = np.zeros(3, np.float32)
    with pytest.raises(KeyError, match=r"missing \['layer1.0.conv1.weight'\], unexpected \['layer9.weight'\]"):
        net.load_state_dict(state)
    bad = dict(net.state_dict())
    bad["fc.weight"] = np.zeros((7, 512), np.float32)
    bad["conv1.weight"] = np.zeros((64, 3, 7, 7), np.float32)
    before = net.state_dict()["layer1.0.bn1.bias"].copy()
    bad["layer1.0.bn1.bias"] = before + 1
    with pytest.raises(ValueError, match=r"2 mis-shaped .*conv1.weight: saved shape \(64, 3, 7, 7\) .*fc.weight"):
        net.load_state_dict(bad)
    np.testing.assert_array_equal(net.state_dict()["layer1.0.bn1.bias"], before)  # nothing changed
    with pytest.raises(KeyError, match="and .* more"):  # resnet50 weights into resnet18: a long list, shortened
        models.resnet18().load_state_dict(models.resnet50().state_dict())


def test_bad_files_give_clear_errors(tmp_path):
    net = small_resnet()
    good = tmp_path / "good.safetensors"
    dctnet.save_safetensors(net, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        dctnet.load_safetensors(truncated)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a safetensors file"):
        dctnet.load_safetensors(tiny)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}" + b"\0" * 8)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        dctnet.load_safetensors(garbage)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        dctnet.load_safetensors(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("name", ["model.pth", "model.pt", "model.safetensors"])
def test_pickles_are_refused_with_the_conversion_command(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"conv1.weight": [1.0]}))  # a bare pickle, whatever its name
    with pytest.raises(ValueError, match=r"pickle.*safetensors.torch.save_file\(torch.load\(p, weights_only=True\), out\)"):
        dctnet.load_safetensors(path)


def test_a_torch_zip_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.bin"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="PyTorch pickle"):
        dctnet.load_safetensors(path)
    renamed = tmp_path / "w.safetensors"
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="zip archive"):
        dctnet.load_safetensors(renamed)


def test_save_refuses_bad_metadata(tmp_path):
    with pytest.raises(TypeError, match="metadata must map str to str"):
        dctnet.save_safetensors({"a": np.zeros(2)}, tmp_path / "a.safetensors", metadata={"n": 1})
