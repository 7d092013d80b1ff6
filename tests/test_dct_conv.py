"""JPEG-domain convolution equals IDCT -> spatial conv -> DCT, for every strategy."""

import numpy as np
import pytest
from scipy.signal import correlate

import dctnet
from dctnet import Tensor, gradcheck
from dctnet.functional.dct_conv import block_window, dct_conv2d, explode_kernel
from naive import dct_ref, idct_ref


def conv_ref(x, k, stride, padding):
    """Direct cross-correlation by scipy, (N, Cin, H, W) * (Cout, Cin, kh, kw)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.stack([
        np.stack([sum(correlate(xp[n, i], k[o, i], mode="valid") for i in range(x.shape[1]))
                  for o in range(k.shape[0])])
        for n in range(x.shape[0])
    ])
    return out[:, :, ::stride, ::stride]


CASES = [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 2, 1), (5, 1, 2), (7, 2, 3)]


@pytest.mark.parametrize("method", ["spatial", "dense"])
@pytest.mark.parametrize("k, stride, padding", CASES)
def test_equals_spatial_conv_float64(rng, method, k, stride, padding):
    x = rng.normal(size=(2, 3, 32, 16))
    w = rng.normal(size=(4, 3, k, k))
    b = rng.normal(size=4)
    ref = dct_ref(conv_ref(x, w, stride, padding) + b[:, None, None])
    y = dct_conv2d(dctnet.to_dct(x), w, b, stride, padding, method=method).data
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["spatial", "dense"])
def test_float32(rng, method):
    x = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    w = rng.normal(size=(5, 3, 3, 3)).astype(np.float32)
    y = dct_conv2d(dctnet.to_dct(x), w, None, 2, 1, method=method).data
    assert y.dtype == np.float32
    ref = dct_ref(conv_ref(x.astype(np.float64), w.astype(np.float64), 2, 1))
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_window_examples_from_design():
    assert block_window(3, 1, 1) == (-1, 1)
    assert block_window(3, 2, 1) == (-1, 1)
    assert block_window(1, 1, 0) == (0, 0)
    assert block_window(1, 2, 0) == (0, 1)  # the stride-2 shortcut reads two blocks
    assert block_window(7, 2, 3) == (-1, 2)


def test_exploded_map_is_paper_construction(rng):
    """W built by Eq. 12 literally: basis image in each window block, conv, DCT."""
    k = rng.normal(size=(1, 1, 3, 3))
    w = explode_kernel(k, 1, 1).data  # (64, 64, 3, 3)
    for wy in range(3):
        for wx in range(3):
            for kin in (0, 5, 37, 63):
                coef = np.zeros((3, 3, 64))
                coef[wy, wx, kin] = 1
                img = idct_ref(coef)  # 24x24 window, basis image in block (wy, wx)
                out = conv_ref(img[None, None], k, 1, 0)[0, 0]  # valid: 22x22
                blk = out[7:15, 7:15]  # output pixels of the centre block (offset p=1)
                np.testing.assert_allclose(w[:, kin, wy, wx], dct_ref(blk)[0, 0], atol=1e-12)


@pytest.mark.parametrize("method", ["spatial", "dense"])
@pytest.mark.parametrize("k, stride, padding", [(3, 1, 1), (3, 2, 1), (1, 2, 0)])
def test_gradcheck_input_weight_bias(rng, method, k, stride, padding):
    x = Tensor(dctnet.to_dct(rng.normal(size=(1, 2, 16, 16))), requires_grad=True)
    w = Tensor(rng.normal(size=(2, 2, k, k)), requires_grad=True)
    b = Tensor(rng.normal(size=2), requires_grad=True)
    assert gradcheck(lambda x, w, b: dct_conv2d(x, w, b, stride, padding, method=method), [x, w, b])


def test_strategies_agree_on_gradients(rng):
    x = dctnet.to_dct(rng.normal(size=(2, 3, 16, 16)))
    g = rng.normal(size=(2, 4, 1, 1, 64))
    grads = {}
    for method in ("spatial", "dense"):
        xt = Tensor(x, requires_grad=True)
        wt = Tensor(rng.normal(size=(4, 3, 3, 3)) if not grads else grads["w0"], requires_grad=True)
        grads.setdefault("w0", wt.data.copy())
        dct_conv2d(xt, wt, None, 2, 1, method=method).backward(g)
        grads[method] = (xt.grad, wt.grad)
    for a, b in zip(grads["spatial"], grads["dense"]):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_bad_arguments(rng):
    x = dctnet.to_dct(rng.normal(size=(1, 3, 16, 16)))
    with pytest.raises(ValueError, match="whole number of 8x8 blocks"):
        dct_conv2d(x, np.zeros((2, 3, 3, 3)), padding=0)
    with pytest.raises(ValueError, match=r"\(Cout, 3, kh, kw\)"):
        dct_conv2d(x, np.zeros((2, 4, 3, 3)), padding=1)
    with pytest.raises(ValueError, match=r"\(N, Cin, BH, BW, 64\)"):
        dct_conv2d(np.zeros((1, 3, 16, 16)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(ValueError, match="method"):
        dct_conv2d(x, np.zeros((2, 3, 3, 3)), padding=1, method="fft")
