"""Model files: architecture, weights and optional optimizer state in HDF5.

A file holds, at its root, the attributes ``format`` (``"dctnet-model"``),
``format_version``, ``dctnet_version``, ``architecture`` (JSON of
``model.config()``), ``metadata`` (JSON) and ``training``; the group ``state/``
with one dataset per ``model.state_dict()`` entry, named by its dotted path and
kept in order; and, for checkpoints, the group ``optimizer/`` with a JSON
``config`` attribute and its buffers in ``optimizer/state/``.

Nothing is ever pickled: loading reads JSON strings and numeric arrays only, and
rebuilds modules and optimizers through registries, so a file cannot run code.
Saving writes a temporary file next to the target and renames it over the
target (:mod:`dctnet.atomic`), so an interrupted save leaves the previous file
intact.

>>> import os, tempfile, numpy as np
>>> from dctnet import nn
>>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
>>> path = os.path.join(tempfile.mkdtemp(), "model.h5")
>>> save(model, path, epoch=3)
>>> again = load(path)
>>> all(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
True
>>> load_checkpoint(path).metadata
{'epoch': 3}
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import h5py
import numpy as np

from .atomic import atomic_hdf5
from .backend import asnumpy, to_device
from .version import __version__

__all__ = ["save", "load", "load_checkpoint", "Checkpoint", "FORMAT", "FORMAT_VERSION"]

FORMAT = "dctnet-model"
FORMAT_VERSION = 1  # bump when the layout changes; readers refuse newer versions
_NUMERIC_KINDS = "biufc"  # bool, integers, floats, complex: never objects or strings


class Checkpoint(NamedTuple):
    """What :func:`load_checkpoint` returns."""

    model: Any
    optimizer: Any  # a dctnet.optim.Optimizer, or None when none was saved
    metadata: dict


# -- saving ------------------------------------------------------------------------


def save(model, path, optimizer=None, **metadata):
    """Write ``model`` (and ``optimizer``, if given) to the HDF5 file ``path``.

    ``metadata`` values must be JSON-serializable (numbers, strings, lists,
    dicts, None). The write is atomic: a temporary file in the same folder is
    written, flushed to disk and renamed over ``path``.

    >>> save(model, "resnet.h5", optimizer=opt, epoch=10, accuracy=0.91)  # doctest: +SKIP
    """
    path = os.fspath(path)
    architecture = _to_json(model.config(), "the model's config()")
    metadata_json = _to_json(metadata, "metadata", per_key=True)
    state = model.state_dict()
    opt_state = optimizer.state_dict() if optimizer is not None else None
    opt_config = _to_json(opt_state["config"], "the optimizer's config") if opt_state else None

    # libver v108 allows attributes above 64 KiB (large architectures).
    with atomic_hdf5(path, libver="v108") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["dctnet_version"] = __version__
        f.attrs["architecture"] = architecture
        f.attrs["metadata"] = metadata_json
        f.attrs["training"] = bool(model.training)
        _write_arrays(f.create_group("state", track_order=True), state)
        if opt_state is not None:
            group = f.create_group("optimizer")
            group.attrs["config"] = opt_config
            _write_arrays(group.create_group("state", track_order=True), opt_state["state"])


def _to_json(value, what, per_key=False):
    if per_key:  # name the offending key, which a whole-dict error would not
        for key, item in value.items():
            try:
                json.dumps(item)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"metadata {key!r} is not JSON-serializable ({exc}); "
                    "pass numbers, strings, lists, dicts or None (e.g. float(x) for arrays scalars)"
                ) from None
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None


def _write_arrays(group, arrays):
    for name, array in arrays.items():
        if not name or "/" in name or name == ".":
            raise ValueError(f"cannot store an array named {name!r}: names must be non-empty without '/'")
        array = asnumpy(array.data if getattr(array, "_is_tensor", False) else array)
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"cannot store {name!r} of dtype {array.dtype}: only numeric arrays are saved")
        group.create_dataset(name, data=array)


# -- loading -----------------------------------------------------------------------


def load(path, device=None):
    """The model saved in ``path``, rebuilt and in **eval mode** (ready for inference).

    ``device`` (``"cpu"`` or ``"gpu"``) moves the weights there; None keeps
    them on the CPU. Use :func:`load_checkpoint` to resume training.

    >>> model = load("resnet.h5")  # doctest: +SKIP
    """
    model, _, _ = _read(path, device, with_optimizer=False)
    model.eval()
    return model


def load_checkpoint(path, device=None) -> Checkpoint:
    """``Checkpoint(model, optimizer, metadata)`` from ``path``.

    The model is in the training mode it was saved in; the optimizer (None
    if none was saved) is bound to ``model.parameters()`` with its buffers
    restored, so training continues exactly where it stopped.

    >>> model, opt, meta = load_checkpoint("checkpoint.h5")  # doctest: +SKIP
    """
    return Checkpoint(*_read(path, device, with_optimizer=True))


def _read(path, device, with_optimizer):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such dctnet model file", path)
    unreadable = f"{path} is not a readable dctnet model file (truncated or not HDF5)"
    try:
        with h5py.File(path, "r") as f:
            saved = _read_file(f, path, with_optimizer)
    except (OSError, RuntimeError) as exc:  # h5py's errors for missing or damaged contents
        raise ValueError(f"{unreadable}: {exc}") from None
    # Everything below works on plain JSON and arrays, with the file closed.
    from . import nn, optim  # lazily: nn imports much of dctnet
    from .conversion import set_evaluation  # the evaluation convert chooses (docs/design.md §4)

    try:
        model = set_evaluation(nn.from_config(saved["architecture"]), "auto")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: cannot rebuild the architecture: {exc}") from None
    state = saved["state"]
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    if missing or unexpected:
        raise ValueError(f"{path}: saved weights do not fit the architecture (missing {missing}, unexpected {unexpected})")
    for name, array in state.items():
        if array.shape != tuple(expected[name].shape):
            raise ValueError(
                f"{path}: weight {name!r} has shape {array.shape}, the architecture needs {tuple(expected[name].shape)}"
            )
    if device is not None:
        state = {name: to_device(array, device) for name, array in state.items()}
    try:
        model.load_state_dict(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: cannot load the saved weights: {exc}") from None
    if saved["training"]:
        model.train()
    else:
        model.eval()

    optimizer = None
    if saved.get("optimizer") is not None:
        opt_config, opt_state = saved["optimizer"]
        try:
            optimizer = optim.from_config(opt_config, model.parameters())
            optimizer.load_state_dict({"config": opt_config, "state": opt_state})
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: cannot restore the optimizer: {exc}") from None
    return model, optimizer, saved["metadata"]


def _read_file(f, path, with_optimizer):
    """The file's contents as JSON values and NumPy arrays, after checking its format."""
    fmt = f.attrs.get("format")
    if not (isinstance(fmt, str) and fmt == FORMAT):
        raise ValueError(f"{path} is a foreign HDF5 file, not a dctnet model (format attribute {fmt!r})")
    version = f.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)):
        raise ValueError(f"{path} has no valid format_version attribute (found {version!r})")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model file format version {int(version)}, written by a newer dctnet "
            f"(dctnet {_attr_str(f, 'dctnet_version', path, '?')}); this dctnet reads versions up to "
            f"{FORMAT_VERSION}: upgrade dctnet ($ pip install -U dctnet)"
        )
    metadata = _attr_json(f, "metadata", path)
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, found {type(metadata).__name__}")
    saved = {
        "architecture": _attr_json(f, "architecture", path),
        "metadata": metadata,
        "training": bool(f.attrs.get("training", False)),
        "state": _read_arrays(f, "state", path),
    }
    if with_optimizer and "optimizer" in f:
        saved["optimizer"] = (_attr_json(f["optimizer"], "config", path), _read_arrays(f["optimizer"], "state", path))
    return saved


def _attr_str(obj, name, path, default=None):
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise ValueError(f"{path}: attribute {name!r} must be a string, found {type(value).__name__}")
    return value


def _attr_json(obj, name, path):
    if name not in obj.attrs:
        raise ValueError(f"{path}: attribute {name!r} is missing")
    try:
        return json.loads(_attr_str(obj, name, path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: attribute {name!r} is not valid JSON: {exc}") from None


def _read_arrays(parent, name, path):
    """The datasets of group ``parent[name]`` as NumPy arrays, numeric dtypes only."""
    group = parent.get(name)
    if not isinstance(group, h5py.Group):
        raise ValueError(f"{path}: group {name!r} is missing")
    arrays = {}
    for key, item in group.items():
        if not isinstance(item, h5py.Dataset) or item.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(f"{path}: {name}/{key} is not a numeric dataset")
        arrays[key] = np.asarray(item[()])
    return arrays
