"""Numba kernels of dctnet, installed as ``dctnet.kernels``.

Each kernel keeps its per-block math in one plain Python function that is
compiled twice: with ``numba.njit`` (driven by a ``prange`` loop, in the CPU
module) and with ``numba.cuda.jit(device=True)`` (driven by a ``@cuda.jit``
kernel, in the matching ``*_cuda`` module, imported only when a GPU array or the
CUDA simulator asks for it; :func:`dctnet.backend.kernel_module` picks one).
The 8x8 transform is written once, in :mod:`.blockdct`; the ASM/APX ReLU of
:mod:`.asm` builds on it. The CPU engine's kernels (:mod:`.conv`, :mod:`.conv_step` for a whole
convolution (forward or weight gradient) in one call without the GIL, :mod:`.fused`,
:mod:`.lowpass` for the ASM/APX mask in a convolution's epilogue, :mod:`.jpeg_input`
for quantized coefficients to the engine's channels-last input) have no CUDA
twin: on CuPy arrays those ops keep their array expressions. :mod:`.wait` is the
engine threads' wait without the GIL (:mod:`dctnet.threads`).

Numba's on-disk cache checks only the file of the cached kernel itself: after
editing ``blockdct.py`` (or ``conv.tiled``, inlined by the fused and low-pass
kernels), delete ``kernels/__pycache__`` so that the kernels that inline it are
compiled again.
"""
