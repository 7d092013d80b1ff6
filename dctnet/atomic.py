"""Atomic file writes: a temporary file in the target's folder, flushed to disk, renamed over it.

A reader sees the old file or the new one, never a part: if the writing
raises (a full disk, Ctrl-C), the temporary file is deleted and the old file
is untouched. The data are fsynced before the rename and the folder after it,
so a crash of the machine does not leave a current name for unwritten data
(docs/design.md §8).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.h5")
>>> with atomic_hdf5(path) as f:
...     f["x"] = [1, 2, 3]
>>> import h5py
>>> h5py.File(path, "r")["x"][()].tolist()
[1, 2, 3]
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import h5py

__all__ = ["atomic_path", "atomic_hdf5"]


def _temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target``: same folder, same file system, where a rename is atomic."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success it replaces ``path``, on an exception it is deleted.

    The body creates the file (any writer that takes a path), named
    ``.<name>.<random hex>.tmp`` in ``path``'s folder, which must exist.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> target.read_text()
    'complete'
    """
    target = Path(os.path.abspath(os.fspath(path)))
    tmp = _temporary_name(target)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())  # the data must be on disk before the rename makes them current
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_hdf5(path, **kwargs):
    """Yield a new ``h5py.File`` that replaces ``path`` atomically when the block ends without error.

    ``kwargs`` go to ``h5py.File`` (e.g. ``libver="v108"``). The file is closed
    before it is flushed to disk and renamed; see :func:`atomic_path`.

    >>> with atomic_hdf5("model.h5", libver="v108") as f:     # doctest: +SKIP
    ...     f.attrs["format"] = "dctnet-model"
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "x", **kwargs) as f:
            yield f


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
