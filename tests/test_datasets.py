"""dctnet.datasets: MNIST IDX files, JPEG trees (zip and folder), the HDF5 cache,
batching and the download helpers (served offline by a fake urlopen)."""

import gzip
import hashlib
import io
import pickle
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest

import dctnet
import dctnet.jpeg
from dctnet import datasets
from dctnet.datasets import forms
from dctnet.datasets import (
    JpegCoefficients,
    JpegDataset,
    iterate_batches,
    load_cifar10,
    load_mnist,
    pad_mnist,
    sample_cifar10,
)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ----------------------------------------------------------------------------- helpers


def idx_bytes(array, magic=None):
    """An IDX file of unsigned bytes, gzipped."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.tobytes())


def write_mnist(root, rng, n=5, split="train"):
    names = datasets.mnist.MNIST_FILES[split]
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (root / "mnist").mkdir(exist_ok=True)
    (root / "mnist" / names[0]).write_bytes(idx_bytes(images))
    (root / "mnist" / names[1]).write_bytes(idx_bytes(labels))
    return images, labels


def jpeg_bytes(rng, size=16, quality=75):
    Image = pytest.importorskip("PIL.Image")
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=2)  # 4:2:0
    return buf.getvalue()


def write_tree(folder, rng, classes=("dog", "cat", "emu"), per_class=3, prefix="mini", split="train"):
    """JPEG files <folder>/<prefix>/<split>/<class>/NNNN.jpg; returns {member name: bytes}."""
    files = {}
    for cls in classes:
        for i in range(per_class):
            name = f"{prefix}/{split}/{cls}/{i:04d}.jpg"
            files[name] = jpeg_bytes(rng)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(files[name])
    return files


def write_zip(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def assert_same(a, b):
    if isinstance(a, tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def assert_same_dataset(a, b):
    assert_same(a.data, b.data)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.classes == b.classes and a.files == b.files


# ----------------------------------------------------------------------------- MNIST


def test_mnist_real_files(data_dir):
    images, labels = load_mnist("train", root=data_dir)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert labels[0] == 5 and labels.min() == 0 and labels.max() == 9
    images, labels = load_mnist("test")  # through $DCTNET_DATA
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert set(np.unique(labels)) == set(range(10))


def test_mnist_small_files(tmp_path, rng):
    images, labels = write_mnist(tmp_path, rng, split="test")
    got_images, got_labels = load_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64 and got_images.flags.writeable


@pytest.mark.parametrize("damage", ["magic", "truncated data", "truncated gzip", "not gzip",
                                    "empty", "image size", "count mismatch", "label range"])
def test_mnist_corrupt_files(tmp_path, rng, damage):
    write_mnist(tmp_path, rng)
    images_path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    labels_path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(images_path.read_bytes())
    bad, data = images_path, None
    if damage == "magic":
        data = gzip.compress(b"\x00\x00\x08\x01" + raw[4:])
    elif damage == "truncated data":
        data = gzip.compress(raw[:-100])
    elif damage == "truncated gzip":
        data = images_path.read_bytes()[:-30]
    elif damage == "not gzip":
        data = raw
    elif damage == "empty":
        data = gzip.compress(b"")
    elif damage == "image size":
        data = idx_bytes(np.zeros((5, 27, 28)))
    elif damage == "count mismatch":
        data = idx_bytes(np.zeros((4, 28, 28)))
    elif damage == "label range":
        bad, data = labels_path, idx_bytes([1, 2, 10, 3, 4])
    bad.write_bytes(data)
    with pytest.raises(ValueError, match=bad.name):
        load_mnist("train", root=tmp_path)


def test_missing_data_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DCTNET_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="DCTNET_DATA"):
        load_mnist()
    monkeypatch.setenv("DCTNET_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="DCTNET_DATA"):
        load_cifar10()
    with pytest.raises(FileNotFoundError, match="download_mnist"):
        load_mnist(root=tmp_path)
    with pytest.raises(FileNotFoundError, match="download_cifar10"):
        load_cifar10("test", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist("valid", root=tmp_path)


def test_pad_mnist(rng):
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    padded = pad_mnist(images)
    assert padded.shape == (3, 1, 32, 32) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:, 0, 2:30, 2:30], images)
    assert padded.sum() == images.astype(np.float64).sum()  # the border is zero
    with pytest.raises(ValueError, match="N, H, W"):
        pad_mnist(images[0])


# ----------------------------------------------------------------------------- CIFAR-10 JPEG


def test_cifar10_zip_test_split(data_dir):
    # Listing all 10,000 test files is cheap; parsing is exercised on a limited subset.
    with zipfile.ZipFile(data_dir / "cifar10-jpeg.zip") as zf:
        names = [n for n in zf.namelist() if n.startswith("cifar10/test/") and n.endswith(".jpg")]
    counts = {c: sum(n.split("/")[2] == c for n in names) for c in CIFAR10_CLASSES}
    assert counts == dict.fromkeys(CIFAR10_CLASSES, 1000)
    ds = load_cifar10("test", limit=20)
    assert len(ds) == 200 and ds.classes == CIFAR10_CLASSES
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(10), 20))
    y, cb, cr = ds.data.components
    assert y.shape == (200, 4, 4, 64) and cb.shape == cr.shape == (200, 2, 2, 64)
    assert ds.files[0] == "cifar10/test/airplane/0000.jpg"
    # Quality 75 tables, the same in every file.
    np.testing.assert_array_equal(ds.data.qtables[:, 0], np.broadcast_to(dctnet.quant_table(75, "luma"), (200, 64)))
    np.testing.assert_array_equal(ds.data.qtables[:, 1], np.broadcast_to(dctnet.quant_table(75, "chroma"), (200, 64)))


def test_sample_cifar10_forms():
    coefs = sample_cifar10()
    assert len(coefs) == 100 and coefs.classes == CIFAR10_CLASSES
    np.testing.assert_array_equal(coefs.labels, np.repeat(np.arange(10), 10))
    assert isinstance(coefs.data, JpegCoefficients)
    assert [c.shape for c in coefs.data.components] == [(100, 4, 4, 64), (100, 2, 2, 64), (100, 2, 2, 64)]
    assert all(c.dtype == np.int16 for c in coefs.data.components)
    assert coefs.data.qtables.shape == (100, 3, 64) and coefs.data.qtables.dtype == np.int32
    dct = sample_cifar10("dct").data
    assert dct.shape == (100, 3, 4, 4, 64) and dct.dtype == np.float32
    pixels = sample_cifar10("pixels").data
    assert pixels.shape == (100, 3, 32, 32) and pixels.dtype == np.uint8
    # The float decode and libjpeg's differ by a few grey levels on average.
    assert np.abs(dctnet.from_dct(dct) - pixels).mean() < 3
    # The DC of Y is 8 * (block mean - 128) / table: check one block against the dct form.
    luma_dc = coefs.data.components[0][..., 0] * coefs.data.qtables[:, 0, None, None, 0] + 1024.0
    ycc = dct[:, 0] * 0.299 + dct[:, 1] * 0.587 + dct[:, 2] * 0.114
    np.testing.assert_allclose(ycc[..., 0], luma_dc, atol=1.0)
    assert len(sample_cifar10(limit=2)) == 20


def test_folder_equals_zip(tmp_path, rng):
    files = write_tree(tmp_path / "tree", rng)
    archive = write_zip(tmp_path / "mini.zip", files)
    for form in datasets.FORMS:
        from_zip = JpegDataset(archive, "train", form)
        from_folder = JpegDataset(tmp_path / "tree", "train", form)
        assert_same_dataset(from_zip, from_folder)
    assert from_zip.classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(from_zip.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert from_zip.files[:2] == ["mini/train/cat/0000.jpg", "mini/train/cat/0001.jpg"]
    # The folder may also be <prefix> itself.
    inner = JpegDataset(tmp_path / "tree" / "mini", "train")
    assert inner.files[0] == "train/cat/0000.jpg"
    assert_same(inner.data, JpegDataset(archive, "train").data)


def test_progress_bar_is_optional(tmp_path, rng, capsys, monkeypatch):
    archive = write_zip(tmp_path / "mini.zip", write_tree(tmp_path / "tree", rng))
    pytest.importorskip("tqdm")
    JpegDataset(archive, "train", progress=True)
    assert "9/9" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    JpegDataset(archive, "train", progress=True)
    assert capsys.readouterr().err == ""


def test_jpeg_tree_errors(tmp_path, rng):
    files = write_tree(tmp_path, rng, per_class=2)
    with pytest.raises(ValueError, match="form"):
        JpegDataset(tmp_path, "train", "rgb")
    with pytest.raises(ValueError, match="limit"):
        JpegDataset(tmp_path, "train", limit=0)
    with pytest.raises(FileNotFoundError, match="'test'"):
        JpegDataset(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="not found"):
        JpegDataset(tmp_path / "missing.zip")
    (tmp_path / "not.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="not.zip"):
        JpegDataset(tmp_path / "not.zip")
    # A file of another size cannot be stacked: the error names it and the first file.
    odd = tmp_path / "mini/train/emu/0009.jpg"
    odd.write_bytes(jpeg_bytes(rng, size=24))
    for form in datasets.FORMS:
        with pytest.raises(ValueError, match=r"emu/0009\.jpg.*cat/0000\.jpg"):
            JpegDataset(tmp_path, "train", form)
    odd.write_bytes(b"\xff\xd8 not a JPEG")
    for form in datasets.FORMS:
        with pytest.raises(ValueError, match=r"emu/0009\.jpg"):
            JpegDataset(tmp_path, "train", form)
    assert len(files) == 6


# ----------------------------------------------------------------------------- cache


@pytest.fixture
def no_jpeg_reading(monkeypatch):
    """Make any JPEG parse (dctnet's reader, the batched one as the data sets hold it, or Pillow) fail."""
    def boom(*args, **kwargs):
        raise AssertionError("a JPEG was parsed")

    monkeypatch.setattr(dctnet.jpeg, "read_jpeg", boom)
    monkeypatch.setattr(forms, "read_stacked", boom)
    Image = pytest.importorskip("PIL.Image")
    monkeypatch.setattr(Image, "open", boom)


@pytest.mark.parametrize("form", datasets.FORMS)
def test_cache_loads_without_parsing(tmp_path, rng, form, request):
    archive = write_zip(tmp_path / "mini.zip", write_tree(tmp_path / "tree", rng))
    cache = tmp_path / "cache" / "mini.h5"
    first = JpegDataset(archive, "train", form, cache=cache, limit=2)
    assert cache.is_file() and list(cache.parent.iterdir()) == [cache]  # no temporary left
    request.getfixturevalue("no_jpeg_reading")
    second = JpegDataset(archive, "train", form, cache=cache, limit=2)
    assert_same_dataset(first, second)
    assert len(second) == 6


def test_cache_rebuilds_when_stale(tmp_path, rng, monkeypatch):
    write_tree(tmp_path / "tree", rng)
    cache = tmp_path / "tree.h5"
    JpegDataset(tmp_path / "tree", "train", cache=cache)
    calls = []  # one entry per file decoded
    read_stacked = forms.read_stacked
    monkeypatch.setattr(forms, "read_stacked", lambda files: calls.extend(files) or read_stacked(files))
    (tmp_path / "tree/mini/train/cat/0003.jpg").write_bytes(jpeg_bytes(rng))
    grown = JpegDataset(tmp_path / "tree", "train", cache=cache)
    assert len(grown) == 10 and len(calls) == 10
    again = JpegDataset(tmp_path / "tree", "train", cache=cache)
    assert len(calls) == 10
    assert_same_dataset(grown, again)
    assert len(JpegDataset(tmp_path / "tree", "train", cache=cache, limit=1)) == 3  # other options: rebuilt


def test_cache_bad_files(tmp_path, rng, monkeypatch):
    h5py = pytest.importorskip("h5py")
    archive = write_zip(tmp_path / "mini.zip", write_tree(tmp_path / "tree", rng))
    cache = tmp_path / "mini.h5"
    good = JpegDataset(archive, "train", cache=cache)
    whole = cache.read_bytes()
    # An interrupted write leaves the previous cache and no temporary file.
    original = h5py.Group.create_dataset
    calls = []

    def fail_midway(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("interrupted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_midway)
    with pytest.raises(KeyboardInterrupt):
        JpegDataset(archive, "train", "dct", cache=cache)
    monkeypatch.undo()
    assert len(calls) == 2
    assert cache.read_bytes() == whole and sorted(p.name for p in tmp_path.iterdir()) == ["mini.h5", "mini.zip", "tree"]
    # Truncated (say, by a copy that ran out of disk): a clear error, the file is kept.
    cache.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="cannot be read as HDF5.*delete it"):
        JpegDataset(archive, "train", cache=cache)
    assert cache.stat().st_size == len(whole) // 2
    # Somebody else's HDF5 file is never overwritten.
    with h5py.File(cache, "w") as f:
        f["weights"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a dctnet dataset cache"):
        JpegDataset(archive, "train", cache=cache)
    cache.write_bytes(whole)
    with h5py.File(cache, "r+") as f:
        f.attrs["version"] = 99
    with pytest.raises(ValueError, match="version 99"):
        JpegDataset(archive, "train", cache=cache)
    cache.write_bytes(whole)
    with h5py.File(cache, "r+") as f:
        del f["component1"]
    with pytest.raises(ValueError, match="damaged"):
        JpegDataset(archive, "train", cache=cache)
    cache.write_bytes(whole)
    assert_same_dataset(JpegDataset(archive, "train", cache=cache), good)


class ThreadComm:
    """A communicator of threads in one process, with the methods the cache uses of dctnet.distributed."""

    def __init__(self, rank, shared):
        self._rank, self._shared = rank, shared

    def rank(self):
        return self._rank

    def world_size(self):
        return self._shared["barrier"].parties

    def barrier(self):
        self._shared["barrier"].wait()

    def _exchange(self, value):
        """Every rank's ``value``, in rank order."""
        self._shared[self._rank] = value
        self.barrier()
        values = [self._shared[r] for r in range(self.world_size())]
        self.barrier()  # nobody overwrites a slot before all have read it
        return values

    def broadcast_object(self, obj):
        return self._exchange(obj)[0]

    def allreduce(self, array):
        return np.sum(self._exchange(np.asarray(array)), axis=0)


def on_ranks(size, make):
    """``[make(comm) for each rank]``, the ranks running at once on threads; the first error is raised."""
    shared = {"barrier": threading.Barrier(size, timeout=60)}  # a hang fails instead of waiting forever
    results, errors = [None] * size, [None] * size

    def run(rank):
        try:
            results[rank] = make(ThreadComm(rank, shared))
        except BaseException as exc:
            errors[rank] = exc
            shared["barrier"].abort()  # release the others

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    raised = [exc for exc in errors if exc is not None]
    if raised:  # the cause, rather than the others' broken barrier
        raise next((e for e in raised if not isinstance(e, threading.BrokenBarrierError)), raised[0])
    return results


def test_cache_built_by_a_communicator(tmp_path, rng, request):
    """Any object with rank/world_size/barrier/broadcast_object/allreduce builds the cache in shares."""
    h5py = pytest.importorskip("h5py")
    archive = write_zip(tmp_path / "mini.zip", write_tree(tmp_path / "tree", rng, per_class=3))
    reference = JpegDataset(archive, "train", "pixels")  # Pillow: no Numba kernel shared by threads
    cache = tmp_path / "cache" / "c.h5"
    built = on_ranks(3, lambda comm: JpegDataset(archive, "train", "pixels", cache=cache, comm=comm))
    for ds in built:
        assert_same_dataset(ds, reference)
    shards = [cache.with_name(f"c.h5.shard{r}-of-3.h5") for r in range(3)]
    assert sorted(cache.parent.iterdir()) == sorted([cache, *shards])  # no temporary left
    with h5py.File(cache, "r") as f:
        assert f["data"].is_virtual and sorted(m.file_name for m in f["data"].virtual_sources()) == [s.name for s in shards]
    for r, shard in enumerate(shards):
        with h5py.File(shard, "r") as f:
            assert f.attrs["shard"].tolist() == [r, 3, 3 * r, 3 * r + 3, 9] and len(f["data"]) == 3
    # A communicator of one process is no communicator: the serial build.
    alone = on_ranks(1, lambda comm: JpegDataset(archive, "train", "pixels", cache=tmp_path / "one.h5", comm=comm))
    assert_same_dataset(alone[0], reference)
    with h5py.File(tmp_path / "one.h5", "r") as f:
        assert not f["data"].is_virtual
    # Loaded on later runs, by the ranks or by one process alone, without parsing a file.
    request.getfixturevalue("no_jpeg_reading")
    for ds in on_ranks(3, lambda comm: JpegDataset(archive, "train", "pixels", cache=cache, comm=comm)):
        assert_same_dataset(ds, reference)
    assert_same_dataset(JpegDataset(archive, "train", "pixels", cache=cache), reference)


def test_cache_ranks_must_agree(tmp_path, rng):
    archive = write_zip(tmp_path / "mini.zip", write_tree(tmp_path / "tree", rng, per_class=3))

    def make(comm):  # rank 1 asks for another data set
        return JpegDataset(archive, "train", "pixels", cache=tmp_path / "c.h5", comm=comm,
                           limit=1 if comm.rank() == 1 else None)

    with pytest.raises(ValueError, match="ranks list different data sets"):
        on_ranks(2, make)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini.zip", "tree"]  # nothing written


# ----------------------------------------------------------------------------- batches


def test_iterate_batches_covers_each_sample_once():
    x, y = np.arange(20).reshape(10, 2), np.arange(10)
    batches = list(iterate_batches(x, y, batch_size=3))
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    assert np.shares_memory(batches[0][0], x)  # unshuffled batches are views

    def epoch(**kw):
        return [b[1].tolist() for b in iterate_batches(x, y, batch_size=3, shuffle=True, **kw)]

    first = epoch(seed=0)
    assert sorted(sum(first, [])) == list(range(10)) and sum(first, []) != list(range(10))
    assert epoch(seed=0) == first and epoch(seed=1) != first
    for xb, yb in iterate_batches(x, y, batch_size=3, shuffle=True, seed=0):
        np.testing.assert_array_equal(xb, x[yb])  # arrays stay aligned
    gen = np.random.default_rng(0)
    assert epoch(seed=gen) != epoch(seed=gen)  # a Generator moves on between epochs
    dropped = [b[1] for b in iterate_batches(x, y, batch_size=3, shuffle=True, seed=0, drop_last=True)]
    assert [len(b) for b in dropped] == [3, 3, 3] and len(set(np.concatenate(dropped))) == 9
    assert list(iterate_batches(y, batch_size=20, drop_last=True)) == []
    with pytest.raises(ValueError, match="one length"):
        next(iterate_batches(x, y[:9], batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(x, batch_size=0))


def test_dataset_batches():
    ds = sample_cifar10()
    seen = []
    for coefs, labels in ds.batches(32, shuffle=True, seed=3):
        assert isinstance(coefs, JpegCoefficients) and coefs.components[0].shape[1:] == (4, 4, 64)
        assert len(labels) == len(coefs.qtables) == len(coefs.components[2])
        seen.append(labels)
    assert [len(s) for s in seen] == [32, 32, 32, 4]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), ds.labels)
    x, label = ds[17]
    assert label == 1 and x.components[1].shape == (2, 2, 64) and x.qtables.shape == (3, 64)
    assert len(list(ds.batches(32, drop_last=True))) == 3


# ----------------------------------------------------------------------------- downloads


class FakeResponse(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def fake_urlopen(payloads, requested):
    """A urlopen that serves ``payloads`` {url: bytes} and fails for any other URL."""
    def urlopen(url, timeout=None):
        requested.append(url)
        if url not in payloads:
            raise urllib.error.URLError("offline test: no such file")
        return FakeResponse(payloads[url])

    return urlopen


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_download_mnist_offline(tmp_path, rng, monkeypatch):
    # Small stand-ins served from the second mirror: the first one is "down".
    source = tmp_path / "source"
    source.mkdir()
    images, labels = write_mnist(source, rng, split="train")
    write_mnist(source, rng, split="test")
    payloads = {}
    for name in datasets.MNIST_SHA256:
        payloads[datasets.MNIST_MIRRORS[1] + name] = data = (source / "mnist" / name).read_bytes()
        monkeypatch.setitem(datasets.MNIST_SHA256, name, sha256(data))
    requested = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payloads, requested))
    folder = datasets.download_mnist(tmp_path / "data")
    assert folder == tmp_path / "data" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(datasets.MNIST_SHA256)
    assert len(requested) == 8 and requested[0].startswith(datasets.MNIST_MIRRORS[0])
    got_images, got_labels = load_mnist("train", root=tmp_path / "data")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    datasets.download_mnist(tmp_path / "data")  # files with the right hash are kept
    assert len(requested) == 8


def test_download_hash_mismatch(tmp_path, monkeypatch):
    # The official hashes cannot match these bytes.
    payloads = {m + n: b"not mnist" for m in datasets.MNIST_MIRRORS for n in datasets.MNIST_SHA256}
    payloads[datasets.CIFAR10_URL] = b"not cifar"
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payloads, []))
    with pytest.raises(ValueError, match="SHA-256"):
        datasets.download_mnist(tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        datasets.download_cifar10(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mnist"]  # nothing saved, no temporary left
    assert list((tmp_path / "mnist").iterdir()) == []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({}, []))
    with pytest.raises(ConnectionError, match="train-images"):
        datasets.download_mnist(tmp_path)


def cifar10_tarball(path, rng, per_batch=4):
    """A small tarball laid out like cifar-10-python.tar.gz; returns {split: (images, labels)}."""
    batches = {f"data_batch_{i}": "train" for i in range(1, 6)} | {"test_batch": "test"}
    out = {"train": ([], []), "test": ([], [])}
    with tarfile.open(path, "w:gz") as tar:
        for name, split in batches.items():
            # Constant 8x8 blocks: JPEG keeps them well, so decoded files can be matched to these.
            blocks = rng.integers(0, 256, (per_batch, 3, 4, 4), dtype=np.uint8)
            images = blocks.repeat(8, axis=2).repeat(8, axis=3).reshape(per_batch, 3072)
            labels = rng.integers(0, 10, per_batch).tolist()
            data = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": images,
                                 b"filenames": [b"x.png"] * per_batch}, protocol=4)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            out[split][0].append(images.reshape(-1, 3, 32, 32))
            out[split][1].extend(labels)
    return {split: (np.concatenate(i), np.array(l)) for split, (i, l) in out.items()}


