"""JPEG-DL: soft quantization (dctnet.functional.soft_quant) and the JPEG layer (dctnet.jpegdl)."""

import numpy as np
import pytest

import dctnet
from dctnet import nn, optim
from dctnet.functional import cross_entropy
from dctnet.functional.soft_quant import soft_quantize
from dctnet.jpeg import RGB_TO_YCBCR
from dctnet.jpegdl import JPEGLayer, sensitivity_tables, tables_from_statistics


def _q75():
    return dctnet.quant_table(75, "luma"), dctnet.quant_table(75, "chroma")


def _image(seed=0, n=2, size=16):
    """Smooth-ish RGB images 0..255 (float64): random blocks plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(30, 225, (n, 3, size // 4, size // 4))
    x = np.kron(coarse, np.ones((4, 4))) + rng.normal(0, 12, (n, 3, size, size))
    return np.clip(x, 0, 255)


# ----------------------------------------------------------------------------- soft_quantize


def _reference(z, q, alpha, span=40):
    """NumPy reference: the softmax over every level -span..span."""
    z, q, alpha = np.broadcast_arrays(z, q, alpha)
    i = np.arange(-span, span + 1, dtype=np.float64)
    logits = -alpha[..., None] * (z[..., None] - i * q[..., None]) ** 2
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return (p * i).sum(axis=-1) * q


def test_soft_quantize_matches_full_softmax():
    rng = np.random.default_rng(0)
    q = rng.uniform(2, 10, 64)
    z = rng.uniform(-3, 3, (5, 64)) * q  # |z/q| <= 3: a 25-level window holds every level that matters
    alpha = 0.5 / q**2  # soft: P(i) ~ exp(-0.5 (z/q - i)^2), negligible 12 levels away
    got = soft_quantize(z, q, alpha, levels=25, bits=8).data
    np.testing.assert_allclose(got, _reference(z, q, alpha), rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, np.rint(z / q) * q)  # genuinely soft


def test_soft_quantize_and_layer_in_float32():
    rng = np.random.default_rng(3)
    q = rng.uniform(2, 10, 64)
    z = rng.uniform(-3, 3, (5, 64)) * q
    alpha = 0.5 / q**2
    got = soft_quantize(*(a.astype(np.float32) for a in (z, q, alpha)), levels=25, bits=8).data
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(z, q, alpha), rtol=1e-5, atol=1e-5 * q.max())
    x = _image(6)
    layer = JPEGLayer(init=_q75(), alpha="fixed", alpha_init=0.05)
    single = layer(dctnet.Tensor(x.astype(np.float32))).data
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, layer.astype(np.float64)(dctnet.Tensor(x)).data, atol=1e-3)  # of 0..255


def test_soft_quantize_large_alpha_is_hard_rounding():
    rng = np.random.default_rng(1)
    q = rng.uniform(1, 20, 64)
    t = rng.uniform(-100, 100, (50, 64))
    t = np.where(np.abs(t - np.floor(t) - 0.5) < 0.01, t + 0.1, t)  # away from ties
    got = soft_quantize(t * q, q, 1e6, bits=8).data
    np.testing.assert_array_equal(got, np.rint(t) * q)


def test_soft_quantize_window_stays_in_bits_range():
    q = np.ones(3)
    got = soft_quantize(np.array([500.0, -500.0, 126.2]), q, 1e6, levels=5, bits=8).data
    np.testing.assert_array_equal(got, [127.0, -128.0, 126.0])


@pytest.mark.parametrize("levels", [1, 4, 5])
def test_soft_quantize_gradcheck(levels):
    rng = np.random.default_rng(2)
    q = dctnet.Tensor(rng.uniform(2, 6, (1, 8)), requires_grad=True)
    t = rng.uniform(-4, 4, (3, 8))
    t = np.where(np.abs(t - np.floor(t) - 0.5) < 0.05, t + 0.2, t)  # window boundaries are kinks
    z = dctnet.Tensor(t * q.data, requires_grad=True)
    alpha = dctnet.Tensor(rng.uniform(0.5, 3, (8,)) / q.data[0] ** 2, requires_grad=True)
    assert dctnet.gradcheck(lambda z, q, a: soft_quantize(z, q, a, levels=levels), [z, q, alpha], rtol=1e-5)


def test_soft_quantize_gradcheck_scalar_q_alpha():
    rng = np.random.default_rng(3)
    z = dctnet.Tensor(rng.uniform(-9, 9, (4, 5)) + 0.01, requires_grad=True)
    q = dctnet.Tensor(np.array(3.0), requires_grad=True)
    alpha = dctnet.Tensor(np.array(0.2), requires_grad=True)
    assert dctnet.gradcheck(soft_quantize, [z, q, alpha], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(q=0.0), "positive q"),
        (dict(q=np.array([1.0, -2.0])), "positive q"),
        (dict(alpha=0.0), "positive alpha"),
        (dict(levels=0), "levels"),
        (dict(bits=1), "bits"),
        (dict(q=np.ones(3)), "broadcast"),
    ],
)
def test_soft_quantize_bad_arguments(kwargs, match):
    args = dict(z=np.ones((2, 2)), q=1.0, alpha=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        soft_quantize(**args)


# ----------------------------------------------------------------------------- the layer


def _hard_reference(x, luma, chroma):
    """Float JPEG with real rounding: quantized YCbCr coefficients (index and dequantized)."""
    ycc = np.einsum("kc,nchw->nkhw", RGB_TO_YCBCR, x - 128.0)
    coefs = dctnet.to_dct(ycc)
    q = np.stack([luma, chroma, chroma]).reshape(3, 1, 1, 64).astype(np.float64)
    return coefs / q, q


def _layer_ycc(out_dct):
    """YCbCr (level-shifted) coefficients of the layer's RGB DCT output."""
    c = out_dct.copy()
    c[..., 0] -= 1024.0
    return np.einsum("kc,nc...->nk...", RGB_TO_YCBCR, c)


