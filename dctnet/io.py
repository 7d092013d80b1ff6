"""Model files: architecture, weights and optional optimizer state in HDF5.

A file holds, at its root, the attributes ``format`` (``"dctnet-model"``),
``format_version``, ``dctnet_version``, ``architecture`` (JSON of
``model.config()``), ``metadata`` (JSON), ``checksums`` (JSON: the SHA-256 of
each JSON attribute and array, by path) and ``training``; the group ``state/``
with one dataset per ``model.state_dict()`` entry, named by its dotted path and
kept in order; and, for checkpoints, the group ``optimizer/`` with a JSON
``config`` attribute and its buffers in ``optimizer/state/``.

Nothing is ever pickled: loading reads JSON strings and numeric arrays only, and
rebuilds modules and optimizers through registries (``nn.MODULES``: dctnet's
layers by bare name, other classes by qualified name), so a file cannot run
code. Loading checks before it reads or allocates any weight: the architecture
is built from placeholders (``nn.deferred_init``: no allocation, no random
draws) and every stored dataset must have the name, shape and a compatible
dtype of the model's entry (float32/float64 for floating-point weights, as
stored; integer buffers cast only where lossless); the weights must be
finite, and the checksums written by ``save`` (SHA-256 of every array and
JSON attribute; older files have none) must match. Anything else raises ``ValueError`` naming the
file and the entry (docs/design.md §8).
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

import hashlib
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
        # HDF5 does not checksum everything (attribute text, some chunk indexes): SHA-256 of each part.
        checksums = {"architecture": _sha256(architecture.encode()),  # json.dumps writes ASCII
                     "metadata": _sha256(metadata_json.encode())}
        checksums.update(_write_arrays(f.create_group("state", track_order=True), state, "state"))
        if opt_state is not None:
            group = f.create_group("optimizer")
            group.attrs["config"] = opt_config
            checksums["optimizer/config"] = _sha256(opt_config.encode())
            checksums.update(_write_arrays(group.create_group("state", track_order=True), opt_state["state"],
                                           "optimizer/state"))
        f.attrs["checksums"] = json.dumps(checksums)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_sha256(array) -> str:
    """The digest of an array's dtype, shape and C-order bytes."""
    header = f"{array.dtype.str}{array.shape}".encode()
    return _sha256(header + np.ascontiguousarray(array).tobytes())


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


def _write_arrays(group, arrays, where):
    """Write ``arrays`` into ``group``; returns ``{"<where>/<name>": SHA-256}``."""
    digests = {}
    for name, array in arrays.items():
        if not name or "/" in name or name == ".":
            raise ValueError(f"cannot store an array named {name!r}: names must be non-empty without '/'")
        array = asnumpy(array.data if getattr(array, "_is_tensor", False) else array)
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"cannot store {name!r} of dtype {array.dtype}: only numeric arrays are saved")
        group.create_dataset(name, data=array)
        digests[f"{where}/{name}"] = _array_sha256(array)
    return digests


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
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as exc:  # h5py's errors for missing or damaged contents
        raise ValueError(f"{unreadable}: {exc}") from None
    with f:
        try:
            saved = _read_header(f, path, with_optimizer)
            # The architecture is built from placeholders and checked against the stored shapes and
            # dtypes before any weight is read or allocated, and without drawing random numbers.
            model = _build(saved["architecture"], path)
            names = _check_state(model.state_dict(), saved["state"], path)
            digests = saved["digests"]  # verified once the contents made sense, so that errors say what is wrong
            state = {name: _read_dataset(dataset, names[name], digests, f"state/{name}", path)
                     for name, dataset in saved["state"].items()}
            _verify(saved["checksums"], digests, path)
            _check_finite(state, path)
            optimizer_saved = None
            if saved.get("optimizer") is not None:
                config, datasets = saved["optimizer"]
                _check_optimizer_size(datasets, state, path)
                optimizer_saved = config, {name: _read_dataset(d, None, digests, f"optimizer/state/{name}", path)
                                           for name, d in datasets.items()}
        except RecursionError:  # a RuntimeError, but not h5py's: the cases above name their own
            raise
        except (OSError, RuntimeError) as exc:  # h5py's errors for damaged contents
            raise ValueError(f"{unreadable}: {exc}") from None
    # Everything below works on plain JSON and arrays, with the file closed.
    from . import optim  # lazily: optim is not needed for inference

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
    if optimizer_saved is not None:
        opt_config, opt_state = optimizer_saved
        try:
            optimizer = optim.from_config(opt_config, model.parameters())
            optimizer.load_state_dict({"config": opt_config, "state": opt_state})
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: cannot restore the optimizer: {exc}") from None
        _verify(saved["checksums"], digests, path, "optimizer/")
    return model, optimizer, saved["metadata"]


def _verify(checksums, digests, path, prefix=""):
    """ValueError unless every digest under ``prefix`` matches the file's checksum (files before issue 19 have none)."""
    if checksums is None:
        return
    for key, digest in digests.items():
        if key.startswith(prefix) and (prefix or not key.startswith("optimizer/")) and checksums.get(key) != digest:
            raise ValueError(f"{path}: {key} does not match its checksum: the file is damaged (or was edited by hand)")


def _build(architecture, path):
    """The module of ``architecture`` with placeholder weights (``nn.deferred_init``)."""
    from . import nn  # lazily: nn imports much of dctnet
    from .conversion import set_evaluation  # the evaluation convert chooses (docs/design.md §4)

    try:
        with nn.deferred_init():
            return set_evaluation(nn.from_config(architecture), "auto")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: cannot rebuild the architecture: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path}: the architecture nests modules too deeply to rebuild") from None


