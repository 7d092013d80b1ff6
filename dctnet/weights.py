"""Weights in and out as safetensors files: plain arrays, never pickle.

A safetensors file is a JSON header (names, dtypes, shapes) followed by the
raw bytes, so reading one runs no code. A PyTorch ``state_dict`` saved with
``safetensors.torch.save_file`` loads into the dctnet model of the same
architecture (:mod:`dctnet.models` keeps torchvision's names); ``.pt``/``.pth``
pickles are refused with the one line of torch that converts them.

>>> import os, tempfile, dctnet
>>> from dctnet import models
>>> path = os.path.join(tempfile.mkdtemp(), "r18.safetensors")
>>> save_safetensors(models.resnet18(num_classes=10), path)
>>> net = models.resnet18(num_classes=10)
>>> net.load_state_dict(load_safetensors(path))
>>> sorted(load_safetensors(path))[:2]
['bn1.bias', 'bn1.num_batches_tracked']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import safetensors.numpy

from .atomic import atomic_path
from .backend import asnumpy

__all__ = ["load_safetensors", "save_safetensors", "CONVERT_PICKLE"]

CONVERT_PICKLE = ("python -c \"import sys, torch, safetensors.torch; "
                  "safetensors.torch.save_file(torch.load(sys.argv[1], weights_only=True), sys.argv[2])\" "
                  "IN.pth OUT.safetensors")
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def _refuse_pickle(path, why):
    raise ValueError(
        f"{path} is a PyTorch pickle ({why}), which dctnet does not load (unpickling runs code from the file). "
        f"Convert it once with torch: safetensors.torch.save_file(torch.load(p, weights_only=True), out), e.g. "
        f"{CONVERT_PICKLE} (a checkpoint that nests the weights, e.g. under 'state_dict', needs that entry)")


def load_safetensors(path):
    """The arrays of a safetensors file, by name: a dict of NumPy arrays (copies, not views of the file).

    Raises FileNotFoundError for a missing file and ValueError, naming the
    file and the problem, for a pickle (with the conversion command), a
    truncated file or a bad header.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        _refuse_pickle(path, f"suffix {path.suffix}")
    size = path.stat().st_size
    if head[8:9] != b"{":  # a safetensors file is an 8-byte length, then its JSON header
        if head[:2] == b"PK":  # torch.save's zip archive
            _refuse_pickle(path, "zip archive")
        if head[:1] == b"\x80":  # a bare pickle: the PROTO opcode
            _refuse_pickle(path, "pickle protocol header")
        raise ValueError(f"{path} is not a safetensors file ({size} bytes): it does not start with an "
                         "8-byte header length and a JSON header")
    header = int.from_bytes(head[:8], "little")
    if header + 8 > size:
        raise ValueError(f"{path} is not a complete safetensors file: its header claims {header} bytes "
                         f"but the file has {size} (truncated?)")
    try:
        arrays = safetensors.numpy.load_file(path)
    except Exception as exc:  # the package's own SafetensorError and dtype errors
        raise ValueError(f"{path} is not a readable safetensors file: {exc} (truncated or corrupt? "
                         "bfloat16 files need converting to float32 first)") from None
    return {name: np.array(a) for name, a in arrays.items()}


def save_safetensors(model, path, metadata=None):
    """Write ``model``'s ``state_dict`` (or a dict of arrays) to ``path`` as safetensors, atomically.

    ``metadata``: optional ``{str: str}`` stored in the header (e.g. the
    architecture name). The file loads with :func:`load_safetensors` or
    ``safetensors.torch.load_file``.
    """
    state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    arrays = {}
    for name, value in state.items():
        array = np.array(asnumpy(value), order="C", copy=None)  # keeps 0-d arrays 0-d (ascontiguousarray would not)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"{name}: safetensors stores numbers, found dtype {array.dtype}")
        arrays[name] = array
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError(f"metadata must map str to str, found {json.dumps(metadata, default=repr)}")
    with atomic_path(path) as tmp:
        safetensors.numpy.save_file(arrays, tmp, metadata=metadata)