def test_layer_with_hard_alpha_is_jpeg_quantization():
    luma, chroma = _q75()
    layer = JPEGLayer(init=(luma, chroma), alpha="hardness", hardness=1e6, output="dct", bits=12).astype(np.float64)
    x = _image(0)
    out = layer(dctnet.Tensor(x)).data
    t, q = _hard_reference(x, luma, chroma)
    assert np.abs(t).max() < 2047  # bits=12: no clamping of the index range
    ycc = _layer_ycc(out)
    clear = np.abs(t - np.floor(t) - 0.5) > 1e-3  # not a near-tie of the rounding
    assert clear.mean() > 0.99
    np.testing.assert_allclose(ycc[np.broadcast_to(clear, ycc.shape)],
                               (np.rint(t) * q)[np.broadcast_to(clear, ycc.shape)], atol=1e-8)
    # the package's encoder, coefficient by coefficient
    for n in range(len(x)):
        img = dctnet.encode_jpeg(x[n], qtables=(luma, chroma), subsampling="4:4:4")
        ref = np.stack([c * tb for c, tb in zip(img.coefficients, img.qtables)])  # dequantized YCbCr
        agree = np.isclose(ycc[n], ref, atol=1e-6)
        assert agree.mean() > 0.999
        steps = np.broadcast_to(q, ref.shape)
        np.testing.assert_allclose(np.abs(ycc[n] - ref)[~agree], steps[~agree])  # one step off at ties
        # its exact float decode is the layer's DCT output (in the blocks without ties)
        blocks = agree.all(axis=(0, 3))
        assert blocks.mean() > 0.5
        np.testing.assert_allclose(img.to_dct("rgb", np.float64)[:, blocks], out[n][:, blocks], atol=1e-6)