def test_download_cifar10_offline(tmp_path, rng, monkeypatch):
    if not hasattr(dctnet.jpeg, "encode_jpeg"):
        pytest.skip("dctnet.jpeg has no encode_jpeg")
    tarball = tmp_path / "served.tar.gz"
    originals = cifar10_tarball(tarball, rng)
    data = tarball.read_bytes()
    monkeypatch.setattr(datasets.cifar, "CIFAR10_SHA256", sha256(data))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({datasets.CIFAR10_URL: data}, []))
    archive = datasets.download_cifar10(tmp_path / "data")
    assert archive == tmp_path / "data" / "cifar10-jpeg.zip"
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").read_bytes() == data
    for split, (images, labels) in originals.items():
        ds = load_cifar10(split, "pixels", root=tmp_path / "data")
        assert all(f.startswith(f"cifar10/{split}/") for f in ds.files)
        # Files are numbered per class in batch order, so a stable sort by label restores it.
        order = np.argsort(labels, kind="stable")
        np.testing.assert_array_equal(ds.labels, labels[order])
        assert ds.classes == CIFAR10_CLASSES and len(set(labels)) < 10  # absent classes keep their labels
        assert np.abs(ds.data.astype(float) - images[order]).mean() < 10
    coefs = load_cifar10("test", root=tmp_path / "data")
    assert [c.shape[1:] for c in coefs.data.components] == [(4, 4, 64), (2, 2, 64), (2, 2, 64)]
    np.testing.assert_array_equal(coefs.data.qtables[0, 0], dctnet.quant_table(75, "luma"))


def test_cifar10_converter_refuses_foreign_pickles(tmp_path, rng):
    from fractions import Fraction

    tarball = tmp_path / "evil.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = pickle.dumps({b"data": Fraction(1, 2), b"labels": []})
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="refusing to load fractions.Fraction"):
        datasets.cifar10_tar_to_jpeg_zip(tarball, tmp_path / "out.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.tar.gz"):
        datasets.cifar10_tar_to_jpeg_zip(tmp_path / "junk.tar.gz", tmp_path / "out.zip")
