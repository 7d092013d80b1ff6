"""The carried signal: DCT coefficients held as the pixels they stand for.

An exact JPEG-domain network needs coefficients only where its mathematics
does (docs/design.md §4): the blockwise DCT is orthogonal, so between the input
and the output the signal may travel in whichever form is cheapest. A
:class:`CarriedDCT` is the coefficient array ``to_dct(pixels)`` kept as
``pixels`` (N, C, 8*BH, 8*BW); the JPEG-domain ops take it and return it
(a CarriedDCT in gives a CarriedDCT out), computing on the pixels, and
:meth:`CarriedDCT.to_dct` turns it back into coefficients. Every step is an
autograd op on the pixel Tensor, so gradients reach the input coefficients.

>>> import numpy as np, dctnet
>>> from dctnet.functional import carry
>>> c = dctnet.to_dct(np.random.default_rng(0).normal(size=(1, 2, 8, 16)))
>>> s = carry(c)
>>> s.shape, s.pixels.shape
((1, 2, 1, 2, 64), (1, 2, 8, 16))
>>> np.allclose(s.to_dct().data, c)
True
"""

from __future__ import annotations

from ..autograd import as_tensor
from .block_dct import block_dct, block_idct

__all__ = ["CarriedDCT", "carry", "as_coefficients"]


class CarriedDCT:
    """DCT coefficients (N, C, BH, BW, 64) carried as their pixels (N, C, 8*BH, 8*BW).

    ``pixels`` is a Tensor; ``shape`` and ``dtype`` describe the coefficients
    it stands for. Adding two (or one and a coefficient array) adds the
    signals, as coefficient-wise addition does.
    """

    __slots__ = ("pixels",)
    __array_ufunc__ = None  # ``array + carried`` comes to __radd__, not elementwise

    def __init__(self, pixels):
        pixels = as_tensor(pixels)
        if pixels.ndim != 4 or pixels.shape[2] % 8 or pixels.shape[3] % 8:
            raise ValueError(f"a carried DCT signal is pixels (N, C, H, W) with H and W multiples of 8, "
                             f"found shape {pixels.shape}")
        self.pixels = pixels

    @property
    def shape(self):
        n, c, h, w = self.pixels.shape
        return (n, c, h // 8, w // 8, 64)

    @property
    def ndim(self):
        """5, as the coefficients it stands for."""
        return 5

    @property
    def dtype(self):
        return self.pixels.dtype

    @property
    def requires_grad(self):
        return self.pixels.requires_grad

    def to_dct(self):
        """The coefficients (N, C, BH, BW, 64), a Tensor (differentiable)."""
        return block_dct(self.pixels)

    def __add__(self, other):
        return CarriedDCT(self.pixels + carry(other).pixels)

    __radd__ = __add__

    def __repr__(self):
        return f"CarriedDCT(shape={self.shape}, dtype={self.dtype})"


def carry(x):
    """``x`` as a :class:`CarriedDCT`: coefficients (N, C, BH, BW, 64) go through one IDCT.

    A CarriedDCT is returned as it is.
    """
    if isinstance(x, CarriedDCT):
        return x
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 5 or shape[-1] != 64:
        raise ValueError(f"expected DCT coefficients (N, C, BH, BW, 64) or a CarriedDCT, found {type(x).__name__} "
                         f"of shape {shape}")
    return CarriedDCT(block_idct(x))


def as_coefficients(x):
    """``x`` as coefficients: a CarriedDCT goes through one DCT; anything else is returned as a Tensor."""
    return x.to_dct() if isinstance(x, CarriedDCT) else as_tensor(x)
