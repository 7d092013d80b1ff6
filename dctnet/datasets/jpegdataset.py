"""``JpegDataset``: a labelled JPEG tree of a zip or folder, stacked in one form, optionally cached.

>>> from dctnet.datasets import paths
>>> with paths.bundled("cifar10-sample.zip") as path:
...     ds = JpegDataset(path, "test", "coefficients", limit=2)
>>> ds
JpegDataset('.../cifar10-sample.zip', split='test', form='coefficients': 20 files, 10 classes)
>>> x, labels = ds[:4]
>>> x.components[0].shape, labels.tolist()
((4, 4, 4, 64), [0, 0, 1, 1])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .batching import iterate_batches, take
from .cache import cached
from .forms import FORMS, JpegCoefficients, pixel_decoder, stack
from .jpegtree import list_tree, open_tree

__all__ = ["JpegDataset"]


class JpegDataset:
    """Labelled JPEG files ``<prefix>/<split>/<class>/*.jpg`` of a folder or zip, stacked.

    ``source`` is a zip file or a folder (``<prefix>`` itself or its parent).
    The class folders sorted by name are labels 0, 1, ..., unless ``classes``
    fixes the names and their order (a class without files then keeps its
    label). Within a class files are taken in name order, at most ``limit`` per
    class. ``form`` chooses ``data`` (see :mod:`dctnet.datasets.forms`):

    - ``"coefficients"``: :class:`JpegCoefficients`, the quantized coefficients as
      stored (e.g. CIFAR-10: Y ``(N, 4, 4, 64)``, Cb and Cr ``(N, 2, 2, 64)`` int16)
      and each file's tables ``(N, 3, 64)`` int32;
    - ``"dct"``: ``(N, 3, BH, BW, 64)`` float32, ``JpegImage.to_dct(color="rgb")``;
    - ``"pixels"``: ``(N, 3, H, W)`` uint8, decoded by Pillow (libjpeg) when it is
      installed, else ``JpegImage.to_pixels(color="rgb")`` rounded and clipped;
      the two differ by a few grey levels (integer IDCT, fancy upsampling).

    The first two are decoded in batches by ``read_stacked``, the same arrays
    as reading file by file.

    ``cache`` names an HDF5 file (:mod:`dctnet.datasets.cache`): when it holds
    this very data set (same source size and mtime, the same listed files by
    name, size and mtime, in the same classes, member count, split, form,
    limit, pixel decoder) it is loaded without reading any JPEG; otherwise the
    files are parsed and the cache is written atomically, replacing a stale
    one. A file there that is not a dctnet cache (unreadable, truncated,
    foreign or newer) raises ``ValueError`` and is left alone. ``progress=True``
    shows a tqdm bar when tqdm is installed.

    ``comm``, a communicator of several processes (``dctnet.distributed``
    after ``dctnet.distributed.init()`` joined an MPI world), builds a missing
    or stale ``cache`` in parallel, collectively: every rank must create the
    same data set at the same point, each decodes its share into a shard
    beside the cache, and every rank loads the result (details:
    :func:`dctnet.datasets.cache.cached`). Only rank 0 shows the progress bar.
    Without a cache, or with ``comm=None``, each process reads on its own.

    Attributes: ``data``, ``labels`` int64 ``(N,)``, ``classes``, ``files``
    (member paths), ``form``, ``split``, ``source``.

    >>> ds = JpegDataset("cifar10-jpeg.zip", "test", form="dct", limit=10)  # doctest: +SKIP
    >>> ds.data.shape, ds.labels[:12]                                    # doctest: +SKIP
    ((100, 3, 4, 4, 64), array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))
    """

    def __init__(self, source, split: str = "train", form: str = "coefficients", *,
                 classes=None, limit: int | None = None, cache=None, progress: bool = False, comm=None):
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, found {form!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
            raise ValueError(f"limit must be None or a positive number of files per class, found {limit!r}")
        self.source, self.split, self.form = Path(source), split, form
        where = str(self.source)
        with open_tree(source) as tree:
            listing = list_tree(tree.names(split), split, where, limit, classes)
            files, labels, classes = listing.files, listing.labels, listing.classes
            decoder = pixel_decoder() if form == "pixels" else None

            def build(start, stop, show):
                return stack(tree, files[start:stop], where, form, decoder, progress and show)

            if cache is None:
                parts = build(0, len(files), True)
            else:
                fingerprint = json.dumps({
                    "source": tree.stamp(files), "members": listing.total, "split": split, "form": form,
                    "limit": None if limit is None else int(limit), "classes": classes, "decoder": decoder,
                }, sort_keys=True)
                parts = cached(cache, fingerprint, listing, build, comm)
        self.files, self.labels, self.classes = files, labels, classes
        self.data = JpegCoefficients(tuple(parts[:-1]), parts[-1]) if form == "coefficients" else parts[0]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        """``(x, label)`` of one sample, or of a batch for a slice or index array."""
        return take(self.data, index), self.labels[index]

    def batches(self, batch_size: int, shuffle: bool = False, seed=None, drop_last: bool = False):
        """Yield ``(x, labels)`` mini-batches; see :func:`~dctnet.datasets.iterate_batches`."""
        return iterate_batches(self.data, self.labels, batch_size=batch_size,
                               shuffle=shuffle, seed=seed, drop_last=drop_last)

    def __repr__(self) -> str:
        return (f"JpegDataset({str(self.source)!r}, split={self.split!r}, form={self.form!r}: "
                f"{len(self)} files, {len(self.classes)} classes)")
