"""ASM and APX ReLU against a plain per-block reference, on every path."""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, gradcheck
from dctnet.functional.dct_activation import apx_relu, asm_relu, dct_relu
from naive import dct_ref, idct_ref

COUNTS = [1, 3, 6, 10, 15, 21, 28, 36, 43, 49, 54, 58, 61, 63, 64]


def reference(x, n, method):
    """Per block, with scipy's IDCT/DCT: the definition in docs/design.md §3."""
    k = COUNTS[n - 1]
    trunc = np.array(x, dtype=np.float64)
    trunc[..., k:] = 0
    approx = idct_ref(trunc[..., None, None, :])[..., :, :]  # (..., 8, 8)
    exact = idct_ref(np.asarray(x, np.float64)[..., None, None, :])
    pix = approx if method == "apx" else exact
    return dct_ref(pix * (approx > 0))[..., 0, 0, :]


@pytest.fixture
def coefs(rng):
    return dctnet.to_dct(rng.normal(size=(2, 3, 16, 8)))  # (2, 3, 2, 1, 64)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("method", ["asm", "apx"])
@pytest.mark.parametrize("n", range(1, 16))
def test_matches_reference_for_every_n(coefs, impl, method, n):
    out = dct_relu(coefs, n, method, impl)
    np.testing.assert_allclose(out, reference(coefs, n, method), atol=1e-12)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_exact_at_15(coefs, impl):
    exact = dctnet.to_dct(np.maximum(dctnet.from_dct(coefs), 0))
    np.testing.assert_allclose(asm_relu(coefs, 15, impl), exact, atol=1e-12)
    np.testing.assert_allclose(apx_relu(coefs, 15, impl), exact, atol=1e-12)


def test_float32_paths_agree(coefs):
    x = coefs.astype(np.float32)
    for n in (1, 6, 15):
        a = asm_relu(x, n, "numba")
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, asm_relu(x, n, "numpy"), atol=1e-4)
        np.testing.assert_allclose(a, reference(x, n, "asm"), atol=1e-4)


@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("method, n", [("asm", 15), ("asm", 4), ("apx", 4), ("apx", 15)])
def test_gradcheck(rng, impl, method, n):
    # Away from the kinks: a random direction almost never flips a mask pixel
    # with eps = 1e-6, and the mask is a constant of the backward pass.
    x = Tensor(dctnet.to_dct(rng.normal(size=(2, 8, 16))), requires_grad=True)
    assert gradcheck(lambda t: dct_relu(t, n, method, impl), [x])


def test_backward_is_masked_transform(coefs):
    x = Tensor(coefs, requires_grad=True)
    g = np.random.default_rng(1).normal(size=coefs.shape)
    asm_relu(x, 6).backward(g)
    k = COUNTS[5]
    trunc = coefs.copy()
    trunc[..., k:] = 0
    mask = idct_ref(trunc[..., None, None, :]) > 0
    expected = dct_ref(idct_ref(g[..., None, None, :]) * mask)[..., 0, 0, :]
    np.testing.assert_allclose(x.grad, expected, atol=1e-12)


def test_asm_is_below_apx_on_box_upscaled_blocks(rng):
    """Figure 4a in miniature: 4x4 uniform blocks box-upscaled to 8x8."""
    small = rng.uniform(-1, 1, size=(2000, 4, 4))
    blocks = small.repeat(2, axis=1).repeat(2, axis=2)
    x = dctnet.to_dct(blocks)[:, 0, 0, :]
    exact = dctnet.to_dct(np.maximum(blocks, 0))[:, 0, 0, :]
    for n in range(1, 15):
        rmse = {m: np.sqrt(((f(x, n) - exact) ** 2).mean(axis=-1) / 1).mean()
                for m, f in (("asm", asm_relu), ("apx", apx_relu))}
        assert rmse["asm"] < rmse["apx"], (n, rmse)
    assert np.abs(asm_relu(x, 15) - exact).max() < 1e-12


def test_bad_arguments(coefs):
    with pytest.raises(ValueError, match="1..15"):
        asm_relu(coefs, 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 64\)"):
        asm_relu(np.zeros((3, 63)), 15)
    with pytest.raises(ValueError, match="'asm' or 'apx'"):
        dct_relu(coefs, 15, "gelu")
    with pytest.raises(TypeError, match="float32 or float64"):
        asm_relu(np.zeros((2, 64), dtype=np.int32), 15)


@pytest.mark.cudasim
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("n", [1, 6, 15])
def test_cuda_kernel_matches_cpu(rng, n, dtype, atol):
    """The CUDA kernel, with scratch arrays of the input's dtype, equals the CPU kernel."""
    from numba import cuda

    from dctnet.kernels import asm, asm_cuda
    from dctnet.transform import kernel_constants

    x = rng.normal(size=(3, 64)).astype(dtype)  # three blocks: the simulator runs ~0.1 s a block
    d, izz = kernel_constants(np, dtype)
    k = COUNTS[n - 1]
    for k_val, k_out in ((64, 64), (k, 64)):  # ASM and APX forward
        cpu, cmask = np.empty_like(x), np.empty(x.shape, np.uint8)
        asm.masked(x, cpu, cmask, d, izz, k_val, k, k_out)
        gpu, gmask = cuda.device_array(x.shape, dtype), cuda.device_array(x.shape, np.uint8)
        asm_cuda.masked(cuda.to_device(x), gpu, gmask, cuda.to_device(d), cuda.to_device(izz), k_val, k, k_out)
        assert gpu.dtype == dtype
        np.testing.assert_allclose(gpu.copy_to_host(), cpu, atol=atol)
        np.testing.assert_array_equal(gmask.copy_to_host(), cmask)
    back = cuda.device_array(x.shape, dtype)  # backward reads the stored mask
    asm_cuda.masked(cuda.to_device(x), back, cuda.to_device(cmask), cuda.to_device(d), cuda.to_device(izz), 64, 0, k)
    cpu = np.empty_like(x)
    asm.masked(x, cpu, cmask, d, izz, 64, 0, k)
    np.testing.assert_allclose(back.copy_to_host(), cpu, atol=atol)


@pytest.mark.cudasim
def test_cuda_kernel_refuses_other_dtypes():
    from numba import cuda

    from dctnet.kernels import asm_cuda
    from dctnet.transform import kernel_constants

    x = np.zeros((1, 64), np.float16)
    d, izz = kernel_constants(np, np.float32)
    with pytest.raises(TypeError, match="float32 or float64, found dtype float16"):
        asm_cuda.masked(cuda.to_device(x), cuda.to_device(x), cuda.to_device(np.zeros((1, 64), np.uint8)), d, izz, 64, 64, 64)


@pytest.mark.parametrize("method", ["asm", "apx"])
def test_no_grad_relu_equals_recorded(method):
    """The mask-free inference path equals the recorded one (moved from tests/test_layer_transforms.py)."""
    x = dctnet.to_dct(np.random.default_rng(1).normal(size=(3, 2, 16, 16)))
    t = dctnet.Tensor(x, requires_grad=True)
    recorded = dct_relu(t, 15, method).data
    with dctnet.no_grad():
        fast = dct_relu(dctnet.Tensor(x, requires_grad=True), 15, method).data
    np.testing.assert_array_equal(fast, recorded)
    exact = dctnet.to_dct(np.maximum(dctnet.from_dct(x), 0))
    np.testing.assert_allclose(asm_relu(x, 15, "auto"), exact, atol=1e-10)
