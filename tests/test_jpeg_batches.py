"""The folded input map, JpegBatches and predict_jpegs, against JpegImage.to_dct / dct_picture + Normalize."""

import io
import os
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, models, nn
from dctnet.jpeg_batches import jpeg_pixels_nhwc

MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]


def cifar_files(count):
    root = os.environ.get("DCTNET_DATA")
    path = Path(root) / "cifar10-jpeg.zip" if root else None
    if path is None or not path.is_file():
        path = resources.files("dctnet").joinpath("data", "cifar10-sample.zip")
    with resources.as_file(path) as p, zipfile.ZipFile(p) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))[:count]
        return [z.read(n) for n in names]


def pillow_files(rng, subsampling, mode, size=(37, 21), count=3, quality=(75, 90, 40)):
    """Pillow-made files; ``quality`` differs between the files, so their tables do."""
    from PIL import Image

    out = []
    for i in range(count):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        buf = io.BytesIO()
        kwargs = {"subsampling": subsampling} if mode == "RGB" else {}
        im.save(buf, "JPEG", quality=quality[i % len(quality)], **kwargs)
        out.append(buf.getvalue())
    return out


def reference(files, color, mean=None, std=None):
    """``from_dct`` of each file's ``JpegImage.to_dct``, then Normalize, float64."""
    x = np.stack([dctnet.read_jpeg(f).to_dct(color, np.float64) for f in files])
    pixels = dctnet.from_dct(x)
    if mean is not None:
        pixels = nn.Normalize(mean, std)(Tensor(pixels)).data
    return pixels


def pixels_of(files, color, mean=None, std=None, dtype=np.float64):
    first = dctnet.read_jpeg(files[0])
    coefs, qt = dctnet.read_stacked(files)
    return dctnet.jpeg_pixels(coefs, list(qt.transpose(1, 0, 2)), first.sampling, first.color_space,
                              first.height, first.width, color, mean, std, dtype)


@pytest.mark.parametrize("color", [None, "ycbcr", "gray"])
def test_cifar10_files(color):
    files = cifar_files(64)
    want = reference(files, color)
    np.testing.assert_allclose(pixels_of(files, color), want, atol=1e-9)
    got = pixels_of(files, color, dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_cifar10_normalized_and_dct_picture():
    files = cifar_files(32)
    want = reference(files, "rgb", MEAN, STD)
    np.testing.assert_allclose(pixels_of(files, "rgb", MEAN, STD), want, atol=1e-11)
    first = dctnet.read_jpeg(files[0])
    coefs, qt = dctnet.read_stacked(files)
    pic = dctnet.dct_picture(coefs, qt.transpose(1, 0, 2), first.sampling, first.color_space, first.height,
                             first.width, "rgb", np.float64)
    np.testing.assert_allclose(dctnet.to_dct(pixels_of(files, "rgb")), pic, atol=1e-9)


@pytest.mark.parametrize("subsampling,mode", [(2, "RGB"), (0, "RGB"), (1, "RGB"), (None, "L")])
@pytest.mark.parametrize("color", [None, "rgb", "ycbcr", "gray"])
def test_pillow_files(rng, subsampling, mode, color):
    files = pillow_files(rng, subsampling, mode)  # 4:2:0, 4:4:4, 4:2:2, grey; 37x21: partial blocks
    np.testing.assert_allclose(pixels_of(files, color), reference(files, color), atol=1e-9)
    channels = 1 if (color == "gray" or (color is None and mode == "L")) else 3
    mean, std = [10.0, 20.0, 30.0][:channels], [2.0, 3.0, 4.0][:channels]
    np.testing.assert_allclose(pixels_of(files, color, mean, std), reference(files, color, mean, std), atol=1e-9)


def test_batches_and_forms(rng):
    files = pillow_files(rng, 2, "RGB", size=(32, 16), count=5)
    want = reference(files, "rgb")
    for prefetch in (False, True):
        got = list(dctnet.JpegBatches(files, batch_size=2, form="pixels", dtype=np.float64, prefetch=prefetch))
        assert [len(b) for b in got] == [2, 2, 1]
        np.testing.assert_allclose(np.concatenate(got), want, atol=1e-9)
    coefs = np.concatenate(list(dctnet.JpegBatches(files, 3, "coefficients", dtype=np.float64)))
    np.testing.assert_allclose(coefs, np.stack([dctnet.read_jpeg(f).to_dct("rgb", np.float64) for f in files]),
                               atol=1e-9)
    carried = list(dctnet.JpegBatches(files, 5, "carried", dtype=np.float64))
    assert isinstance(carried[0], dctnet.functional.CarriedDCT)
    np.testing.assert_allclose(carried[0].pixels.data, want, atol=1e-9)
    assert len(dctnet.JpegBatches(files, 2)) == 3


def test_batches_errors(rng, tmp_path):
    with pytest.raises(ValueError, match="form must be one of"):
        dctnet.JpegBatches([], form="rgb")
    with pytest.raises(ValueError, match="batch_size"):
        dctnet.JpegBatches([], batch_size=0)
    mixed = pillow_files(rng, 2, "RGB", size=(16, 16), count=1) + pillow_files(rng, 2, "RGB", size=(32, 16), count=1)
    for prefetch in (False, True):
        with pytest.raises(ValueError, match="one geometry"):
            list(dctnet.JpegBatches(mixed, batch_size=2, prefetch=prefetch))
    with pytest.raises(IndexError, match="out of range"):
        dctnet.JpegBatches(mixed, batch_size=2).batch(1)
    with pytest.raises(ValueError, match="components"):
        dctnet.jpeg_pixels([np.zeros((1, 1, 1, 64), np.int16)], [np.ones(64)], ((1, 1),), "ycbcr", 8, 8)


@pytest.mark.parametrize("evaluation", ["carried", "spatial"])
def test_predict_jpegs_equals_the_pixel_model_on_the_float_decode(evaluation):
    files = cifar_files(40)
    nn.manual_seed(0)
    net = models.paper_resnet(3, 10, mean=MEAN, std=STD).astype(np.float64)
    net.train()
    net(Tensor(reference(files, "rgb")))  # batch-norm statistics
    net.eval()
    with dctnet.no_grad():
        want = net(Tensor(reference(files, "rgb"))).data
    jnet = dctnet.convert(net, evaluation=evaluation).train()
    got = dctnet.predict_jpegs(jnet, files, batch_size=16, dtype=np.float64)
    assert jnet.training  # the mode is restored
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dctnet.predict_jpegs(net, files, batch_size=32, dtype=np.float64), want, atol=1e-9)
    got32 = dctnet.predict_jpegs(dctnet.convert(net.astype(np.float32), evaluation=evaluation), files)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def nhwc_of(files, color, mean=None, std=None, dtype=np.float64):
    first = dctnet.read_jpeg(files[0])
    coefs, qt = dctnet.read_stacked(files)
    return jpeg_pixels_nhwc(coefs, list(qt.transpose(1, 0, 2)), first.sampling, first.color_space, first.height,
                            first.width, color, mean, std, dtype)


