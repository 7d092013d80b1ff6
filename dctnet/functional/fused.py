"""The paper's residual block in training mode as one differentiable op.

``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with batch statistics,
where the shortcut is the identity or ``bn_s(conv_s(x))`` (1x1, same stride).
Computed as :class:`dctnet.nn.ResidualBlock` computes it in training mode,
but in three sweeps forward and three backward, each a few images per task on
the engine's threads (:mod:`dctnet.threads`), with the work between the GEMMs
fused while it is in cache:

* forward: each conv's batch-norm moments are taken in its GEMM epilogue;
  BN1 + ReLU is applied while conv2's patches are built, so its output is
  never stored (backward forms it again the same way); BN2 + shortcut BN +
  addition + ReLU is one pass;
* backward: the ReLU mask and the three sums BN2 and the shortcut BN need
  are one pass; each chunk's BN gradient feeds its conv's weight and input
  gradients right away, and the input gradient of conv2 is masked by ReLU1
  while the moments BN1 needs are taken.

Moments are float64 sums per task, added in task order, so results do not
depend on the thread count. Running statistics are updated in place exactly
as :func:`dctnet.functional.batch_norm` updates them (momentum, unbiased
variance). CuPy arrays take the unfused composition of the ordinary ops.

>>> import numpy as np
>>> from dctnet import Tensor
>>> rng = np.random.default_rng(0)
>>> x = Tensor(rng.normal(size=(4, 3, 8, 8)).astype(np.float32), requires_grad=True)
>>> w1 = Tensor(rng.normal(size=(5, 3, 3, 3)).astype(np.float32), requires_grad=True)
>>> w2 = Tensor(rng.normal(size=(5, 5, 3, 3)).astype(np.float32), requires_grad=True)
>>> ws = Tensor(rng.normal(size=(5, 3, 1, 1)).astype(np.float32), requires_grad=True)
>>> def bn():
...     return BNState(Tensor(np.ones(5, np.float32), requires_grad=True),
...                    Tensor(np.zeros(5, np.float32), requires_grad=True),
...                    np.zeros(5, np.float32), np.ones(5, np.float32))
>>> y = residual_block(x, w1, bn(), w2, bn(), stride=2, shortcut=(ws, bn()))
>>> y.shape
(4, 5, 4, 4)
>>> y.sum().backward()
>>> x.grad.shape, w1.grad.shape
((4, 3, 8, 8), (5, 3, 3, 3))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import buffers
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import fused as fk
from ..threads import parallel_for, scratch, serial_blas
from ._utils import check_float, shape_of
from .activation import relu
from .channels_last import InputGrad, forward_images, to_nchw, to_nhwc, weight_from_matrix, weight_grad_images, weight_matrix
from .conv import chunking, conv2d
from .norm import batch_norm

__all__ = ["BNState", "residual_block"]


class BNState(NamedTuple):
    """A BatchNorm2d's parameters and running buffers, as ``residual_block`` takes them.

    ``weight``/``bias`` are (C,) Tensors (or arrays); ``running_mean`` and
    ``running_var`` (C,) arrays that training updates in place (or None).
    """

    weight: object
    bias: object
    running_mean: object
    running_var: object
    momentum: float = 0.1
    eps: float = 1e-5


def _sum_tasks(partial):
    """Per-task partial sums (tasks, ...) added in task order (deterministic whatever ran them).

    NumPy reduces a leading axis one slice after the other (pairwise summation is for the
    contiguous axis only), so this is ``partial[0] + partial[1] + ...`` in one call."""
    return np.add.reduce(partial, axis=0)


def _train_stats(sums, m, gamma, beta, running_mean, running_var, momentum, eps, dtype):
    """Batch mean/variance from (sum, sum of squares) over ``m`` values; the BN as
    ``a * y + b``; running statistics updated in place. Returns (a, b, mu, inv)."""
    mu = sums[0] / m
    var = np.maximum(sums[1] / m - mu * mu, 0.0)  # biased: normalizes this batch
    for running, stat in ((running_mean, mu), (running_var, var * (m / (m - 1)))):
        if running is not None:  # in place, so the caller's buffers follow
            running *= 1 - momentum
            running += (momentum * stat).astype(running.dtype)
    inv = 1.0 / np.sqrt(var + eps)
    a = np.asarray(gamma, np.float64) * inv
    b = np.asarray(beta, np.float64) - mu * a
    return a.astype(dtype), b.astype(dtype), mu, inv


def _bn_backward(s_g, s_gy, m, a, mu, inv, dtype):
    """BN's input gradient ``A*g + B*y + C`` from sum(g) and sum(g*y); also (dgamma, dbeta).

    With x_hat = (y - mu) * inv: dbeta = sum(g), dgamma = sum(g * x_hat) and
    dy = a * (g - dbeta/m - x_hat * dgamma/m), as in batch_norm's backward.
    """
    a = a.astype(np.float64)
    dbeta = s_g
    dgamma = inv * (s_gy - mu * s_g)
    big_a = a
    big_b = -a * inv * dgamma / m
    big_c = -a * dbeta / m - big_b * mu
    return (big_a.astype(dtype), big_b.astype(dtype), big_c.astype(dtype)), dgamma.astype(dtype), dbeta.astype(dtype)


class ResidualBlockOp(Function):
    """Forward and backward of :func:`residual_block` on channels-last (NHWC) NumPy arrays."""

    def forward(ctx, *args, **kwargs):
        with serial_blas():  # once for the six parallel regions
            return ctx._forward(*args, **kwargs)

    def backward(ctx, g):
        with serial_blas():
            return ctx._backward(g)

    def _forward(ctx, x, w1, g1, b1, w2, g2, b2, ws=None, gs=None, bs=None, running=(), stride=1):
        (rm1, rv1, mo1, e1), (rm2, rv2, mo2, e2), bsc = running[0], running[1], running[2:]
        x = np.ascontiguousarray(x)
        n, h, w, cin = x.shape
        c = w1.shape[0]
        ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1  # 3x3, padding 1
        dtype, m = x.dtype, n * ho * wo
        proj = ws is not None
        # a task's share of the arrays one sweep touches stays within CHUNK_BYTES["cpu"]
        chunk, tasks = chunking(n, (cin * h * w + 2 * c * ho * wo) * x.itemsize)
        wt1, wt2 = weight_matrix(w1), weight_matrix(w2)
        wts = weight_matrix(ws) if proj else None
        y1, y2, out = (buffers.empty((n, ho, wo, c), dtype) for _ in range(3))
        ys = buffers.empty((n, ho, wo, c), dtype) if proj else None
        sums1, sums2, sumss = (np.zeros((tasks, 2, c)) for _ in range(3))
        st = (stride, stride)

        def parts(t):
            return slice(t * chunk, (t + 1) * chunk)

        def conv1(worker, t):
            p = parts(t)
            forward_images(x[p], wt1, (3, 3), st, 1, 1, y1[p], sums1[t])
            if proj:
                forward_images(x[p], wts, (1, 1), st, 0, 0, ys[p], sumss[t])

        parallel_for(conv1, tasks)
        a1, c1, mu1, inv1 = _train_stats(_sum_tasks(sums1), m, g1, b1, rm1, rv1, mo1, e1, dtype)
        if proj:
            rms, rvs, mos, es = bsc[0]
            a_s, c_s, mus, invs = _train_stats(_sum_tasks(sumss), m, gs, bs, rms, rvs, mos, es, dtype)
        else:
            a_s, c_s = np.ones(c, dtype), np.zeros(c, dtype)

        def conv2(worker, t):  # conv2 reads relu(bn1(y1)), formed while its patches are built
            p = parts(t)
            forward_images(y1[p], wt2, (3, 3), (1, 1), 1, 1, y2[p], sums2[t],
                           transform=(a1, c1))

        parallel_for(conv2, tasks)
        a2, c2, mu2, inv2 = _train_stats(_sum_tasks(sums2), m, g2, b2, rm2, rv2, mo2, e2, dtype)

        def finish(worker, t):
            p = parts(t)
            fk.affine2_relu(_rows(y2, p), a2, c2, _rows(ys if proj else x, p), a_s, c_s, _rows(out, p))

        parallel_for(finish, tasks)
        ctx.save_for_backward(x, w1, w2, ws, y1, y2, ys, out)
        ctx.stats = (a1, c1, mu1, inv1), (a2, mu2, inv2), ((a_s, mus, invs) if proj else None)
        ctx.stride, ctx.chunking = stride, (chunk, tasks)
        return out

    def _backward(ctx, g):
        x, w1, w2, ws, y1, y2, ys, out = ctx.saved
        (a1, c1, mu1, inv1), (a2, mu2, inv2), sc = ctx.stats
        stride, (chunk, tasks) = ctx.stride, ctx.chunking
        need = ctx.needs_input_grad
        proj, want_x = ws is not None, need[0]
        n, ho, wo, c = out.shape
        cin, m, dtype = x.shape[3], n * ho * wo, g.dtype
        st = (stride, stride)
        g = np.ascontiguousarray(g)

        def parts(t):
            return slice(t * chunk, (t + 1) * chunk)

        # 1. ReLU2's mask and the moments of BN2 (and of the shortcut's BN)
        gm = buffers.empty(g.shape, dtype)
        sums = np.zeros((tasks, 3, c))

        def mask(worker, t):
            p = parts(t)
            r = _rows(ys if proj else g, p)
            fk.masked_moments(_rows(g, p), _rows(out, p), _rows(y2, p), r, proj, _rows(gm, p), sums[t])

        parallel_for(mask, tasks)
        s = _sum_tasks(sums)
        coef2, dg2, db2 = _bn_backward(s[0], s[1], m, a2, mu2, inv2, dtype)
        if proj:
            a_s, mus, invs = sc
            coefs, dgs, dbs = _bn_backward(s[0], s[2], m, a_s, mus, invs, dtype)

        # 2. conv2's gradients, ReLU1's mask and the moments of BN1; the shortcut's gradients
        gh = buffers.empty(y1.shape, dtype)
        gx = buffers.empty(x.shape, dtype) if want_x else None
        pw2 = np.empty((tasks, 9 * c, c), dtype)
        pws = np.empty((tasks, cin, c), dtype) if proj else None
        sums1 = np.zeros((tasks, 2, c))
        plan2 = InputGrad(w2, y1.shape, y2.shape, (1, 1), (1, 1))
        plans = InputGrad(ws, x.shape, y2.shape, st, (0, 0)) if proj and want_x else None

        def conv2_grads(worker, t):
            p = parts(t)
            gy = scratch("fused.gy", gm[p].shape, dtype)
            fk.affine_grad(_rows(gm, p), _rows(y2, p), *coef2, gy.reshape(-1, c))
            weight_grad_images(y1[p], gy, (3, 3), (1, 1), 1, 1, pw2[t], transform=(a1, c1))
            plan2.images(gy, gh[p])
            fk.relu_grad_moments(_rows(gh, p), _rows(y1, p), a1, c1, sums1[t])
            if proj:
                fk.affine_grad(_rows(gm, p), _rows(ys, p), *coefs, gy.reshape(-1, c))
                weight_grad_images(x[p], gy, (1, 1), st, 0, 0, pws[t])
                if want_x:
                    plans.images(gy, gx[p])
            elif want_x:
                gx[p] = gm[p]

        parallel_for(conv2_grads, tasks)
        s1 = _sum_tasks(sums1)
        coef1, dg1, db1 = _bn_backward(s1[0], s1[1], m, a1, mu1, inv1, dtype)

        # 3. conv1's gradients
        pw1 = np.empty((tasks, 9 * cin, c), dtype)
        plan1 = InputGrad(w1, x.shape, y1.shape, st, (1, 1)) if want_x else None

        def conv1_grads(worker, t):
            p = parts(t)
            gy = scratch("fused.gy", gh[p].shape, dtype)
            fk.affine_grad(_rows(gh, p), _rows(y1, p), *coef1, gy.reshape(-1, c))
            weight_grad_images(x[p], gy, (3, 3), st, 1, 1, pw1[t])
            if want_x:
                part = scratch("fused.gx", x[p].shape, dtype)
                plan1.images(gy, part)
                gx[p] += part

        parallel_for(conv1_grads, tasks)
        grads = [gx, weight_from_matrix(_sum_tasks(pw1), w1.shape), dg1, db1,
                 weight_from_matrix(_sum_tasks(pw2), w2.shape), dg2, db2]
        if proj:
            grads += [weight_from_matrix(_sum_tasks(pws), ws.shape), dgs, dbs]
        else:
            grads += [None, None, None]
        return tuple(gr if nd else None for gr, nd in zip(grads, need))


def _rows(a, part):
    """Images ``part`` of the NHWC array ``a`` as (pixels, channels)."""
    return a[part].reshape(-1, a.shape[3])


class ToChannelsLast(Function):
    """(N, C, H, W) -> (N, H, W, C), differentiable (the gradient is transposed back)."""

    def forward(ctx, x):
        return to_nhwc(x)

    def backward(ctx, g):
        return (to_nchw(g),)


class ToChannelsFirst(Function):
    """(N, H, W, C) -> (N, C, H, W), differentiable."""

    def forward(ctx, x):
        return to_nchw(x)

    def backward(ctx, g):
        return (to_nhwc(g),)


def _unfused(x, w1, bn1, w2, bn2, stride, shortcut):
    """The same block from the ordinary ops (the CuPy path)."""

    def bn(y, s):
        return batch_norm(y, s.running_mean, s.running_var, s.weight, s.bias, True, s.momentum, s.eps)

    hidden = relu(bn(conv2d(x, w1, None, stride, 1), bn1))
    y = bn(conv2d(hidden, w2, None, 1, 1), bn2)
    r = x if shortcut is None else bn(conv2d(x, shortcut[0], None, stride, 0), shortcut[1])
    return relu(y + r)


def residual_block(x, w1, bn1, w2, bn2, stride=1, shortcut=None, channels_last=False):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` in training mode.

    ``x`` is (N, Cin, H, W); ``w1`` (C, Cin, 3, 3) and ``w2`` (C, C, 3, 3)
    are the bias-free 3x3 convs (``w1`` with ``stride``, both padding 1);
    ``bn1``/``bn2`` are :class:`BNState`\\ s of C channels; ``shortcut`` is
    None (identity: needs Cin == C and stride 1) or ``(ws, bn_s)`` with ``ws``
    (C, Cin, 1, 1) at ``stride``. Batch statistics normalize; running
    statistics are updated in place. Differentiable w.r.t. ``x``, the three
    conv weights and the BN weights and biases. ``channels_last=True`` takes
    and returns (N, H, W, C) NumPy arrays, the engine's own layout, so that
    consecutive blocks skip the conversions (see :class:`ToChannelsLast`).
    """
    xs, s1, s2 = shape_of(x), shape_of(w1), shape_of(w2)
    if channels_last and len(xs) == 4:
        xs = (xs[0], xs[3], xs[1], xs[2])
    if len(xs) != 4:
        raise ValueError(f"residual_block expects x of shape (N, Cin, H, W), found shape {xs}")
    c = s1[0] if len(s1) == 4 else None
    if s1 != (c, xs[1], 3, 3):
        raise ValueError(f"residual_block expects w1 of shape (C, {xs[1]}, 3, 3), found {s1}")
    if s2 != (c, c, 3, 3):
        raise ValueError(f"residual_block expects w2 of shape ({c}, {c}, 3, 3), found {s2}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"residual_block needs an integer stride >= 1, found {stride!r}")
    if shortcut is None and (xs[1] != c or stride != 1):
        raise ValueError(f"an identity shortcut needs Cin == C and stride 1, found Cin {xs[1]}, C {c}, stride {stride}")
    bns = [bn1, bn2] + ([] if shortcut is None else [shortcut[1]])
    for i, s in enumerate(bns):
        if not isinstance(s, BNState):
            raise TypeError(f"residual_block takes batch norms as BNState(weight, bias, running_mean, running_var, momentum, eps), found {type(s).__name__}")
        for name, a in (("weight", s.weight), ("bias", s.bias), ("running_mean", s.running_mean), ("running_var", s.running_var)):
            if a is None and name in ("weight", "bias"):
                raise ValueError(f"residual_block needs affine batch norms (weight and bias), found {name}=None")
            if a is not None and shape_of(a) != (c,):
                raise ValueError(f"residual_block expects BN {name} of shape ({c},), found {shape_of(a)}")
    if shortcut is not None and shape_of(shortcut[0]) != (c, xs[1], 1, 1):
        raise ValueError(f"residual_block expects the shortcut weight of shape ({c}, {xs[1]}, 1, 1), found {shape_of(shortcut[0])}")
    ws = None if shortcut is None else shortcut[0]
    check_float("residual_block", x=x, w1=w1, w2=w2, shortcut=ws, **{f"bn{i}_{k}": getattr(s, k) for i, s in enumerate(bns) for k in ("weight", "bias")})
    if xs[0] * ((xs[2] - 1) // stride + 1) * ((xs[3] - 1) // stride + 1) <= 1:
        raise ValueError(f"residual_block in training mode needs more than one value per channel, found x of shape {xs}")
    if get_array_module(x, w1, w2, ws) is not np:
        if channels_last:
            raise ValueError("channels_last=True is a CPU engine layout; CuPy arrays are (N, C, H, W)")
        return _unfused(x, w1, bn1, w2, bn2, stride, shortcut)
    running = tuple((s.running_mean, s.running_var, s.momentum, s.eps) for s in bns)
    sc = (None, None, None) if shortcut is None else (ws, shortcut[1].weight, shortcut[1].bias)
    y = ResidualBlockOp.apply(
        x if channels_last else ToChannelsLast.apply(x), w1, bn1.weight, bn1.bias, w2, bn2.weight, bn2.bias, *sc,
        running=running, stride=int(stride),
    )
    return y if channels_last else ToChannelsFirst.apply(y)