def _quotients(x, luma, chroma, v, h):
    """Unrounded JPEG indices of one RGB image: JFIF YCbCr, chroma box-averaged v x h, scipy's DCT."""
    import scipy.fft

    ycc = np.einsum("kc,chw->khw", RGB_TO_YCBCR, x - 128.0)
    out = []
    for c, plane in enumerate(ycc):
        if c:
            plane = plane.reshape(plane.shape[0] // v, v, plane.shape[1] // h, h).mean(axis=(1, 3))
        bh, bw = plane.shape[0] // 8, plane.shape[1] // 8
        blocks = plane.reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3)
        coef = scipy.fft.dctn(blocks, axes=(-2, -1), norm="ortho").reshape(bh, bw, 64)[..., dctnet.ZIGZAG]
        out.append(coef / (chroma if c else luma))
    return out


@pytest.mark.parametrize("subsampling", ["4:2:2", "4:2:0", "4:4:0"])
def test_layer_with_subsampled_chroma_is_the_encoder_and_its_exact_decode(subsampling):
    luma, chroma = _q75()
    v, h = dctnet.jpeg.SUBSAMPLING[subsampling]
    layer = JPEGLayer(init=(luma, chroma), subsampling=subsampling, alpha="hardness", hardness=1e6,
                      bits=12).astype(np.float64)
    as_dct = JPEGLayer(init=(luma, chroma), subsampling=subsampling, alpha="hardness", hardness=1e6, bits=12,
                       output="dct").astype(np.float64)
    tested = 0
    for seed in range(20):
        x = _image(seed, n=1, size=16)
        t = _quotients(x[0], luma, chroma, v, h)
        img = dctnet.encode_jpeg(x[0], qtables=(luma, chroma), subsampling=subsampling)
        for mine, theirs in zip(t, img.coefficients):
            np.testing.assert_array_equal(np.rint(mine), theirs)  # the encoder, independently
        if any((np.abs(m - np.floor(m) - 0.5) < 1e-4).any() for m in t):  # hardness 1e6: hard beyond
            continue  # a near-tie of the rounding: soft and hard may round it apart
        tested += 1
        np.testing.assert_allclose(layer(dctnet.Tensor(x)).data[0], img.to_pixels("rgb", np.float64), atol=1e-8)
        np.testing.assert_allclose(as_dct(dctnet.Tensor(x)).data[0], img.to_dct("rgb", np.float64), atol=1e-8)
    assert tested >= 3
    soft = JPEGLayer(init=(luma, chroma), subsampling=subsampling, alpha="trainable", alpha_init=0.05,
                     rounds=2).astype(np.float64)
    image = _image(9, n=1, size=16)
    assert dctnet.gradcheck(soft, [dctnet.Tensor(image, requires_grad=True)], rtol=1e-5)
    # the tables' gradients, against central differences of a weighted sum of the output
    weights = np.random.default_rng(1).normal(size=image.shape)
    soft.zero_grad()  # gradcheck's passes reached the tables too
    (soft(dctnet.Tensor(image)) * weights).sum().backward()
    for name, k in (("round0_q_chroma", 0), ("round1_q_chroma", 2), ("round0_q_luma", 5), ("round1_alpha_chroma", 1)):
        p = soft._parameters[name]
        base, eps = p.data[k], 1e-6 * max(1.0, abs(p.data[k]))
        f = []
        for value in (base + eps, base - eps):
            p.data[k] = value
            f.append(float((soft(dctnet.Tensor(image)).data * weights).sum()))
        p.data[k] = base
        assert p.grad[k] == pytest.approx((f[0] - f[1]) / (2 * eps), rel=1e-4, abs=1e-6), name
    with pytest.raises(ValueError, match=f"multiples of {8 * v} and {8 * h}"):
        layer(dctnet.Tensor(np.zeros((1, 3, 8, 8))))  # whole blocks, not whole MCUs
    full = JPEGLayer(init=(luma, chroma), alpha="hardness", hardness=1e6, bits=12).astype(np.float64)
    grey = dctnet.Tensor(x[:, :1])  # one channel: no chroma to subsample, the 4:4:4 luma path
    np.testing.assert_array_equal(layer(grey).data, full(grey).data)


