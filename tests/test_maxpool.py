"""max_pool2d against a loop reference and PyTorch, gradcheck, and its exact JPEG-domain form."""

import numpy as np
import pytest

import dctnet
from dctnet import Tensor, gradcheck, nn
from dctnet import functional as F


def max_pool_loops(x, k, s, p):
    """Plain loops over windows; padded pixels are -inf."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), -np.inf)
    padded[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = padded[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].max(axis=(2, 3))
    return out


CASES = [((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0))]


@pytest.mark.parametrize("k,s,p", CASES)
def test_max_pool2d_matches_loops_and_gradcheck(rng, k, s, p):
    x = rng.normal(size=(2, 3, 9, 8))
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, p).data, max_pool_loops(x, k, s, p))
    assert F.max_pool2d(x.astype(np.float32), k, s, p).dtype == np.float32
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p), [Tensor(rng.normal(size=(1, 2, 7, 6)), requires_grad=True)])


def test_max_pool2d_gradient_goes_to_first_maximum_and_nan_propagates():
    x = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 0], [0, 0]])  # ties: the first in scan order, as PyTorch
    y = np.zeros((1, 1, 4, 4))
    y[0, 0, 3, 3] = np.nan
    out = F.max_pool2d(y, 2).data[0, 0]
    assert np.isnan(out[1, 1]) and not np.isnan(out[:1]).any()


def test_max_pool2d_against_torch(rng):
    torch = pytest.importorskip("torch")
    for k, s, p in CASES:
        x = rng.normal(size=(2, 3, 11, 10))
        tx = torch.tensor(x, requires_grad=True)
        ref = torch.nn.functional.max_pool2d(tx, k, s, p)
        g = rng.normal(size=ref.shape)
        ref.backward(torch.tensor(g))
        dx = Tensor(x, requires_grad=True)
        out = F.max_pool2d(dx, k, s, p)
        out.backward(g)
        np.testing.assert_array_equal(out.data, ref.detach().numpy())
        np.testing.assert_allclose(dx.grad, tx.grad.numpy(), rtol=0, atol=1e-12)


def test_max_pool2d_bad_arguments():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="at most half the kernel"):
        F.max_pool2d(x, 3, 2, 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.max_pool2d(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(x, 5)
    with pytest.raises(TypeError, match="floating-point"):
        F.max_pool2d(np.zeros((1, 1, 4, 4), np.int32), 2)


def test_dct_max_pool2d_is_exact_and_differentiable(rng):
    x = rng.normal(size=(2, 3, 32, 16))
    y = F.dct_max_pool2d(dctnet.to_dct(x), 3, 2, 1).data
    np.testing.assert_allclose(dctnet.from_dct(y), max_pool_loops(x, (3, 3), (2, 2), (1, 1)), rtol=0, atol=1e-12)
    c = Tensor(dctnet.to_dct(rng.normal(size=(1, 1, 16, 16))), requires_grad=True)
    assert gradcheck(lambda t: F.dct_max_pool2d(t, 3, 2, 1), [c])
    with pytest.raises(ValueError, match="not a whole number of 8x8 blocks"):
        F.dct_max_pool2d(dctnet.to_dct(rng.normal(size=(1, 1, 24, 24))), 3, 2, 1)


def test_max_pool_module_converts():
    pool = nn.MaxPool2d(3, 2, 1)
    form = pool.jpeg_form()
    assert isinstance(form, nn.DCTMaxPool2d) and form.input_domain == "jpeg"
    assert nn.from_config(pool.config()).config() == pool.config()
    x = np.random.default_rng(1).normal(size=(1, 2, 16, 16))
    np.testing.assert_allclose(dctnet.from_dct(dctnet.convert(pool)(dctnet.to_dct(x)).data), pool(x).data, atol=1e-12)
