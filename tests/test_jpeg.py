"""dctnet.jpeg: reading, writing and encoding JPEG coefficients, and the exact DCT-domain decode."""

import io
import os
import warnings
import zipfile
from importlib import resources

import numpy as np
import pytest

import dctnet
from dctnet import JpegError, JpegImage, JpegWarning, encode_jpeg, read_jpeg, write_jpeg
from dctnet.jpeg import RGB_TO_YCBCR, libjpeg

from naive import dct_ref, idct_ref

Image = pytest.importorskip("PIL.Image")
PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
SIZES = [(32, 32), (33, 17), (15, 40), (1, 1)]


def smooth_image(rng, h, w, channels=3):
    """A smooth picture (coarse noise, bilinearly enlarged): JPEG's usual content, few clamped pixels."""
    coarse = rng.integers(30, 226, (h // 4 + 2, w // 4 + 2, channels), dtype=np.uint8)
    mode = "RGB" if channels == 3 else "L"
    im = Image.fromarray(coarse[..., 0] if channels == 1 else coarse, mode).resize((w, h), Image.BILINEAR)
    return np.asarray(im)


def pillow_jpeg(pixels, quality=90, subsampling="4:2:0", progressive=False):
    buf = io.BytesIO()
    kw = {} if pixels.ndim == 2 else {"subsampling": PIL_SUBSAMPLING[subsampling]}
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality, progressive=progressive, **kw)
    return buf.getvalue()


VARIANTS = [("gray", None, False)] + [("rgb", s, p) for s in PIL_SUBSAMPLING for p in (False, True)]


@pytest.fixture(params=[(v, size) for v in VARIANTS for size in SIZES],
                ids=lambda p: f"{p[0][0]}-{p[0][1]}-{'prog' if p[0][2] else 'base'}-{p[1][0]}x{p[1][1]}")
def pillow_file(request, rng):
    (kind, sub, progressive), (h, w) = request.param
    pixels = smooth_image(rng, h, w, 1 if kind == "gray" else 3)
    return pixels, pillow_jpeg(pixels, subsampling=sub, progressive=progressive), sub, progressive


def same_coefficients(a, b):
    return (len(a.coefficients) == len(b.coefficients)
            and all(np.array_equal(x, y) for x, y in zip(a.coefficients, b.coefficients))
            and all(np.array_equal(x, y) for x, y in zip(a.qtables, b.qtables))
            and a.sampling == b.sampling and (a.height, a.width) == (b.height, b.width))


# ----------------------------------------------------------------------------- reading Pillow's files


def test_read_matches_pillow_decode(pillow_file):
    pixels, data, sub, progressive = pillow_file
    img = read_jpeg(data)
    assert img.progressive == progressive
    assert (img.height, img.width) == pixels.shape[:2]
    assert img.color_space == ("gray" if pixels.ndim == 2 else "ycbcr")
    assert all(c.dtype == np.int16 and c.shape[-1] == 64 for c in img.coefficients)
    ours = np.clip(np.rint(img.to_pixels()), 0, 255)
    if pixels.ndim == 2 or sub == "4:4:4":
        ref = np.asarray(Image.open(io.BytesIO(data)))
        ref = ref[None] if ref.ndim == 2 else ref.transpose(2, 0, 1)
        assert np.abs(ours - ref).max() <= 2
    else:  # libjpeg without its triangular "fancy" upsampling: the box upsampling of docs/design.md §2
        jpeglib = pytest.importorskip("jpeglib")
        path = f"/tmp/dctnet-test-{os.getpid()}.jpg"
        try:
            with open(path, "wb") as f:
                f.write(data)
            ref = jpeglib.read_spatial(path, flags=["-DO_FANCY_UPSAMPLING"]).spatial.transpose(2, 0, 1)
        finally:
            os.unlink(path)
        assert np.abs(ours - ref).max() <= 3
        assert np.abs(ours - ref).mean() < 0.5


def test_to_dct_invariant(pillow_file):
    """docs/design.md §2: to_dct(float_decode(img)) == img.to_dct(), for every colour form."""
    img = read_jpeg(pillow_file[1])
    for color in ("rgb", "ycbcr", "gray"):
        x = img.to_dct(color, np.float64)
        assert x.shape == (1 if color == "gray" else 3, *img.blocks, 64)
        decode = idct_ref(x)  # the float decode, padded to whole blocks
        np.testing.assert_allclose(dct_ref(img.to_pixels(color, np.float64, crop=False)), x, atol=1e-9)
        np.testing.assert_allclose(img.to_pixels(color, np.float64, crop=False), decode, atol=1e-9)
        x32 = img.to_dct(color)
        assert x32.dtype == np.float32
        np.testing.assert_allclose(x32, x, rtol=1e-6, atol=1e-3)


def test_write_read_round_trip(pillow_file, tmp_path):
    img = read_jpeg(pillow_file[1])
    path = write_jpeg(tmp_path / "copy.jpg", img)
    back = read_jpeg(path)
    assert same_coefficients(img, back) and back.color_space == img.color_space
    assert same_coefficients(img, read_jpeg(img.to_bytes()))
    # Any decoder reads what we wrote, and sees the same picture.
    a = np.asarray(Image.open(io.BytesIO(pillow_file[1])), dtype=float)
    b = np.asarray(Image.open(path), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_sources_path_bytes_and_file(tmp_path, rng):
    data = pillow_jpeg(smooth_image(rng, 16, 16))
    (tmp_path / "a.jpg").write_bytes(data)
    ref = read_jpeg(data)
    for source in (tmp_path / "a.jpg", str(tmp_path / "a.jpg"), bytearray(data), memoryview(data), io.BytesIO(data)):
        assert same_coefficients(read_jpeg(source), ref)


# ----------------------------------------------------------------------------- the DCT-domain decode


def naive_to_dct(img, color):
    """Per component: IDCT (scipy) of the dequantized blocks, repeat pixels, crop, colour, DCT."""
    vmax = max(v for v, _ in img.sampling)
    hmax = max(h for _, h in img.sampling)
    bh, bw = img.blocks
    planes = []
    for coef, table, (v, h) in zip(img.coefficients, img.qtables, img.sampling):
        p = idct_ref(coef * table.astype(np.float64))
        p = np.repeat(np.repeat(p, vmax // v, axis=0), hmax // h, axis=1)
        planes.append(p[: 8 * bh, : 8 * bw])
    planes = np.stack(planes)
    if color == "rgb":
        m = np.linalg.inv(RGB_TO_YCBCR)
        planes = np.einsum("kc,chw->khw", m, planes)
    return dct_ref(planes + 128.0)


@pytest.mark.parametrize("sampling", [(1, 1), (2, 2), (1, 2), (2, 1), (1, 4), (4, 1), (3, 1), (2, 3)])
def test_box_upsampling_in_dct_domain_equals_pixel_repeat(rng, sampling):
    v, h = sampling
    height, width = 8 * 3 * v + 5, 8 * 2 * h + 3
    bh = lambda f, fmax, n: -(-n * f // (8 * fmax))  # noqa: E731
    coefficients = [rng.integers(-60, 60, (bh(v, v, height), bh(h, h, width), 64)).astype(np.int16)]
    coefficients += [rng.integers(-60, 60, (bh(1, v, height), bh(1, h, width), 64)).astype(np.int16) for _ in range(2)]
    tables = [rng.integers(1, 30, 64).astype(np.int32) for _ in range(3)]
    img = JpegImage(coefficients, tables, [(v, h), (1, 1), (1, 1)], height, width, "ycbcr")
    for color in ("ycbcr", "rgb"):
        np.testing.assert_allclose(img.to_dct(color, np.float64), naive_to_dct(img, color), atol=1e-9)


def test_color_forms_are_consistent(rng):
    img = read_jpeg(pillow_jpeg(smooth_image(rng, 24, 24), subsampling="4:4:4"))
    ycc, rgb, gray = (img.to_dct(c, np.float64) for c in ("ycbcr", "rgb", "gray"))
    np.testing.assert_allclose(gray[0], ycc[0], atol=1e-12)
    shifted = rgb.copy()
    shifted[..., 0] -= 1024
    back = np.einsum("kc,c...->k...", RGB_TO_YCBCR, shifted)
    back[..., 0] += 1024
    np.testing.assert_allclose(back, ycc, atol=1e-9)
    # A grey file in colour: R = G = B = Y, and flat chroma at 128 (DC 1024).
    g = read_jpeg(pillow_jpeg(smooth_image(rng, 16, 16, 1)))
    assert g.to_dct().shape[0] == 1
    rgb = g.to_dct("rgb", np.float64)
    np.testing.assert_array_equal(rgb[0], rgb[2])
    ycc = g.to_dct("ycbcr", np.float64)
    assert np.all(ycc[1:, ..., 0] == 1024) and np.all(ycc[1:, ..., 1:] == 0)


def test_rgb_file_without_colour_transform(rng, tmp_path):
    """An RGB JPEG (Adobe transform 0) reads back as RGB, and its colour forms agree."""
    base = encode_jpeg(smooth_image(rng, 16, 16).transpose(2, 0, 1), quality=95, subsampling="4:4:4")
    img = JpegImage(base.coefficients, base.qtables, base.sampling, 16, 16, "rgb")
    back = read_jpeg(write_jpeg(tmp_path / "rgb.jpg", img))
    assert back.color_space == "rgb" and same_coefficients(back, img)
    x = back.to_dct("rgb", np.float64)
    planes = np.stack([idct_ref(c * t.astype(np.float64)) for c, t in zip(back.coefficients, back.qtables)])
    np.testing.assert_allclose(x, dct_ref(planes + 128.0), atol=1e-9)
    decoded = np.asarray(Image.open(tmp_path / "rgb.jpg").convert("RGB"), dtype=float).transpose(2, 0, 1)
    assert np.abs(np.clip(np.rint(back.to_pixels()), 0, 255) - decoded).max() <= 2


# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0", "4:4:0"])
@pytest.mark.parametrize("size", [(32, 32), (21, 35)])
def test_encode_is_readable_and_faithful(rng, subsampling, size):
    pixels = smooth_image(rng, *size).transpose(2, 0, 1)
    img = encode_jpeg(pixels, quality=95, subsampling=subsampling)
    data = img.to_bytes()
    assert same_coefficients(read_jpeg(data), img)
    decoded = np.asarray(Image.open(io.BytesIO(data)), dtype=float).transpose(2, 0, 1)
    assert decoded.shape == pixels.shape
    # As faithful as libjpeg's own encoder at the same settings (Pillow), decoded the same way.
    pil = pillow_jpeg(pixels.transpose(1, 2, 0), quality=95, subsampling=subsampling) \
        if subsampling in PIL_SUBSAMPLING else data
    reference = np.asarray(Image.open(io.BytesIO(pil)), dtype=float).transpose(2, 0, 1)
    assert np.abs(decoded - pixels).mean() <= 1.2 * np.abs(reference - pixels).mean() + 0.3


def test_encode_quantizes_exactly(rng):
    """4:4:4 coefficients are rint(DCT(JFIF colour of padded pixels - 128) / table)."""
    pixels = rng.integers(0, 256, (3, 13, 19)).astype(np.uint8)
    luma, chroma = rng.integers(1, 40, 64), rng.integers(1, 40, 64)
    img = encode_jpeg(pixels, qtables=(luma, chroma), subsampling="4:4:4")
    padded = np.pad(pixels.astype(float), [(0, 0), (0, 3), (0, 5)], mode="edge")
    ycc = np.einsum("kc,chw->khw", RGB_TO_YCBCR, padded - 128)
    for c, table in zip(range(3), (luma, chroma, chroma)):
        np.testing.assert_array_equal(img.coefficients[c], np.rint(dct_ref(ycc[c]) / table))
        np.testing.assert_array_equal(img.qtables[c], table)
    gray = encode_jpeg(pixels[0], qtables=luma)
    assert gray.color_space == "gray" and len(gray.coefficients) == 1
    np.testing.assert_array_equal(gray.coefficients[0], np.rint(dct_ref(padded[0] - 128) / luma))
    np.testing.assert_array_equal(encode_jpeg(pixels).qtables[0], dctnet.quant_table(75, "luma"))


@pytest.mark.parametrize("kwargs, match", [
    ({"pixels": np.zeros((4, 8, 8))}, "expects pixels"),
    ({"pixels": np.zeros((8, 8, 3))}, "expects pixels"),
    ({"pixels": np.full((3, 8, 8), 300.0)}, "0..255"),
    ({"pixels": np.full((3, 8, 8), np.nan)}, "0..255"),
    ({"pixels": np.zeros((3, 8, 8)), "quality": 50, "qtables": np.ones(64)}, "not both"),
    ({"pixels": np.zeros((3, 8, 8)), "qtables": (np.ones(64), np.zeros(64))}, "1..255"),
    ({"pixels": np.zeros((3, 8, 8)), "qtables": np.ones(64)}, "two tables"),
    ({"pixels": np.zeros((3, 8, 8)), "subsampling": "4:1:0"}, "subsampling"),
    ({"pixels": np.zeros((3, 8, 8)), "quality": 0}, "quality"),
])
def test_encode_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        encode_jpeg(**kwargs)


# ----------------------------------------------------------------------------- bad input


def test_jpeg_error_is_a_value_error():
    assert issubclass(JpegError, ValueError)


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(50), "not a JPEG"),
    (bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)), "not a JPEG"),
    (b"\xff\xd8", "libjpeg cannot read"),
])
def test_unreadable_bytes(data, match):
    with pytest.raises(JpegError, match=match):
        read_jpeg(data)