def _check_state(expected, stored, path):
    """Names, shapes and dtypes of the stored datasets against the model's; returns name -> dtype to read as."""
    missing = [name for name in expected if name not in stored]
    unexpected = [name for name in stored if name not in expected]
    if missing or unexpected:
        raise ValueError(f"{path}: saved weights do not fit the architecture "
                         f"(missing {missing}, unexpected {unexpected})")
    dtypes = {}
    for name, dataset in stored.items():
        needed = expected[name]
        if dataset.shape != tuple(needed.shape):
            raise ValueError(
                f"{path}: weight {name!r} has shape {dataset.shape}, the architecture needs {tuple(needed.shape)}"
            )
        dtypes[name] = _load_dtype(name, dataset.dtype, np.dtype(needed.dtype), path)
    floats = {}
    for name, dtype in dtypes.items():
        if dtype.kind == "f":
            floats.setdefault(dtype, name)
    if len(floats) > 1:  # layers need one floating dtype: a lone float64 weight would fail at the first forward
        found = ", ".join(f"{dtype.name} ({name!r}, ...)" for dtype, name in floats.items())
        raise ValueError(f"{path}: the floating-point weights mix dtypes {found}; a model has one "
                         "(dctnet.save writes them so): the file is damaged or was not written by dctnet.save")
    return dtypes


def _load_dtype(name, found, needed, path):
    """The dtype a stored array is loaded as: float32/float64 as stored where the model has floats
    (a model saved after ``astype``), integers cast to the model's integer dtype where lossless."""
    if needed.kind == "f":
        if found in (np.float32, np.float64):
            return found
        raise ValueError(f"{path}: weight {name!r} has dtype {found.name}, the model needs floating point "
                         f"(float32 or float64; it has {needed.name}); the file is damaged or was not written "
                         "by dctnet.save")
    if found.kind in "iu" and needed.kind in "iu" and np.can_cast(found, needed, "safe"):
        return needed
    if found == needed:
        return needed
    raise ValueError(f"{path}: buffer {name!r} has dtype {found.name}, the model needs {needed.name} "
                     "(only a lossless integer cast is made); the file is damaged or was not written by dctnet.save")


def _check_optimizer_size(datasets, state, path):
    """Optimizer buffers are a few per parameter: refuse declared sizes beyond that before reading them."""
    weights = sum(a.size for a in state.values())
    declared = sum(int(np.prod(d.shape, dtype=np.float64)) for d in datasets.values())
    if declared > 4 * weights + 64 * len(datasets):
        raise ValueError(f"{path}: the optimizer state declares {declared} values for a model of {weights}; "
                         "the file is damaged")


def _check_finite(state, path):
    """A NaN or inf weight would make every output NaN: refuse the file, naming the entry."""
    for name, array in state.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            count = int((~np.isfinite(array)).sum())
            raise ValueError(f"{path}: weight {name!r} holds {count} NaN or infinite value(s); the model diverged "
                             "when it was trained (or the file is damaged): load an earlier checkpoint")


def _read_dataset(dataset, dtype, digests, key, path):
    """The dataset as an array of ``dtype`` (None: as stored); its digest goes to ``digests[key]``."""
    try:
        array = np.asarray(dataset[()])
    except MemoryError:
        raise ValueError(f"{path}: {dataset.name} declares {dataset.size} values, more than this machine "
                         "can allocate") from None
    digests[key] = _array_sha256(array)
    return array if dtype is None else array.astype(dtype, copy=False)


def _read_header(f, path, with_optimizer):
    """The file's JSON attributes and its datasets (unread), after checking its format."""
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
    checksums = _attr_json(f, "checksums", path) if "checksums" in f.attrs else None  # files since issue 19
    if checksums is not None and not isinstance(checksums, dict):
        raise ValueError(f"{path}: attribute 'checksums' must be a JSON object, found {type(checksums).__name__}")
    digests = {}
    metadata = _attr_json(f, "metadata", path, digests)
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: metadata must be a JSON object, found {type(metadata).__name__}")
    saved = {
        "architecture": _attr_json(f, "architecture", path, digests),
        "metadata": metadata,
        "training": bool(f.attrs.get("training", False)),
        "state": _datasets(f, "state", path),
    }
    if with_optimizer and "optimizer" in f:
        saved["optimizer"] = (_attr_json(f["optimizer"], "config", path, digests, "optimizer/config"),
                              _datasets(f["optimizer"], "state", path))
    saved["checksums"], saved["digests"] = checksums, digests
    return saved


def _attr_str(obj, name, path, default=None):
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise ValueError(f"{path}: attribute {name!r} must be a string, found {type(value).__name__}")
    return value


def _attr_json(obj, name, path, digests=None, key=None):
    """Attribute ``name`` parsed as JSON; its text's SHA-256 goes to ``digests[key]`` (default key: ``name``)."""
    if name not in obj.attrs:
        raise ValueError(f"{path}: attribute {name!r} is missing")
    text = _attr_str(obj, name, path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: attribute {name!r} is not valid JSON: {exc}") from None
    except RecursionError:  # valid JSON, but nested deeper than Python's parser recurses
        raise ValueError(f"{path}: attribute {name!r} is JSON nested too deeply to read "
                         "(thousands of levels); the file is damaged or was not written by dctnet") from None
    if digests is not None:
        digests[name if key is None else key] = _sha256(text.encode("utf-8", "surrogateescape"))
    return value


def _datasets(parent, name, path):
    """The datasets of group ``parent[name]`` by name, unread; numeric dtypes only."""
    group = parent.get(name)
    if not isinstance(group, h5py.Group):
        raise ValueError(f"{path}: group {name!r} is missing")
    datasets = {}
    for key, item in group.items():
        if not isinstance(item, h5py.Dataset) or item.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(f"{path}: {name}/{key} is not a numeric dataset")
        datasets[key] = item
    return datasets