def test_layer_pixels_and_dct_outputs_agree():
    kwargs = dict(init=_q75(), alpha="fixed", alpha_init=0.05, rounds=2)
    x = dctnet.Tensor(_image(1))
    pixels = JPEGLayer(output="pixels", **kwargs).astype(np.float64)(x).data
    dct = JPEGLayer(output="dct", **kwargs).astype(np.float64)(x).data
    assert pixels.shape == x.shape and dct.shape == (2, 3, 2, 2, 64)
    np.testing.assert_allclose(dct, dctnet.to_dct(pixels), atol=1e-9)


def test_layer_lossless_limit_and_grey_and_rgb():
    x = _image(2)
    fine = JPEGLayer(q_init=1.0, alpha="hardness", hardness=1e4, bits=16).astype(np.float64)
    # q = 1: rounding the YCbCr coefficients moves each by at most 0.5
    assert np.abs(fine(dctnet.Tensor(x)).data - x).max() < 8.0
    grey = JPEGLayer(q_init=16.0)(dctnet.Tensor(x[:, :1].astype(np.float32)))
    assert grey.shape == (2, 1, 16, 16) and grey.dtype == np.float32
    rgb = JPEGLayer(color="rgb", q_init=4.0, alpha="hardness", hardness=1e6, bits=12).astype(np.float64)
    expected = dctnet.from_dct(np.rint((dctnet.to_dct(x - 128.0)) / 4.0) * 4.0) + 128.0
    out = rgb(dctnet.Tensor(x)).data
    assert np.isclose(out, expected, atol=1e-6).mean() > 0.99
    assert [n for n, _ in rgb.named_parameters()] == ["round0_q_luma"]
    assert all(np.array_equal(t, np.full(64, 4)) for t in rgb.export_qtables())


def test_layer_gradcheck_wrt_pixels():
    layer = JPEGLayer(init=_q75(), alpha="fixed", alpha_init=0.02, rounds=2).astype(np.float64)
    x = dctnet.Tensor(_image(8, n=1), requires_grad=True)
    assert dctnet.gradcheck(layer, [x], rtol=1e-5)


def test_layer_clamps_tables_and_alpha_in_place():
    layer = JPEGLayer(q_min=2.0)
    layer.q_luma.data[:3] = [0.5, -3.0, 400.0]
    layer.round0_alpha_chroma.data[0] = -1.0
    layer(dctnet.Tensor(_image(3).astype(np.float32)))
    assert layer.q_luma.data[:3].tolist() == [2.0, 2.0, 255.0]
    assert layer.round0_alpha_chroma.data[0] == pytest.approx(1e-5)
    fixed = JPEGLayer(alpha="fixed")
    fixed.round0_alpha_luma[:] = 0.0
    fixed(dctnet.Tensor(_image(3).astype(np.float32)))
    assert fixed.round0_alpha_luma.min() == pytest.approx(1e-5)


def test_export_qtables():
    layer = JPEGLayer(init=(np.linspace(0.2, 300.0, 64), np.full(64, 7.4)))
    luma, chroma = layer.export_qtables()
    assert luma.dtype == np.int32 and luma.min() == 1 and luma.max() == 255
    assert np.array_equal(chroma, np.full(64, 7))
    with pytest.raises(ValueError, match="round"):
        layer.export_qtables(round=1)


