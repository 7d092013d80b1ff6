"""Labelled JPEG trees: the files ``[<prefix>/]<split>/<class>/*.jpg`` of a zip or a folder.

A tree is listed, not read: :func:`list_tree` gives the member names, their
labels (classes sorted by name are 0, 1, ...) and the classes; a
:class:`ZipTree` or :class:`FolderTree` then hands out each member's bytes and
a stamp that tells a cache whether the tree changed: a digest of the listed
files' names, sizes and modification times (zip: CRCs), so a file moved to
another class, renamed, replaced or touched makes the cache stale.

>>> with open_tree("cifar10-jpeg.zip") as tree:                         # doctest: +SKIP
...     listing = list_tree(tree.names("test"), "test", "cifar10-jpeg.zip")
...     data = tree.read(listing.files[0])
>>> listing.classes[:2], listing.labels[:3]                              # doctest: +SKIP
(['airplane', 'automobile'], array([0, 0, 0]))
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["ZipTree", "FolderTree", "open_tree", "Listing", "list_tree", "JPEG_SUFFIXES"]

JPEG_SUFFIXES = (".jpg", ".jpeg")


class _Tree:
    """A tree's ``with`` protocol: closed at the end of the block."""

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ZipTree(_Tree):
    """The members of a zip file (read with ``zipfile``; the file stays open until :meth:`close`)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path} is not a readable zip file ({exc}); download or copy it again") from exc

    def names(self, split):
        """Every member file's name (the layout is :func:`list_tree`'s business)."""
        return [i.filename for i in self._zip.infolist() if not i.is_dir()]

    def read(self, name) -> bytes:
        return self._zip.read(name)

    def stamp(self, names) -> dict:
        """What changes when the zip or the listed members change: its size and mtime, the members' digest."""
        st = self.path.stat()
        infos = [self._zip.getinfo(name) for name in names]
        digest = _digest((i.filename, i.file_size, i.CRC, i.date_time) for i in infos)
        return {"kind": "zip", "size": st.st_size, "mtime_ns": st.st_mtime_ns, "listing": digest}

    def close(self):
        self._zip.close()


class FolderTree(_Tree):
    """The files of a folder that is ``<prefix>`` itself or the one holding ``<prefix>/``."""

    def __init__(self, path: Path):
        self.path = path

    def names(self, split):
        found = [*self.path.glob(f"{split}/*/*"), *self.path.glob(f"*/{split}/*/*")]
        return [p.relative_to(self.path).as_posix() for p in found if p.is_file()]

    def read(self, name) -> bytes:
        return (self.path / name).read_bytes()

    def stamp(self, names) -> dict:
        """The listed files' total size, latest modification time and the digest of each one's name, size and mtime."""
        stats = [(self.path / name).stat() for name in names]
        return {
            "kind": "folder",
            "size": sum(s.st_size for s in stats),
            "mtime_ns": max(s.st_mtime_ns for s in stats),
            "listing": _digest((name, s.st_size, s.st_mtime_ns) for name, s in zip(names, stats)),
        }


def _digest(rows) -> str:
    """SHA-256 of the rows (tuples of names and numbers), in order."""
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(row)).encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()


def open_tree(source):
    """A :class:`FolderTree` for a folder, a :class:`ZipTree` for a file."""
    path = Path(source).expanduser()
    if path.is_dir():
        return FolderTree(path)
    if path.is_file():
        return ZipTree(path)
    raise FileNotFoundError(f"JPEG data set {path} not found: expected a zip file or a folder")


class Listing(NamedTuple):
    """What :func:`list_tree` finds: the chosen ``files`` (member names), their ``labels``
    int64, the ``classes`` (label i is ``classes[i]``) and the ``total`` number of JPEG
    files of the split before ``limit``."""

    files: list
    labels: np.ndarray
    classes: list
    total: int


def list_tree(names, split, where, limit=None, classes=None) -> Listing:
    """The ``[<prefix>/]<split>/<class>/*.jpg`` members of ``names``, labelled.

    Classes sorted by name are labels 0, 1, ..., unless ``classes`` fixes the
    names and their order (a class without files then keeps its label).
    Within a class, files are taken in name order, at most ``limit``.
    ``where`` names the tree in errors.

    >>> names = ["m/train/dog/1.jpg", "m/train/cat/2.jpg", "m/train/cat/1.jpg", "m/test/cat/1.jpg"]
    >>> list_tree(names, "train", "m.zip").files
    ['m/train/cat/1.jpg', 'm/train/cat/2.jpg', 'm/train/dog/1.jpg']
    """
    by_class, prefixes, total = {}, set(), 0
    for name in names:
        parts = name.split("/")
        if len(parts) in (3, 4) and parts[-3] == split and parts[-1].lower().endswith(JPEG_SUFFIXES):
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
    return Listing(files, np.array(labels, dtype=np.int64), list(classes), total)
