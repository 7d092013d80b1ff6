"""The Numba kernels of the blockwise DCT against the NumPy/scipy reference.

CPU kernels run in every process; the CUDA kernels (marker ``cudasim``) run in a
process of their own under NUMBA_ENABLE_CUDASIM=1, on a few blocks.
"""

import numpy as np
import pytest

from dctnet.transform import _constants
from naive import dct_ref, idct_ref


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_cpu_kernel_matches_reference(rng, dtype, tol):
    from dctnet.kernels import blockdct

    x = rng.normal(size=(3, 16, 24)).astype(dtype)
    out = np.empty((3, 2, 3, 64), dtype=dtype)
    blockdct.fdct(x, out, *_constants(np, dtype))
    np.testing.assert_allclose(out, dct_ref(x), atol=tol * 10)
    back = np.empty_like(x)
    blockdct.idct(out, back, *_constants(np, dtype))
    np.testing.assert_allclose(back, idct_ref(out), atol=tol * 10)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_cuda_kernel_matches_reference(rng, dtype, tol):
    from numba import cuda

    from dctnet.kernels import blockdct_cuda

    x = rng.normal(size=(2, 8, 16)).astype(dtype)  # 4 blocks: the simulator is slow
    d, izz = (cuda.to_device(a) for a in _constants(np, dtype))
    xd = cuda.to_device(x)
    out = cuda.device_array((2, 1, 2, 64), dtype=dtype)
    blockdct_cuda.fdct(xd, out, d, izz)
    coef = out.copy_to_host()
    np.testing.assert_allclose(coef, dct_ref(x), atol=tol * 10)
    back = cuda.device_array(x.shape, dtype=dtype)
    blockdct_cuda.idct(out, back, d, izz)
    np.testing.assert_allclose(back.copy_to_host(), x, atol=tol * 10)


@pytest.mark.cudasim
def test_cuda_and_cpu_kernels_agree_on_an_odd_grid(rng):
    """More blocks than one thread block's width, so the bounds guard is exercised."""
    from numba import cuda

    from dctnet.kernels import blockdct, blockdct_cuda

    blockdct_cuda.THREADS, saved = 4, blockdct_cuda.THREADS
    try:
        x = rng.normal(size=(1, 8, 40))  # 5 blocks over 2 CUDA blocks of 4 threads
        d, izz = _constants(np, np.float64)
        cpu = np.empty((1, 1, 5, 64))
        blockdct.fdct(x, cpu, d, izz)
        gpu = cuda.device_array((1, 1, 5, 64))
        blockdct_cuda.fdct(cuda.to_device(x), gpu, cuda.to_device(d), cuda.to_device(izz))
        np.testing.assert_allclose(gpu.copy_to_host(), cpu, atol=1e-12)
    finally:
        blockdct_cuda.THREADS = saved