def test_errors_name_the_file(tmp_path, rng):
    data = pillow_jpeg(smooth_image(rng, 32, 32))
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[:-40])  # inside the scan: libjpeg would fill the rest with zeros
    with pytest.raises(JpegError, match="truncated.jpg.*corrupt"):
        read_jpeg(bad)
    with pytest.warns(JpegWarning, match="truncated.jpg"):
        img = read_jpeg(bad, strict=False)  # what libjpeg recovered, loudly
    assert img.coefficients[0].shape == (4, 4, 64)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(JpegError, match="empty.jpg"):
        read_jpeg(tmp_path / "empty.jpg")
    with pytest.raises(FileNotFoundError):
        read_jpeg(tmp_path / "missing.jpg")


def test_unsupported_kinds_are_named(rng):
    rgb = pillow_jpeg(smooth_image(rng, 16, 16))
    sof = rgb.index(b"\xff\xc0")
    twelve = rgb[: sof + 4] + b"\x0c" + rgb[sof + 5:]            # SOF0 precision byte -> 12
    arithmetic = rgb[:sof] + b"\xff\xc9" + rgb[sof + 2:]         # SOF9: arithmetic coding
    lossless = rgb[:sof] + b"\xff\xc3" + rgb[sof + 2:]
    cmyk = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(cmyk, "JPEG")
    for data, match in [(twelve, "12-bit"), (arithmetic, "arithmetic"), (lossless, "lossless")]:
        with pytest.raises(JpegError, match=match):
            read_jpeg(data)
    two = rgb[: sof + 9] + b"\x02" + rgb[sof + 10:]              # SOF0 component count -> 2
    with pytest.raises(JpegError, match="2-component"):
        read_jpeg(two)
    for decoder in ("auto", "libjpeg"):  # CMYK: its four components, no RGB form, no writing
        img = read_jpeg(cmyk.getvalue(), decoder=decoder)
        assert img.color_space == "cmyk" and len(img.coefficients) == 4 and len(img.qtables) == 4
        assert all(c.shape == (2, 2, 64) for c in img.coefficients)
        with pytest.raises(ValueError, match="no RGB DCT-domain form"):
            img.to_dct()
        with pytest.raises(ValueError, match="no RGB DCT-domain form"):
            img.to_pixels()
        with pytest.raises(ValueError, match="CMYK/YCCK"):
            img.to_bytes()
    huge = rgb[: sof + 5] + (60000).to_bytes(2, "big") * 2 + rgb[sof + 9:]
    with pytest.raises(JpegError, match="max_pixels"):
        read_jpeg(huge)


