"""Atomic file writes: a temporary file in the target's folder, flushed to disk, renamed over it.

A reader sees the old file or the new one, never a part: if the writing
raises (a full disk, Ctrl-C), the temporary file is deleted and the old file
is untouched. The data are fsynced before the rename and the folder after it,
so a crash of the machine does not leave a current name for unwritten data
(docs/design.md §8). A writer killed outright (SIGKILL, power loss) cannot
delete its temporary file; the next write of the same target does: a writer
holds an advisory lock on its temporary file while it writes, and a
``.<name>.<32 hex digits>.tmp`` beside the target that nobody locks and that
has not changed for a minute is such a leftover.

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
import errno
import os
import re
import time
import uuid
from pathlib import Path

import h5py

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so leftovers are never taken for stale ones
    fcntl = None

__all__ = ["atomic_path", "atomic_hdf5", "remove_stale_temporaries"]

STALE_AFTER_S = 60  # an unlocked temporary file unchanged this long belongs to a dead writer


def _temporary_name(target: Path) -> Path:
    """A fresh hidden name beside ``target``: same folder, same file system, where a rename is atomic."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success it replaces ``path``, on an exception it is deleted.

    The temporary file, ``.<name>.<random hex>.tmp`` in ``path``'s folder
    (which must exist), is created empty and locked; the body writes it
    (any writer that takes a path and opens it for writing, not with ``"x"``).
    Stale temporary files of ``path`` are removed first
    (:func:`remove_stale_temporaries`).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> target.read_text()
    'complete'
    """
    given = os.fspath(path)
    target = Path(os.path.abspath(given))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write {given}: its folder {target.parent} does not exist "
                                "(create it first)", given)
    remove_stale_temporaries(target)
    tmp = _temporary_name(target)
    lock = _lock(tmp)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())  # the data must be on disk before the rename makes them current
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    _fsync_folder(target.parent)


def _lock(tmp):
    """Create ``tmp`` and hold an exclusive advisory lock on it (an fd to close at the end), or None."""
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
    if fcntl is None:
        os.close(fd)
        return None
    # A POSIX record lock (not flock): HDF5 flocks the files it opens, which must not conflict with it.
    fcntl.lockf(fd, fcntl.LOCK_EX)
    return fd


def remove_stale_temporaries(path, stale_after_s=STALE_AFTER_S):
    """Delete the temporary files that killed writers of ``path`` left beside it; returns their names.

    A candidate is named ``.<name>.<32 hex digits>.tmp``, has not been
    modified for ``stale_after_s`` seconds and is not locked by a writer.
    Other targets' files are never touched. :func:`atomic_path` calls this
    before every write.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> left = folder / f".a.h5.{'0' * 32}.tmp"
    >>> _ = left.write_bytes(b"half")
    >>> os.utime(left, (0, 0))
    >>> [p.name for p in remove_stale_temporaries(folder / "a.h5")] == [left.name]
    True
    """
    target = Path(os.path.abspath(os.fspath(path)))
    if fcntl is None:
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{32}}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < stale_after_s or not entry.is_file():
                continue
            fd = os.open(entry.path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live writer holds it: OSError, keep the file
            os.remove(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_hdf5(path, **kwargs):
    """Yield a new ``h5py.File`` that replaces ``path`` atomically when the block ends without error.

    ``kwargs`` go to ``h5py.File`` (e.g. ``libver="v108"``). The file is closed
    before it is flushed to disk and renamed; see :func:`atomic_path`.

    >>> with atomic_hdf5("model.h5", libver="v108") as f:     # doctest: +SKIP
    ...     f.attrs["format"] = "dctnet-model"
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", **kwargs) as f:  # atomic_path created it, empty and locked
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
