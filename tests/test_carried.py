"""Every evaluation of the JPEG-domain network against the pixel network it stands for.

The reference is ``to_dct(pixel_net(from_dct(x)))``; below 15 frequencies the
pixel net's ReLUs are replaced by the plain ASM/APX formula
(``from_dct(asm_relu(to_dct(.)))``, the coefficient-domain op of
tests/test_dct_relu.py). Forward, input and parameter gradients, in float64
(tight) and float32; stride-2 blocks, projection and identity shortcuts,
non-square and grey inputs, training-mode batch norm.
"""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, gradcheck, nn
from dctnet import functional as F

EVALUATIONS = ("carried", "spatial", "dense")


class PlainDCTReLU(nn.Module):
    """The reference ReLU on pixels: DCT, the coefficient-domain ASM/APX, IDCT."""

    def __init__(self, frequencies=15, method="asm"):
        self.frequencies, self.method = frequencies, method

    def forward(self, x):
        if self.frequencies == 15:
            return F.relu(x)
        return F.block_idct(F.dct_relu(F.block_dct(x), self.frequencies, self.method))


def reference(model, n, method):
    """``model`` with each ReLU replaced by the plain formula (parameters shared)."""
    if isinstance(model, nn.ReLU):
        return PlainDCTReLU(n, method)
    return model.with_children(lambda name, child: reference(child, n, method))


def features_net(channels):
    """Conv-BN-ReLU, a stride-2 block (projection shortcut), a stride-1 block (identity shortcut)."""
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.ResidualBlock(4, 6, stride=2), nn.ResidualBlock(6, 6, stride=1))


def classifier_net(channels):
    return nn.Sequential(nn.Normalize([100.0] * channels, [50.0] * channels), nn.ResidualBlock(channels, 4, 1),
                         nn.ResidualBlock(4, 6, 2), nn.GlobalAvgPool(), nn.Linear(6, 3))


CASES = [  # (net, channels, H, W)
    (features_net, 3, 16, 32),
    (features_net, 1, 32, 16),
    (classifier_net, 3, 32, 16),
    (classifier_net, 1, 16, 16),
]


def run(model, x, weights, train):
    """Output (coefficients or logits, as an array), d/dx and d/dparams of ``sum(out * weights)``."""
    model.train(train)
    model.zero_grad()
    x = Tensor(x, requires_grad=True)
    out = model(x)
    out = F.as_coefficients(out)
    (out * weights).sum().backward()
    return out.data, x.grad, [p.grad for p in model.parameters()]


def run_reference(model, x, weights, train):
    model.train(train)
    model.zero_grad()
    x = Tensor(x, requires_grad=True)
    out = model(F.block_idct(x))
    if out.ndim == 4:
        out = F.block_dct(out)
    (out * weights).sum().backward()
    return out.data, x.grad, [p.grad for p in model.parameters()]


def build(case, dtype, seed):
    make, channels, h, w = case
    nn.manual_seed(seed)
    net = make(channels).astype(dtype)
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(0, 255, (3, channels, h, w)) if make is classifier_net else rng.normal(size=(3, channels, h, w))
    net.train()
    net(Tensor(pixels.astype(dtype)))  # non-trivial running statistics for eval mode
    x = dctnet.to_dct(pixels).astype(dtype)
    return net, x, rng


def compare(got, want, rtol, atol):
    out, dx, dps = got
    rout, rdx, rdps = want
    scale = lambda a: atol * max(1.0, float(np.abs(a).max()))  # noqa: E731
    np.testing.assert_allclose(out, rout, rtol=rtol, atol=scale(rout))
    np.testing.assert_allclose(dx, rdx, rtol=rtol, atol=scale(rdx))
    assert len(dps) == len(rdps)
    for g, r in zip(dps, rdps):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=scale(r))


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("n,method", [(15, "asm"), (6, "asm"), (3, "apx")])
@pytest.mark.parametrize("train", [True, False])
def test_float64_forward_backward(evaluation, case, n, method, train):
    net, x, rng = build(CASES[case], np.float64, case)
    jnet = dctnet.convert(net, relu_frequencies=n, relu=method, evaluation=evaluation)
    with dctnet.no_grad():
        shape = F.as_coefficients(jnet.eval()(x)).shape
    weights = rng.normal(size=shape)
    want = run_reference(reference(net, n, method), x, weights, train)
    got = run(jnet, x, weights, train)
    compare(got, want, 1e-9, 1e-10)


