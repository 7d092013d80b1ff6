"""Batch normalization, written once: pixels or DCT blocks, one process or many.

PyTorch's semantics: statistics per channel (axis 1) over every other axis;
training mode normalizes by the batch mean and biased variance and updates
the running statistics in place (the variance unbiased), eval mode uses the
running statistics. The one :class:`BatchNorm` Function computes every
variant; two arguments tell them apart:

- ``layout``: how an array stores a field, which decides how a per-channel
  *constant* is summed and added. :data:`PIXELS` (``(N, C)``, ``(N, C, L)``,
  ``(N, C, H, W)``, ...): in every value. :data:`DCT_BLOCKS` (``(N, C, BH,
  BW, 64)``, docs/design.md §3): in the DC alone, as ``8 * c``, because the
  orthonormal 8x8 DCT of a constant block is ``(8c, 0, ..., 0)``. Everything
  else is shared, because the DCT is orthonormal: a sum of products of two
  fields equals the sum of products of their coefficients. So in DCT blocks
  the mean comes from the DC (``sum(DC) * 8 / count``), centring lowers only
  the DC (by ``8 * mean``), and the variance is the sum of squares of all 64
  coefficients of the centred blocks over ``count``, exactly spatial BN's.
- ``reduce``: the hook that sums a 1-D array of per-channel partial sums
  over the processes sharing a batch (an allreduce, as
  :class:`dctnet.distributed.SyncBatchNorm2d` passes); None: this process's
  batch is the whole batch.

This module is the one home of batch-norm arithmetic: the layout methods
(:class:`Pixels`, :class:`DCTBlocks`) and :func:`moments`,
:func:`update_running` and :class:`BatchNorm` are where faster kernels go.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(64, 2))
>>> rm, rv = np.zeros(2), np.ones(2)
>>> y = batch_norm(x, rm, rv, training=True).data
>>> np.allclose(y.mean(axis=0), 0), np.allclose(y.var(axis=0), 1, atol=1e-4)
(True, True)
>>> bool(rm[0] > 0)  # updated in place: 0.9 * 0 + 0.1 * batch mean
True
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import get_array_module
from ._utils import check_float

__all__ = ["BatchNorm", "DCTBlocks", "DCT_BLOCKS", "PIXELS", "Pixels", "batch_norm", "dot", "moments",
           "update_running"]


def _per_channel(v, like):
    """The per-channel vector ``v`` shaped to broadcast against ``like`` (N, C, ...)."""
    return v.reshape((1, like.shape[1]) + (1,) * (like.ndim - 2))


def _channel_axes(a):
    return (0,) + tuple(range(2, a.ndim))


def dot(a, b):
    """Per channel, the sum of ``a * b`` over the values, in either layout (the DCT is orthonormal)."""
    return (a * b).sum(axis=_channel_axes(a))


class Pixels:
    """Fields stored value by value, (N, C, ...): a constant is in every value."""

    op = "batch_norm"  # the function named in error messages

    def check(self, x):
        if x.ndim < 2:
            raise ValueError(f"{self.op} expects x of shape (N, C, ...), found shape {x.shape}")

    def total(self, a):
        """Per channel, the sum of the field's values."""
        return a.sum(axis=_channel_axes(a))

    def subtract(self, a, c):
        """``a`` minus the per-channel constant ``c``, as a new array."""
        return a - _per_channel(c, a)

    def add_(self, a, c):
        """Add the per-channel constant ``c`` to ``a``, in place."""
        a += _per_channel(c, a)


class DCTBlocks:
    """Fields stored as 8x8 DCT blocks, (N, C, BH, BW, 64): a constant ``c`` is a DC of ``8 * c``."""

    op = "dct_batch_norm"

    def check(self, x):
        if x.ndim != 5 or x.shape[-1] != 64:
            raise ValueError(f"{self.op} expects x of shape (N, C, BH, BW, 64), found shape {x.shape}")

    def total(self, a):
        return 8 * a[..., 0].sum(axis=(0, 2, 3))  # a block's values sum to 8 * DC

    def subtract(self, a, c):
        out = a.copy()
        out[..., 0] -= (8 * c)[:, None, None]
        return out

    def add_(self, a, c):
        a[..., 0] += (8 * c)[:, None, None]


PIXELS, DCT_BLOCKS = Pixels(), DCTBlocks()


def moments(x, layout=PIXELS, reduce=None):
    """``(count, mean, x - mean, biased variance)`` per channel of the batch.

    Two passes (mean, then the centred sum of squares), each partial sum
    taken in ``x``'s dtype and, through ``reduce``, summed in float64 over
    the processes; so with ``reduce`` every process gets the statistics of
    the whole batch, up to the summation order.
    """
    xp = get_array_module(x)
    n = x.size // x.shape[1]  # values per channel here (64 per DCT block)
    sums = xp.concatenate([xp.full(1, n, np.float64), layout.total(x).astype(np.float64)])
    if reduce is not None:
        sums = reduce(sums)
    count = n if reduce is None else int(sums[0])
    if count <= 1:
        where = " over all processes" if reduce is not None else ""
        raise ValueError(f"{layout.op} in training mode needs more than one value per channel{where}, "
                         f"found {count} in x of shape {x.shape}")
    mean = (sums[1:] / count).astype(x.dtype)  # the division in float64, as NumPy's mean does
    xc = layout.subtract(x, mean)
    squares = dot(xc, xc).astype(np.float64)
    if reduce is not None:
        squares = reduce(squares)
    return count, mean, xc, (squares / count).astype(x.dtype)


