"""The blockwise DCT and its inverse as differentiable ops (docs/design.md §3).

>>> import numpy as np, dctnet
>>> x = np.random.default_rng(0).normal(size=(1, 1, 8, 16))
>>> np.allclose(block_idct(block_dct(x)).data, x)
True
"""

from __future__ import annotations

from ..autograd import Function
from ..transform import from_dct, to_dct

__all__ = ["block_dct", "block_idct"]


# The layers alternate these transforms with BLAS GEMMs; OpenBLAS's workers keep
# spinning after each GEMM, so Numba's parallel workers would contend with them
# for the cores (measured ~1.5x slower on 2 cores): hence serial=True.
class BlockDCT(Function):
    """Pixels (..., H, W) -> coefficients (..., H/8, W/8, 64); the adjoint is the inverse."""

    def forward(ctx, x):
        return to_dct(x, serial=True)

    def backward(ctx, g):
        return (from_dct(g, serial=True),)


class BlockIDCT(Function):
    def forward(ctx, c):
        return from_dct(c, serial=True)

    def backward(ctx, g):
        return (to_dct(g, serial=True),)


def block_dct(x):
    """Differentiable :func:`dctnet.to_dct`."""
    return BlockDCT.apply(x)


def block_idct(c):
    """Differentiable :func:`dctnet.from_dct`."""
    return BlockIDCT.apply(c)
