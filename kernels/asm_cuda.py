"""CUDA driver of the ASM/APX ReLU kernel: one thread per 8x8 block.

The per-block routine is :func:`dctnet.kernels.asm.make_masked_block` built on
the same 8x8 transforms as the CPU kernel, compiled as CUDA device functions.
"""

import numba
from numba import cuda

from .asm import fdct8, idct8, make_masked_block

_masked_block = cuda.jit(device=True)(
    make_masked_block(cuda.jit(device=True)(idct8), cuda.jit(device=True)(fdct8))
)

THREADS = 128


@cuda.jit
def _masked_kernel(src, dst, mask, d, izz, k_val, k_mask, k_out):
    b = cuda.grid(1)
    if b < src.shape[0]:
        pix = cuda.local.array((8, 8), numba.float64)
        gate = cuda.local.array((8, 8), numba.float64)
        tmp = cuda.local.array((8, 8), numba.float64)
        _masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp)


def masked(src, dst, mask, d, izz, k_val, k_mask, k_out):
    """Launch over blocks; same contract as :func:`dctnet.kernels.asm.masked`."""
    n = src.shape[0]
    if n:
        _masked_kernel[(n + THREADS - 1) // THREADS, THREADS](
            src, dst, mask, d, izz, k_val, k_mask, k_out
        )
