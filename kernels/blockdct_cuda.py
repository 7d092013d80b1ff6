"""CUDA drivers of the blockwise DCT: one thread per 8x8 block.

The per-block math is :func:`dctnet.kernels.blockdct.fdct_block` /
``idct_block`` compiled as CUDA device functions. Inputs may be CuPy arrays or
anything with ``__cuda_array_interface__`` (NumPy arrays under the simulator).
"""

import numba
from numba import cuda

from .blockdct import fdct_block, idct_block

_fdct_block = cuda.jit(device=True)(fdct_block)
_idct_block = cuda.jit(device=True)(idct_block)

THREADS = 128


@cuda.jit
def _fdct_kernel(x, out, d, izz):
    t = cuda.grid(1)
    nb, bh, bw, _ = out.shape
    if t < nb * bh * bw:
        n = t // (bh * bw)
        r = t - n * (bh * bw)
        bi = r // bw
        tmp = cuda.local.array((8, 8), numba.float64)
        _fdct_block(x, n, bi, r - bi * bw, out, d, izz, tmp)


@cuda.jit
def _idct_kernel(c, out, d, izz):
    t = cuda.grid(1)
    nb, bh, bw, _ = c.shape
    if t < nb * bh * bw:
        n = t // (bh * bw)
        r = t - n * (bh * bw)
        bi = r // bw
        tmp = cuda.local.array((8, 8), numba.float64)
        _idct_block(c, n, bi, r - bi * bw, out, d, izz, tmp)


def _blocks(n):
    return max(1, (n + THREADS - 1) // THREADS)


def fdct(x, out, d, izz):
    """Launch the forward transform: x (N, H, W) -> out (N, H/8, W/8, 64)."""
    nblocks = out.shape[0] * out.shape[1] * out.shape[2]
    if nblocks:
        _fdct_kernel[_blocks(nblocks), THREADS](x, out, d, izz)


def idct(c, out, d, izz):
    """Launch the inverse transform: c (N, BH, BW, 64) -> out (N, 8 BH, 8 BW)."""
    nblocks = c.shape[0] * c.shape[1] * c.shape[2]
    if nblocks:
        _idct_kernel[_blocks(nblocks), THREADS](c, out, d, izz)