def test_config_and_file_round_trip(tmp_path):
    layer = JPEGLayer(init=_q75(), alpha="trainable", rounds=2, output="dct", levels=3)
    layer.round1_q_chroma.data[:] = 42.0
    layer.round0_alpha_luma.data[:] = 0.25
    model = nn.Sequential(layer, nn.DCTGlobalAvgPool(), nn.Linear(3, 2))
    rebuilt = nn.from_config(model.config())
    assert rebuilt.config() == model.config()
    dctnet.save(model, tmp_path / "m.h5")
    loaded = dctnet.load(tmp_path / "m.h5")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value)
    x = dctnet.Tensor(_image(4).astype(np.float32))
    np.testing.assert_allclose(loaded(x).data, model.eval()(x).data, rtol=1e-6)
    fixed = JPEGLayer(alpha="fixed", alpha_init=0.3)
    dctnet.save(fixed, tmp_path / "f.h5")
    assert np.all(dctnet.load(tmp_path / "f.h5").round0_alpha_luma == np.float32(0.3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(q_init=0.0), "q_init"),
        (dict(init=(np.zeros(64), np.ones(64))), "positive"),
        (dict(init=(np.ones(63), np.ones(64))), "shape"),
        (dict(init=(np.ones(64),)), "pair"),
        (dict(init="jpeg"), "init"),
        (dict(color="lab"), "color"),
        (dict(output="png"), "output"),
        (dict(alpha="learned"), "alpha"),
        (dict(subsampling="4:1:1"), "subsampling must be one of"),
        (dict(subsampling="4:2:0", color="rgb"), "needs color='ycbcr'"),
        (dict(rounds=0), "rounds"),
        (dict(hardness=-1.0), "hardness"),
        (dict(q_min=0.0), "q_min"),
    ],
)
def test_layer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JPEGLayer(**kwargs)


def test_layer_bad_input():
    layer = JPEGLayer()
    with pytest.raises(ValueError, match="multiples of 8"):
        layer(dctnet.Tensor(np.zeros((1, 3, 12, 16), np.float32)))
    with pytest.raises(ValueError, match="N, 3 or 1"):
        layer(dctnet.Tensor(np.zeros((1, 2, 16, 16), np.float32)))


@pytest.mark.parametrize("alpha", ["trainable", "hardness"])
def test_training_step_changes_tables(alpha):
    nn.manual_seed(0)
    layer = JPEGLayer(init=_q75(), alpha=alpha, rounds=2)
    model = nn.Sequential(layer, nn.Conv2d(3, 4, 3, padding=1), nn.GlobalAvgPool(), nn.Linear(4, 3))
    before = {n: p.data.copy() for n, p in layer.named_parameters()}
    opt = optim.Adam(layer.parameters(), lr=3e-3)
    x = dctnet.Tensor(_image(5, n=4).astype(np.float32))
    loss = cross_entropy(model(x), np.array([0, 1, 2, 0]))
    opt.zero_grad()
    loss.backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad).all() and np.abs(p.grad).sum() > 0, name
    opt.step()
    for name, p in layer.named_parameters():
        assert not np.array_equal(p.data, before[name]), name


# ----------------------------------------------------------------------------- initialization


def test_tables_from_statistics():
    x = _image(6, n=4)
    stats = dctnet.qtables.dct_statistics(x)
    luma, chroma = tables_from_statistics(stats, q_max=50.0, q_min=2.0)
    assert luma.shape == chroma.shape == (64,)
    assert luma.max() == pytest.approx(50.0) and luma.min() >= 2.0 and chroma.max() <= 255
    assert luma[0] < luma[-1]  # the DC carries most energy: the finest step
    layer = JPEGLayer.init_from_statistics(stats, q_max=50.0, q_min=2.0)
    np.testing.assert_allclose(layer.q_luma.data, luma, rtol=1e-6)
    with pytest.raises(ValueError, match="mean_abs"):
        tables_from_statistics(np.ones((2, 64)))


def test_sensitivity_tables():
    nn.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.GlobalAvgPool(), nn.Linear(4, 3))
    x = _image(7, n=6).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    luma, chroma = sensitivity_tables(model, [x[:3], x[3:]], [y[:3], y[3:]], q_max=40.0)
    assert luma.max() == pytest.approx(40.0) and luma.min() >= 1.0 and chroma.min() >= 1.0
    assert model.training  # mode restored
    layer = JPEGLayer.init_from_sensitivity(model, x, y, q_max=40.0, alpha="hardness")
    np.testing.assert_allclose(layer.q_luma.data, luma, rtol=1e-5)


