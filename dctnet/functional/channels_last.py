"""Channels-last (NHWC) convolution pieces of the fused CPU engine.

:mod:`dctnet.engine` and :mod:`dctnet.functional.fused` keep activations
(N, H, W, C) from layer to layer, converting only where other layers take
over (``conv2d`` itself stays NCHW: converting at every op's boundary cost
more than it saved there). The column
matrix then has one row per output pixel, whose patch is ``kh`` contiguous
runs of ``kw*C`` input values, and one GEMM ``cols (P, K) @ wt (K, Cout)``
per cache-sized piece of images writes the NHWC output directly. Measured on
the paper network's layers (one thread), this im2col is 2-7x faster than an
NCHW one (runs of ``kw*C`` values instead of image rows of 8-32) and the GEMM
10-40% faster (one call per piece instead of one per image; for 16 output
channels this operand order runs at 70-80 instead of 45-55 GFLOP/s): about
25% per layer in all.

Weights are used as ``wt = weight_matrix(weight)``, (kh*kw*Cin, Cout) in the
patch order (i, j, ci). Functions ending in ``_images`` compute one task's
share (a few images) on the calling thread; the callers spread tasks over
:mod:`dctnet.threads`.

>>> import numpy as np
>>> x = np.ones((1, 4, 4, 1), np.float32)  # one 4x4 image, one channel, NHWC
>>> out = np.empty((1, 4, 4, 1), np.float32)
>>> forward_images(x, weight_matrix(np.ones((1, 1, 3, 3), np.float32)), (3, 3), (1, 1), 1, 1, out)[0, :, :, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from .. import buffers
from ..kernels import conv as conv_kernels
from ..kernels import conv_step as conv_step_kernels
from ..threads import parallel_for, scratch
from .conv import CHUNK_BYTES, chunking, input_grad_phases

__all__ = [
    "weight_matrix", "weight_from_matrix",
    "piece_images", "forward_images", "weight_grad_images", "InputGrad", "to_nhwc", "to_nchw",
]

def weight_matrix(weight):
    """(Cout, Cin, kh, kw) -> (kh*kw*Cin, Cout), rows in patch order (i, j, ci)."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))


def weight_from_matrix(wt, shape):
    """The inverse of :func:`weight_matrix`: (kh*kw*Cin, Cout) -> ``shape`` (Cout, Cin, kh, kw)."""
    o, c, kh, kw = shape
    return np.ascontiguousarray(wt.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))


_NONE = {t: np.empty(0, t) for t in "fd"}  # the scale and shift of a conv without a transform
_NO_SUMS = np.zeros((2, 1))  # the moments a conv without them does not take


