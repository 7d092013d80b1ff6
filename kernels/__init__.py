"""Numba kernels of dctnet, installed as ``dctnet.kernels``.

Each kernel keeps its per-block math in one plain Python function that is
compiled twice: with ``numba.njit`` (driven by a ``prange`` loop, in the CPU
module) and with ``numba.cuda.jit(device=True)`` (driven by a ``@cuda.jit``
kernel, in the matching ``*_cuda`` module, imported only when a GPU array or the
CUDA simulator asks for it).
"""