# ----------------------------------------------------------------------------- the example


def test_example_trains_saves_and_resumes_exactly(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    example = pytest.importorskip("train_jpeg_dl")

    def run(out, *extra):
        return example.main(["--dataset", "sample", "--epochs", "2", "--batch-size", "50", "--no-progress",
                             "--no-augment", "--out", str(out), *extra])

    whole = run(tmp_path / "a")
    run(tmp_path / "b", "--stop-after", "1")
    resumed = run(tmp_path / "b", "--resume")
    a, b = dctnet.load(tmp_path / "a" / "model.h5"), dctnet.load(tmp_path / "b" / "model.h5")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(x, y), name
    assert resumed[-1]["test_acc"] == whole[-1]["test_acc"]
    assert not np.array_equal(a[0].q_luma.data, dctnet.quant_table(50, "luma"))  # the tables learned
    meta = dctnet.load_checkpoint(tmp_path / "a" / "model.h5").metadata
    assert np.array_equal(meta["qtables"]["luma"], a[0].export_qtables()[0])
    assert (tmp_path / "a" / "qtables.json").is_file()


def test_example_starts_from_a_pretrained_models_sensitivity(tmp_path):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "examples"))
    example = pytest.importorskip("train_jpeg_dl")
    pretrained = root / "examples" / "models" / "cifar10_paper_resnet.h5"
    with pytest.raises(SystemExit):  # --init sensitivity without a model: a usage error
        example.parse_args(["--init", "sensitivity"])
    with pytest.raises(SystemExit):
        example.parse_args(["--epochs", "0"])
    example.main(["--dataset", "sample", "--epochs", "1", "--batch-size", "50", "--no-progress", "--init",
                  "sensitivity", "--pretrained", str(pretrained), "--sensitivity-images", "60", "--q-max", "10",
                  "--alpha", "fixed", "--alpha-init", "1", "--out", str(tmp_path)])
    x, y = dctnet.datasets.sample_cifar10("pixels").data.astype(np.float32), dctnet.datasets.sample_cifar10("pixels").labels
    luma, chroma = sensitivity_tables(dctnet.load(pretrained), [x[:50], x[50:60]], [y[:50], y[50:60]], q_max=10.0)
    meta = dctnet.load_checkpoint(tmp_path / "model.h5").metadata
    np.testing.assert_allclose(meta["qtables_initial"]["luma"], luma, rtol=1e-5)
    np.testing.assert_allclose(meta["qtables_initial"]["chroma"], chroma, rtol=1e-5)
    assert max(meta["qtables_initial"]["luma"]) == pytest.approx(10.0)
    assert dctnet.load_checkpoint(tmp_path / "last.h5").metadata["qtables_initial"] == meta["qtables_initial"]


