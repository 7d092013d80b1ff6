"""conv2d, linear and pad against brute-force references and gradcheck."""

import numpy as np
import pytest

import dctnet.functional.channels_last as channels_last
import dctnet.functional.conv as conv_module
from dctnet import Tensor, gradcheck, threads
from dctnet.functional import conv2d, linear, pad
from dctnet.kernels import conv as conv_kernels


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
    for budget, tasks in ((1 << 40, 1), (3 * columns * 8, conv_module.MIN_TASKS)):  # all 7 images at once; 2 + 2 + 2 + 1
        monkeypatch.setitem(conv_module.CHUNK_BYTES, "numpy", budget)  # the array path
        monkeypatch.setitem(conv_module.CHUNK_BYTES, "cpu", budget)  # the CPU path's pieces and tasks
        monkeypatch.setattr(conv_module, "MIN_TASKS", tasks)
        x.grad = w.grad = None
        y = conv2d(x, w, stride=stride, padding=1)
        y.backward(g)
        results.append((y.data, x.grad, w.grad))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def im2col_reference(x, kh, kw, sh, sw, top, left, ho, wo):
    """Columns (N, Cin*kh*kw, ho*wo) by zero-padding (or cropping) and slicing, in NumPy."""
    n, c, h, w = x.shape
    bottom, right = max(0, (ho - 1) * sh + kh - h - top), max(0, (wo - 1) * sw + kw - w - left)
    big = np.zeros((n, c, h + max(0, top) + bottom, w + max(0, left) + right), x.dtype)
    big[:, :, max(0, top) : max(0, top) + h, max(0, left) : max(0, left) + w] = x
    big = big[:, :, max(0, -top) :, max(0, -left) :]  # a negative pad crops
    cols = np.zeros((n, c, kh, kw, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            win = big[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
            cols[:, :, i, j, : win.shape[2], : win.shape[3]] = win
    return cols.reshape(n, c * kh * kw, ho * wo)


# (x shape, kh, kw, sh, sw, top, left, ho, wo): "same" stride-1 rows (the shifted-plane path),
# strided, cropping (negative top/left), outputs reaching past the input, 1-pixel images
IM2COL_CASES = [
    ((2, 3, 6, 5), 3, 3, 1, 1, 1, 1, 6, 5),
    ((2, 2, 4, 7), 5, 5, 1, 1, 2, 2, 4, 7),
    ((1, 2, 5, 5), 3, 1, 1, 1, 1, 0, 5, 5),
    ((2, 3, 7, 6), 3, 3, 2, 2, 1, 1, 4, 3),
    ((2, 2, 8, 9), 3, 2, 2, 1, 0, 0, 3, 8),
    ((1, 3, 6, 6), 2, 2, 1, 1, -1, -2, 3, 2),
    ((2, 2, 5, 4), 3, 3, 1, 1, 0, 1, 5, 6),
    ((1, 1, 1, 1), 3, 3, 1, 1, 1, 1, 1, 1),
    ((3, 2, 5, 8), 1, 1, 2, 2, 0, 0, 3, 4),
]


@pytest.mark.parametrize("xs, kh, kw, sh, sw, top, left, ho, wo", IM2COL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_im2col_kernels_match_slicing(rng, xs, kh, kw, sh, sw, top, left, ho, wo, dtype):
    x = rng.normal(size=xs).astype(dtype)
    ref = im2col_reference(x, kh, kw, sh, sw, top, left, ho, wo)
    n, k, hw = ref.shape
    per_image = np.full(n * k * hw, np.nan, dtype)  # NCHW columns, one (K, ho*wo) block per image
    conv_kernels.im2col(x, 0, n, kh, kw, sh, sw, top, left, ho, wo, per_image, k * hw, hw)
    np.testing.assert_array_equal(per_image.reshape(n, k, hw), ref)
    chunk = np.full(k * (n - 1) * hw, np.nan, dtype)  # images 1..n-1 as one (K, count*hw) matrix
    conv_kernels.im2col(x, 1, n - 1, kh, kw, sh, sw, top, left, ho, wo, chunk, hw, (n - 1) * hw)
    np.testing.assert_array_equal(chunk.reshape(k, n - 1, hw), ref[1:].transpose(1, 0, 2))
    # channels last: row = output pixel, columns in the order (i, j, ci)
    c = xs[1]
    rows = ref.reshape(n, c, kh, kw, hw).transpose(0, 4, 2, 3, 1).reshape(n, hw, kh * kw * c)
    cols = np.full(rows[1:].size, np.nan, dtype)
    xh, none = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.empty(0, dtype)
    conv_kernels.im2col_rows(xh, 1, n - 1, kh, kw, sh, sw, top, left, ho, wo, cols, none, none, False)
    np.testing.assert_array_equal(cols.reshape(rows[1:].shape), rows[1:])
    # with a per-channel affine map + ReLU on the way; the padding stays zero
    scale, shift = rng.uniform(0.5, 2, c).astype(dtype), rng.normal(size=c).astype(dtype)
    mapped = im2col_reference(np.maximum(x * scale[:, None, None] + shift[:, None, None], 0), kh, kw, sh, sw, top, left, ho, wo)
    rows = mapped.reshape(n, c, kh, kw, hw).transpose(0, 4, 2, 3, 1).reshape(n, hw, kh * kw * c)
    conv_kernels.im2col_rows(xh, 1, n - 1, kh, kw, sh, sw, top, left, ho, wo, cols, scale, shift, True)
    np.testing.assert_array_equal(cols.reshape(rows[1:].shape), rows[1:])


def test_affine_act_rows_kernel(rng):
    """The engine's affine step (a Normalize, a lone batch norm or ReLU): NumPy's broadcast
    values bit for bit, a NaN kept (not clipped to zero by the ReLU)."""
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(2, 3, 5, 3)).astype(dtype)  # (N, H, W, C)
        x[0, 1, 2, 1] = np.nan
        scale, shift = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
        for relu in (False, True):
            out = np.empty_like(x)
            conv_kernels.affine_act_rows(x.reshape(-1, 15), np.tile(scale, 5), np.tile(shift, 5), relu,
                                         out.reshape(-1, 15))
            want = x * scale + shift
            np.testing.assert_array_equal(out, np.maximum(want, 0) if relu else want)
            assert np.isnan(out[0, 1, 2, 1])


def test_layout_kernels(rng):
    x = rng.normal(size=(3, 5, 4, 6))
    h = np.empty((3, 4, 6, 5))
    conv_kernels.transpose_images(x, 1, 2, 5, 24, h)  # images 1, 2: (C, H*W) -> (H*W, C)
    np.testing.assert_array_equal(h[1:], x[1:].transpose(0, 2, 3, 1))
    back = np.zeros_like(x)
    conv_kernels.transpose_images(h, 1, 2, 24, 5, back)
    np.testing.assert_array_equal(back[1:], x[1:])
    for dtype in (np.float32, np.float64):  # the same transpose with a per-channel affine map on the way
        planes = rng.normal(size=(2, 3, 19)).astype(dtype)  # 19 pixels: no multiple of the tile
        scale, shift = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
        got = np.full((2, 19, 3), np.nan, dtype)
        conv_kernels.affine_planes_nhwc(planes, scale, shift, got)
        want = (planes.astype(np.float64) * scale[:, None] + shift[:, None]).transpose(0, 2, 1)
        tol = 1e-15 if dtype == np.float64 else 1e-6  # one multiply-add, one rounding
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    big = rng.normal(size=(2, 19, 11, 13))  # sizes that are no multiple of the tile
    np.testing.assert_array_equal(channels_last.to_nhwc(big), big.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(channels_last.to_nchw(channels_last.to_nhwc(big)), big)


def test_epilogue_kernels(rng):
    y4 = rng.normal(size=(2, 3, 10))
    b = rng.normal(size=3)
    for relu in (False, True):
        out = y4.copy()
        conv_kernels.bias_act(out, b, relu)
        want = y4 + b[:, None]
        np.testing.assert_array_equal(out, np.maximum(want, 0) if relu else want)
    y, res = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    b = rng.normal(size=3)
    want = y + b
    for relu in (False, True):
        out = y.copy()
        conv_kernels.bias_act_rows(out, b, relu)
        np.testing.assert_array_equal(out, np.maximum(want, 0) if relu else want)
        out = y.copy()
        conv_kernels.bias_add_act_rows(out, b, res, relu)
        np.testing.assert_allclose(out, np.maximum(want + res, 0) if relu else want + res, rtol=1e-15)
        for r in (None, res):
            mean = np.empty((2, 3))
            y3 = y.reshape(2, 5, 3)
            conv_kernels.bias_act_mean_rows(y3, b, y3 if r is None else r.reshape(2, 5, 3), r is not None, relu, mean)
            full = (want if r is None else want + r).reshape(2, 5, 3)
            np.testing.assert_allclose(mean, (np.maximum(full, 0) if relu else full).mean(axis=1), rtol=1e-13)


@pytest.mark.parametrize("xs, ws, stride, padding", GEOMETRIES)
def test_cpu_paths_match_array_path(rng, xs, ws, stride, padding):
    """The CPU engine's conv, NCHW (conv2d's) and channels-last (the fused engine's),
    against the array expressions that CuPy runs, on the same NumPy inputs."""
    stride, padding = _pair(stride), _pair(padding)
    x, w, b = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    pads = (padding[0], padding[0], padding[1], padding[1])
    ref = conv_module._forward(np, x, w, b, stride, pads)
    np.testing.assert_allclose(conv_module.cpu_forward(x, w, b, stride, padding), ref, rtol=1e-12, atol=1e-12)
    g = rng.normal(size=ref.shape)
    ref_gw = conv_module._weight_grad(np, x, g, w.shape, stride, pads)
    ref_gx = conv_module._input_grad(np, g, w, x.shape, stride, padding)
    np.testing.assert_allclose(conv_module.cpu_weight_grad(x, g, w.shape, stride, padding), ref_gw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_module.cpu_input_grad(g, w, x.shape, stride, padding), ref_gx, rtol=1e-12, atol=1e-12)

    xh, gh = channels_last.to_nhwc(x), channels_last.to_nhwc(g)
    out, sums = np.empty(gh.shape), np.zeros((2, w.shape[0]))
    channels_last.forward_images(xh, channels_last.weight_matrix(w), w.shape[2:], stride, *padding, out, sums)
    np.testing.assert_allclose(channels_last.to_nchw(out) + b[:, None, None], ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums, [out.sum(axis=(0, 1, 2)), (out * out).sum(axis=(0, 1, 2))], rtol=1e-12)
    gwt = np.empty((w[0].size, w.shape[0]))
    channels_last.weight_grad_images(xh, gh, w.shape[2:], stride, *padding, gwt)
    np.testing.assert_allclose(channels_last.weight_from_matrix(gwt, w.shape), ref_gw, rtol=1e-12, atol=1e-12)
    gx = channels_last.InputGrad(w, xh.shape, gh.shape, stride, padding).images(gh, np.empty(xh.shape))
    np.testing.assert_allclose(channels_last.to_nchw(gx), ref_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_same_bits_with_any_thread_count(rng, stride):
    """Tasks are fixed by the shapes, not by the threads that run them."""
    x = Tensor(rng.normal(size=(9, 4, 10, 12)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.normal(size=(6, 4, 3, 3)).astype(np.float32), requires_grad=True)
    g = rng.normal(size=(9, 6, 10 // stride, 12 // stride)).astype(np.float32)
    results, old = [], threads.num_threads()
    try:
        for n in (1, 2, 3):
            threads.set_num_threads(n)
            x.grad = w.grad = None
            y = conv2d(x, w, stride=stride, padding=1)
            y.backward(g)
            results.append((y.data, x.grad, w.grad))
    finally:
        threads.set_num_threads(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


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


def test_split_gives_equal_shares():
    """Every image in exactly one task, at most ``most`` and at most a MIN_TASKS-th of the batch
    per task, and the task count rounded up towards a multiple of MIN_TASKS."""
    from dctnet.functional.conv import MIN_TASKS, split

    for n in range(1, 200):
        for most in (1, 3, 5, 8, 16, 1000):
            chunk, tasks = split(n, most)
            assert (tasks - 1) * chunk < n <= tasks * chunk  # no empty task, none left out
            assert chunk <= most and chunk <= -(-n // MIN_TASKS)
    # 40 images: 8 tasks of 5 (two threads 4 + 4), not 5 of 8 (3 + 2)
    assert split(40, 8) == (5, 8) and split(128, 8) == (8, 16) and split(3, 8) == (1, 3) and split(6, 3) == (2, 3)


def test_conv2d_float16_on_the_cpu(rng):
    """float16 NumPy arrays take the array path (the engine's kernels are compiled for float32 and
    float64): forward and both gradients against float64, to float16's precision; a float16
    paper_resnet trains through engine.forward (its blocks then run their own layers)."""
    x64, w64 = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 3))
    x = Tensor(x64.astype(np.float16), requires_grad=True)
    w = Tensor(w64.astype(np.float16), requires_grad=True)
    y = conv2d(x, w, stride=2, padding=1)
    assert y.dtype == np.float16
    ref = conv_module._forward(np, x.data.astype(np.float64), w.data.astype(np.float64), None, (2, 2), (1, 1, 1, 1))
    np.testing.assert_allclose(y.data, ref, rtol=1e-2, atol=1e-2)
    y.sum().backward()
    g = np.ones(ref.shape)
    gx = conv_module._input_grad(np, g, w.data.astype(np.float64), x.shape, (2, 2), (1, 1))
    gw = conv_module._weight_grad(np, x.data.astype(np.float64), g, w.shape, (2, 2), (1, 1, 1, 1))
    assert x.grad.dtype == w.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad, gx, rtol=1e-2, atol=2e-2)
    np.testing.assert_allclose(w.grad, gw, rtol=1e-2, atol=5e-2)

    from dctnet import engine, models, nn
    from dctnet import functional as F

    nn.manual_seed(0)
    net = models.paper_resnet(3, 10).astype(np.float16).train()
    loss = F.cross_entropy(engine.forward(net, rng.uniform(0, 1, (2, 3, 32, 32)).astype(np.float16)), np.array([1, 2]))
    loss.backward()
    assert net[0].conv1.weight.grad.dtype == np.float16 and np.isfinite(net[0].conv1.weight.grad).all()
