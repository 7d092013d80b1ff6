"""Array backends: NumPy on the CPU, CuPy on a GPU, chosen per call by the inputs.

Code is written once against ``xp = get_array_module(*arrays)``. CuPy is optional:
it is imported lazily, the first time it is needed, and probed with one tiny
allocation so that a CuPy without a working GPU counts as absent. The same
``xp`` picks the Numba kernels (:func:`kernel_module`) and keys the cache of
constant tables each device needs (:func:`device_constant`).

This is the bottom layer: it imports nothing else of dctnet. A ``dctnet.Tensor``
is recognised by duck typing (:func:`is_tensor`), not by importing the autograd.

>>> import numpy as np
>>> get_array_module(np.zeros(3)) is np
True
"""

from __future__ import annotations

import importlib
import os

import numpy as np

__all__ = [
    "get_array_module",
    "cupy_available",
    "default_backend",
    "to_device",
    "asnumpy",
    "is_cupy_array",
    "is_tensor",
    "kernel_module",
    "device_constant",
]

_BACKENDS = ("numpy", "cupy")
_cupy = None  # the module once probed successfully, False once probed and absent


def _probe_cupy():
    """Import CuPy and allocate once; return the module, or None if unusable."""
    global _cupy
    if _cupy is None:
        try:
            import cupy

            if not cupy.is_available():
                raise RuntimeError("no CUDA device")
            cupy.zeros(1).sum().item()  # one tiny allocation and kernel launch
            _cupy = cupy
        except Exception:  # ImportError, CUDA driver errors, ...
            _cupy = False
    return _cupy or None


def cupy_available() -> bool:
    """True when CuPy imports and can run a kernel on a GPU."""
    return _probe_cupy() is not None


def default_backend() -> str:
    """The backend new arrays go to: ``$DCTNET_BACKEND`` or ``"numpy"``."""
    name = os.environ.get("DCTNET_BACKEND", "numpy").strip().lower() or "numpy"
    if name not in _BACKENDS:
        raise ValueError(
            f"DCTNET_BACKEND must be one of {_BACKENDS}, found {name!r}; "
            "unset it or set DCTNET_BACKEND=numpy"
        )
    if name == "cupy" and not cupy_available():
        raise RuntimeError(
            "DCTNET_BACKEND=cupy but CuPy cannot use a GPU here; install the GPU "
            "extra ($ pip install 'dctnet[gpu]') on a machine with CUDA, "
            "or set DCTNET_BACKEND=numpy"
        )
    return name


def is_cupy_array(x) -> bool:
    """True for a ``cupy.ndarray`` (without importing CuPy when it is not loaded)."""
    return type(x).__module__.startswith("cupy")


def is_tensor(x) -> bool:
    """True for a ``dctnet.Tensor``, told by its ``_is_tensor`` class marker.

    The array layer (transform, kernels, the reader) sits below the autograd and
    must not import it; this lets it recognise a Tensor passed by mistake.
    """
    return getattr(x, "_is_tensor", False) is True


def get_array_module(*arrays):
    """The array module (``numpy`` or ``cupy``) of ``arrays``.

    Non-array arguments (Python scalars, None) are ignored. Mixing NumPy and CuPy
    arrays raises ``TypeError``: move them with :func:`to_device` first.
    """
    found_cupy = found_numpy = False
    for a in arrays:
        a = a.data if is_tensor(a) else a
        if is_cupy_array(a):
            found_cupy = True
        elif isinstance(a, (np.ndarray, np.generic)):
            found_numpy = True
    if found_cupy and found_numpy:
        raise TypeError(
            "expected arrays on one device, found both NumPy (CPU) and CuPy (GPU) "
            "arrays; move them to one device with dctnet.to_device(x, 'cpu'|'gpu')"
        )
    if found_cupy:
        return _probe_cupy() or __import__("cupy")
    return np


def to_device(x, device: str | None = None):
    """Copy ``x`` to ``device`` (``"cpu"``/``"numpy"`` or ``"gpu"``/``"cupy"``).

    With ``device=None`` the default backend (``$DCTNET_BACKEND``) is used. Arrays
    already on the device are returned unchanged (no copy).
    """
    device = default_backend() if device is None else device
    name = {"cpu": "numpy", "gpu": "cupy", "cuda": "cupy"}.get(device, device)
    if name not in _BACKENDS:
        raise ValueError(f"device must be 'cpu' or 'gpu', found {device!r}")
    if name == "numpy":
        return asnumpy(x)
    cp = _probe_cupy()
    if cp is None:
        raise RuntimeError(
            "cannot move data to the GPU: CuPy is not installed or no CUDA device "
            "works here; install the GPU extra with $ pip install 'dctnet[gpu]'"
        )
    return cp.asarray(x)


def asnumpy(x):
    """``x`` as a NumPy array (copying from the GPU when it is a CuPy array)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def kernel_module(name: str, xp):
    """The Numba kernel module ``dctnet.kernels.<name>`` for ``xp``: the CPU one for
    NumPy, its CUDA twin ``<name>_cuda`` for CuPy (imported on first use, so
    ``numba.cuda`` loads only when a GPU array asks for it).

    >>> kernel_module("blockdct", np).__name__
    'dctnet.kernels.blockdct'
    """
    return importlib.import_module(f"dctnet.kernels.{name}" + ("" if xp is np else "_cuda"))


_CONSTANTS: dict = {}


def device_constant(build, xp, *args):
    """``build(*args)``, a NumPy array, as an array of ``xp``: built and copied once.

    The one cache of the constant tables that kernels and layers need on each
    device (DCT matrices, permutations, the exploded-convolution basis), keyed
    by ``build``, the array module and ``args`` (hashable, e.g. a ``np.dtype``),
    so a GPU call does not copy the same table each time. The result is shared:
    the NumPy one is read-only, and nobody may write to a CuPy one.

    >>> eye = device_constant(np.eye, np, 3)
    >>> eye is device_constant(np.eye, np, 3), eye.flags.writeable
    (True, False)
    """
    key = (build, xp.__name__, args)
    table = _CONSTANTS.get(key)
    if table is None:
        table = np.array(build(*args))  # a private copy: the builder may return a shared array
        table.flags.writeable = False
        table = _CONSTANTS[key] = table if xp is np else xp.asarray(table)
    return table
