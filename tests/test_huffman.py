"""dctnet.jpeg.huffman: the Numba JPEG decoder must equal jpeglib's coefficients and tables exactly."""

import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dctnet
from dctnet import JpegError, JpegImage, write_jpeg
from dctnet import read_jpegs, read_stacked
from dctnet.jpeg import huffman, markers
from dctnet.jpeg.picture import block_grids

Image = pytest.importorskip("PIL.Image")

SIZES = [(1, 1), (7, 9), (17, 33), (100, 75), (257, 130)]  # (height, width)
PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def picture(h, w, channels, seed=0):
    """Smooth noise with some edges: many coefficient sizes, few clamped pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (h // 5 + 2, w // 5 + 2, channels), dtype=np.uint8)
    im = Image.fromarray(coarse[..., 0] if channels == 1 else coarse).resize((w, h), Image.BILINEAR)
    x = np.asarray(im).astype(np.int16)
    x = x + rng.integers(-20, 21, x.shape)  # texture: long AC runs
    return np.clip(x, 0, 255).astype(np.uint8)


def pillow(h, w, mode="4:2:0", quality=75, **kw):
    x = picture(h, w, 1 if mode == "gray" else 3, seed=h * 1000 + w)
    extra = {} if mode == "gray" else {"subsampling": PIL_SUBSAMPLING[mode]}
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=quality, **extra, **kw)
    return buf.getvalue()


def read_jpeg(source, **kw):
    """The reference: libjpeg through jpeglib (read_jpeg itself prefers the reader under test)."""
    return dctnet.read_jpeg(source, decoder="libjpeg", **kw)


def same(img, ref):
    """Assert two JpegImages carry identical coefficients, tables, sampling, size and colour space."""
    assert (img.height, img.width, img.sampling, img.color_space) == (ref.height, ref.width, ref.sampling, ref.color_space)
    assert len(img.coefficients) == len(ref.coefficients)
    for a, b in zip(img.coefficients, ref.coefficients):
        assert a.dtype == np.int16 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    for a, b in zip(img.qtables, ref.qtables):
        np.testing.assert_array_equal(a, b)


def same_stack(coefs, qtables, files):
    """Assert read_stacked's arrays hold every file's coefficients and tables as libjpeg reads them."""
    for i, f in enumerate(files):
        ref = read_jpeg(f)
        for c, (a, b) in enumerate(zip(ref.coefficients, ref.qtables)):
            np.testing.assert_array_equal(coefs[c][i], a)
            np.testing.assert_array_equal(qtables[i, c], b)


def clean_reference(source):
    """jpeglib's reading when it succeeds without any libjpeg warning, else None."""
    try:
        return read_jpeg(source)
    except JpegError:
        return None


# ----------------------------------------------------------------------------- generated corpus

