"""CIFAR-10 as JPEG files: the data folder's zip, the sample in the package, the official tarball re-encoded.

``<data folder>/cifar10-jpeg.zip`` holds ``cifar10/{train,test}/<class>/NNNN.jpg``
(quality 75, 4:2:0), made from the official python tarball by
:func:`cifar10_tar_to_jpeg_zip`; :func:`download_cifar10` does both steps.

>>> sample = sample_cifar10()      # 100 CIFAR-10 test JPEGs shipped in the package
>>> len(sample), sample.classes[:2]
(100, ['airplane', 'automobile'])
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from .. import jpeg
from ..atomic import atomic_path
from .download import download_folder, fetch
from .jpegdataset import JpegDataset
from .paths import bundled, check_split, data_root, missing_file
from ..progressbar import progress as track_progress

__all__ = ["load_cifar10", "sample_cifar10", "cifar10_tar_to_jpeg_zip", "download_cifar10",
           "CIFAR10_CLASSES", "CIFAR10_URL", "CIFAR10_SHA256"]

# CIFAR-10's label order (alphabetical, so a plain JpegDataset finds the same labels).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# As in Keras' keras/datasets/cifar10.py (file_hash); 170,498,071 bytes.
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_ZIP = "cifar10-jpeg.zip"
_SAMPLE_ZIP = "cifar10-sample.zip"
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def load_cifar10(split: str = "train", form: str = "coefficients", *, root=None,
                 limit: int | None = None, cache=None, progress: bool = False, comm=None) -> JpegDataset:
    """CIFAR-10 as JPEG files from ``<root>/cifar10-jpeg.zip`` (root default ``$DCTNET_DATA``).

    50,000 train or 10,000 test 32x32 images; see :class:`JpegDataset` for the
    rest (``comm``: build the cache on several processes).

    >>> test = load_cifar10("test", limit=100, cache="cifar10-test.h5")   # doctest: +SKIP
    """
    path = data_root(root) / CIFAR10_ZIP
    if not path.is_file():
        raise missing_file(path, "download_cifar10")
    return JpegDataset(path, check_split(split), form, classes=CIFAR10_CLASSES, limit=limit,
                       cache=cache, progress=progress, comm=comm)


def sample_cifar10(form: str = "coefficients", *, limit: int | None = None) -> JpegDataset:
    """The 100 CIFAR-10 test JPEGs shipped with the package (10 per class); needs no data folder.

    >>> sample_cifar10("pixels").data.shape
    (100, 3, 32, 32)
    """
    with bundled(_SAMPLE_ZIP) as path:
        return JpegDataset(path, "test", form, classes=CIFAR10_CLASSES, limit=limit)


# ----------------------------------------------------------------------------- the python tarball


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
    zip is stored uncompressed (JPEG data does not shrink) and written
    atomically (:mod:`dctnet.atomic`). The batches are pickles; they are read by
    an unpickler that rebuilds only NumPy arrays, lists and strings.

    >>> cifar10_tar_to_jpeg_zip("cifar-10-python.tar.gz", "cifar10-jpeg.zip")   # doctest: +SKIP
    PosixPath('cifar10-jpeg.zip')
    """
    tar_path, zip_path = Path(tar_path), Path(zip_path)
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{tar_path} is not a readable tarball ({exc}); expected {CIFAR10_URL}") from exc
    with atomic_path(zip_path) as tmp, tar, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
        for split, batches in _BATCHES.items():
            counts = [0] * len(CIFAR10_CLASSES)
            for batch in batches:
                if batch not in members:
                    raise ValueError(f"{tar_path} has no member {batch}; expected the CIFAR-10 python tarball {CIFAR10_URL}")
                where = f"{tar_path}:{members[batch].name}"
                images, labels = _cifar10_batch(tar.extractfile(members[batch]).read(), where)
                for image, label in track_progress(zip(images, labels), len(labels), batch, "image", enabled=progress):
                    name = f"cifar10/{split}/{CIFAR10_CLASSES[label]}/{counts[label]:04d}.jpg"
                    counts[label] += 1
                    # A fixed timestamp makes the zip a function of the tarball alone.
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    zf.writestr(info, jpeg.encode_jpeg(image, quality=quality, subsampling="4:2:0").to_bytes())
    return zip_path


def download_cifar10(root=None, *, quality: int = 75, progress: bool = False) -> Path:
    """Download the CIFAR-10 python tarball to ``root`` and convert it to ``cifar10-jpeg.zip``.

    The tarball (:data:`CIFAR10_URL`) is checked against :data:`CIFAR10_SHA256`;
    the zip is written by :func:`cifar10_tar_to_jpeg_zip` unless already there.
    Returns the zip's path, which :func:`load_cifar10` reads.

    >>> download_cifar10("~/data")   # doctest: +SKIP
    PosixPath('/home/me/data/cifar10-jpeg.zip')
    """
    folder = download_folder(root)
    tar = fetch([CIFAR10_URL], folder / "cifar-10-python.tar.gz", CIFAR10_SHA256, progress)
    dest = folder / CIFAR10_ZIP
    if not dest.is_file():
        cifar10_tar_to_jpeg_zip(tar, dest, quality=quality, progress=progress)
    return dest
