"""Batch normalization with PyTorch's semantics (running statistics, eval mode).

Statistics are per channel (axis 1) over every other axis, so ``(N, C)``,
``(N, C, L)`` and ``(N, C, H, W)`` inputs all work.

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

import math

from ..autograd import Function
from ..backend import get_array_module
from ._utils import check_float, shape_of

__all__ = ["batch_norm"]


class BatchNorm(Function):
    # Broadcast passes over x dominate the cost, so the output is formed in two
    # (x * scale + shift) and x_hat is only rebuilt in backward.
    def forward(ctx, x, running_mean, running_var, weight, bias, training=False, momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        c = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, c) + (1,) * (x.ndim - 2)  # broadcasts a per-channel vector
        if training:
            m = x.size // c
            mu = x.mean(axis=axes)
            xc = x - mu.reshape(shape)
            var = (xc * xc).mean(axis=axes)  # biased: normalizes this batch
            for running, stat in ((running_mean, mu), (running_var, var * (m / (m - 1)))):
                if running is not None:  # in place, so the caller's buffers follow
                    running *= 1 - momentum
                    running += (momentum * stat).astype(running.dtype)
        else:
            mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        inv_std = 1 / xp.sqrt(var + eps)
        scale = inv_std if weight is None else weight * inv_std
        if training:
            out, shift = xc * scale.reshape(shape), bias
        else:  # x * scale + (bias - mu * scale)
            out, shift = x * scale.reshape(shape), -mu * scale if bias is None else bias - mu * scale
        if shift is not None:
            out += shift.reshape(shape)
        ctx.save_for_backward(xc if training else x, mu, inv_std, weight)
        ctx.training, ctx.axes, ctx.shape = training, axes, shape
        ctx.has_bias = bias is not None
        return out

    def backward(ctx, g):
        xc, mu, inv_std, weight = ctx.saved
        axes, shape, need = ctx.axes, ctx.shape, ctx.needs_input_grad
        if not ctx.training:  # saved x, not x - mu
            xc = xc - mu.reshape(shape)
        batch_stats = ctx.training and need[0]  # their gradient needs both sums below
        gb = g.sum(axis=axes) if batch_stats or (ctx.has_bias and need[4]) else None
        # sum(g * x_hat), without forming x_hat
        gg = (g * xc).sum(axis=axes) * inv_std if batch_stats or (weight is not None and need[3]) else None
        gx = None
        if need[0]:
            scale = inv_std if weight is None else weight * inv_std
            if ctx.training:  # the batch statistics depend on x too
                m = g.size // g.shape[1]
                gx = g - (gb / m).reshape(shape)
                gx -= xc * (gg * inv_std / m).reshape(shape)
                gx *= scale.reshape(shape)
            else:
                gx = g * scale.reshape(shape)
        gw = gg if weight is not None and need[3] else None
        gbias = gb if ctx.has_bias and need[4] else None
        return gx, None, None, gw, gbias


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalize ``x`` (N, C, ...) per channel, then scale by ``weight`` and shift by ``bias``.

    Training mode uses the batch mean and biased variance and, when given,
    updates ``running_mean``/``running_var`` in place:
    ``running = (1 - momentum) * running + momentum * batch_stat`` with the
    *unbiased* batch variance (PyTorch). Eval mode uses the running statistics.
    Differentiable w.r.t. ``x``, ``weight`` and ``bias`` in both modes.

    >>> import numpy as np
    >>> x = np.ones((4, 3, 2, 2), np.float32)
    >>> float(batch_norm(x, np.ones(3, np.float32), np.ones(3, np.float32)).data.max())
    0.0
    """
    xs = shape_of(x)
    if len(xs) < 2:
        raise ValueError(f"batch_norm expects x of shape (N, C, ...), found shape {xs}")
    c = xs[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if a is not None and shape_of(a) != (c,):
            raise ValueError(f"batch_norm expects {name} of shape ({c},) for x of shape {xs}, found {shape_of(a)}")
    if training and xs[0] * math.prod(xs[2:]) <= 1:
        raise ValueError(f"batch_norm in training mode needs more than one value per channel, found x of shape {xs}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm in eval mode (training=False) needs running_mean and running_var")
    check_float("batch_norm", x=x, weight=weight, bias=bias)
    return BatchNorm.apply(x, running_mean, running_var, weight, bias, training=training, momentum=momentum, eps=eps)
