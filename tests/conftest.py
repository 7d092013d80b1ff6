"""Shared fixtures. CUDA-kernel tests (marker ``cudasim``) run only in a process
started with NUMBA_ENABLE_CUDASIM=1 (``make test`` starts one) or on a real GPU."""

import os
from pathlib import Path

import numpy as np
import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _cuda_works():
    if SIMULATED:
        return True
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda_works():
        return
    skip = pytest.mark.skip(reason="CUDA kernel test: runs under NUMBA_ENABLE_CUDASIM=1 (make test does) or on a GPU")
    for item in items:
        if "cudasim" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def data_dir():
    """The shared data folder from $DCTNET_DATA; tests that need it skip without it."""
    root = os.environ.get("DCTNET_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("set DCTNET_DATA to the data folder to run this test")
    return Path(root)
