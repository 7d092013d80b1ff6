"""Average pooling: windowed (no padding) and global.

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> avg_pool2d(x, 2).data[0, 0]
array([[ 2.5,  4.5],
       [10.5, 12.5]])
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from ._utils import check_float, pair, shape_of

__all__ = ["avg_pool2d", "global_avg_pool", "max_pool2d"]


def _taps(kernel, stride, out_shape):
    """Index of the input pixels that kernel tap (i, j) reads for every output pixel."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_shape
    for i in range(kh):
        for j in range(kw):
            yield (Ellipsis, slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))


class AvgPool2d(Function):
    # One strided add per kernel tap: no Python loop over pixels, any stride.
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2)):
        xp = get_array_module(x)
        ho = (x.shape[-2] - kernel[0]) // stride[0] + 1
        wo = (x.shape[-1] - kernel[1]) // stride[1] + 1
        ctx.x_shape, ctx.taps = x.shape, list(_taps(kernel, stride, (ho, wo)))
        out = xp.zeros(x.shape[:-2] + (ho, wo), x.dtype)
        for tap in ctx.taps:
            out += x[tap]
        out *= 1.0 / (kernel[0] * kernel[1])
        return out

    def backward(ctx, g):
        xp = get_array_module(g)
        g = g * (1.0 / len(ctx.taps))
        gx = xp.zeros(ctx.x_shape, g.dtype)
        for tap in ctx.taps:
            gx[tap] += g
        return (gx,)


def avg_pool2d(x, kernel_size, stride=None):
    """Average over ``kernel_size`` windows of the last two axes of ``x`` (N, C, H, W).

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows); no padding,
    and trailing rows/columns that do not fill a window are dropped, as PyTorch.

    >>> import numpy as np
    >>> avg_pool2d(np.ones((2, 3, 7, 7), np.float32), 3, stride=2).shape
    (2, 3, 3, 3)
    """
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    xs = shape_of(x)
    if len(xs) != 4:
        raise ValueError(f"avg_pool2d expects x of shape (N, C, H, W), found shape {xs}")
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"avg_pool2d needs kernel_size >= 1 and stride >= 1, found {kernel}, {stride}")
    if kernel[0] > xs[2] or kernel[1] > xs[3]:
        raise ValueError(f"avg_pool2d kernel {kernel[0]}x{kernel[1]} is larger than the input {xs[2]}x{xs[3]} (x {xs})")
    check_float("avg_pool2d", x=x)
    return AvgPool2d.apply(x, kernel=kernel, stride=stride)


class GlobalAvgPool(Function):
    def forward(ctx, x, axes=(2, 3)):
        ctx.x_shape, ctx.axes = x.shape, axes
        return x.mean(axis=axes)

    def backward(ctx, g):
        xp = get_array_module(g)
        h, w = (ctx.x_shape[i] for i in ctx.axes)
        spread = tuple(None if i in ctx.axes else slice(None) for i in range(4))  # g back over the pixels
        return (xp.broadcast_to((g * (1.0 / (h * w)))[spread], ctx.x_shape).copy(),)


def global_avg_pool(x, channels_last=False):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C).

    ``channels_last=True`` takes (N, H, W, C), the CPU engine's own layout
    (:func:`dctnet.engine.forward` pools its last residual block's output so,
    without converting it back to (N, C, H, W) first).

    >>> import numpy as np
    >>> global_avg_pool(np.ones((2, 3, 4, 4))).shape
    (2, 3)
    >>> global_avg_pool(np.ones((2, 4, 4, 3)), channels_last=True).shape
    (2, 3)
    """
    if len(shape_of(x)) != 4:
        layout = "(N, H, W, C)" if channels_last else "(N, C, H, W)"
        raise ValueError(f"global_avg_pool expects x of shape {layout}, found shape {shape_of(x)}")
    check_float("global_avg_pool", x=x)
    return GlobalAvgPool.apply(x, axes=(1, 2) if channels_last else (2, 3))


class MaxPool2d(Function):
    # A running maximum over the kernel taps (no (taps, ...) stack: memory stays two maps),
    # remembering which tap won; padding is -inf, so a padded pixel never wins.
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        xp = get_array_module(x)
        (ph, pw), (h, w) = padding, x.shape[-2:]
        ho = (h + 2 * ph - kernel[0]) // stride[0] + 1
        wo = (w + 2 * pw - kernel[1]) // stride[1] + 1
        if ph or pw:
            padded = xp.full(x.shape[:-2] + (h + 2 * ph, w + 2 * pw), -xp.inf, x.dtype)
            padded[..., ph:ph + h, pw:pw + w] = x
        else:
            padded = x
        taps = list(_taps(kernel, stride, (ho, wo)))
        out = padded[taps[0]].copy()
        winner = xp.zeros(out.shape, xp.uint8)
        for t, tap in enumerate(taps[1:], 1):
            v = padded[tap]
            # the first maximum in scan order wins, and a NaN propagates (as PyTorch)
            better = (v > out) | (xp.isnan(v) & ~xp.isnan(out))
            xp.copyto(out, v, where=better)
            winner[better] = t
        ctx.padded_shape, ctx.padding, ctx.taps, ctx.winner = padded.shape, padding, taps, winner
        return out

    def backward(ctx, g):
        xp = get_array_module(g)
        gx = xp.zeros(ctx.padded_shape, g.dtype)
        for t, tap in enumerate(ctx.taps):
            gx[tap] += xp.where(ctx.winner == t, g, 0)
        (ph, pw), (hp, wp) = ctx.padding, ctx.padded_shape[-2:]
        return (gx[..., ph:hp - ph, pw:wp - pw],)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The maximum over ``kernel_size`` windows of ``x`` (N, C, H, W), as ``torch.nn.functional.max_pool2d``.

    ``stride`` defaults to ``kernel_size``; ``padding`` pads with -inf (at most
    half the kernel, as PyTorch requires); trailing rows/columns that do not
    fill a window are dropped. The gradient goes to the first maximum of each
    window; a NaN in a window propagates.

    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 3, stride=2, padding=1).data[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    xs = shape_of(x)
    if len(xs) != 4:
        raise ValueError(f"max_pool2d expects x of shape (N, C, H, W), found shape {xs}")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"max_pool2d needs kernel_size >= 1, stride >= 1 and padding >= 0, "
                         f"found {kernel}, {stride}, {padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d padding {padding} must be at most half the kernel {kernel}")
    if kernel[0] > xs[2] + 2 * padding[0] or kernel[1] > xs[3] + 2 * padding[1]:
        raise ValueError(f"max_pool2d kernel {kernel[0]}x{kernel[1]} is larger than the padded input "
                         f"{xs[2] + 2 * padding[0]}x{xs[3] + 2 * padding[1]} (x {xs}, padding {padding})")
    check_float("max_pool2d", x=x)
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, padding=padding)
