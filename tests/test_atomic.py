"""dctnet.atomic: a write replaces the old file whole or not at all, and leaves no temporary file."""

import os

import h5py
import numpy as np
import pytest

from dctnet import atomic


def _old_file(path):
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(5)
    return path.read_bytes()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_mid_write_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "a.h5"
    before = _old_file(path)
    with pytest.raises(error):
        with atomic.atomic_hdf5(path) as f:
            f["x"] = np.zeros(1000)
            f.flush()  # some of the new file is on disk already
            raise error("interrupted")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.h5"]  # no temporary file left behind


def test_a_failed_rename_or_fsync_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.h5"
    before = _old_file(path)
    for name in ("replace", "fsync"):
        def fail(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(os, name, fail)
        with pytest.raises(OSError, match="disk full"):
            with atomic.atomic_hdf5(path) as f:
                f["x"] = np.zeros(3)
        monkeypatch.undo()
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.h5"]


def test_success_replaces_and_syncs(tmp_path, monkeypatch):
    path = tmp_path / "a.h5"
    _old_file(path)
    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or fsync(fd))
    with atomic.atomic_hdf5(path, libver="v108") as f:
        tmp = f.filename
        f["y"] = np.ones(2)
    # Written beside the target under a hidden temporary name, then renamed over it.
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".a.h5.")
    with h5py.File(path, "r") as f:
        assert list(f) == ["y"]
    assert len(synced) == 2  # the file's data, then the folder's entry
    assert os.listdir(tmp_path) == ["a.h5"]


def test_atomic_path_for_any_writer(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError("stop")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["notes.txt"]
    with pytest.raises(ValueError):  # the body raised before creating the file
        with atomic.atomic_path(target):
            raise ValueError("stop")
    assert os.listdir(tmp_path) == ["notes.txt"]
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["notes.txt"]
    # A missing folder is an error, not a silently created one.
    with pytest.raises(FileNotFoundError):
        with atomic.atomic_path(tmp_path / "nowhere" / "x.txt") as tmp:
            tmp.write_text("x")
    assert os.listdir(tmp_path) == ["notes.txt"]
