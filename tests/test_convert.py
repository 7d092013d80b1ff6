"""Model conversion: the JPEG-domain paper_resnet equals the pixel one (the paper's Table 1)."""

from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, datasets, functional as F, models, nn, optim

MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]


def trained_like(dtype=np.float32, seed=0):
    """paper_resnet with random weights and non-trivial BN affine parameters and running statistics."""
    nn.manual_seed(seed)
    net = models.paper_resnet(mean=MEAN, std=STD).astype(dtype)
    rng = np.random.default_rng(seed)
    for name, value in net.state_dict().items():
        if name.endswith(("bn1.weight", "bn2.weight", "1.weight")) and value.ndim == 1:
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif name.endswith(".bias") and "bn" in name or name.endswith("shortcut.1.bias"):
            value[...] = rng.normal(0, 0.2, value.shape)
    net.train()
    with dctnet.no_grad():
        for _ in range(3):  # running statistics of real-looking inputs
            net(Tensor(images(8, rng.integers(1 << 30), dtype)))
    return net.eval()


def images(n, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, 32, 32)).astype(dtype)


def logits(model, x):
    with dctnet.no_grad():
        return model(Tensor(x)).data


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_converted_paper_resnet_gives_the_same_logits(dtype, rtol):
    net = trained_like(dtype)
    assert float(np.abs(net.state_dict()["1.bn1.running_mean"]).max()) > 0.01
    jnet = dctnet.convert(net)
    x = images(6, dtype=dtype)
    a, b = logits(net, x), logits(jnet, dctnet.to_dct(x).astype(dtype))
    assert b.dtype == dtype
    assert np.abs(a - b).max() <= rtol * np.abs(a).max()
    assert (a.argmax(1) == b.argmax(1)).all()


def test_converted_model_on_jpeg_files_equals_pixel_model_on_their_decode():
    ds = datasets.sample_cifar10("dct", limit=16)
    net, jnet = trained_like(np.float64), None
    jnet = dctnet.convert(net)
    x = ds.data.astype(np.float64)
    a, b = logits(net, dctnet.from_dct(x)), logits(jnet, x)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10 * np.abs(a).max())


def test_training_mode_forward_backward_and_statistics_agree():
    net = trained_like(np.float64)
    jnet = dctnet.convert(net)
    x, y = images(4, dtype=np.float64), np.array([0, 1, 2, 3])
    start = {k: v.copy() for k, v in net.state_dict().items()}
    results = []
    for model, inp in ((net, x), (jnet, dctnet.to_dct(x))):
        net.load_state_dict(start)
        model.train()
        model.zero_grad()
        out = model(Tensor(inp))
        F.cross_entropy(out, y).backward()
        results.append((out.data, {k: v.copy() for k, v in net.state_dict().items()},
                        [p.grad.copy() for p in model.parameters()]))
    (a, sa, ga), (b, sb, gb) = results
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)
    for k in sa:
        np.testing.assert_allclose(sb[k], sa[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert int(sa["1.bn1.num_batches_tracked"]) == int(start["1.bn1.num_batches_tracked"]) + 1
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(v, u, rtol=1e-7, atol=1e-9 * np.abs(u).max())


def test_conversion_shares_parameters_and_buffers():
    net = trained_like()
    jnet = dctnet.convert(net)
    assert [id(p) for p in jnet.parameters()] == [id(p) for p in net.parameters()]
    assert list(jnet.state_dict()) == list(net.state_dict())
    assert all(a is b for a, b in zip(jnet.state_dict().values(), net.state_dict().values()))
    assert not jnet.training
    types = {type(m).__name__ for m in jnet.modules()}
    assert {"DCTNormalize", "DCTConv2d", "DCTBatchNorm", "ASMReLU", "DCTGlobalAvgPool", "Linear"} <= types
    assert not types & {"Conv2d", "BatchNorm2d", "ReLU", "GlobalAvgPool", "Normalize"}
    # a training step on the JPEG model moves the pixel model's weights
    jnet.train()
    before = net.state_dict()["1.conv1.weight"].copy()
    opt = optim.SGD(jnet.parameters(), lr=0.1)
    F.cross_entropy(jnet(dctnet.to_dct(images(2))), np.array([0, 1])).backward()
    opt.step()
    assert not np.array_equal(net.state_dict()["1.conv1.weight"], before)


@pytest.mark.parametrize("relu", ["asm", "apx"])
def test_fewer_frequencies_approximate(relu):
    net = trained_like(np.float64)
    x = images(4, dtype=np.float64)
    exact = logits(net, x)
    approx = logits(dctnet.convert(net, relu_frequencies=6, relu=relu), dctnet.to_dct(x))
    relu_modules = [m for m in dctnet.convert(net, 6, relu).modules() if isinstance(m, nn.ASMReLU)]
    assert len(relu_modules) == 6 and all(m.frequencies == 6 and m.method == relu for m in relu_modules)
    assert 0 < np.abs(approx - exact).max() < np.abs(exact).max()


def test_sequential_of_layers_converts():
    nn.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 1, stride=2, bias=True), nn.GlobalAvgPool(), nn.Flatten(), nn.Linear(4, 3))
    seq.eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 16, 16))
    seq.astype(np.float64)
    np.testing.assert_allclose(logits(dctnet.convert(seq), dctnet.to_dct(x)), logits(seq, x), rtol=1e-10, atol=1e-12)


class Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AvgPool2d(2)), r"model\.1 \(AvgPool2d\) has no JPEG-domain form"),
    (nn.Sequential(Custom()), r"model\.0 \(Custom\)"),
    (dctnet.convert(nn.Sequential(nn.ReLU())), "already a JPEG-domain layer"),
])
def test_layers_without_a_jpeg_form_are_refused(model, match):
    with pytest.raises(TypeError, match=match):
        dctnet.convert(model)


@pytest.mark.parametrize("kwargs", [{"relu": "gelu"}, {"relu_frequencies": 0}, {"relu_frequencies": 16}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dctnet.convert(nn.Sequential(nn.ReLU()), **kwargs)


# -- what each layer declares ---------------------------------------------------------------------

def test_each_layer_declares_its_domain_and_its_jpeg_form():
    from dctnet import distributed as dist
    from dctnet.jpegdl import JPEGLayer

    nn.manual_seed(0)
    forms = {nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False): nn.DCTConv2d, nn.BatchNorm2d(2): nn.DCTBatchNorm,
             nn.GlobalAvgPool(): nn.DCTGlobalAvgPool,
             nn.Normalize([1.0, 2.0], [3.0, 4.0]): nn.DCTNormalize, dist.SyncBatchNorm2d(2): dist.SyncDCTBatchNorm}
    for layer, twin in forms.items():
        assert layer.input_domain == "pixel"
        form = layer.eval().jpeg_form(7, "apx")
        assert type(form) is twin and form.input_domain == "jpeg" and not form.training
        assert [id(p) for p in form.parameters()] == [id(p) for p in layer.parameters()]
        assert form._buffers is layer._buffers  # running statistics stay shared
        assert {k: v for k, v in form.config().items() if k not in ("type", "method")} == \
            {k: v for k, v in layer.config().items() if k != "type"}
    relu = nn.ReLU().jpeg_form(7, "apx")
    assert type(relu) is nn.ASMReLU and (relu.frequencies, relu.method) == (7, "apx")
    for layer in (nn.AvgPool2d(2), JPEGLayer()):  # pixel-domain layers without a JPEG-domain twin
        assert layer.input_domain == "pixel" and layer.jpeg_form() is None
    for kind in (nn.Linear, nn.Identity, nn.Flatten, nn.Sequential, nn.ResidualBlock):
        assert kind.input_domain == "any"
    for kind in (nn.DCTConv2d, nn.DCTBatchNorm, nn.ASMReLU, nn.DCTGlobalAvgPool, nn.DCTNormalize,
                 dist.SyncDCTBatchNorm):
        assert kind.input_domain == "jpeg"
    assert all(kind.input_domain in nn.DOMAINS for kind in nn.MODULES.values())


def test_model_domain():
    from dctnet.jpegdl import JPEGLayer

    net = trained_like(np.float64)
    jnet = dctnet.convert(net)
    assert (dctnet.model_domain(net), dctnet.model_domain(jnet)) == ("pixel", "jpeg")
    assert dctnet.model_domain(nn.Sequential(nn.Flatten(), nn.Linear(4, 2))) == "pixel"  # takes either
    # JPEG-DL's layer takes pixels and hands the JPEG-domain model coefficients: the model takes pixels.
    assert dctnet.model_domain(nn.Sequential(JPEGLayer(output="dct"), jnet)) == "pixel"
    from dctnet import distributed as dist

    assert dctnet.model_domain(dist.convert_sync_batchnorm(jnet)) == "jpeg"


class PixelScale(nn.Module):
    """A user layer with a JPEG-domain twin: scaling is the same on pixels and coefficients."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def forward(self, x):
        return dctnet.as_tensor(x) * self.factor

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(CoefficientScale)


class CoefficientScale(PixelScale):
    input_domain = "jpeg"


class OwnConv(nn.Conv2d):
    """A Conv2d subclass that changes forward: Conv2d's form does not compute it."""

    def forward(self, x):
        return super().forward(x) * 2


class PlainConv(nn.Conv2d):
    """Conv2d under another name, constructor and forward unchanged: Conv2d's form still applies."""


def test_user_layers_declare_their_own_forms():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), PixelScale(3.0), PlainConv(2, 2, 1)).astype(np.float64)
    jpeg = dctnet.convert(model)
    assert [type(m).__name__ for m in jpeg] == ["DCTConv2d", "CoefficientScale", "DCTConv2d"]
    assert jpeg[1].factor == 3.0 and dctnet.model_domain(jpeg) == "jpeg"
    x = np.random.default_rng(0).normal(size=(2, 1, 16, 8))
    np.testing.assert_allclose(dctnet.from_dct(logits(jpeg, dctnet.to_dct(x))), logits(model, x), atol=1e-12)
    with pytest.raises(TypeError, match=r"model\.0 \(OwnConv\) has no JPEG-domain form"):
        dctnet.convert(nn.Sequential(OwnConv(1, 1, 1)))
    with pytest.raises(TypeError, match="input_domain must be one of"):
        type("Bad", (nn.Module,), {"input_domain": "frequency"})