def update_running(running_mean, running_var, mean, var, count, momentum):
    """``running = (1 - momentum) * running + momentum * stat``, in place (None: skipped).

    The variance enters unbiased, ``var * count / (count - 1)``, as in PyTorch.
    """
    for running, stat in ((running_mean, mean), (running_var, var * (count / (count - 1)))):
        if running is not None:  # in place, so the caller's buffers follow
            running *= 1 - momentum
            running += (momentum * stat).astype(running.dtype)


class BatchNorm(Function):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` per channel, in ``layout``, with ``reduce``.

    Positional arguments: ``x, running_mean, running_var, weight, bias``;
    gradients flow to ``x``, ``weight`` and ``bias``.
    """

    def forward(ctx, x, running_mean, running_var, weight, bias, training=False, momentum=0.1, eps=1e-5,
                layout=PIXELS, reduce=None):
        layout.check(x)
        c = x.shape[1]
        for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
            if a is not None and a.shape != (c,):
                raise ValueError(f"{layout.op} expects {name} of shape ({c},) for x of shape {x.shape}, "
                                 f"found {a.shape}")
        if not training and (running_mean is None or running_var is None):
            raise ValueError(f"{layout.op} in eval mode needs running_mean and running_var "
                             "(training=False normalizes by them)")
        check_float(layout.op, x=x, weight=weight, bias=bias)
        xp = get_array_module(x)
        count = xc = None
        if training:
            count, mu, xc, var = moments(x, layout, reduce)
            update_running(running_mean, running_var, mu, var, count, momentum)
        else:
            mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        inv_std = 1 / xp.sqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std
        # Two broadcast passes over x: the product, then the per-channel shift.
        if training:  # from x - mean, which the variance needed anyway
            out, shift = xc * _per_channel(scale, x), bias
        else:  # x * scale + (bias - mean * scale)
            out, shift = x * _per_channel(scale, x), -mu * scale if bias is None else bias - mu * scale
        if shift is not None:
            layout.add_(out, shift)
        ctx.save_for_backward(xc if training else x, mu, inv_std, weight)
        ctx.training, ctx.count, ctx.layout, ctx.reduce = training, count, layout, reduce
        ctx.has_bias = bias is not None
        return out

    def backward(ctx, g):
        xc, mu, inv_std, weight = ctx.saved
        layout, need = ctx.layout, ctx.needs_input_grad
        batch_stats = ctx.training and need[0]  # the gradient through the statistics needs both sums
        want_weight, want_bias = weight is not None and need[3], ctx.has_bias and need[4]
        if not ctx.training and want_weight:  # saved x, not x - mean
            xc = layout.subtract(xc, mu)
        gb = layout.total(g) if batch_stats or want_bias else None  # sum of g
        gxc = dot(g, xc) if batch_stats or want_weight else None  # sum of g * (x - mean): no x_hat formed
        gx = None
        if need[0]:
            scale = inv_std if weight is None else weight * inv_std
            if ctx.training:
                sum_g, sum_gxc = gb, gxc
                if ctx.reduce is not None:  # the batch statistics came from every process's x
                    c = g.shape[1]
                    sums = ctx.reduce(get_array_module(g).concatenate([gb, gxc]))
                    sum_g, sum_gxc = sums[:c], sums[c:]
                m = ctx.count
                gx = layout.subtract(g, sum_g / m)
                gx -= xc * _per_channel(sum_gxc * inv_std * inv_std / m, g)
                gx *= _per_channel(scale, g)
            else:
                gx = g * _per_channel(scale, g)
        # Parameter gradients stay this process's own: distributed.allreduce_gradients averages them.
        gw = gxc * inv_std if want_weight else None
        gbias = gb if want_bias else None
        return gx, None, None, gw, gbias


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               reduce=None):
    """Normalize ``x`` (N, C, ...) per channel, then scale by ``weight`` and shift by ``bias``.

    Training mode uses the batch mean and biased variance and, when given,
    updates ``running_mean``/``running_var`` in place:
    ``running = (1 - momentum) * running + momentum * batch_stat`` with the
    *unbiased* batch variance (PyTorch). Eval mode uses the running statistics.
    ``reduce`` (training mode): a callable returning the sum over processes
    of a 1-D array of per-channel partial sums, so the statistics cover
    every process's batch (see :mod:`dctnet.distributed`). Differentiable
    w.r.t. ``x``, ``weight`` and ``bias`` in both modes.

    >>> import numpy as np
    >>> x = np.ones((4, 3, 2, 2), np.float32)
    >>> float(batch_norm(x, np.ones(3, np.float32), np.ones(3, np.float32)).data.max())
    0.0
    """
    return BatchNorm.apply(x, running_mean, running_var, weight, bias, training=training, momentum=momentum,
                           eps=eps, layout=PIXELS, reduce=reduce)
