"""CUDA drivers of the blockwise DCT: one thread per 8x8 block.

The per-block math is :func:`dctnet.kernels.blockdct.fdct_block` /
``idct_block`` compiled as CUDA device functions (``fdct_block_cuda``,
``idct_block_cuda``, also used by :mod:`dctnet.kernels.asm_cuda`). Inputs may
be CuPy arrays or anything with ``__cuda_array_interface__`` (NumPy arrays under
the simulator).

Scratch arrays follow the data's dtype, as on the CPU. ``cuda.local.array``
needs its dtype when the kernel is compiled, so each kernel is built once per
float dtype (:func:`per_dtype`) and a launch picks the one of its input
(:func:`for_dtype`).
"""

import numba
import numpy as np
from numba import cuda

from .blockdct import fdct_block, idct_block

fdct_block_cuda = cuda.jit(device=True)(fdct_block)
idct_block_cuda = cuda.jit(device=True)(idct_block)

THREADS = 128

_SCALARS = {np.dtype(np.float32): numba.float32, np.dtype(np.float64): numba.float64}


def per_dtype(make):
    """``{dtype: make(scalar type)}`` for float32 and float64: one kernel per scratch dtype."""
    return {dtype: make(scalar) for dtype, scalar in _SCALARS.items()}


def for_dtype(kernels, array, what):
    """The kernel of :func:`per_dtype`'s ``kernels`` for ``array``'s dtype."""
    kernel = kernels.get(np.dtype(array.dtype))
    if kernel is None:
        raise TypeError(f"{what} must be float32 or float64, found dtype {array.dtype}; cast it first")
    return kernel


# ``scalar`` is a free variable of each kernel, so Numba compiles it as a constant.
# Coefficients arrive flattened to (blocks, 64), the layout fdct_block/idct_block
# index; thread t transforms block t = (n * BH + bi) * BW + bj.
def _make_fdct(scalar):
    @cuda.jit
    def fdct_kernel(x, coefs, d, izz):
        t = cuda.grid(1)
        if t < coefs.shape[0]:
            bh = x.shape[1] // 8
            bw = x.shape[2] // 8
            row = t // bw
            n = row // bh
            tmp = cuda.local.array((8, 8), scalar)
            fdct_block_cuda(x, n, (row - n * bh) * 8, (t - row * bw) * 8, coefs, t, 64, d, izz, tmp)

    return fdct_kernel


def _make_idct(scalar):
    @cuda.jit
    def idct_kernel(coefs, out, d, izz):
        t = cuda.grid(1)
        if t < coefs.shape[0]:
            bh = out.shape[1] // 8
            bw = out.shape[2] // 8
            row = t // bw
            n = row // bh
            tmp = cuda.local.array((8, 8), scalar)
            idct_block_cuda(coefs, t, out, n, (row - n * bh) * 8, (t - row * bw) * 8, 64, d, izz, tmp)

    return idct_kernel


# Compiled lazily, at the first launch of each.
_FDCT = per_dtype(_make_fdct)
_IDCT = per_dtype(_make_idct)


def _blocks(n):
    return max(1, (n + THREADS - 1) // THREADS)


def fdct(x, out, d, izz):
    """Launch the forward transform: x (N, H, W) -> out (N, H/8, W/8, 64), C-contiguous."""
    nblocks = out.shape[0] * out.shape[1] * out.shape[2]
    if nblocks:
        kernel = for_dtype(_FDCT, x, "the fdct input")
        kernel[_blocks(nblocks), THREADS](x, out.reshape(nblocks, 64), d, izz)


def idct(c, out, d, izz):
    """Launch the inverse transform: c (N, BH, BW, 64), C-contiguous -> out (N, 8 BH, 8 BW)."""
    nblocks = c.shape[0] * c.shape[1] * c.shape[2]
    if nblocks:
        kernel = for_dtype(_IDCT, c, "the idct input")
        kernel[_blocks(nblocks), THREADS](c.reshape(nblocks, 64), out, d, izz)