@pytest.mark.parametrize("subsampling,mode", [(2, "RGB"), (0, "RGB"), (1, "RGB"), (None, "L")])
@pytest.mark.parametrize("color", [None, "ycbcr", "gray"])
def test_channels_last_input_map(rng, subsampling, mode, color):
    """jpeg_pixels_nhwc against the decode reference: every sampling, per-file tables, partial blocks, normalized."""
    files = pillow_files(rng, subsampling, mode)
    want = reference(files, color).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(nhwc_of(files, color), want, atol=1e-9)
    channels = want.shape[3]
    mean, std = [10.0, 20.0, 30.0][:channels], [2.0, 3.0, 4.0][:channels]
    np.testing.assert_allclose(nhwc_of(files, color, mean, std),
                               reference(files, color, mean, std).transpose(0, 2, 3, 1), atol=1e-9)
    got = nhwc_of(files, color, dtype=np.float32)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_channels_last_cifar10_and_batches():
    files = cifar_files(40)
    want = reference(files, "rgb", MEAN, STD).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(nhwc_of(files, "rgb", MEAN, STD), want, atol=1e-11)
    for prefetch in (False, True):
        got = list(dctnet.JpegBatches(files, 16, "channels_last", "rgb", MEAN, STD, np.float64, prefetch))
        assert [len(b) for b in got] == [16, 16, 8]
        np.testing.assert_allclose(np.concatenate(got), want, atol=1e-11)
    with pytest.raises(ValueError, match="components"):
        jpeg_pixels_nhwc([np.zeros((1, 1, 1, 64), np.int16)], [np.ones(64)], ((1, 1),), "ycbcr", 8, 8)


@pytest.mark.parametrize("n", [15, 6])
def test_predict_jpegs_fused_and_not(n):
    """The default (fused engine, channels-last input map) equals the model itself, for JPEG and pixel models."""
    files = cifar_files(24)
    nn.manual_seed(1)
    net = models.paper_resnet(3, 10, mean=MEAN, std=STD).astype(np.float64)
    net.train()
    net(Tensor(reference(files, "rgb")))
    jnet = dctnet.convert(net.eval(), relu_frequencies=n)
    for model in (jnet, net) if n == 15 else (jnet,):
        plain = dctnet.predict_jpegs(model, files, batch_size=10, dtype=np.float64, fused=False)
        for fused in (None, True):
            got = dctnet.predict_jpegs(model, files, batch_size=10, dtype=np.float64, fused=fused)
            np.testing.assert_allclose(got, plain, rtol=1e-9, atol=1e-9 * np.abs(plain).max())
    # a layer the engine does not take: the model itself runs, unless the engine is required
    pooled = dctnet.convert(nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.MaxPool2d(2), nn.GlobalAvgPool()))
    assert dctnet.predict_jpegs(pooled, files[:2]).shape == (2, 2)
    with pytest.raises(TypeError, match="DCTMaxPool2d"):
        dctnet.predict_jpegs(pooled, files[:2], fused=True)
    with pytest.raises(TypeError, match="the fused engine runs on the CPU in the batches' dtype float32"):
        dctnet.predict_jpegs(jnet, files[:2], fused=True)  # a float64 model, float32 batches


def test_predict_jpegs_without_parameters_in_float64():
    """A model without parameters has no dtype of its own: float64 batches run it as it is."""
    files = cifar_files(3)
    pooled = dctnet.convert(nn.Sequential(nn.Normalize(MEAN, STD), nn.GlobalAvgPool()))
    want = reference(files, "rgb", MEAN, STD).mean(axis=(2, 3))
    np.testing.assert_allclose(dctnet.predict_jpegs(pooled, files, dtype=np.float64), want, atol=1e-9)
    np.testing.assert_allclose(dctnet.predict_jpegs(pooled, files), want, atol=1e-4)  # float32: fused
