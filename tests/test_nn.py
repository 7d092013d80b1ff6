"""Modules: registration, state, modes, configs, layers against functional ops, training."""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, functional as F, models, nn, optim


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_registration_order_and_names():
    block = nn.ResidualBlock(3, 8, stride=2)
    names = [n for n, _ in block.named_parameters()]
    assert names == [
        "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias",
        "shortcut.0.weight", "shortcut.1.weight", "shortcut.1.bias",
    ]
    state = block.state_dict()
    assert list(state)[:5] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"]
    assert state["bn1.num_batches_tracked"].dtype == np.int64
    assert isinstance(nn.ResidualBlock(8, 8).shortcut, nn.Identity)


def test_parameters_are_shared_once():
    conv = nn.Conv2d(2, 2, 1)
    net = nn.Sequential(conv, nn.ReLU(), conv)
    assert len(net.parameters()) == 2


def test_reassigning_changes_kind_and_keeps_order():
    m = nn.Sequential(nn.ReLU(), nn.Identity())
    m._modules["0"]  # noqa: B018 - exists
    setattr(m, "0", nn.Identity())
    assert list(m._modules) == ["0", "1"] and isinstance(m[0], nn.Identity)
    conv = nn.Conv2d(1, 1, 1)
    conv.bias = None
    assert [n for n, _ in conv.named_parameters()] == ["weight"]


def test_initialization_is_seeded_and_pytorch_like():
    nn.manual_seed(3)
    a = nn.Conv2d(4, 8, 3)
    nn.manual_seed(3)
    b = nn.Conv2d(4, 8, 3)
    assert np.array_equal(a.weight.data, b.weight.data)
    bound = 1 / np.sqrt(4 * 9)
    assert a.weight.dtype == np.float32 and np.abs(a.weight.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.8 * bound


def test_layers_equal_functional_ops(rng):
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    np.testing.assert_array_equal(conv(Tensor(x)).data, F.conv2d(x, conv.weight, conv.bias, 2, 1).data)
    lin = nn.Linear(3, 5)
    v = x[:, :, 0, 0]
    np.testing.assert_array_equal(lin(v).data, F.linear(v, lin.weight, lin.bias).data)
    norm = nn.Normalize([1.0, 2.0, 3.0], [2.0, 4.0, 8.0])
    ref = (x - np.array([1, 2, 3]).reshape(1, 3, 1, 1)) / np.array([2, 4, 8]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(norm(x).data, ref, rtol=1e-6)
    assert nn.Flatten()(x).shape == (2, 192)
    np.testing.assert_allclose(nn.AvgPool2d(2)(x).data, x.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5)), rtol=1e-6)


def test_batchnorm_modes_and_running_statistics(rng):
    bn = nn.BatchNorm2d(3)
    x = rng.normal(2.0, 3.0, size=(4, 3, 5, 5))
    bn.astype(np.float64)
    for _ in range(3):
        bn(Tensor(x))
    assert int(bn.num_batches_tracked) == 3
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    expected_mean = mean * (1 - 0.9**3)
    expected_var = 0.9**3 + var * (1 - 0.9**3)
    np.testing.assert_allclose(bn.running_mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, expected_var, rtol=1e-12)
    bn.eval()
    out = bn(Tensor(x)).data
    ref = (x - expected_mean.reshape(1, 3, 1, 1)) / np.sqrt(expected_var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-10)
    assert int(bn.num_batches_tracked) == 3  # eval mode leaves the statistics alone


