"""DCT-domain crops and downscaling against pixel-domain references (scipy, libjpeg via Pillow)."""

import io

import numpy as np
import pytest
import scipy.fft

import dctnet
from dctnet import resize


def test_crop_is_the_pixel_crop(rng):
    px = rng.normal(size=(2, 3, 40, 56))
    x = dctnet.to_dct(px)
    np.testing.assert_array_equal(dctnet.from_dct(resize.crop(x, 8, 16, 24, 32)),
                                  dctnet.from_dct(x)[..., 8:32, 16:48])
    c = resize.center_crop(x, (16, 24))
    np.testing.assert_array_equal(c, x[..., 1:3, 2:5, :])
    # centred in the real pixels only: a 37x50 picture has 4x6 whole blocks
    np.testing.assert_array_equal(resize.center_crop(x, 16, picture=(37, 50)), x[..., 1:3, 2:4, :])


def test_crop_errors():
    x = np.zeros((1, 4, 4, 64))
    with pytest.raises(ValueError, match="multiples of 8"):
        resize.crop(x, 4, 0, 8, 8)
    with pytest.raises(ValueError, match="leaves the picture"):
        resize.crop(x, 8, 0, 32, 8)
    with pytest.raises(ValueError, match="fewer than"):
        resize.center_crop(x, 40)
    with pytest.raises(ValueError, match=r"\(\.\.\., BH, BW, 64\)"):
        resize.crop(np.zeros((4, 4)), 0, 0, 8, 8)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_box_downscaling_is_the_area_mean_of_the_decode(rng, factor):
    px = rng.normal(size=(2, 3, 64, 128))
    x = dctnet.to_dct(px)
    ref = px.reshape(2, 3, 64 // factor, factor, 128 // factor, factor).mean(axis=(3, 5))
    np.testing.assert_allclose(resize.scaled_idct(x, factor), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dctnet.from_dct(resize.downscale(x, factor)), ref, rtol=0, atol=1e-12)
    assert resize.downscale(x.astype(np.float32), factor).dtype == np.float32


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_lowpass_scaled_idct_is_the_k_point_idct_of_the_low_coefficients(rng, factor):
    px = rng.normal(size=(2, 16, 24))
    x = dctnet.to_dct(px)
    k = 8 // factor
    natural = np.empty_like(x)
    natural[..., dctnet.ZIGZAG] = x  # zigzag -> row-major
    natural = natural.reshape(2, 2, 3, 8, 8)
    ref = np.empty((2, 2 * k, 3 * k))
    for n in range(2):
        for i in range(2):
            for j in range(3):
                ref[n, i * k:(i + 1) * k, j * k:(j + 1) * k] = scipy.fft.idctn(
                    natural[n, i, j, :k, :k] * (k / 8), norm="ortho")
    np.testing.assert_allclose(resize.scaled_idct(x, factor, "lowpass"), ref, rtol=0, atol=1e-12)
    down = resize.downscale(dctnet.to_dct(rng.normal(size=(1, 64, 64))), factor, "lowpass")
    assert down.shape == (1, 8 // factor, 8 // factor, 64)
    # a flat picture stays flat at its value
    flat = dctnet.to_dct(np.full((1, 64, 64), 3.0))
    np.testing.assert_allclose(dctnet.from_dct(resize.downscale(flat, factor, "lowpass")), 3.0, atol=1e-12)


def test_downscale_errors():
    with pytest.raises(ValueError, match="crop to 2x4 blocks first"):
        resize.downscale(np.zeros((1, 3, 4, 64)), 2)
    with pytest.raises(ValueError, match="libjpeg's scales"):
        resize.downscale(np.zeros((1, 4, 4, 64)), 3)
    with pytest.raises(ValueError, match="method must be one of"):
        resize.downscale(np.zeros((1, 4, 4, 64)), 2, "bicubic")


def test_fit_picks_the_largest_covering_factor(rng):
    x = dctnet.to_dct(rng.normal(size=(1, 136, 200)))
    out = resize.fit(x, 32)  # 136 // 4 = 34 >= 32, 136 // 8 < 32: factor 4
    assert out.shape == (1, 4, 4, 64)
    np.testing.assert_allclose(out, resize.downscale(resize.center_crop(x, 128), 4), atol=0)
    with pytest.raises(ValueError, match="smaller than"):
        resize.fit(x, 256)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_box_downscale_matches_libjpeg_turbo_scaled_decode(factor):
    """Pillow's draft mode is libjpeg-turbo's scaled decode, which rounds to integers (measured 0.53 apart at most)."""
    Image = pytest.importorskip("PIL.Image")
    yy, xx = np.mgrid[0:128, 0:192]
    grey = (128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "JPEG", quality=90)
    img = dctnet.read_jpeg(buf.getvalue())
    ours = dctnet.from_dct(resize.downscale(img.to_dct(dtype=np.float64), factor))[0]
    pil = Image.open(io.BytesIO(buf.getvalue()))
    pil.draft("L", (192 // factor, 128 // factor))
    theirs = np.asarray(pil, np.float64)
    assert theirs.shape == ours.shape
    assert np.abs(ours - theirs).max() <= 0.6


def pillow_jpeg(subsampling, size=(300, 400), seed=0):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(size[0] // 4, size[1] // 4, 3)).astype(np.uint8)
    img = Image.fromarray(rgb).resize((size[1], size[0]), Image.BILINEAR)  # smooth but varied content
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, subsampling={"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[subsampling])
    return dctnet.read_jpeg(buf.getvalue())


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
def test_crop_image_is_the_window_of_the_whole_picture(subsampling):
    img = pillow_jpeg(subsampling)
    whole = img.to_dct(dtype=np.float64)
    for top, left, h, w in ((16, 32, 256, 256), (0, 0, 296, 400), (32, 144, 40, 56)):
        part = resize.crop_image(img, top, left, h, w)
        assert (part.height, part.width) == (h, w)
        np.testing.assert_array_equal(part.to_dct(dtype=np.float64), resize.crop(whole, top, left, h, w))
    with pytest.raises(ValueError, match="multiples of the MCU size"):
        resize.crop_image(img, 8, 24, 32, 32) if subsampling != "4:4:4" else resize.crop_image(img, 4, 0, 32, 32)
    with pytest.raises(ValueError, match="leaves the 300x400 picture"):
        resize.crop_image(img, 64, 0, 256, 256)


@pytest.mark.parametrize("shape,factor", [((300, 400), 1), ((600, 520), 2), ((1100, 1040), 4)])
def test_fit_image_equals_fit_of_the_whole_picture(shape, factor):
    img = pillow_jpeg("4:2:0", shape)
    got = resize.fit_image(img, 256, dtype=np.float64)
    assert got.shape == (3, 32, 32, 64)
    s = 256 * factor
    top, left = (shape[0] - s) // 2 // 16 * 16, (shape[1] - s) // 2 // 16 * 16
    ref = resize.downscale(resize.crop(img.to_dct(dtype=np.float64), top, left, s, s), factor)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
