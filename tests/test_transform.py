import numpy as np
import pytest

import dctnet
from naive import ZZ, dct_ref, idct_ref


def test_zigzag_is_the_jpeg_scan():
    assert dctnet.ZIGZAG.tolist()[:10] == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    np.testing.assert_array_equal(dctnet.ZIGZAG, ZZ)
    assert sorted(dctnet.ZIGZAG.tolist()) == list(range(64))
    diag = [(k // 8) + (k % 8) for k in dctnet.ZIGZAG]
    assert diag == sorted(diag)  # sorted by spatial frequency alpha+beta


def test_frequency_count_is_prefix_of_each_diagonal():
    diag = np.array([(k // 8) + (k % 8) for k in dctnet.ZIGZAG])
    for n in range(1, 16):
        assert dctnet.frequency_count(n) == int(np.sum(diag <= n - 1))
        assert dctnet.frequency_mask(n).sum() == dctnet.frequency_count(n)
    for bad in (0, 16, 2.5, "3", True):
        with pytest.raises(ValueError, match="1..15"):
            dctnet.frequency_count(bad)


def test_dct_matrix_is_orthonormal():
    d = dctnet.dct_matrix()
    np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-15)
    b = dctnet.block_dct_matrix()
    np.testing.assert_allclose(b @ b.T, np.eye(64), atol=1e-14)


@pytest.mark.parametrize("shape", [(8, 8), (16, 24), (2, 3, 32, 40), (1, 1, 1, 8, 64)])
def test_to_dct_matches_scipy_float64(rng, shape):
    x = rng.normal(size=shape) * 50
    c = dctnet.to_dct(x)
    assert c.dtype == np.float64
    assert c.shape == shape[:-2] + (shape[-2] // 8, shape[-1] // 8, 64)
    np.testing.assert_allclose(c, dct_ref(x), rtol=0, atol=1e-12 * 50)
    np.testing.assert_allclose(dctnet.from_dct(c), x, rtol=0, atol=1e-12 * 50)
    np.testing.assert_allclose(dctnet.from_dct(dct_ref(x)), idct_ref(dct_ref(x)), atol=1e-12 * 50)


def test_to_dct_float32_keeps_dtype(rng):
    x = rng.uniform(0, 255, size=(4, 3, 32, 32)).astype(np.float32)
    c = dctnet.to_dct(x)
    assert c.dtype == np.float32
    np.testing.assert_allclose(c, dct_ref(x), rtol=0, atol=2e-4 * 255)
    y = dctnet.from_dct(c)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, rtol=0, atol=1e-4 * 255)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_transforms_equal_parallel(dtype):
    """serial=True (the JPEG-domain layers' drivers) computes exactly what the parallel ones do.

    Moved here from tests/test_layer_transforms.py, where it tested the layers' private wrappers.
    """
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 24)).astype(dtype)
    c = dctnet.to_dct(x)
    got = dctnet.to_dct(x, serial=True)
    assert got.dtype == dtype and got.shape == c.shape
    np.testing.assert_array_equal(got, c)
    np.testing.assert_array_equal(dctnet.from_dct(c, serial=True), dctnet.from_dct(c))


def test_kernel_constants_are_shared_and_read_only():
    d, izz = dctnet.transform.kernel_constants(np, np.float32)
    assert d.dtype == np.float32 and izz.dtype == np.int64
    np.testing.assert_array_equal(d, dctnet.dct_matrix(np.float32))
    np.testing.assert_array_equal(dctnet.ZIGZAG[izz], np.arange(64))  # izz inverts the zigzag scan
    again = dctnet.transform.kernel_constants(np, "float32")
    assert again[0] is d and again[1] is izz
    assert not d.flags.writeable and not izz.flags.writeable
    assert dctnet.transform.kernel_constants(np, np.float64)[0].dtype == np.float64


def test_transform_does_not_import_the_autograd():
    """The plain-array layer sits below the autograd (issue 15): no import of it, even inside a function."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(dctnet.transform))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and "autograd" in m}, imported


def test_dc_is_eight_times_block_mean_and_energy_is_kept(rng):
    x = rng.normal(size=(16, 16))
    c = dctnet.to_dct(x)
    np.testing.assert_allclose(c[..., 0], 8 * x.reshape(2, 8, 2, 8).mean(axis=(1, 3)), atol=1e-12)
    np.testing.assert_allclose((c**2).sum(), (x**2).sum(), rtol=1e-12)


def test_integer_input_becomes_float32():
    c = dctnet.to_dct(np.full((8, 8), 7, dtype=np.uint8))
    assert c.dtype == np.float32 and c[0, 0, 0] == 56


def test_noncontiguous_input(rng):
    x = rng.normal(size=(16, 32)).T  # Fortran-ordered view
    np.testing.assert_allclose(dctnet.to_dct(x), dct_ref(x), atol=1e-12)


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.zeros((8, 12)), ValueError, "pad_to_blocks"),
        (np.zeros(64), ValueError, r"\(\.\.\., H, W\)"),
        (np.zeros((8, 8), dtype=complex), TypeError, "real"),
        (np.array([["a"] * 8] * 8), TypeError, "numeric"),
        (dctnet.Tensor(np.zeros((8, 8))), TypeError, "found a dctnet.Tensor; pass its .data"),
    ],
)
def test_to_dct_rejects_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        dctnet.to_dct(bad)


def test_from_dct_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., BH, BW, 64\)"):
        dctnet.from_dct(np.zeros((2, 2, 63)))


def test_quality_50_luma_table_is_the_standard_one():
    natural = np.empty(64, dtype=int)
    natural[dctnet.ZIGZAG] = dctnet.quant_table(50, "luma")
    assert natural.reshape(8, 8)[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert natural.reshape(8, 8)[7].tolist() == [72, 92, 95, 98, 112, 100, 103, 99]
    chroma = np.empty(64, dtype=int)
    chroma[dctnet.ZIGZAG] = dctnet.quant_table(50, "chroma")
    assert chroma.reshape(8, 8)[0].tolist() == [17, 18, 24, 47, 99, 99, 99, 99]


def test_quality_scaling_follows_libjpeg():
    assert (dctnet.quant_table(100, "luma") == 1).all()
    # quality 75: scale 50 -> (16*50+50)//100 = 8 for the DC entry
    assert dctnet.quant_table(75, "luma")[0] == 8
    # quality 10: scale 500 -> 80; quality 1: clamped to 255
    assert dctnet.quant_table(10, "luma")[0] == 80
    assert dctnet.quant_table(1, "luma").max() == 255
    with pytest.raises(ValueError, match="1..100"):
        dctnet.quant_table(0)
    with pytest.raises(ValueError, match="luma"):
        dctnet.quant_table(50, "blue")


def test_quantize_dequantize(rng):
    q = dctnet.quant_table(50)
    c = rng.normal(scale=100, size=(3, 2, 64))
    qc = dctnet.quantize(c, q)
    assert qc.dtype == np.int32
    np.testing.assert_array_equal(qc, np.rint(c / q))
    np.testing.assert_array_equal(dctnet.dequantize(qc, q), (qc * q).astype(np.float32))
    with pytest.raises(ValueError, match=r"\(64,\)"):
        dctnet.quantize(c, q[:10])
    with pytest.raises(ValueError, match="positive"):
        dctnet.quantize(c, np.zeros(64))


def test_pad_to_blocks_replicates_edges():
    x = np.arange(9 * 10, dtype=float).reshape(9, 10)
    p = dctnet.pad_to_blocks(x)
    assert p.shape == (16, 16)
    np.testing.assert_array_equal(p[:9, :10], x)
    np.testing.assert_array_equal(p[12, :10], x[8])
    np.testing.assert_array_equal(p[:9, 15], x[:, 9])
    assert dctnet.pad_to_blocks(np.zeros((8, 8))).shape == (8, 8)


@pytest.mark.parametrize("qtable", [None, dctnet.quant_table(50, "luma")])
def test_jpeg_matrix_is_the_transform(rng, qtable):
    h, w = 16, 24
    x = rng.uniform(-128, 127, size=(h, w))
    j = dctnet.jpeg_matrix(h, w, qtable)
    q = np.ones(64) if qtable is None else qtable
    np.testing.assert_allclose(j @ x.ravel(), (dct_ref(x) / q).ravel(), atol=1e-10)
    jinv = dctnet.jpeg_matrix(h, w, qtable, inverse=True)
    np.testing.assert_allclose(jinv @ (j @ x.ravel()), x.ravel(), atol=1e-10)
    np.testing.assert_allclose(jinv @ j, np.eye(h * w), atol=1e-12)


def test_jpeg_matrix_refuses_big_or_ragged_images():
    with pytest.raises(ValueError, match="multiples of 8"):
        dctnet.jpeg_matrix(10, 8)
    with pytest.raises(ValueError, match="at most"):
        dctnet.jpeg_matrix(128, 128)
