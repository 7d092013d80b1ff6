"""Convolution on DCT coefficients, exactly equal to the spatial convolution.

A spatial conv with kernel K is linear, so in the JPEG domain it is
``Xi = J o C o J~`` (Ehrlich & Davis, Eq. 11–13). Xi only couples an output
block with the input blocks its receptive field touches and is the same at every
block position, so it is an ordinary convolution over the block grid with
``Cin*64`` input and ``Cout*64`` output channels (docs/design.md §3). Two exact
evaluations are offered:

* ``"dense"`` — the paper's: explode K into the block-conv weight
  ``W = einsum(K, T)`` (T fixed, built from the DCT basis) and convolve the block
  grid. K stays the parameter; ``dL/dK`` is ``dL/dW`` contracted with T.
* ``"spatial"`` — IDCT, the spatial conv, DCT, each exact: 64x fewer
  multiply-adds than the dense map plus two separable 8x8 transforms.

A :class:`~dctnet.functional.CarriedDCT` input is convolved as its pixels and
the result stays carried: no transform at all (docs/design.md §4).

>>> import numpy as np, dctnet
>>> from dctnet.functional import conv2d
>>> rng = np.random.default_rng(0)
>>> x, k = rng.normal(size=(1, 2, 16, 16)), rng.normal(size=(3, 2, 3, 3))
>>> y = dct_conv2d(dctnet.to_dct(x), k, padding=1, method="dense").data
>>> np.allclose(dctnet.from_dct(y), conv2d(x, k, padding=1).data)
True
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import device_constant, get_array_module
from ..transform import ZIGZAG, dct_matrix
from .block_dct import block_dct, block_idct
from .carried import CarriedDCT
from .conv import conv2d
from .pad import pad

__all__ = ["block_dct", "block_idct", "dct_conv2d", "block_window", "explode_kernel", "METHODS"]

METHODS = ("auto", "spatial", "dense")
DEFAULT_METHOD = "spatial"  # fastest measured on CPU (benchmarks/bench_jpeg_domain.py)


def _pair(v, name):
    v = (v, v) if np.isscalar(v) else tuple(v)
    if len(v) != 2 or not all(isinstance(i, (int, np.integer)) for i in v):
        raise ValueError(f"{name} must be an int or a pair of ints, found {v!r}")
    return tuple(int(i) for i in v)


def block_window(k: int, stride: int, padding: int) -> tuple[int, int]:
    """Offsets (first, last) of the input blocks that output block b reads, relative to ``stride*b``.

    Output block b's receptive field covers input pixels ``8 s b - p`` to
    ``s (8 b + 7) - p + k - 1``; floor-dividing by 8 gives the blocks.

    >>> block_window(3, 1, 1), block_window(1, 2, 0), block_window(7, 2, 3)
    ((-1, 1), (0, 1), (-1, 2))
    """
    return (-padding) // 8, (7 * stride - padding + k - 1) // 8


def _axis_map(k, stride, padding):
    """A[a_out, w, a_in, tap]: 1-D DCT coefficient a_out of the output block from
    input frequency a_in in window block w through kernel tap ``tap``."""
    first, last = block_window(k, stride, padding)
    width = last - first + 1
    d = dct_matrix()
    a = np.zeros((8, width, 8, k))
    y = np.arange(8)
    for tap in range(k):
        pix = stride * y + tap - padding - 8 * first  # window pixel each output pixel reads
        w, m = np.divmod(pix, 8)
        # output coef a_out = sum_y D[a_out, y] * basis(w_y, a_in)[m_y]
        for wi in range(width):
            sel = w == wi
            a[:, wi, :, tap] = d[:, y[sel]] @ d[:, m[sel]].T
    return a


def _explode_basis(kh, kw, stride, padding, dtype):
    """T (64 out, 64 in, wh, ww, kh, kw) in zigzag order: W = einsum(K, T).

    Cached per device and dtype by :func:`~dctnet.backend.device_constant`.
    """
    ay = _axis_map(kh, stride[0], padding[0])
    ax = _axis_map(kw, stride[1], padding[1])
    t = np.einsum("pwqy,rvsx->prqswvyx", ay, ax)  # (8,8 out, 8,8 in, wh, ww, kh, kw)
    wh, ww = ay.shape[1], ax.shape[1]
    t = t.reshape(64, 64, wh, ww, kh, kw)[ZIGZAG][:, ZIGZAG]
    return np.ascontiguousarray(t).astype(dtype)


class ExplodeKernel(Function):
    """K (Cout, Cin, kh, kw) -> block-conv weight W (Cout*64, Cin*64, wh, ww)."""

    def forward(ctx, k, stride=(1, 1), padding=(0, 0)):
        xp = get_array_module(k)
        cout, cin, kh, kw = k.shape
        t = device_constant(_explode_basis, xp, kh, kw, stride, padding, np.dtype(k.dtype))
        ctx.t, ctx.kshape = t, k.shape
        wh, ww = t.shape[2:4]
        # (Cout*Cin, kh*kw) @ (kh*kw, 64*64*wh*ww): one GEMM
        w = k.reshape(cout * cin, kh * kw) @ t.transpose(4, 5, 0, 1, 2, 3).reshape(kh * kw, -1)
        w = w.reshape(cout, cin, 64, 64, wh, ww).transpose(0, 2, 1, 3, 4, 5)
        return xp.ascontiguousarray(w).reshape(cout * 64, cin * 64, wh, ww)

    def backward(ctx, g):
        cout, cin, kh, kw = ctx.kshape
        t = ctx.t
        g = g.reshape(cout, 64, cin, 64, *t.shape[2:4]).transpose(0, 2, 1, 3, 4, 5)
        dk = g.reshape(cout * cin, -1) @ t.reshape(-1, kh * kw)
        return (dk.reshape(ctx.kshape),)


def explode_kernel(weight, stride=1, padding=0):
    """The paper's exploded map of a spatial kernel as a block-grid conv weight.

    Returns ``W`` of shape ``(Cout*64, Cin*64, wh, ww)`` (differentiable w.r.t.
    ``weight``); channel ``o*64 + k`` is zigzag coefficient k of output channel o.
    """
    return ExplodeKernel.apply(weight, stride=_pair(stride, "stride"), padding=_pair(padding, "padding"))


def _output_blocks(n_blocks, k, s, p, axis):
    out = (8 * n_blocks + 2 * p - k) // s + 1
    if 8 * n_blocks + 2 * p < k:
        raise ValueError(f"kernel of size {k} is larger than the padded input ({8 * n_blocks} + 2*{p}) along {axis}")
    if out % 8:
        raise ValueError(
            f"the spatial output along {axis} is {out} pixels, not a whole number of 8x8 blocks "
            f"(input {8 * n_blocks} pixels, kernel {k}, stride {s}, padding {p}); choose a "
            f"padding with (size + 2*padding - kernel) // stride + 1 divisible by 8"
        )
    return out // 8


def dct_conv2d(x, weight, bias=None, stride=1, padding=0, method="auto", exploded=None):
    """Convolve DCT-domain ``x`` (N, Cin, BH, BW, 64) with a spatial kernel.

    Equal to ``to_dct(conv2d(from_dct(x), weight, bias, stride, padding))`` up to
    float rounding, for every ``method`` ("spatial", "dense"; "auto" picks the
    fastest measured). ``weight`` is the spatial kernel (Cout, Cin, kh, kw) and
    receives the gradient. The spatial output must be whole 8x8 blocks.
    ``exploded`` (dense only) is a precomputed ``explode_kernel(weight, stride,
    padding)``, e.g. cached for inference. For a
    :class:`~dctnet.functional.CarriedDCT` ``x`` it returns a CarriedDCT, the
    spatial conv of its pixels (``method`` unused).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, found {method!r}")
    method = DEFAULT_METHOD if method == "auto" else method
    xs, ws = x.shape, weight.shape
    if len(xs) != 5 or xs[-1] != 64:
        raise ValueError(f"dct_conv2d expects x of shape (N, Cin, BH, BW, 64), found {xs}")
    if len(ws) != 4 or ws[1] != xs[1]:
        raise ValueError(f"dct_conv2d expects weight (Cout, {xs[1]}, kh, kw) for {xs[1]} input channels, found {ws}")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, found stride {stride}, padding {padding}")
    bho = _output_blocks(xs[2], ws[2], stride[0], padding[0], "H")
    bwo = _output_blocks(xs[3], ws[3], stride[1], padding[1], "W")
    if isinstance(x, CarriedDCT):
        return CarriedDCT(conv2d(x.pixels, weight, bias, stride, padding))
    if method == "spatial":
        y = block_dct(conv2d(block_idct(x), weight, None, stride, padding))
    else:
        y = _dense(x, weight, stride, padding, bho, bwo, exploded)
    if bias is not None:  # a constant per channel lives in the DC only: 8 * bias
        y = y + bias.reshape(-1, 1, 1, 1) * device_constant(_dc_of_one, get_array_module(y.data), np.dtype(y.dtype))
    return y


def _dc_of_one(dtype):
    """The zigzag coefficients of a block of ones: DC 8, the rest 0."""
    dc = np.zeros(64, dtype=dtype)
    dc[0] = 8
    return dc


def _dense(x, weight, stride, padding, bho, bwo, exploded=None):
    n, cin, bh, bw, _ = x.shape
    cout = weight.shape[0]
    w = explode_kernel(weight, stride, padding) if exploded is None else exploded
    (fy, ly), (fx, lx) = (block_window(weight.shape[2 + i], stride[i], padding[i]) for i in (0, 1))
    # Zero blocks are zero pixels, so padding the block grid pads the image.
    grid = x.transpose(0, 1, 4, 2, 3).reshape(n, cin * 64, bh, bw)
    top, left = -fy, -fx
    bottom = max(0, stride[0] * (bho - 1) + ly - (bh - 1))
    right = max(0, stride[1] * (bwo - 1) + lx - (bw - 1))
    grid = pad(grid, (top, bottom, left, right))
    y = conv2d(grid, w, None, stride, 0)[:, :, :bho, :bwo]
    return y.reshape(n, cout, 64, bho, bwo).transpose(0, 1, 3, 4, 2)
