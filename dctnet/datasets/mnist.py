"""MNIST: its gzipped IDX files read into arrays, padded to the paper's 32x32, downloaded.

The files live in ``<data folder>/mnist/`` under their original names
(:data:`MNIST_FILES`); :func:`download_mnist` fetches them.

>>> images, labels = load_mnist("test")          # doctest: +SKIP
>>> pad_mnist(images).shape                       # doctest: +SKIP
(10000, 1, 32, 32)
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from .download import download_folder, fetch
from .paths import check_split, data_root, missing_file

__all__ = ["load_mnist", "pad_mnist", "read_idx", "download_mnist", "MNIST_FILES", "MNIST_MIRRORS", "MNIST_SHA256"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
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


def load_mnist(split: str = "train", root=None):
    """MNIST as ``(images uint8 (N, 28, 28), labels int64 (N,))`` from the gzipped IDX files.

    ``root`` is the data folder holding ``mnist/`` (default ``$DCTNET_DATA``).
    N is 60,000 for ``"train"`` and 10,000 for ``"test"``.

    >>> images, labels = load_mnist("test")          # doctest: +SKIP
    >>> images.shape, labels[:3]                      # doctest: +SKIP
    ((10000, 28, 28), array([7, 2, 1]))
    """
    folder = data_root(root) / "mnist"
    images_path, labels_path = (folder / name for name in MNIST_FILES[check_split(split)])
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
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


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, gzipped, as a writable array."""
    if not path.is_file():
        raise missing_file(path, "download_mnist")
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


def download_mnist(root=None, *, progress: bool = False) -> Path:
    """Download the four MNIST IDX files to ``<root>/mnist/`` (root default ``$DCTNET_DATA``).

    Tries :data:`MNIST_MIRRORS` in turn, checks :data:`MNIST_SHA256`, keeps
    files already present with the right hash. Returns the ``mnist`` folder.

    >>> download_mnist("~/data")     # doctest: +SKIP
    PosixPath('/home/me/data/mnist')
    """
    folder = download_folder(root) / "mnist"
    folder.mkdir(exist_ok=True)
    for name, sha256 in MNIST_SHA256.items():
        fetch([m + name for m in MNIST_MIRRORS], folder / name, sha256, progress)
    return folder