def test_the_refusal_names_what_converts():
    with pytest.raises(TypeError) as info:
        dctnet.convert(nn.Sequential(nn.AvgPool2d(2)))
    message = str(info.value)
    for name in ("Conv2d", "BatchNorm2d", "ReLU", "GlobalAvgPool", "Normalize", "SyncBatchNorm2d",
                 "Linear", "Sequential", "ResidualBlock", "jpeg_form()", "input_domain = 'any'"):
        assert name in message
    assert "AvgPool2d," not in message and "DCTConv2d" not in message


# -- import structure --------------------------------------------------------------------------

def _imported_modules(path):
    """Every module name an ``import`` in the file names, at any depth (functions included)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" if node.module else base + alias.name for alias in node.names)
    return names


PACKAGE = Path(dctnet.__file__).parent


def test_conversion_imports_no_mpi():
    names = _imported_modules(PACKAGE / "conversion.py")
    assert not {n for n in names if "distributed" in n or "mpi" in n.lower()}, names


def test_nn_does_not_import_jpegdl():
    names = _imported_modules(PACKAGE / "nn.py")
    assert not {n for n in names if "jpegdl" in n}, names


def test_torchvision_resnets_carry_where_safe(rng):
    """convert(..., "auto") carries models.ResNet and its blocks; a user's block subclass keeps coefficients."""
    small = models.ResNet("basic", (1, 1, 1, 1), num_classes=3, in_channels=1)
    for net in (small, models.resnet50(num_classes=3)):
        assert {m.evaluation for m in dctnet.convert(net).modules() if isinstance(m, nn.EvaluatedLayer)} == {"carried"}

    class MyBlock(models.BasicBlock):
        def forward(self, x):
            return super().forward(x)

    custom = nn.Sequential(MyBlock(1, 2, 1), nn.GlobalAvgPool())
    assert {m.evaluation for m in dctnet.convert(custom).modules() if isinstance(m, nn.EvaluatedLayer)} == {"auto"}
    # a carried input is checked as coefficients are: the stage that would not be whole blocks is named
    jnet = dctnet.convert(small.eval())
    with pytest.raises(ValueError, match=r"224x224 input makes layer2 28x28 pixels"):
        jnet(F.carry(np.zeros((1, 1, 28, 28, 64), np.float32)))
    x = dctnet.to_dct(rng.uniform(size=(1, 1, 256, 256)))
    net64, jnet64 = small.eval().astype(np.float64), dctnet.convert(small.astype(np.float64))
    with dctnet.no_grad():
        want = net64(Tensor(dctnet.from_dct(x))).data
        got = jnet64(x).data
        spatial = dctnet.set_evaluation(dctnet.convert(net64), "spatial")(x).data
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(spatial, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
