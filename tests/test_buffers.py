"""dctnet.buffers: arrays are reused only when no one holds them any more."""

import numpy as np
import pytest

from dctnet import Tensor, buffers


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch):
    buffers.clear()
    yield
    buffers.clear()


def address(a):
    return a.__array_interface__["data"][0]


def test_reused_only_when_free():
    a = buffers.empty((64, 1024), np.float32)
    where = address(a)
    view, held = a[3:], Tensor(a)
    del a
    b = buffers.empty((64, 1024), np.float32)
    assert address(b) != where  # a view and a Tensor still hold the first one
    del view
    assert address(buffers.empty((64, 1024), np.float32)) != where
    del held
    c = buffers.empty((64, 1024), np.float32)
    assert address(c) == where and c.shape == (64, 1024) and c.dtype == np.float32
    assert address(buffers.empty((64, 1024), np.float64)) != where  # another dtype, another array


def test_zeros_and_small_arrays():
    z = buffers.zeros((128, 256), np.float64)
    assert not z.any()
    small = buffers.empty((3,), np.float32)  # plain NumPy, never pooled
    assert small.shape == (3,) and all(key[0] != (3,) for key in buffers._pool)


def test_limit_evicts_free_arrays(monkeypatch):
    monkeypatch.setattr(buffers, "LIMIT_BYTES", 3 * 4 * 65536)
    kept = [buffers.empty((65536,), np.float32) for _ in range(3)]
    del kept[1:]
    big = buffers.empty((2 * 65536,), np.float32)  # needs room: the two free ones go
    assert buffers._held <= buffers.LIMIT_BYTES
    assert big.shape == (131072,) and kept[0].shape == (65536,)
