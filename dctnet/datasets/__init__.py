"""Data sets: MNIST from its IDX files, labelled JPEG trees such as CIFAR-10, an HDF5 cache.

Data live in one folder, given as ``root=`` or by the environment variable
``DCTNET_DATA``: ``mnist/{train,t10k}-*-ubyte.gz`` and ``cifar10-jpeg.zip``.
:func:`download_mnist` and :func:`download_cifar10` fill such a folder when online.
A JPEG data set is a folder or zip laid out ``<prefix>/<split>/<class>/*.jpg``;
classes sorted by name are labels 0, 1, ... and the files are stacked in one of
three forms: ``"coefficients"`` (quantized, as stored), ``"dct"`` (to_dct of the
RGB image) or ``"pixels"``.

One module per concept: :mod:`~.paths` (the data folder, the bundled sample),
:mod:`~.mnist`, :mod:`~.batching`, :mod:`~.jpegtree` (listing a zip or folder),
:mod:`~.forms` (decoding into the three forms), :mod:`~.cache` (HDF5),
:mod:`~.jpegdataset`, :mod:`~.cifar`, :mod:`~.download`.

>>> from dctnet import datasets
>>> sample = datasets.sample_cifar10()      # 100 CIFAR-10 test JPEGs shipped in the package
>>> len(sample), sample.classes[:2]
(100, ['airplane', 'automobile'])
>>> [c.shape for c in sample.data.components], sample.data.qtables.shape
([(100, 4, 4, 64), (100, 2, 2, 64), (100, 2, 2, 64)], (100, 3, 64))
>>> for coefs, labels in sample.batches(32, shuffle=True, seed=0):
...     pass
"""

from .batching import iterate_batches
from .cache import Communicator
from .cifar import (
    CIFAR10_CLASSES,
    CIFAR10_SHA256,
    CIFAR10_URL,
    cifar10_tar_to_jpeg_zip,
    download_cifar10,
    load_cifar10,
    sample_cifar10,
)
from .forms import FORMS, JpegCoefficients
from .jpegdataset import JpegDataset
from .mnist import MNIST_MIRRORS, MNIST_SHA256, download_mnist, load_mnist, pad_mnist
from .paths import ENV_VAR, data_root

__all__ = [
    "ENV_VAR",
    "FORMS",
    "data_root",
    "load_mnist",
    "pad_mnist",
    "iterate_batches",
    "JpegCoefficients",
    "JpegDataset",
    "Communicator",
    "load_cifar10",
    "sample_cifar10",
    "download_mnist",
    "download_cifar10",
    "cifar10_tar_to_jpeg_zip",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR10_SHA256",
]
