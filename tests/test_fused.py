"""functional.fused.residual_block against the block composed of the ordinary ops,
gradcheck, and its Numba kernels against NumPy."""

import numpy as np
import pytest

from dctnet import Tensor, gradcheck
from dctnet.functional.fused import BNState, _unfused, residual_block
from dctnet.kernels import fused as fk


def make_block(rng, n, cin, c, h, w, proj, dtype):
    arrays = dict(
        x=rng.normal(size=(n, cin, h, w)), w1=rng.normal(size=(c, cin, 3, 3)),
        w2=rng.normal(size=(c, c, 3, 3)), ws=rng.normal(size=(c, cin, 1, 1)),
    )
    bns = [(rng.uniform(0.5, 1.5, c), rng.normal(size=c), rng.normal(size=c), rng.uniform(0.5, 2.0, c), m, e)
           for m, e in ((0.1, 1e-5), (0.3, 1e-3), (0.05, 1e-5))]
    return {k: v.astype(dtype) for k, v in arrays.items()}, [(*(a.astype(dtype) for a in b[:4]), *b[4:]) for b in bns], proj


def run(fn, block, stride, g):
    arrays, bns, proj = block
    t = {k: Tensor(v.copy(), requires_grad=True) for k, v in arrays.items()}
    states = [BNState(Tensor(b[0].copy(), requires_grad=True), Tensor(b[1].copy(), requires_grad=True),
                      b[2].copy(), b[3].copy(), b[4], b[5]) for b in bns]
    shortcut = (t["ws"], states[2]) if proj else None
    y = fn(t["x"], t["w1"], states[0], t["w2"], states[1], stride, shortcut)
    y.backward(g)
    used = states if proj else states[:2]
    grads = [t["x"].grad, t["w1"].grad, t["w2"].grad] + ([t["ws"].grad] if proj else [t["ws"].grad])
    return [y.data] + grads + [s.weight.grad for s in used] + [s.bias.grad for s in used] + \
        [s.running_mean for s in states] + [s.running_var for s in states]


