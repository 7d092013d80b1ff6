"""Argument checks shared by the functional ops."""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor


def shape_of(a):
    """The shape of a Tensor or array (for validation before ``Function.apply``)."""
    return tuple((a.data if isinstance(a, Tensor) else a).shape)


def dtype_of(a):
    return (a.data if isinstance(a, Tensor) else a).dtype


def pair(value, name):
    """An int or a pair of ints as a pair of Python ints."""
    v = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(v) != 2 or not all(isinstance(i, (int, np.integer)) for i in v):
        raise ValueError(f"{name} must be an int or a pair of ints, found {value!r}")
    return int(v[0]), int(v[1])


def check_float(op, **arrays):
    """All given (non-None) operands share one floating dtype; no silent up-casting.

    Mixing float32 activations with float64 parameters would either up-cast the
    whole network or lose precision, so it is refused as in PyTorch.
    """
    dtypes = {name: np.dtype(dtype_of(a)) for name, a in arrays.items() if a is not None}
    for name, dt in dtypes.items():
        if dt.kind != "f":
            raise TypeError(f"{op} expects floating-point {name}, found dtype {dt}; cast it with .astype(np.float32)")
    if len(set(dtypes.values())) > 1:
        found = ", ".join(f"{name} {dt}" for name, dt in dtypes.items())
        raise TypeError(f"{op} expects operands of one floating dtype, found {found}; cast them to the same dtype")
