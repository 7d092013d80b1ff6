"""Reused NumPy buffers for the CPU engine's large arrays (a caching allocator).

A training step allocates the same few dozen activation-sized arrays every
time. Fresh from ``malloc``, each costs a page fault per 4 KiB on first touch:
glibc hands large blocks back to the kernel when they are freed, so every
step pays for zeroed pages again (measured: a quarter of a residual block's
time at batch 40 on this machine). :func:`empty` instead returns an array of
the requested shape that no one else holds any more, when the pool has one.

An array is free when the pool's own references are the only ones left:
CPython's reference count says so exactly, whatever views, Tensors or saved
contexts held it before. The pool keeps at most ``LIMIT_BYTES`` of free
arrays; beyond that the oldest free ones are dropped.

>>> import numpy as np
>>> a = empty((2, 3), np.float32)
>>> address = a.ctypes.data
>>> del a
>>> empty((2, 3), np.float32).ctypes.data == address  # the same memory, reused
True
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

__all__ = ["empty", "zeros", "clear", "LIMIT_BYTES"]

# Bytes of arrays the pool may keep (free or in use).
LIMIT_BYTES = 1 << 30
# Arrays smaller than this come from NumPy directly (its own small-block cache
# serves them well).
SMALL_BYTES = 1 << 16

_pool: dict = {}  # (shape, dtype) -> [array, ...], oldest first
_lock = threading.Lock()
_held = 0  # bytes of all pooled arrays


def empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape`` and ``dtype``, reused when possible."""
    global _held
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # not np.prod: a tuple to an array costs microseconds
    if nbytes < SMALL_BYTES:
        return np.empty(shape, dtype)
    key = (shape, dtype)
    with _lock:
        arrays = _pool.setdefault(key, [])
        for a in arrays:
            if sys.getrefcount(a) == 3:  # the list, ``a`` and getrefcount's argument: no one else
                return a
        if _held + nbytes > LIMIT_BYTES:
            _evict(_held + nbytes - LIMIT_BYTES)
        a = np.empty(shape, dtype)
        if _held + nbytes <= LIMIT_BYTES:
            arrays.append(a)
            _held += nbytes
        return a


def zeros(shape, dtype) -> np.ndarray:
    """:func:`empty`, filled with zeros."""
    a = empty(shape, dtype)
    a[...] = 0
    return a


def _evict(nbytes):
    """Drop free pooled arrays, oldest first, until ``nbytes`` are released (lock held)."""
    global _held
    for key in list(_pool):
        arrays = _pool[key]
        i = 0
        while i < len(arrays) and nbytes > 0:
            if sys.getrefcount(arrays[i]) == 2:  # the list and getrefcount's argument
                nbytes -= arrays[i].nbytes
                _held -= arrays.pop(i).nbytes
            else:
                i += 1
        if not arrays:
            del _pool[key]
        if nbytes <= 0:
            return


def clear():
    """Forget every pooled array (those still in use stay valid; they are just not reused)."""
    global _held
    with _lock:
        _pool.clear()
        _held = 0