@pytest.mark.parametrize("mode", ["gray", "4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("quality", [10, 50, 100])
def test_pillow_files(mode, size, quality):
    data = pillow(*size, mode, quality)
    same(huffman.read(data), read_jpeg(data))


@pytest.mark.parametrize("mode", ["gray", "4:2:0", "4:4:4"])
@pytest.mark.parametrize("kw", [{"optimize": True}, {"restart_marker_blocks": 1}, {"restart_marker_blocks": 3},
                                {"restart_marker_rows": 1}, {"optimize": True, "restart_marker_blocks": 7}])
def test_optimized_tables_and_restarts(mode, kw):
    for size in SIZES:
        data = pillow(*size, mode, 80, **kw)
        if "restart_marker_blocks" in kw and size == SIZES[-1]:
            assert b"\xff\xd0" in data  # the option really wrote restart markers
        same(huffman.read(data), read_jpeg(data))


@pytest.mark.parametrize("sampling", [((2, 1), (1, 1), (1, 1)), ((1, 4), (1, 1), (1, 1)), ((2, 2), (1, 2), (2, 1)),
                                      ((1, 1), (2, 2), (1, 1)), ((2, 2),), ((1, 1),)])
@pytest.mark.parametrize("size", SIZES)
def test_any_sampling(sampling, size, tmp_path):
    """4:4:0, 4:1:1 and unusual factors, from random coefficients written by libjpeg (jpeglib)."""
    h, w = size
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    rng = np.random.default_rng(h * w)
    coefs = []
    for v, hf in sampling:
        shape = (-(-h * v // (8 * vmax)), -(-w * hf // (8 * hmax)), 64)
        c = rng.laplace(0, 4, shape) * (rng.random(shape) < 0.4) / (1 + np.arange(64) / 8)
        c[..., 0] = rng.integers(-1000, 1000, shape[:2])
        coefs.append(np.rint(c).astype(np.int16))
    qt = tuple(rng.integers(1, 100, 64).astype(np.int32) for _ in sampling)
    space = "gray" if len(sampling) == 1 else "ycbcr"
    path = write_jpeg(tmp_path / "x.jpg", JpegImage(tuple(coefs), qt, sampling, h, w, space))
    ref = read_jpeg(path)
    same(read_jpegs([path])[0], ref)
    for a, b in zip(ref.coefficients, coefs):
        np.testing.assert_array_equal(a, b)


def test_rgb_adobe_and_wide_coefficients(tmp_path):
    """An RGB file (Adobe transform 0, ids R G B) with the widest values libjpeg writes (11-bit DC step, 10-bit AC)."""
    img = dctnet.encode_jpeg(picture(17, 33, 3).transpose(2, 0, 1), quality=100, subsampling="4:4:4")
    coefs = [c.copy() for c in img.coefficients]
    coefs[0][0, 0, 0], coefs[0][0, 1, 0], coefs[1][0, 0, 5] = 1023, -1023, -1023
    rgb = JpegImage(tuple(coefs), img.qtables, img.sampling, img.height, img.width, "rgb")
    path = write_jpeg(tmp_path / "rgb.jpg", rgb)
    ours = huffman.read(path.read_bytes())
    assert ours.color_space == "rgb"
    same(ours, read_jpeg(path))


def test_motion_jpeg_frame_uses_standard_tables():
    """A frame without DHT (as in Motion-JPEG): libjpeg 6b refuses it ("Huffman table 0x00 was not
    defined"), so strict reading does too; strict=False decodes it with the Annex K tables, with a warning."""
    data = pillow(17, 33, "4:2:0", 75)
    segments = _segments(data)
    # Pillow writes each Annex K table in its own DHT segment, in the order of huffman.STANDARD_DHT
    assert b"".join(s[4:] for s in segments if s[1] == 0xC4) == huffman.STANDARD_DHT
    stripped = b"".join(s for s in segments if s[1] != 0xC4)
    with pytest.raises(JpegError, match="<bytes>: .*Huffman table"):
        read_jpeg(stripped)
    with pytest.raises(JpegError, match="<bytes>: .*defines no Huffman tables"):
        huffman.read(stripped)
    with pytest.raises(JpegError, match="defines no Huffman tables"):
        read_jpegs([stripped])
    with pytest.warns(dctnet.JpegWarning, match="<bytes>: no Huffman tables .*Annex K"):
        same(huffman.read(stripped, strict=False), read_jpeg(data))


def test_scan_naming_a_component_twice_is_refused():
    """An SOS naming Cb twice (and Cr never): libjpeg 6b decodes both into Cb and leaves Cr zero,
    libjpeg-turbo and IJG 9 refuse it; the Numba reader refuses it and read_jpeg falls back to libjpeg."""
    data = pillow(17, 33, "4:4:4", 75)
    sos = data.index(b"\xff\xda")
    assert data[sos + 5:sos + 11:2] == b"\x01\x02\x03"
    bad = data[:sos + 9] + b"\x02" + data[sos + 10:]
    with pytest.raises(JpegError, match="<bytes>: scan names component id 2 twice"):
        huffman.read(bad)
    same(dctnet.read_jpeg(bad), read_jpeg(bad))  # auto: the Numba reader refuses, libjpeg reads


def _segments(data):
    """The file cut into marker segments (SOS keeps its entropy-coded data and the rest of the file)."""
    out, pos = [data[:2]], 2
    while pos < len(data):
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if data[pos + 1] == 0xDA:
            out.append(data[pos:])
            break
        out.append(data[pos:pos + 2 + length])
        pos += 2 + length
    return out


def test_progressive_falls_back_to_jpeglib():
    data = pillow(17, 33, "4:2:0", 75, progressive=True)
    assert huffman.read(data) is None
    images = read_jpegs([data, pillow(7, 9, "gray", 50), data])
    same(images[0], read_jpeg(data))
    assert images[0].progressive and not images[1].progressive
    same(images[1], read_jpeg(pillow(7, 9, "gray", 50)))


def test_read_stacked_and_threads():
    files = [pillow(17, 33, "4:2:0", q) for q in (10, 40, 70, 95)] + [pillow(17, 33, "4:2:0", 75, progressive=True)]
    coefs, qt = read_stacked(files, threads=1)
    assert [c.shape for c in coefs] == [(5, 3, 5, 64), (5, 2, 3, 64), (5, 2, 3, 64)] and qt.shape == (5, 3, 64)
    same_stack(coefs, qt, files)
    with pytest.raises(ValueError, match="one geometry"):
        read_stacked([files[0], pillow(17, 32, "4:2:0", 75)])
    with pytest.raises(ValueError, match="threads"):
        read_jpegs(files, threads=0)


@pytest.mark.parametrize("size", [(700, 1000), (13, 1001), (999, 15)])  # one large case; sizes off the MCU grid
def test_large_and_odd_sizes(size):
    for mode in ("4:2:0", "4:2:2") if size[0] == 700 else ("4:2:0", "gray"):
        data = pillow(*size, mode, 90)
        same(huffman.read(data), read_jpeg(data))


@pytest.mark.parametrize("quality", range(10, 101, 10))
def test_qualities_with_optimized_tables_and_restarts(quality):
    """Qualities 10..100, optimized Huffman tables, restart intervals 1 and 7, sizes not multiples of 8 or 16."""
    for i, (h, w) in enumerate([(37, 53), (60, 22), (123, 97)]):
        kw = [{"optimize": True}, {"restart_marker_blocks": 1}, {"restart_marker_blocks": 7, "optimize": True}][i]
        data = pillow(h, w, ["4:2:0", "4:4:4", "4:2:2"][quality // 10 % 3], quality, **kw)
        if "restart_marker_blocks" in kw:
            assert b"\xff\xdd\x00\x04" + bytes([0, kw["restart_marker_blocks"]]) in data  # the DRI asked for
        same(huffman.read(data), read_jpeg(data))


def test_sixteen_bit_quantization_tables(tmp_path):
    """DQT with 16-bit entries (precision 1, values over 255: libjpeg writes SOF1), both readers alike."""
    img = dctnet.encode_jpeg(picture(37, 21, 3).transpose(2, 0, 1), quality=90)
    qt = [q.copy() for q in img.qtables]
    qt[0][5:] = np.arange(59) * 17 + 200  # up to 1186
    qt[1][:] = 300
    big = JpegImage(img.coefficients, tuple(qt), img.sampling, img.height, img.width)
    path = write_jpeg(tmp_path / "q16.jpg", big)
    data = path.read_bytes()
    assert b"\xff\xc1" in data and data[data.index(b"\xff\xdb") + 4] >> 4 == 1  # SOF1, 16-bit DQT
    ours, ref = huffman.read(data), read_jpeg(path)
    same(ours, ref)
    assert ours.qtables[0].max() == 1186
    for a, b in zip(ours.coefficients, img.coefficients):
        np.testing.assert_array_equal(a, b)
    # a hand-made 16-bit DQT holding small values: precision 1, two bytes per entry
    data = pillow(17, 33, "4:2:0", 75)
    at = data.index(b"\xff\xdb")
    length = int.from_bytes(data[at + 2:at + 4], "big")
    tables, pos, seg = b"", 0, data[at + 4:at + 2 + length]
    while pos < len(seg):
        tables += bytes([0x10 | seg[pos] & 15]) + np.frombuffer(seg, np.uint8, 64, pos + 1).astype(">u2").tobytes()
        pos += 65
    patched = data[:at + 2] + (len(tables) + 2).to_bytes(2, "big") + tables + data[at + 2 + length:]
    same(huffman.read(patched), read_jpeg(patched))
    same(huffman.read(patched), huffman.read(data))


# ----------------------------------------------------------------------------- four components

def cmyk_file(h, w, quality=80, transform=0, seed=0, **kw):
    """Pillow's CMYK JPEG (an Adobe marker, transform 0); ``transform`` rewrites the flag, None drops the marker."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([picture(h, w, 3, seed), picture(h, w, 1, seed + 1)[..., None]], axis=2)
    x = np.clip(x.astype(np.int16) + rng.integers(-5, 6, x.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x, "CMYK").save(buf, "JPEG", quality=quality, **kw)
    data = buf.getvalue()
    at = data.index(b"\xff\xee\x00\x0eAdobe")
    if transform is None:
        return data[:at] + data[at + 16:]
    return _patch(data, at + 15, bytes([transform]))


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (64, 48), (101, 203)])
@pytest.mark.parametrize("transform, space", [(0, "cmyk"), (2, "ycck"), (None, "cmyk")])
def test_cmyk_and_ycck_read_every_component(size, transform, space):
    data = cmyk_file(*size, transform=transform, seed=size[0])
    ref = read_jpeg(data)
    assert ref.color_space == space and len(ref.coefficients) == 4
    for img in (huffman.read(data), read_jpegs([data, data])[1], dctnet.read_jpeg(data)):
        same(img, ref)
    coefs, qt = read_stacked([data, data])
    assert len(coefs) == 4 and qt.shape == (2, 4, 64)
    for c in range(4):
        np.testing.assert_array_equal(coefs[c][1], ref.coefficients[c])
        np.testing.assert_array_equal(qt[0, c], ref.qtables[c])


def test_cmyk_with_restarts_and_unknown_transform():
    for kw in ({"restart_marker_blocks": 1}, {"restart_marker_blocks": 7, "optimize": True}):
        data = cmyk_file(40, 70, 60, **kw)
        assert b"\xff\xd1" in data
        same(huffman.read(data), read_jpeg(data))
    bad = cmyk_file(16, 16, transform=1)  # libjpeg warns (and assumes YCCK): refused when strict
    with pytest.raises(JpegError, match="transform 1"):
        huffman.read(bad, "bad.jpg")
    with pytest.raises(JpegError):
        read_jpeg(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert dctnet.read_jpeg(bad, strict=False, decoder="libjpeg").color_space == "ycck"


@pytest.mark.skipif(not os.environ.get("DCTNET_DATA"), reason="set DCTNET_DATA to the shared data folder")
def test_corpus_cmyk_and_ycck_files():
    """Every CMYK/YCCK file of the corpus that jpeglib reads cleanly reads identically here, four components."""
    seen = {}
    for path in _corpus():
        data = path.read_bytes()
        frame = markers.walk(data).frame()
        if frame is None or frame[4] != 4:
            continue
        ref = clean_reference(path)
        if ref is None:
            continue
        assert len(ref.coefficients) == 4
        same(read_jpegs([path])[0], ref)
        if not ref.progressive:
            same(huffman.read(data), ref)
        seen[path.name] = ref.color_space
    assert seen.get("ycck.jpg") == "ycck" and seen.get("mozilla_jpg-cmyk-1.jpg") == "cmyk", seen
    assert len(seen) >= 3, seen


# ----------------------------------------------------------------------------- to the device

def test_read_stacked_device():
    files = [pillow(17, 33, "4:2:0", q) for q in (30, 90)]
    ref_c, ref_q = read_stacked(files)
    coefs, qt = read_stacked(files, device="cpu")
    assert all(type(c) is np.ndarray for c in coefs) and type(qt) is np.ndarray
    for a, b in zip(coefs, ref_c):
        np.testing.assert_array_equal(a, b)
    assert coefs[1].base is not None and coefs[1].base is coefs[0].base  # slices of one buffer
    with pytest.raises(ValueError, match="device"):
        read_stacked(files, device="tpu")
    if not dctnet.cupy_available():
        with pytest.raises(RuntimeError, match="CuPy"):
            read_stacked(files, device="gpu")


def test_read_stacked_to_gpu():
    if not dctnet.cupy_available():
        pytest.skip("needs CuPy and a GPU")
    import cupy

    files = [pillow(17, 33, "4:2:0", q) for q in (30, 90)] + [pillow(17, 33, "4:2:0", 75, progressive=True)]
    ref_c, ref_q = read_stacked(files)
    coefs, qt = read_stacked(files, device="gpu")
    assert all(isinstance(c, cupy.ndarray) for c in coefs) and isinstance(qt, cupy.ndarray)
    base = coefs[0].data.ptr
    assert [c.data.ptr for c in coefs] == [base + sum(r.nbytes for r in ref_c[:c]) for c in range(3)]  # one buffer
    for a, b in zip(coefs, ref_c):
        np.testing.assert_array_equal(cupy.asnumpy(a), b)
    np.testing.assert_array_equal(cupy.asnumpy(qt), ref_q)


# ----------------------------------------------------------------------------- real files

def test_cifar10_first_2000_test_files():
    root = os.environ.get("DCTNET_DATA")
    if not root:
        pytest.skip("set DCTNET_DATA to the shared data folder")
    with zipfile.ZipFile(Path(root) / "cifar10-jpeg.zip") as z:
        names = sorted(n for n in z.namelist() if n.startswith("cifar10/test/") and n.endswith(".jpg"))[:2000]
        blobs = [z.read(n) for n in names]
    for img, blob in zip(read_jpegs(blobs), blobs):
        same(img, read_jpeg(blob))


def _corpus():
    root = os.environ.get("DCTNET_DATA")
    return sorted((Path(root) / "jpeg-corpus").rglob("*.jpg")) if root else []


@pytest.mark.skipif(not os.environ.get("DCTNET_DATA"), reason="set DCTNET_DATA to the shared data folder")
def test_conformance_corpus():
    """Every file reads as jpeglib reads it (when jpeglib reads it cleanly) or raises JpegError."""
    refused_clean = []
    for path in _corpus():
        ref = clean_reference(path)
        try:
            ours = read_jpegs([path])[0]
        except JpegError as exc:
            assert path.name in str(exc)
            if ref is not None:
                refused_clean.append((path.name, str(exc)))
            continue
        if ref is not None:
            same(ours, ref)
    assert not refused_clean, refused_clean


def test_unsupported_kinds_are_named():
    root = os.environ.get("DCTNET_DATA")
    if not root:
        pytest.skip("set DCTNET_DATA to the shared data folder")
    turbo = Path(root) / "jpeg-corpus" / "libjpeg-turbo"
    with pytest.raises(JpegError, match="testimgari.jpg: arithmetic coding"):
        read_jpegs([turbo / "testimgari.jpg"])
    with pytest.raises(JpegError, match="monkey12.jpg: 12-bit"):
        read_jpegs([turbo / "monkey12.jpg"])


def test_motion_jpeg_frame_with_extraneous_bytes_reads_leniently():
    """mjpeg.jpg: no DHT (libjpeg 6b refuses it) and extraneous bytes before a restart marker,
    which libjpeg-turbo (Pillow) skips with a warning; strict=False does the same, strict raises."""
    root = os.environ.get("DCTNET_DATA")
    if not root:
        pytest.skip("set DCTNET_DATA to the shared data folder")
    path = Path(root) / "jpeg-corpus" / "jpeg-decoder-reftest" / "mjpeg.jpg"
    with pytest.raises(JpegError, match="mjpeg.jpg"):
        dctnet.read_jpeg(path)
    with pytest.raises(JpegError, match="mjpeg.jpg: .*defines no Huffman tables"):
        huffman.read(path.read_bytes(), "mjpeg.jpg")
    for decoder in ("auto", "numba"):
        with pytest.warns(dctnet.JpegWarning, match="mjpeg.jpg: .*skipped .* extraneous bytes"):
            img = dctnet.read_jpeg(path, strict=False, decoder=decoder)
    ours = img.to_pixels("rgb").transpose(1, 2, 0)
    with Image.open(path) as im:
        ref = np.asarray(im.convert("RGB"), np.float32)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert diff.mean() < 3 and np.percentile(diff, 99) < 12, (diff.mean(), np.percentile(diff, 99))


def _restart_damage(n, seed=5):
    """Files with restart markers and junk before a marker, a marker renumbered, or one dropped."""
    bases = [pillow(40, 24, "4:4:4", 90, restart_marker_blocks=2), pillow(33, 47, "4:2:0", 75, restart_marker_blocks=1)]
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = bytearray(bases[i % 2])
        sos = data.index(b"\xff\xda")
        start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
        for _ in range(rng.integers(1, 3)):
            rst = [j for j in range(start, len(data) - 2) if data[j] == 0xFF and 0xD0 <= data[j + 1] <= 0xD7]
            j = rst[rng.integers(len(rst))]
            if i % 3 == 0:
                data[j:j] = bytes(rng.integers(0, 255, rng.integers(1, 6)).astype(np.uint8))
            elif i % 3 == 1:
                data[j + 1] = 0xD0 + rng.integers(0, 8)
            else:
                del data[max(start, j - int(rng.integers(0, 4))):j + 2]
        yield bytes(data)


def test_lenient_mode_resynchronizes_like_libjpeg():
    """strict=False skips extraneous bytes and resynchronizes restart markers as libjpeg 6b does
    (a lost segment's first MCU decoded from zero bits, the rest zeros): identical coefficients."""
    agree = 0
    for data in _restart_damage(90):
        try:
            ref = read_jpeg(data, strict=False)
        except JpegError:
            ref = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ours = huffman.read(data, "damaged.jpg", strict=False)
        except JpegError as exc:
            assert "damaged.jpg" in str(exc)
            continue
        assert [str(w.message).startswith("damaged.jpg: corrupt JPEG data") for w in caught] == [True]
        with pytest.raises(JpegError, match="damaged.jpg"):
            huffman.read(data, "damaged.jpg")
        assert ref is not None
        same(ours, ref)
        agree += 1
    assert agree > 70


# ----------------------------------------------------------------------------- hostile files

def _fuzz_cases(n=2500, seed=2024):
    bases = [pillow(17, 33, "4:2:0", 75), pillow(9, 7, "gray", 50, optimize=True),
             pillow(40, 24, "4:4:4", 90, restart_marker_blocks=2), pillow(16, 16, "4:2:2", 30)]
    rng = np.random.default_rng(seed)
    for i in range(n):
        data = bytearray(bases[i % len(bases)])
        kind = i % 4
        if kind == 0:  # bit flips
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(2, len(data))
                data[pos] ^= 1 << rng.integers(0, 8)
        elif kind == 1:  # truncation
            data = data[: rng.integers(2, len(data))]
        elif kind == 2:  # bytes replaced
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(2, len(data))] = rng.choice([0x00, 0xFF, 0xD9, 0xD0, rng.integers(0, 256)])
        else:  # a run of bytes removed or duplicated
            a = int(rng.integers(2, len(data) - 1))
            b = int(min(len(data), a + rng.integers(1, 8)))
            data = data[:a] + data[b:] if rng.random() < 0.5 else data[:b] + data[a:b] + data[b:]
        yield bytes(data)


def test_fuzzed_files_read_identically_or_raise():
    """Refusing what jpeglib reads cleanly is allowed for two reasons only: a zero run past
    coefficient 63, which libjpeg 6b silently folds into coefficient 63 (or drops), and
    a few bytes left after the scan's last block, which libjpeg 6b drops unseen when its
    bit buffer already holds them (read_jpeg then reads the file through libjpeg)."""
    agree = 0
    refused = []
    for data in _fuzz_cases():
        ref = clean_reference(data)
        try:
            ours = huffman.read(data, "fuzz.jpg")
        except JpegError as exc:
            assert "fuzz.jpg" in str(exc)
            if ref is not None and "past the 64th coefficient" not in str(exc):
                if "extraneous bytes" in str(exc):
                    same(dctnet.read_jpeg(data), ref)
                else:
                    refused.append(str(exc))
            continue
        if ref is not None:
            same(ours, ref)
            agree += 1
    assert not refused, refused
    assert agree > 20  # the mutations leave some files valid (e.g. flips in the picture's bits)


def _patch(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


def _find_segment(data, marker):
    return data.index(bytes([0xFF, marker]))


def test_hostile_headers():
    data = pillow(17, 33, "4:2:0", 75)
    sof = _find_segment(data, 0xC0)
    dht = _find_segment(data, 0xC4)
    cases = {
        "at most 256": _patch(data, dht + 5, bytes([0x40] * 8)),  # counts summing to > 256
        "quantization table 3": _patch(data, sof + 2 + 2 + 6 + 2, b"\x03"),  # component 0 -> undefined DQT 3
        "empty image": _patch(data, sof + 7, b"\x00\x00"),  # width 0
        "max_pixels": _patch(data, sof + 5, b"\xff\x00\xff\x00"),  # 65280 x 65280
        "12-bit": _patch(data, sof + 4, b"\x0c"),
        "arithmetic coding": _patch(data, sof, b"\xff\xc9"),
        "2-component": _patch(data, sof + 9, b"\x02"),
    }
    for what, bad in cases.items():
        with pytest.raises(JpegError, match=f"hostile.jpg: .*{what}"):
            huffman.read(bad, "hostile.jpg")


def test_hostile_scans():
    data = pillow(17, 33, "4:2:0", 75)
    sos = _find_segment(data, 0xDA)
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    cases = {
        "ends before the last block": data[: start + 20] + b"\xff\xd9",
        "truncated": data[: start + 20],
        "no code of its Huffman table": data[:start] + b"\xff\x00\xff\x00" * 4 + data[start + 8:],
        "extraneous bytes": data[:-2] + b"\x12\x34\xff\xd9",
        "truncated file": data[:-2],
    }
    for what, bad in cases.items():
        with pytest.raises(JpegError, match=f"hostile.jpg: .*{what}"):
            huffman.read(bad, "hostile.jpg")


def test_read_jpeg_prefers_the_numba_decoder_and_falls_back_to_libjpeg():
    """decoder="auto" reads like libjpeg in every case: a fuzz file the kernel refuses but
    libjpeg reads cleanly comes back from libjpeg, a corrupt one raises either way."""
    for data in list(_fuzz_cases(n=60, seed=7)) + [pillow(17, 33, "4:2:0", 75)]:
        ref = clean_reference(data)
        if ref is None:
            with pytest.raises(JpegError):
                dctnet.read_jpeg(data)
        else:
            same(dctnet.read_jpeg(data), ref)
            same(read_jpegs([data, data])[1], ref)
    progressive = pillow(16, 16, "4:2:0", 75, progressive=True)
    same(dctnet.read_jpeg(progressive), read_jpeg(progressive))
    with pytest.raises(JpegError, match="progressive"):
        dctnet.read_jpeg(progressive, decoder="numba")
    with pytest.raises(ValueError, match="decoder"):
        dctnet.read_jpeg(progressive, decoder="turbo")


# ----------------------------------------------------------------------------- batches sharing headers

def test_batch_of_shared_headers_mixed_with_other_files():
    """Files with identical headers share one parsed plan; files of other shapes (a segment after
    the scan, progressive, corrupt data, another geometry) in the same call still read as jpeglib."""
    a = [pillow(17, 33, "4:2:0", 75)] * 2 + [pillow(16, 32, "4:2:0", 75)]
    same_header = [f for f in a if len(f) == len(a[0])]
    comment_after = a[2][:-2] + b"\xff\xfe\x00\x05abc" + b"\xff\xd9"  # COM after the scan: the full parser
    fill_before_eoi = a[0][:-2] + b"\xff\xff\xff\xd9"
    bad = bytearray(a[0])
    bad[len(bad) // 2] ^= 0x55  # same header, corrupt entropy-coded data
    trailing = a[0] + b"junk after EOI"
    files = [a[0], comment_after, pillow(17, 33, "4:2:0", 75, progressive=True), a[2], bytes(bad),
             fill_before_eoi, pillow(9, 7, "gray", 50), trailing, a[1], pillow(17, 33, "4:4:4", 30)]
    images = []
    for f in files:
        try:
            images.append(read_jpeg(f))
        except JpegError:
            images.append(None)
    if images[4] is None:  # the corrupt file raises alone
        with pytest.raises(JpegError):
            read_jpegs(files)
        files[4] = same_header[0]
        images[4] = read_jpeg(files[4])
    ours = read_jpegs(files)
    for img, ref in zip(ours, images):
        same(img, ref)
    # each image owns its tables although their files share a header
    ours[0].qtables[0][0] += 1
    assert ours[8].qtables[0][0] == images[8].qtables[0][0]


def test_read_stacked_files_of_different_headers():
    files = [pillow(24, 24, "4:2:2", q, optimize=q > 50) for q in (20, 60, 60, 90)]
    files.append(files[0][:-2] + b"\xff\xfe\x00\x03x\xff\xd9")  # COM after the scan
    coefs, qt = read_stacked(files, threads=1)
    same_stack(coefs, qt, files)
    with pytest.raises(ValueError, match="one geometry"):
        read_stacked(files + [pillow(24, 24, "4:2:0", 60)])


def test_hostile_headers_shared_by_many_files():
    """A header the parser refuses is refused for every file using it, each named."""
    data = pillow(17, 33, "4:2:0", 75)
    sof = _find_segment(data, 0xC0)
    bad = _patch(data, sof + 5, b"\xff\x00\xff\x00")  # 65280 x 65280 pixels
    with pytest.raises(JpegError, match="max_pixels"):
        read_jpegs([data, bad, bad])
    zero_q = bytearray(data)
    dqt = _find_segment(data, 0xDB)
    zero_q[dqt + 5] = 0  # a zero quantization step
    with pytest.raises(JpegError, match="<bytes #1>"):  # the first bad one, by its index (issue 19 item 10)
        read_jpegs([data, bytes(zero_q), bytes(zero_q)])
    with pytest.raises(JpegError, match="<bytes #1>: a quantization table holds a zero"):
        read_stacked([data, bytes(zero_q)])


@pytest.mark.parametrize("sampling, size", [
    (((2, 2), (1, 1), (1, 1)), (32, 32)),  # CIFAR-10's 4:2:0
    (((3, 1), (1, 1), (1, 1)), (23, 10)),  # a factor 3: through the exact IDCT, partial blocks
    (((1, 1),), (9, 17)),                  # grey
])
def test_dct_picture_of_a_stack_equals_each_image(sampling, size):
    """dctnet.dct_picture on read_stacked output == JpegImage.to_dct of every file, in every colour form."""
    h, w = size
    rng = np.random.default_rng(3)
    space = "gray" if len(sampling) == 1 else "ycbcr"
    images = []
    for _ in range(3):
        coefs = tuple(rng.integers(-30, 31, (*grid, 64)).astype(np.int16) for grid in block_grids(h, w, sampling))
        qt = tuple(rng.integers(1, 40, 64).astype(np.int32) for _ in sampling)
        images.append(JpegImage(coefs, qt, sampling, h, w, space))
    coefs, qtables = read_stacked([img.to_bytes() for img in images])
    for color in ("gray", "ycbcr", "rgb"):
        batch = dctnet.dct_picture(coefs, qtables.transpose(1, 0, 2), sampling, space, h, w, color, np.float64)
        expected = np.stack([img.to_dct(color, np.float64) for img in images])
        np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- the marker walk

def _python_walk(data):
    """An independent walk: ``(marker, payload start, payload end, data end)`` per segment, as the standard lays them out."""
    out, pos = [], 2
    while True:
        while data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos + 1]
        if marker == 0xD9:
            return out
        if 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        stop = end
        if marker == 0xDA:  # entropy-coded data: up to the next FF that is neither FF 00 nor RSTn
            while not (data[stop] == 0xFF and data[stop + 1] not in (0x00, *range(0xD0, 0xD8), 0xFF)):
                stop += 1
            while data[stop - 1] == 0xFF:  # fill bytes before the marker are not data
                stop -= 1
        out.append([marker, pos + 4, end, stop])
        pos = stop


@pytest.mark.parametrize("kw", [{}, {"progressive": True}, {"restart_marker_blocks": 1}, {"optimize": True}])
def test_marker_walk_matches_a_plain_walk(kw):
    data = pillow(33, 47, "4:2:0", 75, **kw)
    padded = data[:2] + b"\xff\xff" + data[2:-2] + b"\xff\xff\xd9"  # fill bytes before a marker and before EOI
    comments = data[:2] + b"\xff\xfe\x00\x03x" * 40 + data[2:]  # more segments than walk's first try holds
    for d, progressive in ((data, "progressive" in kw), (padded, "progressive" in kw), (comments, "progressive" in kw),
                           (cmyk_file(17, 33), False)):
        m = markers.walk(d)
        assert m.complete and m.fault() is None and m.segments == _python_walk(d)
        scans = [i for i, s in enumerate(m.segments) if s[0] == 0xDA]
        assert m.first_scan == scans[0] and (len(scans) > 1) == progressive
    many = [data, padded, pillow(9, 7, "gray", 50), b"", data[:100]]
    offsets = np.cumsum([0] + [len(d) for d in many])
    results = markers.walk_many(np.frombuffer(b"".join(many), np.uint8), offsets)
    for d, row in zip(many, results):
        m = markers.walk(d)
        scan = m.segments[m.first_scan][2:] if m.first_scan >= 0 else [-1, -1]
        assert row.tolist() == [m.status, m.where, len(m.segments), m.first_scan, *scan]


def test_marker_walk_faults_are_named():
    data = pillow(17, 33, "4:2:0", 75)
    app0 = data[:4 + int.from_bytes(data[4:6], "big")]  # SOI and the JFIF segment
    sof = _find_segment(data, 0xC0)
    cases = {
        b"": "empty file",
        b"GIF89a": "not a JPEG file .* found 47 49",
        app0: "ends before its EOI marker",  # cut right after a segment
        app0 + b"\x12": "found byte 12 at offset 20 where a marker",
        app0 + b"\xff\x00": "stray byte pair FF 00 at offset 20",
        app0 + b"\xff\xd8": "a second SOI",
        app0 + b"\xff\xdb\x00": "ends inside a marker segment",
        app0 + b"\xff\xdb\x00\x01": "marker FF DB at offset 20 has a bad length 1",
        data[:-2]: "ends inside the entropy-coded data",
    }
    for d, message in cases.items():
        m = markers.walk(d)
        assert not m.complete and m.fault() is not None
        assert re.search(message, m.fault()), (message, m.fault())
        with pytest.raises(JpegError, match=f"cut.jpg: .*{message}"):
            huffman.read(d, "cut.jpg")
    # the frame header of a file cut inside it still names an unsupported kind before any decoding
    twelve = _patch(data, sof + 4, b"\x0c")[:sof + 12]
    assert markers.walk(twelve).frame() == (0xC0, 12, 17, 33, 3)
    with pytest.raises(JpegError, match="12-bit"):
        dctnet.read_jpeg(twelve)
