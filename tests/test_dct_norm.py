"""DCT-domain batch norm equals spatial batch norm (NumPy reference) exactly."""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, gradcheck
from dctnet.functional.dct_norm import dct_batch_norm


def spatial_bn(x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    """PyTorch's BatchNorm2d, written out in NumPy on pixels (N, C, H, W)."""
    if training:
        mu = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        n = x.size / x.shape[1]
        rm[:] = (1 - momentum) * rm + momentum * mu
        rv[:] = (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mu, var = rm, rv
    s = (slice(None), None, None)
    return (x - mu[s]) / np.sqrt(var[s] + eps) * w[s] + b[s]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_equals_spatial_bn_in_both_modes(rng, dtype, tol):
    x = (rng.normal(size=(3, 2, 16, 8)) * 3 + 1.5).astype(dtype)
    w, b = rng.normal(size=2).astype(dtype), rng.normal(size=2).astype(dtype)
    rm_s, rv_s = np.zeros(2, dtype), np.ones(2, dtype)
    rm_d, rv_d = rm_s.copy(), rv_s.copy()
    for step in range(4):  # several training steps, then eval
        xs = x * (step + 1) - step
        ref = spatial_bn(xs.astype(np.float64), rm_s, rv_s, w, b, True)
        out = dct_batch_norm(dctnet.to_dct(xs), rm_d, rv_d, w, b, training=True).data
        assert out.dtype == dtype
        np.testing.assert_allclose(dctnet.from_dct(out), ref, atol=tol * 10)
        np.testing.assert_allclose(rm_d, rm_s, rtol=tol)
        np.testing.assert_allclose(rv_d, rv_s, rtol=tol)
    ref = spatial_bn(x.astype(np.float64), rm_s, rv_s, w, b, False)
    out = dct_batch_norm(dctnet.to_dct(x), rm_d, rv_d, w, b, training=False).data
    np.testing.assert_allclose(dctnet.from_dct(out), ref, atol=tol * 10)


def test_float32_statistics_do_not_cancel_for_large_means(rng):
    """Two passes (mean, then squares of the centred blocks): no E[x^2] - mean^2 cancellation in float32."""
    x = rng.normal(size=(8, 2, 32, 32)) + np.array([0.0, 100.0])[:, None, None]  # e.g. un-normalized pixels
    ref = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    rv = np.ones(2, np.float32)
    out = dct_batch_norm(dctnet.to_dct(x).astype(np.float32), None, rv, training=True).data
    assert np.abs(dctnet.from_dct(out.astype(np.float64)) - ref).max() < 5e-5  # one pass: 1.7e-3
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-6)  # one pass: 7e-5


def test_not_per_block_dc_zeroing(rng):
    """Centring removes the channel mean, not each block's mean."""
    x = rng.normal(size=(2, 1, 16, 16)) + np.array([0, 5])[:, None, None, None]
    out = dct_batch_norm(dctnet.to_dct(x), None, None, training=True).data
    assert np.abs(out[..., 0]).max() > 1  # block means survive
    np.testing.assert_allclose(out[..., 0].mean(), 0, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(rng, training):
    x = Tensor(dctnet.to_dct(rng.normal(size=(2, 3, 8, 16)) + 0.5), requires_grad=True)
    w = Tensor(rng.normal(size=3), requires_grad=True)
    b = Tensor(rng.normal(size=3), requires_grad=True)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2, size=3)

    def f(x, w, b):
        return dct_batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)

    assert gradcheck(f, [x, w, b])


def test_gradient_equals_spatial_gradient(rng):
    """Backprop through DCT-domain BN = IDCT-mapped backprop of spatial BN."""
    xp = rng.normal(size=(2, 2, 8, 8))
    g = rng.normal(size=xp.shape)
    x = Tensor(dctnet.to_dct(xp), requires_grad=True)
    dct_batch_norm(x, None, None, training=True).backward(dctnet.to_dct(g))
    # spatial gradient, by the textbook formula
    mu, sd = xp.mean(axis=(0, 2, 3), keepdims=True), np.sqrt(xp.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    xhat = (xp - mu) / sd
    dx = (g - g.mean(axis=(0, 2, 3), keepdims=True) - xhat * (g * xhat).mean(axis=(0, 2, 3), keepdims=True)) / sd
    np.testing.assert_allclose(dctnet.from_dct(x.grad), dx, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, BH, BW, 64\)"):
        dct_batch_norm(np.zeros((2, 3, 8, 8)), None, None, training=True)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        dct_batch_norm(np.zeros((2, 3, 1, 1, 64)), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="eval mode needs"):
        dct_batch_norm(np.zeros((2, 3, 1, 1, 64)), None, None, training=False)


def test_normalize_equals_pixel_normalization(rng):
    from dctnet.functional.dct_norm import dct_normalize

    x = rng.uniform(0, 255, size=(2, 3, 8, 16))
    mean, std = np.array([125.3, 123.0, 113.9]), np.array([63.0, 62.1, 66.7])
    y = dct_normalize(dctnet.to_dct(x), mean, std)
    ref = (x - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(dctnet.from_dct(y.data if hasattr(y, "data") else y), ref, atol=1e-12)
    t = Tensor(dctnet.to_dct(x), requires_grad=True)
    assert gradcheck(lambda t: dct_normalize(t, mean, std), [t])
    with pytest.raises(ValueError, match="std > 0"):
        dct_normalize(dctnet.to_dct(x), mean, [1.0, 0.0, 1.0])


def test_global_avg_pool_from_dc(rng):
    from dctnet.functional.dct_pool import dct_global_avg_pool

    x = rng.normal(size=(2, 3, 16, 8))
    np.testing.assert_allclose(dct_global_avg_pool(dctnet.to_dct(x)).data, x.mean(axis=(2, 3)), atol=1e-14)
    t = Tensor(dctnet.to_dct(x), requires_grad=True)
    assert gradcheck(dct_global_avg_pool, [t])
    with pytest.raises(ValueError, match=r"\(N, C, BH, BW, 64\)"):
        dct_global_avg_pool(x)
