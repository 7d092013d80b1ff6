"""Regression tests for the JPEG reader's reliability (issue 19, items 3, 7 and 10)."""

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dctnet
from dctnet import JpegError, encode_jpeg, read_header, read_jpeg, read_jpegs, read_stacked, write_jpeg


def pillow_jpeg(pixels, progressive=False):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


@pytest.fixture
def progressive(rng):
    return pillow_jpeg(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), progressive=True)


# --- item 3: libjpeg's messages, not process-wide stderr ---------------------------------------------------

def test_libjpeg_path_ignores_and_passes_on_other_threads_stderr(progressive, tmp_path, capfd):
    """Another thread writing to fd 2 while progressive files are read: no read is refused, none of its output lost."""
    reference = read_jpeg(progressive, decoder="libjpeg")
    stop, written = threading.Event(), []

    def logger():
        i = 0
        while not stop.is_set():
            line = f"LOG line {i}\n"
            os.write(2, line.encode())
            written.append(line)
            i += 1

    thread = threading.Thread(target=logger)
    thread.start()
    try:
        for _ in range(150):
            img = read_jpeg(progressive)
            assert all(np.array_equal(a, b) for a, b in zip(img.coefficients, reference.coefficients))
    finally:
        stop.set()
        thread.join()
    err = capfd.readouterr().err
    assert err.count("LOG line") == len(written)  # every line came through, in full
    assert all(line in err for line in written[:50])


def test_libjpeg_warning_still_caught_with_other_threads_writing(progressive):
    """The capture still finds libjpeg's own warning (a truncated progressive file) among other output."""
    cut = progressive[:len(progressive) * 2 // 3]
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [os.write(2, b"noise\n") for _ in iter(stop.is_set, True)])
    thread.start()
    try:
        for _ in range(20):
            with pytest.raises(JpegError, match="Premature end of JPEG file") as info:
                read_jpeg(cut)
            assert "noise" not in str(info.value)
    finally:
        stop.set()
        thread.join()


def test_write_jpeg_error_names_the_reason_and_the_path(tmp_path):
    img = encode_jpeg(np.zeros((1, 16, 16), np.uint8))
    img.coefficients[0][0, 0, 0] = 32000  # beyond what baseline Huffman coding can hold
    target = tmp_path / "out.jpg"
    with pytest.raises(JpegError) as info:
        write_jpeg(target, img)
    message = str(info.value)
    assert str(target) in message and "DCT coefficient out of range" in message
    assert ".tmp" not in message
    assert not target.exists() and list(tmp_path.iterdir()) == []


# --- item 7: work bounded by the data present --------------------------------------------------------------

def _claiming(data: bytes, height: int, width: int) -> bytes:
    """``data`` with the frame header's size replaced (the entropy-coded data unchanged)."""
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    return data[:sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + data[sof + 9:]


@pytest.mark.parametrize("progressive_file", [False, True], ids=["baseline", "progressive"])
def test_file_far_too_short_for_its_size_is_refused_cheaply(rng, progressive_file, tmp_path):
    small = pillow_jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), progressive=progressive_file)
    path = tmp_path / "huge.jpg"
    path.write_bytes(_claiming(small, 16384, 16384))
    script = f"""
import resource, dctnet
small = open({str(path)!r}, "rb").read()
dctnet.read_jpeg(dctnet.encode_jpeg(__import__("numpy").zeros((3, 16, 16), "uint8")).to_bytes())  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
messages = []
for strict in (True, False):
    for decoder in ("auto", "libjpeg", "numba"):
        try:
            dctnet.read_jpeg(small, strict=strict, decoder=decoder)
            messages.append("READ")
        except dctnet.JpegError as exc:
            messages.append(str(exc))
for call in (dctnet.read_jpegs, dctnet.read_stacked):
    try:
        call([small])
        messages.append("READ")
    except dctnet.JpegError as exc:
        messages.append(str(exc))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown)
print("\\n".join(messages))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    grown, *messages = out.splitlines()
    assert int(grown) < 100_000, f"peak memory grew by {int(grown) // 1024} MiB"  # KiB; the bug took ~2 GB
    assert len(messages) == 8
    for message in messages:
        assert "declares 16384x16384 pixels" in message, message
        assert "far too short" in message and "bytes" in message, message


def test_bound_keeps_short_but_plausible_files(rng):
    """A slightly truncated file is still recovered with strict=False (the bound only refuses the absurd)."""
    data = pillow_jpeg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), progressive=True)
    with pytest.warns(dctnet.JpegWarning):
        img = read_jpeg(data[:len(data) - 200], strict=False)
    assert img.width == 64


# --- item 10: batch errors name the index; errors="collect"; a str is not a list ---------------------------

def _batch(rng, n=5, bad=(1, 3)):
    good = [encode_jpeg(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)).to_bytes() for _ in range(n)]
    return [b"not a jpeg" if i in bad else d for i, d in enumerate(good)]


@pytest.mark.parametrize("call", [read_jpegs, read_stacked])
def test_batch_errors_name_the_index(rng, call):
    sources = _batch(rng, bad=(3,))
    with pytest.raises(JpegError, match=r"<bytes #3>"):
        call(sources)
    with pytest.raises(JpegError, match=r"<file #3>"):
        call([io.BytesIO(s) for s in sources])


def test_read_jpegs_collect(rng):
    sources = _batch(rng)
    images, failed = read_jpegs(sources, errors="collect")
    assert [i for i, _ in failed] == [1, 3]
    assert all(isinstance(e, JpegError) and f"#{i}>" in str(e) for i, e in failed)
    assert [img is None for img in images] == [False, True, False, True, False]
    for i in (0, 2, 4):
        assert np.array_equal(images[i].coefficients[0], read_jpeg(sources[i]).coefficients[0])
    assert read_jpegs(_batch(rng, bad=()), errors="collect")[1] == []


def test_read_stacked_collect(rng):
    sources = _batch(rng)
    (coefs, qt), indices, failed = read_stacked(sources, errors="collect")
    assert list(indices) == [0, 2, 4] and [i for i, _ in failed] == [1, 3]
    assert coefs[0].shape[0] == 3 and qt.shape[0] == 3
    for row, i in enumerate(indices):
        assert np.array_equal(coefs[0][row], read_jpeg(sources[i]).coefficients[0])
    with pytest.raises(JpegError, match="none of the 2 files"):
        read_stacked([b"x", b"y"], errors="collect")
    (coefs2, qt2, header), indices2, _ = read_stacked(sources, errors="collect", return_header=True)
    assert header == read_header(sources[0]) and list(indices2) == [0, 2, 4]  # the header of the files stacked
    assert all(np.array_equal(a, b) for a, b in zip(coefs2, coefs)) and np.array_equal(qt2, qt)
    good = [sources[i] for i in indices]
    assert read_stacked(good, return_header=True)[2] == read_header(good[1])


@pytest.mark.parametrize("call", [read_jpegs, read_stacked])
def test_batch_calls_refuse_a_single_path_and_bad_errors(call, tmp_path):
    with pytest.raises(TypeError, match="list"):
        call("a.jpg")
    with pytest.raises(TypeError, match="list"):
        call(Path("a.jpg"))
    with pytest.raises(TypeError, match="list"):
        call(b"\xff\xd8")
    with pytest.raises(ValueError, match="errors"):
        call([], errors="ignore")
