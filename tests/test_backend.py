import numpy as np
import pytest

import dctnet
from dctnet import backend


def test_numpy_is_the_default(monkeypatch):
    monkeypatch.delenv("DCTNET_BACKEND", raising=False)
    assert backend.default_backend() == "numpy"
    assert backend.get_array_module(np.zeros(2), 3.0, None) is np
    assert backend.get_array_module() is np


def test_bad_backend_name(monkeypatch):
    monkeypatch.setenv("DCTNET_BACKEND", "torch")
    with pytest.raises(ValueError, match="DCTNET_BACKEND"):
        backend.default_backend()


def test_to_device_cpu_roundtrip():
    x = np.arange(4.0)
    assert dctnet.to_device(x, "cpu") is x
    assert dctnet.asnumpy([1, 2]).tolist() == [1, 2]
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        dctnet.to_device(x, "tpu")


@pytest.mark.skipif(backend.cupy_available(), reason="checks the message shown without a GPU")
def test_gpu_request_without_cupy_is_clear(monkeypatch):
    with pytest.raises(RuntimeError, match=r"dctnet\[gpu\]"):
        dctnet.to_device(np.zeros(2), "gpu")
    monkeypatch.setenv("DCTNET_BACKEND", "cupy")
    with pytest.raises(RuntimeError, match="DCTNET_BACKEND=numpy"):
        backend.default_backend()


class FakeCupyArray:
    """Stands for a cupy.ndarray: backend recognises CuPy by the type's module."""


FakeCupyArray.__module__ = "cupy._core.core"


def test_mixed_numpy_and_cupy_raise_typeerror():
    with pytest.raises(TypeError, match="to_device"):
        backend.get_array_module(np.zeros(2), FakeCupyArray())


def test_is_tensor_needs_no_autograd_import():
    assert backend.is_tensor(dctnet.Tensor(np.zeros(2)))
    assert not backend.is_tensor(np.zeros(2)) and not backend.is_tensor(None)
    assert backend.get_array_module(dctnet.Tensor(np.zeros(2))) is np


def test_kernel_module_picks_the_cpu_kernels_for_numpy():
    from dctnet.kernels import asm, blockdct

    assert backend.kernel_module("blockdct", np) is blockdct
    assert backend.kernel_module("asm", np) is asm


def test_device_constant_is_built_once_per_module_and_args():
    calls = []

    def build(n, dtype):
        calls.append((n, dtype))
        return np.arange(n, dtype=dtype)

    a = backend.device_constant(build, np, 3, np.dtype(np.float32))
    assert a is backend.device_constant(build, np, 3, np.dtype(np.float32))
    b = backend.device_constant(build, np, 3, np.dtype(np.float64))
    assert calls == [(3, np.float32), (3, np.float64)]
    assert a.dtype == np.float32 and b.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1  # shared by every caller
    shared = np.zeros(2)
    kept = backend.device_constant(lambda: shared, np)
    shared[0] = 5  # the builder's own array is copied, so later writes to it do not leak in
    assert kept[0] == 0
