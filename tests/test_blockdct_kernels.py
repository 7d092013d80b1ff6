"""The Numba kernels of the blockwise DCT against the NumPy/scipy reference.

CPU kernels run in every process; the CUDA kernels (marker ``cudasim``) run in a
process of their own under NUMBA_ENABLE_CUDASIM=1, on a few blocks.
"""

import numba
import numpy as np
import pytest

from dctnet.transform import kernel_constants
from naive import dct_ref, idct_ref

COUNTS = [1, 3, 6, 10, 15, 21, 28, 36, 43, 49, 54, 58, 61, 63, 64]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_cpu_kernel_matches_reference(rng, dtype, tol):
    from dctnet.kernels import blockdct

    x = rng.normal(size=(3, 16, 24)).astype(dtype)
    out = np.empty((3, 2, 3, 64), dtype=dtype)
    blockdct.fdct(x, out, *kernel_constants(np, dtype))
    np.testing.assert_allclose(out, dct_ref(x), atol=tol * 10)
    back = np.empty_like(x)
    blockdct.idct(out, back, *kernel_constants(np, dtype))
    np.testing.assert_allclose(back, idct_ref(out), atol=tol * 10)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
@pytest.mark.parametrize("k", COUNTS)
def test_block_routines_truncate_to_k(rng, dtype, tol, k):
    """The one 8x8 transform pair: fdct_block keeps the first k zigzag outputs,
    idct_block reads only the first k inputs (ASM/APX rely on both)."""
    from dctnet.kernels import blockdct

    d, izz = kernel_constants(np, dtype)
    tmp = np.empty((8, 8), dtype)
    pix = rng.normal(size=(8, 8)).astype(dtype)
    coef = np.full(64, np.nan, dtype)
    blockdct.fdct_block_cpu(pix[None], 0, 0, 0, coef[None], 0, k, d, izz, tmp)
    want = dct_ref(pix.astype(np.float64))[0, 0]
    want[k:] = 0
    np.testing.assert_allclose(coef, want, atol=tol * 10)
    src = want.astype(dtype)
    src[k:] = np.nan  # never read
    back = np.empty((8, 8), dtype)
    blockdct.idct_block_cpu(src[None], 0, back[None], 0, 0, 0, k, d, izz, tmp)
    np.testing.assert_allclose(back, idct_ref(want[None, None]), atol=tol * 10)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_cuda_kernel_matches_reference(rng, dtype, tol):
    from numba import cuda

    from dctnet.kernels import blockdct_cuda

    x = rng.normal(size=(2, 8, 16)).astype(dtype)  # 4 blocks: the simulator is slow
    d, izz = (cuda.to_device(a) for a in kernel_constants(np, dtype))
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
        d, izz = kernel_constants(np, np.float64)
        cpu = np.empty((1, 1, 5, 64))
        blockdct.fdct(x, cpu, d, izz)
        gpu = cuda.device_array((1, 1, 5, 64))
        blockdct_cuda.fdct(cuda.to_device(x), gpu, cuda.to_device(d), cuda.to_device(izz))
        np.testing.assert_allclose(gpu.copy_to_host(), cpu, atol=1e-12)
    finally:
        blockdct_cuda.THREADS = saved


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_cuda_kernels_follow_the_input_dtype(rng, dtype, atol):
    """Scratch arrays of the input's dtype (one compiled kernel per dtype): float32
    equals the CPU kernel within float32 rounding, float64 tightly."""
    from numba import cuda

    from dctnet.kernels import blockdct, blockdct_cuda

    assert blockdct_cuda.per_dtype(lambda scalar: scalar) == {
        np.dtype(np.float32): numba.float32,
        np.dtype(np.float64): numba.float64,
    }
    x = rng.normal(size=(2, 8, 16)).astype(dtype) * 50
    d, izz = kernel_constants(np, dtype)
    cpu = np.empty((2, 1, 2, 64), dtype)
    blockdct.fdct(x, cpu, d, izz)
    gpu = cuda.device_array(cpu.shape, dtype)
    blockdct_cuda.fdct(cuda.to_device(x), gpu, cuda.to_device(d), cuda.to_device(izz))
    np.testing.assert_allclose(gpu.copy_to_host(), cpu, rtol=0, atol=atol * 50)
    back_cpu = np.empty_like(x)
    blockdct.idct(cpu, back_cpu, d, izz)
    back = cuda.device_array(x.shape, dtype)
    blockdct_cuda.idct(cuda.to_device(cpu), back, cuda.to_device(d), cuda.to_device(izz))
    np.testing.assert_allclose(back.copy_to_host(), back_cpu, rtol=0, atol=atol * 50)


@pytest.mark.cudasim
def test_cuda_kernels_refuse_other_dtypes():
    from numba import cuda

    from dctnet.kernels import blockdct_cuda

    d, izz = kernel_constants(np, np.float32)
    x = cuda.to_device(np.zeros((1, 8, 8), np.int32))
    with pytest.raises(TypeError, match="fdct input must be float32 or float64, found dtype int32"):
        blockdct_cuda.fdct(x, cuda.device_array((1, 1, 1, 64), np.int32), d, izz)
