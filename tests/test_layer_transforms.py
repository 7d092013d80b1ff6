"""The serial block-transform drivers used inside JPEG-domain layers, and the
mask-free inference path of the CPU ASM ReLU, agree with the public functions."""

import numpy as np
import pytest

import dctnet
from dctnet.functional.dct_activation import asm_relu, dct_relu
from dctnet.functional.dct_conv import _layer_dct, _layer_idct


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_transforms_match_to_from_dct(dtype):
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 24)).astype(dtype)
    c = dctnet.to_dct(x)
    got = _layer_dct(x)
    assert got.dtype == dtype and got.shape == c.shape
    np.testing.assert_array_equal(got, c)
    np.testing.assert_array_equal(_layer_idct(c), dctnet.from_dct(c))


@pytest.mark.parametrize("method", ["asm", "apx"])
def test_no_grad_relu_equals_recorded(method):
    x = dctnet.to_dct(np.random.default_rng(1).normal(size=(3, 2, 16, 16)))
    t = dctnet.Tensor(x, requires_grad=True)
    recorded = dct_relu(t, 15, method).data
    with dctnet.no_grad():
        fast = dct_relu(dctnet.Tensor(x, requires_grad=True), 15, method).data
    np.testing.assert_array_equal(fast, recorded)
    exact = dctnet.to_dct(np.maximum(dctnet.from_dct(x), 0))
    np.testing.assert_allclose(asm_relu(x, 15, "auto"), exact, atol=1e-10)