@pytest.mark.parametrize("evaluation", EVALUATIONS)
@pytest.mark.parametrize("case", [0, 3])
@pytest.mark.parametrize("n", [15, 6])
def test_float32(evaluation, case, n):
    net, x, rng = build(CASES[case], np.float32, case)
    jnet = dctnet.convert(net, relu_frequencies=n, evaluation=evaluation)
    with dctnet.no_grad():
        shape = F.as_coefficients(jnet.eval()(x)).shape
    weights = rng.normal(size=shape).astype(np.float32)
    want = run_reference(reference(net, n, "asm").astype(np.float64), x.astype(np.float64), weights, False)
    net.astype(np.float32)
    got = run(jnet, x, weights, False)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float32
    compare(got, want, 2e-3, 2e-4)


@pytest.mark.parametrize("n,method", [(15, "asm"), (4, "asm"), (4, "apx")])
def test_gradcheck_carried_network(n, method):
    net, x, _ = build(CASES[0], np.float64, 7)
    jnet = dctnet.convert(net, relu_frequencies=n, relu=method, evaluation="carried").eval()
    assert gradcheck(lambda t: F.as_coefficients(jnet(t)), [Tensor(x[:1], requires_grad=True)])


@pytest.mark.parametrize("n", [1, 2, 6, 10, 14])
@pytest.mark.parametrize("method", ["asm", "apx"])
def test_carried_relu_is_the_coefficient_relu(rng, n, method):
    c = dctnet.to_dct(rng.normal(size=(2, 3, 16, 24)))
    got = F.dct_relu(F.carry(c), n, method)
    assert isinstance(got, F.CarriedDCT)
    np.testing.assert_allclose(got.to_dct().data, F.dct_relu(c, n, method).data, atol=1e-12)
    x = Tensor(dctnet.from_dct(c), requires_grad=True)
    assert gradcheck(lambda t: F.dct_relu(F.CarriedDCT(t), n, method).pixels, [x])


def test_carried_signal(rng):
    c = dctnet.to_dct(rng.normal(size=(1, 2, 8, 16)))
    s = F.carry(c)
    assert F.carry(s) is s and s.shape == c.shape and s.dtype == c.dtype
    np.testing.assert_allclose((s + c).to_dct().data, 2 * c, atol=1e-12)
    np.testing.assert_allclose((c + s).to_dct().data, 2 * c, atol=1e-12)
    with pytest.raises(ValueError, match="multiples of 8"):
        F.CarriedDCT(np.zeros((1, 1, 8, 12)))
    with pytest.raises(ValueError, match="coefficients"):
        F.carry(np.zeros((1, 1, 8, 8)))


def test_set_evaluation_and_defaults():
    net = classifier_net(1)
    jnet = dctnet.convert(net)
    layers = [m for m in jnet.modules() if m.input_domain == "jpeg"]
    assert {m.evaluation for m in layers} == {"carried"}  # features out, built-in layers only
    # a signal out, or a layer convert does not know: coefficients between the layers
    assert {m.evaluation for m in dctnet.convert(features_net(1)).modules()
            if m.input_domain == "jpeg"} == {"auto"}
    assert {m._resolved() for m in dctnet.convert(features_net(1)).modules()
            if m.input_domain == "jpeg"} == {"spatial"}
    assert dctnet.set_evaluation(jnet, "spatial") is jnet
    assert {m.evaluation for m in layers} == {"spatial"}
    assert jnet.config() == dctnet.convert(net).config()  # an execution choice, not architecture
    with pytest.raises(ValueError, match="evaluation must be one of"):
        dctnet.convert(net, evaluation="pixels")
    with pytest.raises(ValueError, match="evaluation must be one of"):
        dctnet.set_evaluation(jnet, "fast")
    # a conv built with an explicit method keeps it while its evaluation is "auto"
    conv = nn.DCTConv2d(1, 1, 3, padding=1, method="dense")
    assert conv._resolved() == "dense"
    conv.evaluation = "carried"
    assert conv._resolved() == "carried"


