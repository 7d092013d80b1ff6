"""conv2d, linear and pad against brute-force references and gradcheck."""

import numpy as np
import pytest

import dctnet.functional.conv as conv_module
from dctnet import Tensor, gradcheck
from dctnet.functional import conv2d, linear, pad


def conv_reference(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    """Direct loops over output positions, in float64."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    ho, wo = (xpad.shape[2] - kh) // sh + 1, (xpad.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xpad[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = np.tensordot(patch, w.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b.reshape(-1, 1, 1)


# (x shape, weight shape, stride, padding): kernels 1 and 3 (and non-square),
# strides 1 and 2, paddings 0 and 1, non-square and odd-sized inputs.
GEOMETRIES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0),
    ((2, 3, 7, 6), (4, 3, 3, 3), 2, 1),
    ((2, 3, 8, 9), (4, 3, 3, 3), 2, 0),
    ((3, 2, 5, 8), (3, 2, 1, 1), 1, 0),
    ((3, 2, 5, 8), (3, 2, 1, 1), 2, 0),
    ((2, 2, 6, 5), (3, 2, 1, 1), 1, 1),
    ((2, 3, 6, 7), (2, 3, 3, 2), (2, 1), (0, 2)),
    ((1, 2, 4, 4), (2, 2, 5, 5), 3, 2),  # padding > kernel - 1 along no axis, stride > kernel/2
    ((2, 1, 3, 3), (1, 1, 3, 3), 1, 3),  # padding larger than the kernel
]


def _pair(v):
    return (v, v) if np.isscalar(v) else v


@pytest.mark.parametrize("xs, ws, stride, padding", GEOMETRIES)
def test_conv2d_matches_direct_loops(rng, xs, ws, stride, padding):
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    ref = conv_reference(x, w, b, _pair(stride), _pair(padding))
    out = conv2d(x, w, b, stride=stride, padding=padding).data
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    x32, w32, b32 = (a.astype(np.float32) for a in (x, w, b))
    out32 = conv2d(Tensor(x32), Tensor(w32), Tensor(b32), stride=stride, padding=padding).data
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, conv_reference(x32, w32, b32, _pair(stride), _pair(padding)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xs, ws, stride, padding", GEOMETRIES)
def test_conv2d_gradcheck(rng, xs, ws, stride, padding):
    x = Tensor(rng.normal(size=xs), requires_grad=True)
    w = Tensor(rng.normal(size=ws), requires_grad=True)
    b = Tensor(rng.normal(size=ws[0]), requires_grad=True)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding), [x, w, b])


def test_conv2d_gradients_of_one_input(rng):
    x = Tensor(rng.normal(size=(2, 3, 6, 6)), requires_grad=True)
    w = rng.normal(size=(4, 3, 3, 3))
    assert gradcheck(lambda x: conv2d(x, w, padding=1), [x])
    wt = Tensor(w, requires_grad=True)
    assert gradcheck(lambda w: conv2d(x.data, w, stride=2), [wt])


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_chunks_agree(rng, monkeypatch, stride):
    """Several chunks, the last one partial, give the result of one chunk."""
    x = Tensor(rng.normal(size=(7, 3, 9, 8)), requires_grad=True)
    w = Tensor(rng.normal(size=(5, 3, 3, 3)), requires_grad=True)
    ho, wo = (9 + 2 - 3) // stride + 1, (8 + 2 - 3) // stride + 1
    g = rng.normal(size=(7, 5, ho, wo))
    columns = 3 * 3 * 3 * ho * (10 if stride == 1 else wo)  # per image (flat layout: padded width)
    results = []
    for budget in (1 << 40, 3 * columns * 8):  # all 7 images at once; 3 + 3 + 1
        monkeypatch.setitem(conv_module.CHUNK_BYTES, "numpy", budget)
        x.grad = w.grad = None
        y = conv2d(x, w, stride=stride, padding=1)
        y.backward(g)
        results.append((y.data, x.grad, w.grad))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv2d_float32_gradients_stay_float32(rng):
    x = Tensor(rng.normal(size=(2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    conv2d(x, w, stride=2, padding=1).sum().backward()
    assert x.grad.dtype == w.grad.dtype == np.float32


@pytest.mark.parametrize(
    "xs, ws, kwargs, match",
    [
        ((3, 8, 8), (4, 3, 3, 3), {}, r"x of shape \(N, Cin, H, W\), found shape \(3, 8, 8\)"),
        ((2, 3, 8, 8), (4, 2, 3, 3), {}, r"weight of shape \(Cout, 3, kh, kw\).*found \(4, 2, 3, 3\)"),
        ((2, 3, 8, 8), (4, 3, 3), {}, r"found \(4, 3, 3\)"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": 0}, "stride >= 1"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"padding": -1}, "padding >= 0"),
        ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": (1, 2, 3)}, "pair of ints"),
        ((2, 3, 2, 8), (4, 3, 5, 3), {"padding": 1}, r"kernel 5x3 is larger than the padded input 4x10"),
    ],
)
def test_conv2d_rejects_bad_shapes(xs, ws, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv2d(np.zeros(xs), np.zeros(ws), **kwargs)


def test_conv2d_rejects_bad_bias_and_dtypes():
    x, w = np.zeros((1, 2, 4, 4), np.float32), np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"bias of shape \(3,\)"):
        conv2d(x, w, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="x float32, weight float64"):
        conv2d(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="floating-point x"):
        conv2d(x.astype(np.uint8), w)


def test_linear(rng):
    x, w, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    np.testing.assert_allclose(linear(x, w, b).data, x @ w.T + b, rtol=1e-14)
    xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
    assert gradcheck(linear, [xt, wt, bt])
    x3 = Tensor(rng.normal(size=(2, 5, 3)), requires_grad=True)  # extra leading axes
    assert gradcheck(lambda x, w: linear(x, w), [x3, wt])
    assert linear(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32


def test_linear_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"x of shape \(\.\.\., 3\) for weight \(4, 3\), found \(5, 2\)"):
        linear(np.zeros((5, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(out_features, in_features\)"):
        linear(np.zeros((5, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"bias of shape \(4,\)"):
        linear(np.zeros((5, 3)), np.zeros((4, 3)), np.zeros(3))


@pytest.mark.parametrize("padding, expected", [(1, (1, 1, 1, 1)), ((2, 0), (2, 2, 0, 0)), ((0, 1, 2, 3), (0, 1, 2, 3))])
def test_pad(rng, padding, expected):
    x = rng.normal(size=(2, 3, 4, 5))
    top, bottom, left, right = expected
    ref = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-2.0)
    np.testing.assert_array_equal(pad(x, padding, value=-2.0).data, ref)
    assert gradcheck(lambda t: pad(t, padding, value=1.5), [Tensor(x, requires_grad=True)])


def test_pad_rejects_bad_padding():
    with pytest.raises(ValueError, match="padding must be >= 0"):
        pad(np.zeros((2, 2)), -1)
    with pytest.raises(ValueError, match=r"\(top, bottom, left, right\)"):
        pad(np.zeros((2, 2)), (1, 2, 3))
    with pytest.raises(ValueError, match="at least 2 axes"):
        pad(np.zeros(3), 1)
