"""batch_norm, activations, pooling and losses against NumPy references and gradcheck."""

import numpy as np
import pytest

from dctnet import Tensor, gradcheck
from dctnet import functional as F


def t64(rng, *shape):
    return Tensor(rng.normal(size=shape), requires_grad=True)


# -- batch_norm ------------------------------------------------------------------

def bn_reference(x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    """Returns the output and the new running statistics (PyTorch's rules)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        m = x.size // x.shape[1]
        rm = (1 - momentum) * rm + momentum * mu
        rv = (1 - momentum) * rv + momentum * var * m / (m - 1)
    else:
        mu, var = rm, rv
    y = (x - mu.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * w.reshape(shape) + b.reshape(shape), rm, rv


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (8, 3)])
def test_batch_norm_matches_reference_and_tracks_running_stats(rng, shape):
    c = shape[1]
    w, b = rng.normal(size=c), rng.normal(size=c)
    rm, rv = np.zeros(c), np.ones(c)
    ref_rm, ref_rv = rm.copy(), rv.copy()
    for step in range(4):
        x = rng.normal(2.0, 3.0, size=shape)
        out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2).data
        ref, ref_rm, ref_rv = bn_reference(x, ref_rm, ref_rv, w, b, True, momentum=0.2)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rm, ref_rm, rtol=1e-12)
        np.testing.assert_allclose(rv, ref_rv, rtol=1e-12)
    x = rng.normal(size=shape)
    ref, _, _ = bn_reference(x, rm, rv, w, b, False)
    np.testing.assert_allclose(F.batch_norm(x, rm, rv, w, b).data, ref, rtol=1e-12, atol=1e-12)


def test_batch_norm_updates_tensor_buffers_and_float32(rng):
    x = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    rm, rv = Tensor(np.zeros(2, np.float32)), Tensor(np.ones(2, np.float32))
    out = F.batch_norm(Tensor(x), rm, rv, training=True)
    assert out.dtype == np.float32 and rm.dtype == np.float32
    np.testing.assert_allclose(rm.data, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    # without running statistics training mode still normalizes
    y = F.batch_norm(x, None, None, training=True).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 3, 2, 3), (6, 4)])
def test_batch_norm_gradcheck_training(rng, shape):
    c = shape[1]
    x, w, b = t64(rng, *shape), t64(rng, c), t64(rng, c)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])


def test_batch_norm_gradcheck_eval(rng):
    x, w, b = t64(rng, 4, 3, 2, 2), t64(rng, 3), t64(rng, 3)
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b), [x, w, b])


def test_batch_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"running_mean of shape \(3,\) for x of shape \(2, 3, 4, 4\), found \(4,\)"):
        F.batch_norm(np.zeros((2, 3, 4, 4)), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        F.batch_norm(np.zeros((2, 3, 4, 4)), None, None)
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm(np.zeros((1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match=r"\(N, C, \.\.\.\)"):
        F.batch_norm(np.zeros(3), None, None, training=True)


def _dct_input(rng, n=3):
    import dctnet

    return dctnet.to_dct(rng.normal(size=(n, 2, 8, 16)) * 2 + 1.5)


BOTH_LAYOUTS = pytest.mark.parametrize("bn, make_x", [
    (F.batch_norm, lambda rng, n=3: rng.normal(2.0, 3.0, size=(n, 2, 4, 5))),
    (F.dct_batch_norm, _dct_input),
], ids=["pixels", "dct"])


@BOTH_LAYOUTS
def test_batch_norm_reduction_hook_gives_the_whole_batch(rng, bn, make_x):
    """``reduce=2 * partial sums``: two processes with the same batch, i.e. batch norm of it twice over."""
    x, g = make_x(rng), make_x(rng)
    twice, g2 = np.concatenate([x, x]), np.concatenate([g, g])
    results = []
    for inp, grad, reduce in ((x, g, lambda a: 2 * a), (twice, g2, None)):
        xt, w, b = Tensor(inp, requires_grad=True), t64(np.random.default_rng(1), 2), t64(np.random.default_rng(2), 2)
        rm, rv = np.full(2, 0.5), np.full(2, 2.0)
        bn(xt, rm, rv, w, b, training=True, reduce=reduce).backward(grad)
        out = bn(inp, rm, rv, w, b).data  # eval mode: the updated running statistics, no reduction
        results.append((out, rm, rv, xt.grad, w.grad, b.grad))
    (out, rm, rv, gx, gw, gb), (out2, rm2, rv2, gx2, gw2, gb2) = results
    np.testing.assert_allclose(out, out2[:len(x)], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, rm2, rtol=1e-13)
    np.testing.assert_allclose(rv, rv2, rtol=1e-13)  # unbiased with the global count
    np.testing.assert_allclose(gx, gx2[:len(x)], rtol=1e-10, atol=1e-12)
    # Parameter gradients are each process's own share (allreduce_gradients adds them up).
    np.testing.assert_allclose(2 * gw, gw2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(2 * gb, gb2, rtol=1e-10, atol=1e-12)


@BOTH_LAYOUTS
def test_batch_norm_gradcheck_with_a_one_process_reduction_hook(rng, bn, make_x):
    calls = []

    def reduce(a):  # a one-process world: the sum over processes is the local sum
        calls.append(a.shape)
        return a

    x, w, b = Tensor(make_x(rng), requires_grad=True), t64(rng, 2), t64(rng, 2)
    assert gradcheck(lambda x, w, b: bn(x, None, None, w, b, training=True, reduce=reduce), [x, w, b])
    assert (2,) in calls and (3,) in calls and (4,) in calls  # count and sums, squares, the two gradient sums
    plain = bn(x.data, None, None, w.data, b.data, training=True).data
    np.testing.assert_array_equal(bn(x.data, None, None, w.data, b.data, training=True, reduce=reduce).data, plain)


@BOTH_LAYOUTS
def test_batch_norm_counts_values_over_all_processes(rng, bn, make_x):
    with pytest.raises(ValueError, match="more than one value per channel over all processes"):
        bn(make_x(rng)[:0], None, None, training=True, reduce=lambda a: a)  # an empty batch everywhere


# -- activations -------------------------------------------------------------------

def test_relu(rng):
    x = rng.normal(size=(3, 4, 5))
    np.testing.assert_array_equal(F.relu(x).data, np.maximum(x, 0))
    away = np.where(np.abs(x) < 0.1, 0.5, x)  # keep central differences off the kink
    assert gradcheck(F.relu, [Tensor(away, requires_grad=True)])
    assert F.relu(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax(rng, axis):
    x = rng.normal(size=(4, 5)) * 3
    ref = x - np.log(np.exp(x).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(F.log_softmax(x, axis=axis).data, ref, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: F.log_softmax(t, axis=axis), [Tensor(x, requires_grad=True)])
    assert np.isfinite(F.log_softmax(np.array([[1e4, -1e4, 0.0]])).data).all()


# -- pooling -----------------------------------------------------------------------

def avg_pool_reference(x, k, s):
    ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * s : i * s + k, j * s : j * s + k].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize("shape, k, s", [((2, 3, 8, 6), 2, None), ((2, 3, 7, 9), 3, 2), ((1, 2, 5, 5), 2, 1)])
def test_avg_pool2d(rng, shape, k, s):
    x = rng.normal(size=shape)
    out = F.avg_pool2d(x, k, s).data
    np.testing.assert_allclose(out, avg_pool_reference(x, k, s or k), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s), [Tensor(x, requires_grad=True)])
    assert F.avg_pool2d(x.astype(np.float32), k, s).dtype == np.float32


def test_avg_pool2d_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"kernel 5x5 is larger than the input 4x4"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4)), 5)
    with pytest.raises(ValueError, match="stride >= 1"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), found shape \(4, 4\)"):
        F.avg_pool2d(np.zeros((4, 4)), 2)


def test_global_avg_pool(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(F.global_avg_pool(x).data, x.mean(axis=(2, 3)), rtol=1e-14)
    assert gradcheck(F.global_avg_pool, [Tensor(x, requires_grad=True)])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.global_avg_pool(np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_global_avg_pool_channels_last(rng, dtype):
    x = rng.normal(size=(3, 4, 5, 2)).astype(dtype)  # (N, H, W, C), non-square
    tol = dict(rtol=1e-14) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    out = F.global_avg_pool(x, channels_last=True)
    assert out.shape == (3, 2) and out.dtype == dtype
    np.testing.assert_allclose(out.data, F.global_avg_pool(x.transpose(0, 3, 1, 2)).data, **tol)
    t = Tensor(x, requires_grad=True)
    (F.global_avg_pool(t, channels_last=True) * np.arange(1.0, 3.0, dtype=dtype)).sum().backward()
    np.testing.assert_allclose(t.grad, np.broadcast_to([1 / 20, 2 / 20], x.shape), **tol)  # dL/dx = weight / (H*W)
    if dtype == np.float64:
        assert gradcheck(lambda a: F.global_avg_pool(a, channels_last=True), [Tensor(x, requires_grad=True)])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        F.global_avg_pool(np.zeros((2, 3)), channels_last=True)


# -- losses ------------------------------------------------------------------------

def cross_entropy_reference(logits, target, reduction, smoothing):
    k = logits.shape[1]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    q = (1 - smoothing) * np.eye(k)[target] + smoothing / k
    loss = -(q * np.log(p)).sum(axis=1)
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy(rng, reduction, smoothing):
    logits, target = rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, size=6)
    out = F.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing).data
    np.testing.assert_allclose(out, cross_entropy_reference(logits, target, reduction, smoothing), rtol=1e-12)
    t = Tensor(logits, requires_grad=True)
    assert gradcheck(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing), [t])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 2]), label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.data) and np.isfinite(logits.grad).all()
    np.testing.assert_allclose(
        F.cross_entropy(logits.data, np.array([1, 2]), reduction="none").data, [2e4, 0.0], atol=1e-9
    )
    out32 = F.cross_entropy(logits.data.astype(np.float32), np.array([0, 2]))
    assert out32.dtype == np.float32 and np.isfinite(out32.data)


def test_cross_entropy_rejects_bad_targets():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\], expected them in \[0, 3\] for 4 classes"):
        F.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        F.cross_entropy(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"target of shape \(3,\) for logits \(3, 4\), found shape \(2,\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits of shape \(N, K\)"):
        F.cross_entropy(np.zeros(4), np.array([0]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(logits, np.array([0, 1, 2]), label_smoothing=1.5)


def test_accuracy():
    logits = Tensor(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]))
    acc = F.accuracy(logits, np.array([1, 1, 1]))
    assert isinstance(acc, float) and acc == pytest.approx(2 / 3)


# -- composition -------------------------------------------------------------------

def test_small_network_gradcheck(rng):
    """conv -> BN (train) -> ReLU -> pool -> linear -> cross-entropy, end to end."""
    x = rng.normal(size=(4, 2, 6, 6))
    target = np.array([0, 2, 1, 2])
    w = t64(rng, 3, 2, 3, 3)
    gamma, beta = Tensor(rng.uniform(0.5, 1.5, 3), requires_grad=True), t64(rng, 3)
    fc = t64(rng, 3, 3)

    def net(w, gamma, beta, fc):
        h = F.batch_norm(F.conv2d(x, w, padding=1), None, None, gamma, beta, training=True)
        h = F.global_avg_pool(F.avg_pool2d(F.relu(h + 3.0), 2))  # shifted: ReLU stays off its kink
        return F.cross_entropy(F.linear(h, fc), target)

    assert gradcheck(net, [w, gamma, beta, fc])