CASES = [  # (n, Cin, C, H, W, stride, projection shortcut)
    (3, 4, 6, 7, 9, 2, True),  # stride 2, odd and non-square sizes
    (5, 6, 6, 8, 8, 1, False),  # identity shortcut
    (2, 3, 5, 9, 6, 1, True),  # projection at stride 1, odd channel counts
    (1, 3, 4, 8, 8, 2, True),  # batch 1
    (9, 16, 16, 12, 12, 2, True),  # more images than a task holds
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, cin, c, h, w, stride, proj", CASES)
def test_residual_block_matches_the_composed_block(rng, dtype, n, cin, c, h, w, stride, proj):
    block = make_block(rng, n, cin, c, h, w, proj, dtype)
    g = rng.normal(size=(n, c, (h - 1) // stride + 1, (w - 1) // stride + 1)).astype(dtype)
    ours = run(lambda *a: residual_block(*a[:5], stride=a[5], shortcut=a[6]), block, stride, g)
    theirs = run(_unfused, block, stride, g)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if b is None:
            assert a is None, i
            continue
        assert a.dtype == dtype, i
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=f"output {i}")


@pytest.mark.parametrize("stride, proj", [(2, True), (1, False)])
def test_residual_block_gradcheck(rng, stride, proj):
    cin = 2 if proj else 3
    x = Tensor(rng.normal(size=(3, cin, 5, 6)), requires_grad=True)
    w1, w2 = (Tensor(rng.normal(size=s), requires_grad=True) for s in ((3, cin, 3, 3), (3, 3, 3, 3)))
    ws = Tensor(rng.normal(size=(3, cin, 1, 1)), requires_grad=True)
    affine = [Tensor(a, requires_grad=True) for a in (rng.uniform(0.5, 1.5, 3), rng.normal(size=3)) * 3]

    def block(x, w1, w2, g1, b1, g2, b2, shortcut):
        return residual_block(x, w1, BNState(g1, b1, None, None), w2, BNState(g2, b2, None, None), stride, shortcut)

    if proj:
        def f(x, w1, w2, ws, g1, b1, g2, b2, gs, bs):
            return block(x, w1, w2, g1, b1, g2, b2, (ws, BNState(gs, bs, None, None)))

        assert gradcheck(f, [x, w1, w2, ws] + affine)
    else:
        assert gradcheck(lambda x, w1, w2, *bn: block(x, w1, w2, *bn, None), [x, w1, w2] + affine[:4])


def test_residual_block_gradients_of_some_inputs(rng):
    """The first block's input needs no gradient: none is computed, the others are."""
    x = rng.normal(size=(2, 3, 6, 6))
    w1, w2, ws = (Tensor(rng.normal(size=s), requires_grad=True) for s in ((4, 3, 3, 3), (4, 4, 3, 3), (4, 3, 1, 1)))
    bns = [BNState(Tensor(np.ones(4), requires_grad=True), Tensor(np.zeros(4)), np.zeros(4), np.ones(4)) for _ in range(3)]
    y = residual_block(x, w1, bns[0], w2, bns[1], 2, (ws, bns[2]))
    y.sum().backward()
    assert w1.grad.shape == w1.shape and ws.grad.shape == ws.shape and bns[0].weight.grad.shape == (4,)
    assert bns[0].bias.grad is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.zeros((2, 3, 4))), r"x of shape \(N, Cin, H, W\)"),
        (dict(w1=np.zeros((4, 2, 3, 3))), r"w1 of shape \(C, 3, 3, 3\)"),
        (dict(w2=np.zeros((4, 4, 1, 1))), r"w2 of shape \(4, 4, 3, 3\)"),
        (dict(stride=0), "integer stride >= 1"),
        (dict(shortcut=None), "identity shortcut needs Cin == C and stride 1"),
        (dict(bn1="bn"), "BNState"),
        (dict(bn2=BNState(np.ones(3), np.zeros(4), None, None)), r"BN weight of shape \(4,\), found \(3,\)"),
        (dict(bn2=BNState(None, np.zeros(4), None, None)), "affine batch norms"),
        (dict(ws=np.zeros((4, 3, 3, 3))), r"shortcut weight of shape \(4, 3, 1, 1\)"),
        (dict(x=np.zeros((1, 3, 2, 2))), "more than one value per channel"),
        (dict(w2=np.zeros((4, 4, 3, 3), np.float32)), "one floating dtype"),
    ],
)
def test_residual_block_rejects_bad_arguments(kwargs, match):
    bn = BNState(np.ones(4), np.zeros(4), None, None)
    args = dict(x=np.zeros((2, 3, 4, 4)), w1=np.zeros((4, 3, 3, 3)), bn1=bn, w2=np.zeros((4, 4, 3, 3)), bn2=bn,
                stride=2, ws=np.zeros((4, 3, 1, 1)))
    args.update(kwargs)
    ws = args.pop("ws")
    args.setdefault("shortcut", (ws, bn))
    with pytest.raises((ValueError, TypeError), match=match):
        residual_block(**args)


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("p,c", [(33, 4), (1, 3), (40, 16), (7, 48), (5, 100)])
def test_kernels_against_numpy(rng, p, c):
    """Channels-last (pixels, channels) arrays, walked in flat runs of whole rows (a last,
    partial run when the rows do not fill one)."""
    y, g, r = (rng.normal(size=(p, c)) for _ in range(3))
    out = np.maximum(rng.normal(size=(p, c)), 0)
    a, b, ar, br, c0 = (rng.normal(size=c) for _ in range(5))

    sums = np.zeros((2, c))
    fk.moments(y, sums)
    np.testing.assert_allclose(sums, [y.sum(axis=0), (y * y).sum(axis=0)], rtol=1e-13)
    fk.moments(y.astype(np.float32), sums)  # float32 values, float64 sums: accumulates
    np.testing.assert_allclose(sums, 2 * np.array([y.sum(axis=0), (y * y).sum(axis=0)]), rtol=1e-6, atol=1e-6)

    res = np.empty_like(y)
    fk.affine2_relu(y, a, b, r, ar, br, res)
    np.testing.assert_allclose(res, np.maximum(a * y + b + ar * r + br, 0), rtol=1e-13, atol=1e-15)

    gm, sums = np.empty_like(g), np.zeros((3, c))
    fk.masked_moments(g, out, y, r, True, gm, sums)
    want = g * (out > 0)
    np.testing.assert_array_equal(gm, want)
    np.testing.assert_allclose(sums, [want.sum(axis=0), (want * y).sum(axis=0), (want * r).sum(axis=0)],
                               rtol=1e-13, atol=1e-14)

    fk.affine_grad(g, y, a, b, c0, res)
    np.testing.assert_allclose(res, a * g + b * y + c0, rtol=1e-13, atol=1e-15)

    gh, sums = g.copy(), np.zeros((2, c))
    fk.relu_grad_moments(gh, y, a, b, sums)
    np.testing.assert_array_equal(gh, g * (a * y + b > 0))
    np.testing.assert_allclose(sums, [gh.sum(axis=0), (gh * y).sum(axis=0)], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shape", [(8, 2, 16), (5, 3, 7), (8, 144, 16), (4, 576, 64), (1, 3, 5)])
def test_task_sums_are_added_in_task_order(rng, shape):
    from dctnet.functional.fused import _sum_tasks

    for dtype in (np.float64, np.float32):
        partial = (rng.normal(size=shape) * 10.0 ** rng.uniform(-4, 4, shape)).astype(dtype)
        ordered = partial[0].copy()
        for p in partial[1:]:
            ordered += p
        np.testing.assert_array_equal(_sum_tasks(partial), ordered)  # bit for bit: the order is fixed
