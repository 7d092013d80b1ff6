"""Batch normalization computed on DCT coefficients, equal to spatial batch norm.

Per channel, over the batch and every block (DESIGN.md §3): the pixel mean is
``mean(DC) / 8`` and the pixel second moment ``mean(sum_k F_k^2) / 64`` (the
DCT is orthonormal), so the batch statistics need no inverse transform. The
affine map ``g * x + (beta - g * mu)`` scales every coefficient by ``g`` and
adds ``8 * (beta - g * mu)`` to the DC (a constant block has DC = 8 * value).
The backward pass is spatial BN's, mapped through the same identities.

>>> import numpy as np, dctnet
>>> x = np.random.default_rng(0).normal(size=(4, 2, 8, 8))
>>> c = dctnet.to_dct(x)
>>> y = dct_batch_norm(c, None, None, training=True)
>>> z = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
>>> np.allclose(dctnet.from_dct(y.data), z)
True
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module

__all__ = ["dct_batch_norm"]

_AXES = (0, 2, 3, 4)  # batch, block rows, block columns, coefficients
_B = (slice(None), None, None, None)  # a per-channel vector against (C, BH, BW, 64)


def affine(x, mu, inv_std, weight, bias):
    """``(out, gamma)``: every coefficient times ``g = gamma * inv_std``, the DC shifted by ``8 * (beta - g * mu)``."""
    xp = get_array_module(x)
    c = x.shape[1]
    gamma = xp.ones(c, x.dtype) if weight is None else weight
    beta = xp.zeros(c, x.dtype) if bias is None else bias
    g = gamma * inv_std
    out = x * g[_B]
    out[..., 0] += (8 * (beta - g * mu))[:, None, None]
    return out, gamma


def normalized(x, mu, inv_std):
    """``x_hat`` in the DCT domain: scaled, with the mean (a constant field) taken from the DC only."""
    xhat = x * inv_std[_B]
    xhat[..., 0] -= (8 * mu * inv_std)[:, None, None]
    return xhat


def parameter_grads(dy, xhat):
    """``(dgamma, dbeta)`` summed over this batch."""
    return (dy * xhat).sum(axis=_AXES), 8 * dy[..., 0].sum(axis=(0, 2, 3))


def batch_input_grad(dy, xhat, dgamma, dbeta, count, gamma, inv_std):
    """Spatial BN's ``g/sigma * (dy - mean(dy) - xhat * mean(dy * xhat))`` over ``count`` pixels,
    with mean(dy) a constant field, i.e. 8 * mean_pixel(dy) in the DC."""
    dx = dy - xhat * (dgamma / count)[_B]
    dx[..., 0] -= (dbeta / count * 8)[:, None, None]
    dx *= (gamma * inv_std)[_B]
    return dx


class DCTBatchNorm(Function):
    def forward(ctx, x, running_mean, running_var, weight, bias, training=False, momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        if x.ndim != 5 or x.shape[-1] != 64:
            raise ValueError(f"dct_batch_norm expects (N, C, BH, BW, 64), found shape {x.shape}")
        c = x.shape[1]
        for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
            if a is not None and a.shape != (c,):
                raise ValueError(f"{name} must have shape ({c},) for {c} channels, found {a.shape}")
        count = x.shape[0] * x.shape[2] * x.shape[3] * 64  # pixels per channel
        if training:
            if count <= 1:
                raise ValueError(f"batch norm in training mode needs more than one value per channel, found input {x.shape}")
            mu = x[..., 0].mean(axis=(0, 2, 3)) / 8
            var = xp.maximum((x * x).sum(axis=_AXES) / count - mu * mu, 0)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mu.astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += momentum * (var * count / (count - 1)).astype(running_var.dtype)
        else:
            if running_mean is None or running_var is None:
                raise ValueError("dct_batch_norm in eval mode needs running_mean and running_var")
            mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        inv_std = 1 / xp.sqrt(var + eps)
        out, gamma = affine(x, mu, inv_std, weight, bias)
        ctx.save_for_backward(x, mu, inv_std, gamma)
        ctx.training, ctx.count = training, count
        return out

    def backward(ctx, dy):
        x, mu, inv_std, gamma = ctx.saved
        xhat = normalized(x, mu, inv_std)
        dgamma, dbeta = parameter_grads(dy, xhat)
        dx = None
        if ctx.needs_input_grad[0]:
            if ctx.training:
                dx = batch_input_grad(dy, xhat, dgamma, dbeta, ctx.count, gamma, inv_std)
            else:
                dx = dy * (gamma * inv_std)[_B]
        return dx, None, None, dgamma, dbeta


def dct_batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch norm of DCT-domain ``x`` (N, C, BH, BW, 64), exactly spatial BN's.

    Arguments and running-statistics semantics are those of
    :func:`dctnet.functional.batch_norm` (PyTorch's): in training mode the batch
    statistics normalize and update ``running_mean``/``running_var`` in place
    (the variance unbiased); in eval mode the running statistics are used.
    """
    raw = lambda a: a.data if isinstance(a, Tensor) else a  # noqa: E731 - buffers are plain arrays
    return DCTBatchNorm.apply(
        x, raw(running_mean), raw(running_var), weight, bias,
        training=training, momentum=momentum, eps=eps,
    )


def dct_normalize(x, mean, std):
    """``(pixels - mean) / std`` per channel, on DCT-domain ``x`` (N, C, BH, BW, 64).

    Every coefficient is divided by ``std``; the mean, a constant per channel,
    only moves the DC (by ``8 * mean / std``). Exactly the pixel-domain
    normalization, without leaving the DCT domain.
    """
    xp = get_array_module(x)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    c = x.shape[1]
    if mean.size not in (1, c) or std.size not in (1, c) or not np.all(std > 0):
        raise ValueError(f"mean and std must have 1 or {c} entries and std > 0, found mean {mean}, std {std}")
    scale = np.broadcast_to(1 / std, (c,))
    shift = np.zeros((c, 64))
    shift[:, 0] = -8 * mean / std
    dtype = np.dtype(x.dtype)
    return x * xp.asarray(scale.astype(dtype)).reshape(c, 1, 1, 1) + xp.asarray(shift.astype(dtype)).reshape(c, 1, 1, 64)