def test_train_eval_propagate():
    net = models.paper_resnet()
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_and_errors():
    nn.manual_seed(0)
    a = models.paper_resnet(in_channels=1)
    nn.manual_seed(1)
    b = models.paper_resnet(in_channels=1)
    b.load_state_dict(a.state_dict())
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(x, y), k
    assert b.state_dict()["0.conv1.weight"] is not a.state_dict()["0.conv1.weight"]  # copied, not aliased
    state = dict(a.state_dict())
    state.pop("4.bias")
    with pytest.raises(KeyError, match="missing .*4.bias"):
        b.load_state_dict(state)
    b.load_state_dict(state, strict=False)
    bad = dict(a.state_dict())
    bad["4.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="4.weight"):
        b.load_state_dict(bad)


def test_load_state_dict_with_other_dtype_replaces():
    conv = nn.Conv2d(1, 1, 1)
    conv.load_state_dict({k: v.astype(np.float64) for k, v in conv.state_dict().items()})
    assert conv.weight.dtype == np.float64


def test_astype_casts_floats_only():
    bn = nn.BatchNorm2d(2).astype(np.float64)
    state = bn.state_dict()
    assert state["weight"].dtype == state["running_var"].dtype == np.float64
    assert state["num_batches_tracked"].dtype == np.int64
    with pytest.raises(TypeError, match="floating"):
        bn.astype(np.int32)


def test_config_round_trip():
    net = models.paper_resnet(in_channels=1, num_classes=7, widths=(4, 8, 16), mean=[0.5], std=[0.25])
    cfg = net.config()
    again = nn.from_config(cfg)
    assert again.config() == cfg
    assert [k for k in again.state_dict()] == [k for k in net.state_dict()]
    assert cfg["children"]["0"] == {"type": "Normalize", "mean": [0.5], "std": [0.25]}


@pytest.mark.parametrize("cfg, match", [
    ({"type": "os.system"}, "unknown module type"),
    ([1, 2], "a dict with a 'type'"),
    ({"type": "Conv2d", "in_channels": 1}, "cannot build Conv2d"),
    ({"type": "Sequential", "children": {"1": {"type": "ReLU"}}}, "named 0..n-1"),
    ({"type": "ReLU", "children": {"x": {"type": "ReLU"}}}, "no sub-module"),
])
def test_from_config_refuses_bad_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        nn.from_config(cfg)


def test_sequential_api():
    seq = nn.Sequential(nn.ReLU(), nn.Identity(), nn.Flatten())
    assert len(seq) == 3 and isinstance(seq[-1], nn.Flatten)
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert [type(m).__name__ for m in seq] == ["ReLU", "Identity", "Flatten"]
    with pytest.raises(TypeError, match="position 1"):
        nn.Sequential(nn.ReLU(), np.zeros(3))
    assert "ResidualBlock" in repr(models.paper_resnet())


def test_paper_resnet_shapes_and_errors():
    net = models.paper_resnet(in_channels=1, num_classes=10)
    assert net(Tensor(np.zeros((3, 1, 32, 32), np.float32))).shape == (3, 10)
    def block(cin, w):  # conv1, bn1, conv2, bn2, 1x1 shortcut conv + bn
        return cin * w * 9 + 2 * w + w * w * 9 + 2 * w + cin * w + 2 * w

    assert sum(p.size for p in net.parameters()) == block(1, 16) + block(16, 32) + block(32, 64) + 64 * 10 + 10
    with pytest.raises(ValueError, match="widths"):
        models.paper_resnet(widths=(16, 32))
    with pytest.raises(ValueError, match="both mean and std"):
        models.paper_resnet(mean=[0.0])
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("vgg")


def test_small_network_overfits_a_tiny_batch(rng):
    nn.manual_seed(0)
    net = models.paper_resnet(in_channels=1, num_classes=4, widths=(4, 8, 8))
    x = rng.normal(size=(8, 1, 16, 16)).astype(np.float32)
    y = np.arange(8) % 4
    opt = optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        loss = F.cross_entropy(net(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.data) < 0.05
    net.eval()
    assert (net(Tensor(x)).data.argmax(axis=1) == y).all()


def test_zero_grad_and_module_gradients_reach_every_parameter(rng):
    net = models.paper_resnet(in_channels=1, widths=(2, 4, 4))
    F.cross_entropy(net(Tensor(rng.normal(size=(2, 1, 16, 16)).astype(np.float32))), np.array([0, 1])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_cpu_keeps_arrays_on_numpy():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).to("cpu")
    assert all(isinstance(v, np.ndarray) for v in net.state_dict().values())


@pytest.mark.skipif(not dctnet.cupy_available(), reason="needs CuPy with a GPU")
def test_to_gpu_and_back(rng):
    import cupy

    net = models.paper_resnet(in_channels=1).to("gpu").eval()
    x = rng.normal(size=(2, 1, 32, 32)).astype(np.float32)
    y = net(Tensor(cupy.asarray(x))).data
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), net.to("cpu")(Tensor(x)).data, rtol=1e-4, atol=1e-5)


