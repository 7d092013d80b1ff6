"""Data sets: MNIST from its IDX files, labelled JPEG trees such as CIFAR-10, an HDF5 cache.

Data live in one folder, given as ``root=`` or by the environment variable
``DCTNET_DATA``: ``mnist/{train,t10k}-*-ubyte.gz`` and ``cifar10-jpeg.zip``.
:func:`download_mnist` and :func:`download_cifar10` fill such a folder when online.
A JPEG data set is a folder or zip laid out ``<prefix>/<split>/<class>/*.jpg``;
classes sorted by name are labels 0, 1, ... and the files are stacked in one of
three forms: ``"coefficients"`` (quantized, as stored), ``"dct"`` (to_dct of the
RGB image) or ``"pixels"``.

>>> from dctnet import datasets
>>> sample = datasets.sample_cifar10()      # 100 CIFAR-10 test JPEGs shipped in the package
>>> len(sample), sample.classes[:2]
(100, ['airplane', 'automobile'])
>>> [c.shape for c in sample.data.components], sample.data.qtables.shape
([(100, 4, 4, 64), (100, 2, 2, 64), (100, 2, 2, 64)], (100, 3, 64))
>>> for coefs, labels in sample.batches(32, shuffle=True, seed=0):
...     pass
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import pickle
import secrets
import tarfile
import urllib.request
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "ENV_VAR",
    "FORMS",
    "data_root",
    "load_mnist",
    "pad_mnist",
    "iterate_batches",
    "JpegCoefficients",
    "JpegDataset",
    "load_cifar10",
    "sample_cifar10",
    "download_mnist",
    "download_cifar10",
    "cifar10_tar_to_jpeg_zip",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "CIFAR10_URL",
    "CIFAR10_SHA256",
]

ENV_VAR = "DCTNET_DATA"
FORMS = ("coefficients", "dct", "pixels")

# PyTorch's mirror (torchvision) first, then TensorFlow's; yann.lecun.com is often down.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# Equal to the sums published with tensorflow-haskell's and Guild AI's MNIST
# recipes, and to those of the shared copy; the MD5s match torchvision's.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# As in Keras' keras/datasets/cifar10.py (file_hash); 170,498,071 bytes.
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR10_ZIP = "cifar10-jpeg.zip"
# CIFAR-10's label order (alphabetical, so a plain JpegDataset finds the same labels).
CIFAR10_CLASSES = _CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_CACHE_FORMAT = "dctnet.datasets.cache"
_CACHE_VERSION = 1


# ----------------------------------------------------------------------------- paths


def data_root(root=None) -> Path:
    """The data folder: ``root`` when given, else ``$DCTNET_DATA``; it must exist.

    >>> data_root("/tmp")
    PosixPath('/tmp')
    """
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise FileNotFoundError(
                f"no data folder: pass root=... or set the environment variable {ENV_VAR} to a "
                "folder holding mnist/ and cifar10-jpeg.zip (dctnet.datasets.download_mnist(root) "
                "and download_cifar10(root) fill one)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data folder {path} does not exist; point {ENV_VAR} (or root=) at the folder holding "
            "mnist/ and cifar10-jpeg.zip, or fill it with dctnet.datasets.download_mnist(root) "
            "and download_cifar10(root)"
        )
    return path


def _missing(path: Path, helper: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} not found; download it with dctnet.datasets.{helper}(root), or set "
        f"{ENV_VAR} to a data folder that has it"
    )


def _check_split(split) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', found {split!r}")
    return split


# ----------------------------------------------------------------------------- MNIST


def load_mnist(split: str = "train", root=None):
    """MNIST as ``(images uint8 (N, 28, 28), labels int64 (N,))`` from the gzipped IDX files.

    ``root`` is the data folder holding ``mnist/`` (default ``$DCTNET_DATA``).
    N is 60,000 for ``"train"`` and 10,000 for ``"test"``.

    >>> images, labels = load_mnist("test")          # doctest: +SKIP
    >>> images.shape, labels[:3]                      # doctest: +SKIP
    ((10000, 28, 28), array([7, 2, 1]))
    """
    folder = data_root(root) / "mnist"
    images_path, labels_path = (folder / name for name in _MNIST_FILES[_check_split(split)])
    images = _read_idx(images_path, ndim=3)
    labels = _read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels; "
            "one of them is from another split or corrupt, download both again"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0..9, found {labels.max()}")
    return images, labels.astype(np.int64)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, gzipped, as a writable array."""
    if not path.is_file():
        raise _missing(path, "download_mnist")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{path} is not a complete gzip file ({exc}); delete it and download it again "
            "with dctnet.datasets.download_mnist(root)"
        ) from exc
    # IDX header: two zero bytes, type 0x08 (unsigned byte), ndim, then ndim big-endian uint32 sizes.
    magic = 0x0800 | ndim
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic or len(raw) < header:
        raise ValueError(
            f"{path}: expected an IDX file of unsigned bytes with {ndim} dimensions "
            f"(magic number {magic:#010x}), found "
            + ("a file shorter than its header" if found == magic else f"magic number {found!r:}")
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != math.prod(shape):
        raise ValueError(
            f"{path}: the header promises {shape}, i.e. {math.prod(shape)} bytes of data, but the "
            f"file holds {len(raw) - header}; it is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def pad_mnist(images) -> np.ndarray:
    """``(N, 28, 28)`` images -> ``(N, 1, 32, 32)`` float32, zero-padded by 2 (the paper's input).

    Values are kept (0..255 for MNIST).

    >>> pad_mnist(np.ones((2, 28, 28), np.uint8)).shape
    (2, 1, 32, 32)
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"pad_mnist expects images (N, H, W), found shape {images.shape}")
    return np.pad(images.astype(np.float32), ((0, 0), (2, 2), (2, 2)))[:, None]


# ----------------------------------------------------------------------------- batches


def _take(x, index):
    """``x[index]`` for an array, or for each array of a (named) tuple of them."""
    if isinstance(x, tuple):
        parts = [_take(part, index) for part in x]
        return type(x)(*parts) if hasattr(x, "_fields") else tuple(parts)
    return x[index]


def _lengths(x):
    if isinstance(x, tuple):
        return [n for part in x for n in _lengths(part)]
    return [len(x)]


def iterate_batches(*arrays, batch_size: int, shuffle: bool = False, seed=None, drop_last: bool = False):
    """Yield tuples of aligned mini-batches, one entry per input, covering every sample once.

    Inputs are arrays of equal length, or (named) tuples of them such as
    :class:`JpegCoefficients`. ``shuffle`` draws one permutation per call from
    ``numpy.random.default_rng(seed)``: an int seed repeats the order, a
    ``Generator`` moves on from epoch to epoch. ``drop_last`` skips a short
    final batch. Unshuffled batches are views.

    >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
    >>> [b[1].tolist() for b in iterate_batches(x, y, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, found {batch_size!r}")
    if not arrays:
        raise ValueError("iterate_batches needs at least one array")
    lengths = [_lengths(a) for a in arrays]
    n = lengths[0][0]
    if any(m != n for ls in lengths for m in ls):
        raise ValueError(f"iterate_batches needs arrays of one length, found lengths {lengths}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield tuple(_take(a, index) for a in arrays)


# ----------------------------------------------------------------------------- JPEG trees


class JpegCoefficients(NamedTuple):
    """Stacked quantized coefficients: ``components[c]`` is ``(N, BH_c, BW_c, 64)`` int16
    in zigzag order (Y, Cb, Cr for colour files), ``qtables`` is ``(N, C, 64)`` int32."""

    components: tuple
    qtables: np.ndarray


class _ZipSource:
    def __init__(self, path: Path):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path} is not a readable zip file ({exc}); download or copy it again") from exc

    def names(self, split):
        return [i.filename for i in self._zip.infolist() if not i.is_dir()]

    def read(self, name) -> bytes:
        return self._zip.read(name)

    def stamp(self, names):
        st = self.path.stat()
        return {"kind": "zip", "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def close(self):
        self._zip.close()


class _FolderSource:
    def __init__(self, path: Path):
        self.path = path

    def names(self, split):
        # The folder is either <prefix> itself or the one holding <prefix>/.
        found = [*self.path.glob(f"{split}/*/*"), *self.path.glob(f"*/{split}/*/*")]
        return [p.relative_to(self.path).as_posix() for p in found if p.is_file()]

    def read(self, name) -> bytes:
        return (self.path / name).read_bytes()

    def stamp(self, names):
        stats = [(self.path / name).stat() for name in names]
        return {
            "kind": "folder",
            "size": sum(s.st_size for s in stats),
            "mtime_ns": max(s.st_mtime_ns for s in stats),
        }

    def close(self):
        pass


def _open_source(source):
    path = Path(source).expanduser()
    if path.is_dir():
        return _FolderSource(path)
    if path.is_file():
        return _ZipSource(path)
    raise FileNotFoundError(f"JPEG data set {path} not found: expected a zip file or a folder")


def _layout(names, split, where, limit, classes):
    """Files, labels and classes of the ``[<prefix>/]<split>/<class>/*.jpg`` members of ``names``."""
    by_class, prefixes, total = {}, set(), 0
    for name in names:
        parts = name.split("/")
        if len(parts) in (3, 4) and parts[-3] == split and parts[-1].lower().endswith(_JPEG_SUFFIXES):
            prefixes.add("/".join(parts[:-3]))
            by_class.setdefault(parts[-2], []).append(name)
            total += 1
    if not by_class:
        raise FileNotFoundError(
            f"{where} has no JPEG files <prefix>/{split}/<class>/*.jpg; check the split name "
            f"({split!r}) and the layout"
        )
    if len(prefixes) > 1:
        raise ValueError(
            f"{where} holds split {split!r} under several prefixes {sorted(prefixes)}; "
            "point the source at one of them"
        )
    if classes is None:
        classes = sorted(by_class)
    elif set(by_class) - set(classes):
        raise ValueError(
            f"{where} has class folders {sorted(set(by_class) - set(classes))} for split {split!r}, "
            f"which are not among the given classes {list(classes)}"
        )
    files, labels = [], []
    for label, name in enumerate(classes):
        chosen = sorted(by_class.get(name, []))[:limit]
        files += chosen
        labels += [label] * len(chosen)
    return files, np.array(labels, dtype=np.int64), list(classes), total


def _pixel_decoder() -> str:
    """``"pillow"`` when Pillow is installed (libjpeg's decode), else ``"float"``."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return "float"
    return "pillow"


def _decode(data: bytes, where: str, form: str, decoder: str):
    """One file as a tuple of arrays: the components and table stack, or one image array."""
    from . import jpeg

    if form == "pixels" and decoder == "pillow":
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.format != "JPEG":
                    raise ValueError(f"expected a JPEG file, found {im.format}")
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:
            raise jpeg.JpegError(f"{where}: {exc}") from exc
        return (np.ascontiguousarray(rgb.transpose(2, 0, 1)),)
    try:
        img = jpeg.read_jpeg(data)
    except ValueError as exc:  # JpegError: name the member, which the reader cannot know
        raise jpeg.JpegError(f"{where}: {exc}") from exc
    if form == "coefficients":
        return (*img.coefficients, np.stack(img.qtables).astype(np.int32))
    if form == "dct":
        return (img.to_dct(color="rgb", dtype=np.float32),)
    return (np.clip(np.rint(img.to_pixels(color="rgb")), 0, 255).astype(np.uint8),)


def _progress(iterable, enabled: bool, total, desc: str, unit: str):
    """``iterable`` wrapped in a tqdm bar when asked for and tqdm is installed."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is an optional extra: stay silent
            return iterable
        return tqdm(iterable, total=total, desc=desc, unit=unit)
    return iterable


def _stack(source, files, where, form, decoder, progress):
    """Decode ``files`` and stack them; every file must have the first one's geometry."""
    out = None
    for i, name in enumerate(_progress(files, progress, len(files), Path(where).name, "file")):
        parts = _decode(source.read(name), f"{where}:{name}", form, decoder)
        if out is None:
            out = [np.empty((len(files),) + p.shape, dtype=p.dtype) for p in parts]
            first, first_shapes = name, [p.shape for p in parts]
        shapes = [p.shape for p in parts]
        if shapes != first_shapes:
            raise ValueError(
                f"{where}:{name} has array shapes {shapes}, but the first file {first} has "
                f"{first_shapes}; the stacked forms need files of one size, colour components "
                "and chroma subsampling: convert the odd files, or read them one by one with "
                "dctnet.jpeg.read_jpeg"
            )
        for o, p in zip(out, parts):
            o[i] = p
    return out


class JpegDataset:
    """Labelled JPEG files ``<prefix>/<split>/<class>/*.jpg`` of a folder or zip, stacked.

    ``source`` is a zip file or a folder (``<prefix>`` itself or its parent).
    The class folders sorted by name are labels 0, 1, ..., unless ``classes``
    fixes the names and their order (a class without files then keeps its
    label). Within a class files are taken in name order, at most ``limit`` per
    class. ``form`` chooses ``data``:

    - ``"coefficients"``: :class:`JpegCoefficients`, the quantized coefficients as
      stored (e.g. CIFAR-10: Y ``(N, 4, 4, 64)``, Cb and Cr ``(N, 2, 2, 64)`` int16)
      and each file's tables ``(N, 3, 64)`` int32;
    - ``"dct"``: ``(N, 3, BH, BW, 64)`` float32, ``JpegImage.to_dct(color="rgb")``;
    - ``"pixels"``: ``(N, 3, H, W)`` uint8, decoded by Pillow (libjpeg) when it is
      installed, else ``JpegImage.to_pixels(color="rgb")`` rounded and clipped;
      the two differ by a few grey levels (integer IDCT, fancy upsampling).

    ``cache`` names an HDF5 file: when it holds this very data set (same source
    size and mtime, member count, split, form, limit, pixel decoder) it is loaded
    without reading any JPEG; otherwise the files are parsed and the cache is
    written atomically (temporary file, then rename), replacing a stale one.
    A file there that is not a dctnet cache (unreadable, truncated, foreign or
    newer) raises ``ValueError`` and is left alone. ``progress=True`` shows a
    tqdm bar when tqdm is installed.

    Under MPI (:func:`dctnet.distributed.init` joined a world of more than one
    process) a missing or stale ``cache`` is built in parallel, collectively:
    every rank must create the same data set at the same point. Rank r of
    ``size`` decodes only its contiguous share ``files[r*N//size:(r+1)*N//size]``
    into a shard ``<cache name>.shard<r>-of-<size>.h5`` beside the cache (same
    format attributes, written atomically); rank 0 then writes the cache itself
    atomically, whose arrays are HDF5 virtual datasets over the shards by
    relative name (keep the shards beside the cache: the folder may be moved
    as a whole, but a cache whose shards are missing or replaced raises
    ``ValueError``); finally every rank loads the cache. Only rank 0 shows the
    progress bar. A rank that fails (an unreadable file, a full disk) raises
    while the others wait in a collective: launch with ``mpiexec -n N python
    -m mpi4py script.py``, where an uncaught exception aborts the whole job
    instead of leaving the other ranks waiting forever.

    Attributes: ``data``, ``labels`` int64 ``(N,)``, ``classes``, ``files``
    (member paths), ``form``, ``split``, ``source``.

    >>> ds = JpegDataset("cifar10-jpeg.zip", "test", form="dct", limit=10)  # doctest: +SKIP
    >>> ds.data.shape, ds.labels[:12]                                    # doctest: +SKIP
    ((100, 3, 4, 4, 64), array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))
    """

    def __init__(self, source, split: str = "train", form: str = "coefficients", *,
                 classes=None, limit: int | None = None, cache=None, progress: bool = False):
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, found {form!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
            raise ValueError(f"limit must be None or a positive number of files per class, found {limit!r}")
        self.source, self.split, self.form = Path(source), split, form
        src = _open_source(source)
        try:
            files, labels, classes, total = _layout(src.names(split), split, str(self.source), limit, classes)
            decoder = _pixel_decoder() if form == "pixels" else None
            fingerprint = json.dumps({
                "source": src.stamp(files), "members": total, "split": split, "form": form,
                "limit": None if limit is None else int(limit), "classes": classes, "decoder": decoder,
            }, sort_keys=True)
            from . import distributed  # lazily: it imports the network modules

            if cache is not None and distributed.world_size() > 1:
                parts = _parallel_cache(src, Path(cache), fingerprint, files, labels, classes,
                                        str(self.source), form, decoder, progress, distributed)
            else:
                parts = _read_cache(Path(cache), fingerprint, len(files)) if cache is not None else None
                if parts is None:
                    parts = _stack(src, files, str(self.source), form, decoder, progress)
                    if cache is not None:
                        _write_cache(Path(cache), fingerprint, parts, labels, classes, files)
        finally:
            src.close()
        self.files, self.labels, self.classes = files, labels, classes
        self.data = JpegCoefficients(tuple(parts[:-1]), parts[-1]) if form == "coefficients" else parts[0]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        """``(x, label)`` of one sample, or of a batch for a slice or index array."""
        return _take(self.data, index), self.labels[index]

    def batches(self, batch_size: int, shuffle: bool = False, seed=None, drop_last: bool = False):
        """Yield ``(x, labels)`` mini-batches; see :func:`iterate_batches`."""
        return iterate_batches(self.data, self.labels, batch_size=batch_size,
                               shuffle=shuffle, seed=seed, drop_last=drop_last)

    def __repr__(self) -> str:
        return (f"JpegDataset({str(self.source)!r}, split={self.split!r}, form={self.form!r}: "
                f"{len(self)} files, {len(self.classes)} classes)")


def load_cifar10(split: str = "train", form: str = "coefficients", *, root=None,
                 limit: int | None = None, cache=None, progress: bool = False) -> JpegDataset:
    """CIFAR-10 as JPEG files from ``<root>/cifar10-jpeg.zip`` (root default ``$DCTNET_DATA``).

    50,000 train or 10,000 test 32x32 images; see :class:`JpegDataset` for the rest.

    >>> test = load_cifar10("test", limit=100, cache="cifar10-test.h5")   # doctest: +SKIP
    """
    path = data_root(root) / _CIFAR10_ZIP
    if not path.is_file():
        raise _missing(path, "download_cifar10")
    return JpegDataset(path, _check_split(split), form, classes=_CIFAR10_CLASSES, limit=limit,
                       cache=cache, progress=progress)


def sample_cifar10(form: str = "coefficients", *, limit: int | None = None) -> JpegDataset:
    """The 100 CIFAR-10 test JPEGs shipped with the package (10 per class); needs no data folder.

    >>> sample_cifar10("pixels").data.shape
    (100, 3, 32, 32)
    """
    resource = resources.files("dctnet").joinpath("data", "cifar10-sample.zip")
    with resources.as_file(resource) as path:
        return JpegDataset(path, "test", form, classes=_CIFAR10_CLASSES, limit=limit)


# ----------------------------------------------------------------------------- HDF5 cache


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # a dependency, but say what to do if it went missing
        raise ImportError("the dataset cache needs h5py: pip install h5py") from exc
    return h5py


def _read_cache(path: Path, fingerprint: str, n: int):
    """The cached arrays, or None when ``path`` is absent or caches other data (stale)."""
    if not path.exists():
        return None
    h5py = _h5py()
    fix = "delete it to rebuild the cache, or pass another cache path"
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cache {path} cannot be read as HDF5 (truncated or not a cache: {exc}); {fix}") from exc
    with f:
        if f.attrs.get("format") != _CACHE_FORMAT:
            raise ValueError(f"{path} is not a dctnet dataset cache (no format attribute {_CACHE_FORMAT!r}); {fix}")
        version = int(f.attrs.get("version", -1))
        if version != _CACHE_VERSION:
            raise ValueError(
                f"cache {path} has format version {version}, this dctnet reads version {_CACHE_VERSION}; {fix}"
            )
        if f.attrs.get("fingerprint") != fingerprint:
            return None
        _check_shards(f, path, fingerprint, fix)
        try:
            parts = [f[name][()] for name in f.attrs["arrays"]]
        except (KeyError, OSError, ValueError) as exc:
            raise ValueError(f"cache {path} is damaged ({exc}); {fix}") from exc
    if any(len(p) != n for p in parts):
        raise ValueError(f"cache {path} holds {[len(p) for p in parts]} samples, expected {n}; {fix}")
    return parts


def _temp_beside(path: Path) -> Path:
    """A fresh name beside ``path``: written there, then renamed over it (atomic on one file system)."""
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _array_names(count: int) -> list[str]:
    """HDF5 names of a form's arrays: ``data``, or ``component0..`` and ``qtables``."""
    return ["data"] if count == 1 else [f"component{i}" for i in range(count - 1)] + ["qtables"]


def _check_shards(f, path: Path, fingerprint: str, fix: str):
    """Raise ValueError unless every source file of ``f``'s virtual datasets is this data set's shard.

    HDF5 reads a missing source as zeros without a word, so a cache built under
    MPI that lost (or had replaced) its shards must not be read.
    """
    sources = set()
    for name in f.attrs.get("arrays", []):
        dataset = f.get(name)
        if dataset is not None and dataset.is_virtual:
            sources.update(m.file_name for m in dataset.virtual_sources() if m.file_name != ".")
    if not sources:
        return
    h5py = _h5py()
    for name in sorted(sources):
        shard = Path(name) if os.path.isabs(name) else path.parent / name
        try:
            with h5py.File(shard, "r") as s:
                ok = s.attrs.get("format") == _CACHE_FORMAT and s.attrs.get("fingerprint") == fingerprint
        except OSError:
            raise ValueError(f"cache {path} reads its arrays from the shard {shard}, which is missing or "
                             f"unreadable; keep the shards beside the cache, or {fix}") from None
        if not ok:
            raise ValueError(f"cache {path} reads its arrays from the shard {shard}, which holds other data; {fix}")


def _write_atomically(path: Path, fill):
    """Create an HDF5 file in a temporary file beside ``path``, ``fill(h5file)``, rename it into place."""
    h5py = _h5py()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        with h5py.File(tmp, "w-") as f:
            f.attrs["format"] = _CACHE_FORMAT
            f.attrs["version"] = _CACHE_VERSION
            fill(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_arrays(f, names, parts):
    for name, p in zip(names, parts):
        # Quantized coefficients are mostly zeros: shuffle + gzip level 1 makes the
        # CIFAR-10 test cache 6x smaller (38 -> 6 MB) and reads 10,000 files in ~0.1 s.
        f.create_dataset(name, data=p, chunks=(min(len(p), 1024),) + p.shape[1:],
                         shuffle=True, compression="gzip", compression_opts=1)


def _write_listing(f, labels, classes, files):
    # Labels, classes and files are the listing's, kept for readers of the file.
    h5py = _h5py()
    f.create_dataset("labels", data=labels)
    f.create_dataset("classes", data=classes, dtype=h5py.string_dtype())
    f.create_dataset("files", data=files, dtype=h5py.string_dtype())


def _write_cache(path: Path, fingerprint, parts, labels, classes, files):
    """Write the cache to a temporary file beside ``path``, then rename it into place."""
    def fill(f):
        f.attrs["fingerprint"] = fingerprint
        names = _array_names(len(parts))
        f.attrs["arrays"] = names
        _write_arrays(f, names, parts)
        _write_listing(f, labels, classes, files)

    _write_atomically(path, fill)


def _shard_path(path: Path, rank: int, size: int) -> Path:
    return path.with_name(f"{path.name}.shard{rank}-of-{size}.h5")


def _parallel_cache(src, path: Path, fingerprint, files, labels, classes, where, form, decoder, progress,
                    distributed):
    """The cached arrays, built by every rank of the MPI world when missing or stale (collective)."""
    rank, size, n = distributed.rank(), distributed.world_size(), len(files)
    parts = _read_cache(path, fingerprint, n)
    # Every rank must list the same data set, and all must agree on rebuilding.
    reference = distributed.broadcast_object((fingerprint, n))
    votes = distributed.allreduce(np.array([int(reference == (fingerprint, n)), int(parts is None)], np.int64))
    if int(votes[0]) != size:
        raise ValueError(f"the ranks list different data sets for the cache {path} (the source, split, form, "
                         "limit or classes differ); create the same JpegDataset on every rank")
    if int(votes[1]) == 0:
        return parts
    parts = None  # a rank that could read the cache rebuilds it with the others
    start, stop = rank * n // size, (rank + 1) * n // size
    shard = _shard_path(path, rank, size)
    if stop > start:
        mine = _stack(src, files[start:stop], where, form, decoder, progress and rank == 0)

        def fill_shard(f):
            f.attrs["fingerprint"] = fingerprint
            f.attrs["shard"] = np.array([rank, size, start, stop, n], np.int64)
            names = _array_names(len(mine))
            f.attrs["arrays"] = names
            _write_arrays(f, names, mine)

        _write_atomically(shard, fill_shard)
        del mine
    distributed.barrier()
    if rank == 0:
        _write_virtual_cache(path, fingerprint, labels, classes, files, size, where)
    distributed.barrier()
    parts = _read_cache(path, fingerprint, n)
    if parts is None:
        raise RuntimeError(f"cache {path} was replaced by other data while the ranks built it; build it again")
    return parts


def _write_virtual_cache(path: Path, fingerprint, labels, classes, files, size, where):
    """Rank 0: the cache file whose arrays are virtual datasets over the shards beside it."""
    h5py = _h5py()
    n = len(files)
    shards = []  # (relative name, start, stop, [(shape, dtype) per array])
    for r in range(size):
        start, stop = r * n // size, (r + 1) * n // size
        if stop == start:
            continue
        shard = _shard_path(path, r, size)
        with h5py.File(shard, "r") as f:
            specs = [(f[name].shape, f[name].dtype) for name in f.attrs["arrays"]]
        shards.append((shard.name, start, stop, specs))
    first = shards[0]
    geometry = [(shape[1:], dtype) for shape, dtype in first[3]]
    for name, start, stop, specs in shards:
        if [(shape[1:], dtype) for shape, dtype in specs] != geometry:
            raise ValueError(
                f"{where}:{files[start]} has array shapes {[s[1:] for s, _ in specs]}, but the first file "
                f"{files[0]} has {[s for s, _ in geometry]}; the stacked forms need files of one size, "
                "colour components and chroma subsampling: convert the odd files, or read them one by one "
                "with dctnet.jpeg.read_jpeg"
            )

    def fill(f):
        f.attrs["fingerprint"] = fingerprint
        names = _array_names(len(first[3]))
        f.attrs["arrays"] = names
        for i, name in enumerate(names):
            shape, dtype = first[3][i]
            layout = h5py.VirtualLayout(shape=(n,) + tuple(shape[1:]), dtype=dtype)
            for source, start, stop, specs in shards:
                # A relative name: HDF5 looks for it beside the cache file, wherever that is.
                layout[start:stop] = h5py.VirtualSource(source, name, shape=specs[i][0], dtype=dtype)
            f.create_virtual_dataset(name, layout)
        _write_listing(f, labels, classes, files)

    _write_atomically(path, fill)


# ----------------------------------------------------------------------------- CIFAR-10 tarball

_CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds plain NumPy arrays, dicts, lists, strings and numbers, nothing else:
    a pickle that names any other callable is refused, so loading runs no code."""

    def find_class(self, module, name):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _empty_array
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays")


def _empty_array(cls, shape, dtype):
    """numpy's ``_reconstruct`` for plain ndarrays only; the pickle then sets the contents."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to build an array of class {cls!r}")
    return np.ndarray(shape, dtype)


def _cifar10_batch(data: bytes, where: str):
    """Images ``(N, 3, 32, 32)`` uint8 and labels of one pickled CIFAR-10 python batch."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        images, labels = batch[b"data"], np.asarray(batch[b"labels"])
    except Exception as exc:  # a damaged or foreign pickle can fail in many ways
        raise ValueError(f"{where} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3 * 32 * 32 and labels.shape == (len(images),)
            and np.isin(labels, np.arange(10)).all()):
        raise ValueError(
            f"{where}: expected uint8 data (N, 3072) and N labels 0..9, found data "
            f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')} and labels {labels.shape}"
        )
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def cifar10_tar_to_jpeg_zip(tar_path, zip_path, quality: int = 75, *, progress: bool = False) -> Path:
    """Re-encode the CIFAR-10 python tarball as a zip of JPEGs ``cifar10/{train,test}/<class>/NNNN.jpg``.

    Each image goes through ``dctnet.jpeg.encode_jpeg(image, quality=quality,
    subsampling="4:2:0")`` and is numbered within its class in batch order. The
    zip is stored uncompressed (JPEG data does not shrink) and written to a
    temporary file first. The batches are pickles; they are read by an
    unpickler that rebuilds only NumPy arrays, lists and strings.

    >>> cifar10_tar_to_jpeg_zip("cifar-10-python.tar.gz", "cifar10-jpeg.zip")   # doctest: +SKIP
    PosixPath('cifar10-jpeg.zip')
    """
    from . import jpeg

    tar_path, zip_path = Path(tar_path), Path(zip_path)
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{tar_path} is not a readable tarball ({exc}); expected {CIFAR10_URL}") from exc
    tmp = _temp_beside(zip_path)
    try:
        with tar, zipfile.ZipFile(tmp, "x", zipfile.ZIP_STORED) as zf:
            members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
            for split, batches in _CIFAR10_BATCHES.items():
                counts = [0] * len(_CIFAR10_CLASSES)
                for batch in batches:
                    if batch not in members:
                        raise ValueError(f"{tar_path} has no member {batch}; expected the CIFAR-10 python tarball {CIFAR10_URL}")
                    where = f"{tar_path}:{members[batch].name}"
                    images, labels = _cifar10_batch(tar.extractfile(members[batch]).read(), where)
                    for image, label in _progress(zip(images, labels), progress, len(labels), batch, "image"):
                        name = f"cifar10/{split}/{_CIFAR10_CLASSES[label]}/{counts[label]:04d}.jpg"
                        counts[label] += 1
                        # A fixed timestamp makes the zip a function of the tarball alone.
                        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                        zf.writestr(info, jpeg.encode_jpeg(image, quality=quality, subsampling="4:2:0").to_bytes())
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return zip_path


# ----------------------------------------------------------------------------- downloads


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(urls, dest: Path, sha256: str, progress: bool) -> Path:
    """Fetch ``dest`` from the first reachable URL via a temporary file, checking its SHA-256.

    An existing ``dest`` with the right hash is kept. A hash mismatch deletes the
    download and raises ``ValueError``.
    """
    if dest.is_file() and _sha256(dest) == sha256:
        return dest
    errors = []
    for url in urls:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except OSError as exc:  # URLError and socket errors: try the next mirror
            errors.append(f"{url}: {exc}")
            continue
        tmp = _temp_beside(dest)
        try:
            with response, open(tmp, "xb") as out:
                h = hashlib.sha256()
                size = int(response.headers.get("Content-Length") or 0)
                chunks = iter(lambda: response.read(1 << 20), b"")
                for chunk in _progress(chunks, progress, math.ceil(size / (1 << 20)) or None, dest.name, "MiB"):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != sha256:
                raise ValueError(
                    f"{url}: the download has SHA-256 {h.hexdigest()}, expected {sha256}; it is "
                    "corrupt or the file changed upstream, so it was deleted: try again later"
                )
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest
    raise ConnectionError(f"could not download {dest.name}: " + "; ".join(errors))


def _download_root(root) -> Path:
    path = Path(root if root is not None else data_root()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_mnist(root=None, *, progress: bool = False) -> Path:
    """Download the four MNIST IDX files to ``<root>/mnist/`` (root default ``$DCTNET_DATA``).

    Tries :data:`MNIST_MIRRORS` in turn, checks :data:`MNIST_SHA256`, keeps
    files already present with the right hash. Returns the ``mnist`` folder.

    >>> download_mnist("~/data")     # doctest: +SKIP
    PosixPath('/home/me/data/mnist')
    """
    folder = _download_root(root) / "mnist"
    folder.mkdir(exist_ok=True)
    for name, sha256 in MNIST_SHA256.items():
        _download([m + name for m in MNIST_MIRRORS], folder / name, sha256, progress)
    return folder


def download_cifar10(root=None, *, quality: int = 75, progress: bool = False) -> Path:
    """Download the CIFAR-10 python tarball to ``root`` and convert it to ``cifar10-jpeg.zip``.

    The tarball (:data:`CIFAR10_URL`) is checked against :data:`CIFAR10_SHA256`;
    the zip is written by :func:`cifar10_tar_to_jpeg_zip` unless already there.
    Returns the zip's path, which :func:`load_cifar10` reads.

    >>> download_cifar10("~/data")   # doctest: +SKIP
    PosixPath('/home/me/data/cifar10-jpeg.zip')
    """
    folder = _download_root(root)
    tar = _download([CIFAR10_URL], folder / "cifar-10-python.tar.gz", CIFAR10_SHA256, progress)
    dest = folder / _CIFAR10_ZIP
    if not dest.is_file():
        cifar10_tar_to_jpeg_zip(tar, dest, quality=quality, progress=progress)
    return dest