def test_results_example_summarizes_seeds_tables_and_sizes(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    train = pytest.importorskip("train_jpeg_dl")
    results = pytest.importorskip("jpeg_dl_results")
    runs = {}
    for arm in ("jpeg", "base"):
        for seed in (0, 1):
            out = tmp_path / f"{arm}-s{seed}"
            extra = ["--no-jpeg"] if arm == "base" else []
            history = train.main(["--dataset", "sample", "--epochs", "1", "--batch-size", "50", "--no-progress",
                                  "--seed", str(seed), "--out", str(out), *extra])
            runs[arm, seed] = history[-1]["test_acc"]
    with pytest.raises(SystemExit, match="no JPEG layer|have none"):  # the arms swapped
        results.main(["--jpeg", str(tmp_path / "base-s0"), "--baseline", str(tmp_path / "jpeg-s0"),
                      "--out", str(tmp_path / "bad")])
    results.main(["--jpeg", str(tmp_path / "jpeg-s0"), str(tmp_path / "jpeg-s1"),
                  "--baseline", str(tmp_path / "base-s0"), str(tmp_path / "base-s1"),
                  "--dataset", "sample", "--images", "12", "--qualities", "50", "90", "--out", str(tmp_path)])
    text = (tmp_path / "results.md").read_text()
    jpeg, base = np.array([runs["jpeg", 0], runs["jpeg", 1]]), np.array([runs["base", 0], runs["base", 1]])
    assert f"| JPEG layer | 2 | {jpeg.mean():.4f} ± {jpeg.std(ddof=1):.4f} |" in text
    assert f"| baseline | 2 | {base.mean():.4f} ± {base.std(ddof=1):.4f} |" in text
    assert f"mean {(jpeg - base).mean():+.4f}" in text
    assert "| learned, seed 1 | 4:4:4 |" in text and "| IJG quality 90 | 4:4:4 |" in text
    pytest.importorskip("matplotlib")
    assert (tmp_path / "accuracy.png").is_file() and (tmp_path / "qtables.png").is_file()


# ----------------------------------------------------------------------------- feature maps


def _blockwise(x, fn):
    """``fn`` applied to every 8x8 block (..., 8, 8) of (N, C, H, W)."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 8, 8, w // 8, 8).transpose(0, 1, 2, 4, 3, 5)
    return fn(blocks).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def test_layer_compresses_feature_maps_of_any_width():
    import scipy.fft

    x = np.random.default_rng(5).normal(0, 1.5, (2, 5, 16, 24))
    table = np.linspace(0.05, 0.8, 64)  # zigzag: the reference below must place it
    layer = JPEGLayer(color="rgb", level_shift=0, init=(table, table), q_min=0.01, alpha="hardness",
                      hardness=1e12, bits=12).astype(np.float64)
    natural = np.empty(64)
    natural[dctnet.ZIGZAG] = layer.q_luma.data  # the table as stored (float32 values)
    q = natural.reshape(8, 8)

    def hard_jpeg(b):
        coef = scipy.fft.dctn(b, axes=(-2, -1), norm="ortho")
        return scipy.fft.idctn(np.rint(coef / q) * q, axes=(-2, -1), norm="ortho")

    np.testing.assert_allclose(layer(dctnet.Tensor(x)).data, _blockwise(x, hard_jpeg), atol=1e-9)
    shifted = JPEGLayer(color="rgb", level_shift=3.0, init=(table, table), q_min=0.01, alpha="hardness",
                        hardness=1e12, bits=12).astype(np.float64)
    np.testing.assert_allclose(shifted(dctnet.Tensor(x)).data, _blockwise(x - 3.0, hard_jpeg) + 3.0, atol=1e-9)
    soft = JPEGLayer(color="rgb", level_shift=0, q_init=0.5, q_min=0.01, alpha="fixed", alpha_init=2.0).astype(np.float64)
    assert dctnet.gradcheck(soft, [dctnet.Tensor(x[:1, :2, :8, :8], requires_grad=True)], rtol=1e-5)
    with pytest.raises(ValueError, match=r"pixels \(N, 3 or 1, H, W\), found shape \(2, 5"):
        JPEGLayer()(dctnet.Tensor(x))  # YCbCr needs 3 channels (or 1)
    with pytest.raises(ValueError, match="level_shift must be a finite number"):
        JPEGLayer(level_shift=float("nan"))


def test_insert_after_first_conv_is_a_saved_part_of_the_model(tmp_path):
    from dctnet.jpegdl import find_jpeg_layer, insert_after_first_conv
    from dctnet.models import paper_resnet

    def net():
        nn.manual_seed(0)
        return paper_resnet(widths=(4, 4, 8), mean=(128.0,) * 3, std=(64.0,) * 3)

    plain, model = net().astype(np.float64).eval(), net()
    fine = JPEGLayer(color="rgb", level_shift=0, q_init=1e-6, q_min=1e-6, alpha="hardness", hardness=1e6, bits=32)
    assert insert_after_first_conv(model, fine) is model and find_jpeg_layer(model) is fine
    assert isinstance(model[1].conv1, nn.Sequential) and model[1].conv1[1] is fine  # model[0] is Normalize
    model = model.astype(np.float64).eval()
    x = dctnet.Tensor(_image(4, n=2, size=16))
    np.testing.assert_allclose(model(x).data, plain(x).data, atol=1e-5)  # steps of 1e-6: lossless
    fine.q_luma.data[:] = 0.5  # coarse steps change the prediction
    assert not np.allclose(model(x).data, plain(x).data, atol=1e-3)
    dctnet.save(model, tmp_path / "m.h5")
    back = dctnet.load(tmp_path / "m.h5").eval()
    np.testing.assert_array_equal(back(x).data, model(x).data)
    assert find_jpeg_layer(back).q_luma.data[0] == 0.5
    with pytest.raises(ValueError, match="no Conv2d"):
        insert_after_first_conv(nn.Sequential(nn.ReLU()), fine)
    with pytest.raises(TypeError, match=r"nn.Sequential\(conv, layer\)"):
        insert_after_first_conv(nn.Conv2d(3, 4, 3), fine)
    with pytest.raises(ValueError, match="insert the layer into the pixel model, then dctnet.convert"):
        insert_after_first_conv(dctnet.convert(net()), fine)
    assert find_jpeg_layer(plain) is None


def test_example_places_the_layer_after_the_first_convolution(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    example = pytest.importorskip("train_jpeg_dl")
    from dctnet.jpegdl import find_jpeg_layer

    with pytest.raises(SystemExit):  # image tables make no sense for feature maps
        example.parse_args(["--placement", "conv1", "--init", "quality"])
    common = ["--dataset", "sample", "--epochs", "2", "--batch-size", "50", "--no-progress", "--no-augment"]
    whole = example.main([*common, "--placement", "conv1", "--out", str(tmp_path / "a")])
    example.main([*common, "--placement", "conv1", "--stop-after", "1", "--out", str(tmp_path / "b")])
    resumed = example.main([*common, "--resume", "--out", str(tmp_path / "b")])  # the placement from the checkpoint
    assert resumed[-1]["test_acc"] == whole[-1]["test_acc"]
    a, b = dctnet.load(tmp_path / "a" / "model.h5"), dctnet.load(tmp_path / "b" / "model.h5")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert np.array_equal(x, y), name
    layer = find_jpeg_layer(b)
    assert layer.color == "rgb" and layer.level_shift == 0.0 and layer.bits == 12
    assert not np.allclose(layer.q_luma.data, 0.25)  # trained from the constant 0.25
    assert dctnet.load_checkpoint(tmp_path / "b" / "model.h5").metadata["placement"] == "conv1"
    saved = json.loads((tmp_path / "b" / "qtables.json").read_text())
    assert set(saved) == {"features", "initial"} and saved["initial"]["luma"] == [0.25] * 64


def test_dct_output_feeds_a_jpeg_domain_model_like_pixels_feed_the_pixel_model():
    from dctnet.functional import cross_entropy
    from dctnet.models import paper_resnet

    nn.manual_seed(2)
    net = paper_resnet(widths=(4, 4, 8), mean=(128.0,) * 3, std=(64.0,) * 3).astype(np.float64)
    jpeg_net = dctnet.convert(net)  # exact ReLU (n = 15): the same function on DCT coefficients
    kwargs = dict(init=_q75(), alpha="fixed", alpha_init=0.05)
    to_pixels = JPEGLayer(**kwargs).astype(np.float64)
    to_dct = JPEGLayer(output="dct", **kwargs).astype(np.float64)
    x, y = _image(10, n=2, size=32), np.array([1, 7])
    losses = []
    for model in (nn.Sequential(to_pixels, net), nn.Sequential(to_dct, jpeg_net)):
        model.train()
        loss = cross_entropy(model(dctnet.Tensor(x)), y)
        loss.backward()
        losses.append(float(loss.data))
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)
    for a, b in zip(to_pixels.parameters(), to_dct.parameters()):  # the tables learn the same either way
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-6, atol=1e-12)
    assert np.abs(to_pixels.q_luma.grad).max() > 0