def test_carried_layers_return_carried(rng):
    jnet = dctnet.convert(features_net(1), evaluation="carried").eval()
    c = dctnet.to_dct(rng.normal(size=(1, 1, 16, 16))).astype(np.float32)
    with dctnet.no_grad():
        out = jnet(c)
        assert isinstance(out, F.CarriedDCT) and out.shape == (1, 6, 1, 1, 64)
        conv = dctnet.set_evaluation(nn.DCTConv2d(6, 2, 3, padding=1).astype(np.float32), "spatial")
        spatial = conv(out)  # a carried input to a coefficient evaluation
    assert spatial.shape == (1, 2, 1, 1, 64) and isinstance(spatial, Tensor)
    np.testing.assert_allclose(spatial.data, conv(out.to_dct()).data, atol=1e-5)


def test_a_loaded_model_evaluates_as_convert_chose(tmp_path):
    jnet = dctnet.convert(classifier_net(3))
    dctnet.save(jnet, tmp_path / "j.h5")
    loaded = dctnet.load(tmp_path / "j.h5")
    assert {m.evaluation for m in loaded.modules() if isinstance(m, nn.EvaluatedLayer)} == {"carried"}


@pytest.mark.parametrize("evaluation", EVALUATIONS)
def test_max_pool_in_every_evaluation(evaluation):
    """A stride-2 max-pool between conv and ReLU: carried, spatial and dense against the pixel net, both passes."""
    nn.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.ReLU()).astype(np.float64)
    rng = np.random.default_rng(3)
    x = dctnet.to_dct(rng.normal(size=(2, 1, 32, 16)))
    weights = rng.normal(size=(2, 2, 2, 1, 64))
    want = run_reference(net, x, weights, False)
    compare(run(dctnet.convert(net, evaluation=evaluation), x, weights, False), want, 1e-9, 1e-10)


def test_an_empty_batch_in_the_carried_evaluation():
    jnet = dctnet.convert(classifier_net(1), evaluation="carried").eval()
    with dctnet.no_grad():
        assert jnet(np.zeros((0, 1, 2, 2, 64), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", [(2, 3, 16, 24), (1, 1, 8, 8), (3, 5, 24, 16)])
def test_carried_relu_without_a_backward_pass_is_the_masked_product(rng, dtype, atol, shape):
    """Without gradients the carried ASM/APX runs the engine's separable kernel per plane; it
    equals LowPassMaskedReLU (the masked block product kept for the backward pass)."""
    from dctnet.functional.dct_activation import LowPassMaskedReLU

    x = rng.normal(size=shape).astype(dtype)
    for n in (1, 6, 14):
        for method in ("asm", "apx"):
            want = LowPassMaskedReLU.apply(Tensor(x), k=dctnet.frequency_count(n), method=method).data
            got = F.dct_relu(F.CarriedDCT(Tensor(x)), n, method).pixels
            assert got.dtype == dtype and not got.requires_grad
            np.testing.assert_allclose(got.data, want, rtol=0, atol=atol, err_msg=f"n={n} {method}")
    half = x.astype(np.float16)  # a dtype the kernel is not compiled for: the masked product
    want = LowPassMaskedReLU.apply(Tensor(half), k=dctnet.frequency_count(6), method="asm").data
    np.testing.assert_array_equal(F.dct_relu(F.CarriedDCT(Tensor(half)), 6, "asm").pixels.data, want)
    t = Tensor(x, requires_grad=True)  # with a backward pass to come: the masked product, differentiable
    out = F.dct_relu(F.CarriedDCT(t), 6, "asm").pixels
    assert out.requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(t.grad != 0, out.data != 0)
