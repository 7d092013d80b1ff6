"""dctnet.datasets.forms: the batched read (read_stacked, dct_picture per batch) gives exactly
the arrays of reading file by file (read_jpeg, JpegImage.to_dct), in every case it must handle."""

import io
import zipfile

import numba
import numpy as np
import pytest

import dctnet
from dctnet.datasets import JpegDataset, forms, load_cifar10, sample_cifar10

Image = pytest.importorskip("PIL.Image")


def one_by_one(blobs, form):
    """The stacked arrays of ``blobs``, one read_jpeg per file: the loader's method before batching."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # one file per decoder call: extra threads only wait for each other
    try:
        images = [dctnet.read_jpeg(b) for b in blobs]
    finally:
        numba.set_num_threads(threads)
    if form == "coefficients":
        parts = [(*img.coefficients, np.stack(img.qtables).astype(np.int32)) for img in images]
    else:
        parts = [(img.to_dct(color="rgb", dtype=np.float32),) for img in images]
    return [np.stack(p) for p in zip(*parts)]


def arrays(ds):
    return [*ds.data.components, ds.data.qtables] if ds.form == "coefficients" else [ds.data]


def assert_identical(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def members(path, files):
    with zipfile.ZipFile(path) as zf:
        return [zf.read(name) for name in files]


def pillow_jpeg(pixels, **options):
    buf = io.BytesIO()
    Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buf, format="JPEG", **options)
    return buf.getvalue()


def write_zip(path, blobs, cls="c"):
    with zipfile.ZipFile(path, "w") as zf:
        for i, data in enumerate(blobs):
            zf.writestr(f"t/train/{cls}/{i:04d}.jpg", data)
    return path


@pytest.mark.parametrize("form", ["coefficients", "dct"])
def test_sample_batched_equals_file_by_file(form, monkeypatch):
    ds = sample_cifar10(form)
    with dctnet.datasets.paths.bundled("cifar10-sample.zip") as path:
        expected = one_by_one(members(path, ds.files), form)
    assert_identical(arrays(ds), expected)
    monkeypatch.setattr(forms, "BATCH_FILES", 7)  # batches of 7, the last one short
    assert_identical(arrays(sample_cifar10(form)), expected)
    monkeypatch.setattr(forms, "BATCH_FILES", 1000)
    monkeypatch.setattr(forms, "BATCH_BYTES", 5000)  # about five files a batch, by size
    assert_identical(arrays(sample_cifar10(form)), expected)


@pytest.mark.parametrize("form", ["coefficients", "dct"])
def test_cifar10_batched_equals_file_by_file(data_dir, form, monkeypatch):
    monkeypatch.setattr(forms, "BATCH_FILES", 400)  # 3 batches of 400 and one of 300
    ds = load_cifar10("test", form, limit=150)
    assert len(ds) == 1500
    assert_identical(arrays(ds), one_by_one(members(data_dir / "cifar10-jpeg.zip", ds.files), form))


@pytest.mark.parametrize("form", ["coefficients", "dct"])
def test_mixed_files_batched_equal_file_by_file(tmp_path, rng, form, monkeypatch):
    """Progressive next to baseline, grey, 4:4:4, and sizes of one block grid (30x30 beside 32x32)."""
    pixels = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    cases = {
        "progressive and baseline": [pillow_jpeg(p, quality=q, progressive=i % 2 == 1, subsampling=2)
                                     for i, (p, q) in enumerate(zip(pixels, [50, 75, 90, 75, 60, 95]))],
        "grey": [pillow_jpeg(p[..., 0], quality=80) for p in pixels],
        "4:4:4": [pillow_jpeg(p, quality=85, subsampling=0) for p in pixels],
        "30x30 beside 32x32": [pillow_jpeg(p[: 30 + 2 * (i % 2), : 30 + 2 * (i % 2)], quality=75, subsampling=2)
                               for i, p in enumerate(pixels)],
    }
    for batch in (64, 2):  # one batch, and batches that each hold one geometry or both
        monkeypatch.setattr(forms, "BATCH_FILES", batch)
        for name, blobs in cases.items():
            ds = JpegDataset(write_zip(tmp_path / f"{name}.zip", blobs), "train", form)
            assert_identical(arrays(ds), one_by_one(blobs, form))


def test_a_broken_file_in_a_batch_is_named(tmp_path, rng, monkeypatch):
    good = pillow_jpeg(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), quality=75)
    truncated = good[: len(good) // 2]
    for batch in (64, 2):
        monkeypatch.setattr(forms, "BATCH_FILES", batch)
        archive = write_zip(tmp_path / "broken.zip", [good, good, good, truncated, good])
        for form in ("coefficients", "dct"):
            with pytest.raises(dctnet.JpegError, match=r"broken\.zip:t/train/c/0003\.jpg"):
                JpegDataset(archive, "train", form)


def test_stack_checks_its_form():
    with pytest.raises(ValueError, match="form must be one of"):
        forms.stack(None, [], "nowhere", "rgb")
