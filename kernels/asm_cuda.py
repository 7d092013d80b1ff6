"""CUDA driver of the ASM/APX ReLU kernel: one thread per 8x8 block.

The per-block routine is :func:`dctnet.kernels.asm.make_masked_block` built on
the CUDA device functions of :mod:`dctnet.kernels.blockdct_cuda`, the same 8x8
transforms as the CPU kernel. Its scratch arrays follow the data's dtype (one
compiled kernel per float dtype, as there).
"""

from numba import cuda

from .asm import make_masked_block
from .blockdct_cuda import fdct_block_cuda, for_dtype, idct_block_cuda, per_dtype

_masked_block = cuda.jit(device=True)(make_masked_block(idct_block_cuda, fdct_block_cuda))

THREADS = 128


def _make_masked(scalar):
    @cuda.jit
    def masked_kernel(src, dst, mask, d, izz, k_val, k_mask, k_out):
        b = cuda.grid(1)
        if b < src.shape[0]:
            pix = cuda.local.array((1, 8, 8), scalar)
            gate = cuda.local.array((1, 8, 8), scalar)
            tmp = cuda.local.array((8, 8), scalar)
            _masked_block(src, dst, mask, b, d, izz, k_val, k_mask, k_out, pix, gate, tmp)

    return masked_kernel


_MASKED = per_dtype(_make_masked)  # compiled lazily, at the first launch of each


def masked(src, dst, mask, d, izz, k_val, k_mask, k_out):
    """Launch over blocks; same contract as :func:`dctnet.kernels.asm.masked`."""
    n = src.shape[0]
    if n:
        for_dtype(_MASKED, src, "the ReLU input")[(n + THREADS - 1) // THREADS, THREADS](
            src, dst, mask, d, izz, k_val, k_mask, k_out
        )
