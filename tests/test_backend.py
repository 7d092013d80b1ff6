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