def test_dct_conv_caches_the_dense_map_in_eval_mode(rng):
    conv = nn.DCTConv2d(2, 3, 3, padding=1, bias=False, method="dense").astype(np.float64)
    x = dctnet.to_dct(rng.normal(size=(1, 2, 16, 16)))
    ref = lambda: dctnet.to_dct(F.conv2d(dctnet.from_dct(x), conv.weight.data, padding=1).data)  # noqa: E731
    conv.eval()
    with dctnet.no_grad():
        np.testing.assert_allclose(conv(x).data, ref(), atol=1e-10)
        cached = conv._cache[1]
        conv(x)
        assert conv._cache[1] is cached  # reused
        conv.weight.data *= 2  # an in-place update invalidates it
        np.testing.assert_allclose(conv(x).data, ref(), atol=1e-10)
        assert conv._cache[1] is not cached
    out = conv(Tensor(x))  # recording a graph: no cache, the kernel gets its gradient
    out.sum().backward()
    assert conv.weight.grad is not None
    with pytest.raises(ValueError, match="method"):
        nn.DCTConv2d(1, 1, 1, method="fft")


class Wrapper(nn.Module):
    """A user module taking a sub-module and a number: saved and rebuilt like built-in ones."""

    input_domain = "any"

    def __init__(self, inner, scale=2.0):
        self.inner, self.scale = inner, scale

    def forward(self, x):
        return self.inner(x) * self.scale


def test_user_modules_round_trip_through_config(tmp_path):
    model = Wrapper(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()), scale=3.0)
    cfg = model.config()
    assert cfg["scale"] == 3.0 and "inner" not in {k for k in cfg if k != "children"}
    again = nn.from_config(cfg)
    again.load_state_dict(model.state_dict())
    x = np.random.default_rng(0).normal(size=(1, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(again(Tensor(x)).data, model(Tensor(x)).data)
    dctnet.save(model, tmp_path / "w.h5")
    np.testing.assert_array_equal(dctnet.load(tmp_path / "w.h5")(Tensor(x)).data, model(Tensor(x)).data)
    jpeg = dctnet.convert(model)  # declared domain-agnostic, so its children convert
    np.testing.assert_allclose(dctnet.from_dct(jpeg(dctnet.to_dct(x)).data), model(Tensor(x)).data, atol=1e-4)


def test_jpeg_layer_lives_in_jpegdl_and_loads_in_a_fresh_interpreter(tmp_path):
    import subprocess
    import sys

    from dctnet import jpegdl

    assert dctnet.JPEGLayer is jpegdl.JPEGLayer and nn.MODULES["JPEGLayer"] is jpegdl.JPEGLayer
    with pytest.raises(AttributeError, match=r"dctnet\.jpegdl\.JPEGLayer"):
        nn.JPEGLayer  # noqa: B018 - nn is below jpegdl and does not hand it out
    nn.manual_seed(0)
    model = nn.Sequential(jpegdl.JPEGLayer(q_init=4.0), nn.Conv2d(3, 2, 3, padding=1), nn.GlobalAvgPool())
    dctnet.save(model, tmp_path / "m.h5")
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    # Loading resolves the type by name in nn.MODULES; importing dctnet registers JPEGLayer there.
    code = ("import sys, numpy as np, dctnet; m = dctnet.load(sys.argv[1]); "
            "np.save(sys.argv[2], m(dctnet.Tensor(np.load(sys.argv[3]))).data); print(type(m[0]).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.h5"), str(tmp_path / "y.npy"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["JPEGLayer"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.eval()(Tensor(x)).data)