def test_bad_arguments():
    with pytest.raises(TypeError, match="path, bytes"):
        read_jpeg(42)
    with pytest.raises(TypeError, match="JpegImage"):
        write_jpeg("x.jpg", np.zeros((8, 8)))
    ok = encode_jpeg(np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 64\)"):
        JpegImage((ok.coefficients[0][:1],) + ok.coefficients[1:], ok.qtables, ok.sampling, 16, 16)
    with pytest.raises(ValueError, match="qtable"):
        JpegImage(ok.coefficients, (np.zeros(64, int),) * 3, ok.sampling, 16, 16)
    with pytest.raises(ValueError, match="color_space"):
        JpegImage(ok.coefficients, ok.qtables, ok.sampling, 16, 16, "hsv")
    with pytest.raises(ValueError, match="cmyk JpegImage needs 4 components"):
        JpegImage(ok.coefficients, ok.qtables, ok.sampling, 16, 16, "cmyk")
    with pytest.raises(ValueError, match="color must be"):
        ok.to_dct("hsv")


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch, rng):
    path = tmp_path / "keep.jpg"
    old = pillow_jpeg(smooth_image(rng, 16, 16))
    path.write_bytes(old)

    def boom(target, image):
        with open(target, "wb") as f:
            f.write(b"\xff\xd8 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(libjpeg, "write", boom)
    with pytest.raises(KeyboardInterrupt):
        write_jpeg(path, read_jpeg(old))
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["keep.jpg"]


def sample_jpeg():
    """One real CIFAR-10 JPEG from the sample shipped in the package."""
    with resources.as_file(resources.files("dctnet").joinpath("data", "cifar10-sample.zip")) as p:
        with zipfile.ZipFile(p) as z:
            return z.read(sorted(n for n in z.namelist() if n.endswith(".jpg"))[0])


@pytest.mark.filterwarnings("ignore::dctnet.JpegWarning")
def test_fuzz_mutated_bytes_give_a_result_or_a_clean_error():
    """300 seeded mutations of a real file: a consistent JpegImage or JpegError, never anything else."""
    data = np.frombuffer(sample_jpeg(), dtype=np.uint8)
    rng = np.random.default_rng(2024)
    outcomes = {"read": 0, "error": 0}
    for _ in range(300):
        b = data.copy()
        kind = rng.integers(3)
        if kind == 0:  # flip a few bytes
            idx = rng.integers(0, len(b), rng.integers(1, 8))
            b[idx] = rng.integers(0, 256, len(idx))
        elif kind == 1:  # truncate
            b = b[: rng.integers(0, len(b))]
        else:  # insert random bytes
            at = rng.integers(0, len(b))
            b = np.concatenate([b[:at], rng.integers(0, 256, rng.integers(1, 20)).astype(np.uint8), b[at:]])
        try:
            img = read_jpeg(b.tobytes(), strict=rng.random() < 0.5)
        except JpegError:
            outcomes["error"] += 1
            continue
        outcomes["read"] += 1
        if img.height * img.width <= 1 << 16:
            assert np.isfinite(img.to_dct()).all()
    assert outcomes["read"] > 0 and outcomes["error"] > 0


# ----------------------------------------------------------------------------- real files of others


def corpus_files(data_dir):
    files = sorted((data_dir / "jpeg-corpus").glob("*/*.jpg"))
    if not files:
        pytest.skip("no jpeg-corpus in DCTNET_DATA")
    return files


def test_corpus_reads_or_fails_cleanly(data_dir):
    """Every conformance and crash-test file: a correct JpegImage or a JpegError, never a crash."""
    jpeglib = pytest.importorskip("jpeglib")
    read = clean = 0
    for path in corpus_files(data_dir):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", JpegWarning)
                img = read_jpeg(path, strict=False)
        except JpegError as exc:
            assert path.name in str(exc)
            continue
        read += 1
        assert all(c.dtype == np.int16 for c in img.coefficients)
        if caught:  # damaged: strict reading refuses it, and there is no right picture to compare
            with pytest.raises(JpegError, match="corrupt"):
                read_jpeg(path)
            continue
        clean += 1
        if img.color_space in ("cmyk", "ycck"):  # coefficients only: no RGB form to compare
            assert len(img.coefficients) == 4
            with pytest.raises(ValueError, match="no RGB"):
                img.to_pixels()
            continue
        if img.height * img.width > 1 << 20:
            continue
        ours = np.clip(np.rint(img.to_pixels()), 0, 255)
        ref = jpeglib.read_spatial(str(path), flags=["-DO_FANCY_UPSAMPLING"]).spatial
        ref = ref.reshape(*ref.shape[:2], -1).transpose(2, 0, 1).astype(float)
        if ours.shape[0] == 1 and ref.shape[0] == 3:
            continue  # libjpeg makes RGB of some grey files; nothing to compare
        assert ours.shape == ref.shape, path.name
        # Clamping in libjpeg's integer pipeline moves saturated pixels; the bulk agrees.
        assert np.abs(ours - ref).mean() < 1.0, path.name
    # libjpeg itself reads 80 of the 153 files; refused here: zero quantization steps.
    assert read >= 65 and clean >= 30, (read, clean)


def header_of(img):
    return (img.height, img.width, tuple(tuple(x) for x in img.sampling), img.color_space)


def test_read_header_is_what_read_jpeg_reads(pillow_file):
    """Grey, every chroma sampling, baseline (headers only) and progressive (read whole)."""
    data = pillow_file[1]
    header = dctnet.read_header(data)
    assert isinstance(header, dctnet.JpegHeader)
    assert tuple(header) == header_of(read_jpeg(data))


def test_read_header_of_the_corpus(data_dir):
    """Every corpus file read_jpeg reads gives its header; the others a header or a JpegError naming
    the file (a corrupt scan is read_jpeg's to find), never a crash."""
    agreed = 0
    for path in corpus_files(data_dir):
        try:
            img = read_jpeg(path)
        except JpegError:
            try:
                dctnet.read_header(path)
            except JpegError as exc:
                assert path.name in str(exc)
            continue
        assert tuple(dctnet.read_header(path)) == header_of(img), path.name
        agreed += 1
    assert agreed >= 30, agreed


def test_read_header_errors():
    with pytest.raises(JpegError, match="not a JPEG file"):
        dctnet.read_header(b"GIF89a....")
    with pytest.raises(JpegError, match="empty"):
        dctnet.read_header(b"")
    big = encode_jpeg(np.zeros((3, 64, 48), np.uint8)).to_bytes()
    with pytest.raises(JpegError, match="more than max_pixels=100"):
        dctnet.read_header(big, max_pixels=100)
    assert dctnet.read_header(big, max_pixels=None)[:2] == (64, 48)


def test_cifar10_zip_files_read(data_dir):
    path = data_dir / "cifar10-jpeg.zip"
    if not path.is_file():
        pytest.skip("no cifar10-jpeg.zip in DCTNET_DATA")
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(".jpg")][::6000]
        for name in names:
            img = read_jpeg(z.read(name))
            assert [c.shape for c in img.coefficients] == [(4, 4, 64), (2, 2, 64), (2, 2, 64)]
            np.testing.assert_array_equal(img.qtables[0], dctnet.quant_table(75, "luma"))


# ----------------------------------------------------------------------------- the package's layout


def test_reader_modules_import_downwards_only():
    """dctnet.jpeg: each module imports only modules below it (no circles, also none inside functions),
    no private name of another module, and nothing of dctnet above the plain-array layer."""
    import ast
    from pathlib import Path

    layers = ["errors", "markers", "libjpeg", "picture", "huffman", "files", "__init__"]
    allowed_outside = {"transform", "backend", "kernels"}
    root = Path(dctnet.jpeg.__file__).parent
    assert sorted(p.stem for p in root.glob("*.py")) == sorted(layers)
    for module in layers:
        for node in ast.walk(ast.parse((root / f"{module}.py").read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            if node.level == 2:  # from ..x import y: the rest of dctnet
                assert node.module.split(".")[0] in allowed_outside, (module, node.module)
                targets = [node.module]
            else:  # from .x import y, or from . import x
                targets = [node.module] if node.module else [alias.name for alias in node.names]
                for target in targets:
                    assert layers.index(target) < layers.index(module), f"{module} imports {target}"
            assert not [a.name for a in node.names if a.name.startswith("_")], (module, node.module)