def piece_images(x, kernel, stride, top, left, ho, wo, k, transform=None):
    """Images per piece, or 0 when a 1x1 stride-1 unpadded conv can multiply the input as it is."""
    same = kernel == (1, 1) and stride == (1, 1) and (top, left, ho, wo) == (0, 0) + x.shape[1:3]
    if same and transform is None:
        return 0
    return max(1, CHUNK_BYTES["cpu"] // (k * ho * wo * x.itemsize))


def forward_images(x, wt, kernel, stride, top, left, out, moments=None, transform=None):
    """``out`` (n, ho, wo, Cout) = conv of ``x`` (n, H, W, Cin) by ``wt`` (kh*kw*Cin, Cout).

    ``top``/``left`` pad before the image (negative: crop); ``out``'s size
    fixes the padding after it. The patches are built in pieces of images
    within CHUNK_BYTES["cpu"], each followed by one GEMM into ``out`` and,
    with ``moments`` ((2, Cout) float64), the piece's channel sums and sums
    of squares added to it while in cache. ``transform=(scale, shift)``
    convolves ``max(scale * x + shift, 0)`` (per channel) instead of ``x``,
    applied while the patches are built. A 1x1 stride-1 unpadded conv
    multiplies its input as it is. All of it is one call without the GIL
    (:func:`dctnet.kernels.conv_step.conv_moments_images`).
    """
    k = wt.shape[0]
    ho, wo = out.shape[1:3]
    piece = piece_images(x, kernel, stride, top, left, ho, wo, k, transform)
    cols = scratch("nhwc.cols", (min(piece, x.shape[0]) * ho * wo * k,), x.dtype)
    scale, shift = (_NONE[x.dtype.char],) * 2 if transform is None else transform
    sums = _NO_SUMS if moments is None else moments
    conv_step_kernels.conv_moments_images(x, wt, kernel[0], kernel[1], stride[0], stride[1], top, left, piece, cols,
                                          out, scale, shift, transform is not None, sums, moments is not None)
    return out


def weight_grad_images(x, g, kernel, stride, top, left, out, transform=None):
    """``out`` (kh*kw*Cin, Cout) = dL/dwt of these images: ``cols.T @ g``, summed over pieces
    (``transform`` as in :func:`forward_images`), in one call without the GIL."""
    ho, wo = g.shape[1:3]
    k = out.shape[0]
    piece = piece_images(x, kernel, stride, top, left, ho, wo, k, transform)
    cols = scratch("nhwc.cols", (min(piece, x.shape[0]) * ho * wo * k,), x.dtype)
    dw = scratch("nhwc.dw", out.shape, out.dtype)
    scale, shift = (_NONE[x.dtype.char],) * 2 if transform is None else transform
    return conv_step_kernels.weight_grad_images(x, g, kernel[0], kernel[1], stride[0], stride[1], top, left, piece,
                                                cols, out, dw, scale, shift, transform is not None)


class InputGrad:
    """dL/dx of a conv as transposed convolutions, one stride-1 conv per stride phase.

    The input pixels of one phase (u = start + s*m) meet the kernel taps
    ``a::s`` only, so their gradient is an ordinary stride-1 conv of g with
    that sub-kernel flipped and transposed: one GEMM per piece with inner
    dimension Cout*taps, no multiplications by inserted zeros, no col2im.
    ``xshape``/``gshape`` are NHWC; ``weight`` is (Cout, Cin, kh, kw).
    """

    def __init__(self, weight, xshape, gshape, stride, padding):
        self.cin, self.stride = weight.shape[1], stride
        self.phases = [(weight_matrix(sub), *rest)
                       for sub, *rest in input_grad_phases(weight, xshape[1:3], gshape[1:3], stride, padding)]

    def images(self, g, out):
        """``out`` (n, H, W, Cin) = dL/dx of the images whose output gradient is ``g`` (n, ho, wo, Cout)."""
        if self.stride == (1, 1):  # one phase: the whole gradient
            wt, kernel, top, left = self.phases[0][:4]
            return forward_images(g, wt, kernel, (1, 1), top, left, out)
        out[...] = 0  # pixels that no tap reaches (e.g. odd ones of a 1x1 stride-2 conv)
        for wt, kernel, top, left, rows, cols, r0, c0 in self.phases:
            part = scratch("nhwc.phase", (g.shape[0], rows, cols, self.cin), g.dtype)
            forward_images(g, wt, kernel, (1, 1), top, left, part)
            out[:, r0 :: self.stride[0], c0 :: self.stride[1]] = part
        return out


def _transpose(x, shape, rows, cols):
    out = buffers.empty(shape, x.dtype)
    chunk, tasks = chunking(x.shape[0], x[:1].nbytes)
    # a small array converts faster on this thread than the hand-over to another takes
    threads = 1 if x.nbytes < CHUNK_BYTES["cpu"] else None
    parallel_for(lambda worker, t: conv_kernels.transpose_images(
        x, t * chunk, min(chunk, x.shape[0] - t * chunk), rows, cols, out), tasks, threads)
    return out


def to_nhwc(x):
    """(N, C, H, W) -> a C-contiguous (N, H, W, C) copy, a few images per task."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    return _transpose(x, (n, h, w, c), c, h * w)


def to_nchw(x):
    """(N, H, W, C) -> a C-contiguous (N, C, H, W) copy, a few images per task."""
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    return _transpose(x, (n, c, h, w), h * w, c)
