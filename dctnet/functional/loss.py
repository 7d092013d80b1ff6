"""Classification loss and metric on logits ``(N, K)`` with class indices ``(N,)``.

>>> import numpy as np
>>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
>>> round(float(cross_entropy(logits, np.array([0, 1])).data), 4)
0.1269
>>> accuracy(logits, np.array([0, 0]))
0.5
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ._utils import check_float, shape_of
from .activation import log_softmax_array

__all__ = ["cross_entropy", "accuracy"]

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    # Fused log-softmax + NLL: the gradient softmax - target is exact and cheap.
    def forward(ctx, logits, target, reduction="mean", label_smoothing=0.0):
        xp = get_array_module(logits)
        n, k = logits.shape
        logp = log_softmax_array(logits, 1)
        loss = -(1 - label_smoothing) * logp[xp.arange(n), target]
        if label_smoothing:  # the target spreads label_smoothing / K on every class
            loss -= label_smoothing * logp.mean(axis=1)
        ctx.save_for_backward(logp, target)
        ctx.reduction, ctx.smoothing = reduction, label_smoothing
        if reduction == "none":
            return loss
        return loss.sum() / n if reduction == "mean" else loss.sum()

    def backward(ctx, g):
        logp, target = ctx.saved
        xp = get_array_module(logp)
        n, k = logp.shape
        grad = xp.exp(logp)
        grad[xp.arange(n), target] -= 1 - ctx.smoothing
        if ctx.smoothing:
            grad -= ctx.smoothing / k
        if ctx.reduction == "none":
            grad *= g[:, None]
        else:
            grad *= g / n if ctx.reduction == "mean" else g
        return grad, None


def _check_target(op, logits, target):
    ls, ts = shape_of(logits), shape_of(target)
    if len(ls) != 2:
        raise ValueError(f"{op} expects logits of shape (N, K), found shape {ls}")
    if ts != ls[:1]:
        raise ValueError(f"{op} expects target of shape ({ls[0]},) for logits {ls}, found shape {ts}")
    t = target.data if isinstance(target, Tensor) else target
    if np.dtype(t.dtype).kind not in "iu":
        raise TypeError(f"{op} expects integer class indices as target, found dtype {t.dtype}")
    if t.size and (int(t.min()) < 0 or int(t.max()) >= ls[1]):
        raise ValueError(
            f"{op} target holds class indices in [{int(t.min())}, {int(t.max())}], "
            f"expected them in [0, {ls[1] - 1}] for {ls[1]} classes"
        )


def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of ``logits`` (N, K) against class indices ``target`` (N,).

    ``reduction`` is "mean" (over N), "sum" or "none" (per-sample losses);
    ``label_smoothing`` in [0, 1] mixes the one-hot target with the uniform
    distribution, as ``torch.nn.functional.cross_entropy``. Stable for any
    finite logits (log-softmax shifted by the row max).

    >>> import numpy as np
    >>> cross_entropy(np.array([[1e4, -1e4]]), np.array([1]), reduction="none").data
    array([20000.])
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, found {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], found {label_smoothing}")
    _check_target("cross_entropy", logits, target)
    check_float("cross_entropy", logits=logits)
    return CrossEntropy.apply(logits, target, reduction=reduction, label_smoothing=float(label_smoothing))


def accuracy(logits, target):
    """Fraction of rows whose largest logit is at the target class (a float, no gradient).

    >>> import numpy as np
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    _check_target("accuracy", logits, target)
    logits = logits.data if isinstance(logits, Tensor) else logits
    target = target.data if isinstance(target, Tensor) else target
    return float((logits.argmax(axis=1) == target).mean())
