"""ReLU on DCT coefficients: Approximated Spatial Masking (ASM) and APX.

Ehrlich & Davis (ICCV 2019), §4.2. With ``n`` spatial frequencies, a block's
mask ``G = [IDCT(F restricted to the first frequency_count(n) coefficients) > 0]``
decides which pixels pass; ASM applies it to the exact pixels, APX to the
approximate ones. ``n = 15`` keeps every coefficient, so ASM is then exactly
``to_dct(relu(from_dct(x)))``. The mask is a constant of the backward pass.
On a :class:`~dctnet.functional.CarriedDCT` the same ReLU runs on the pixels:
the mask is each block's rank-k low-pass projection, a (64 x k)(k x 64)
product, and at n = 15 it is the plain ReLU (docs/design.md §4).

>>> import numpy as np, dctnet
>>> x = dctnet.to_dct(np.random.default_rng(0).normal(size=(1, 8, 8)))
>>> exact = dctnet.to_dct(np.maximum(dctnet.from_dct(x), 0))
>>> np.allclose(dctnet.asm_relu(x, 15), exact)
True
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor, is_grad_enabled
from ..backend import device_constant, get_array_module, kernel_module
from ..kernels import lowpass as lowpass_kernels
from ..threads import parallel_for
from ..transform import block_dct_matrix, dct_matrix, frequency_count, kernel_constants
from .activation import relu
from .carried import CarriedDCT
from .conv import chunking

__all__ = ["asm_relu", "apx_relu", "dct_relu"]

_IMPLS = ("auto", "numba", "numpy")


def _inverse_block_matrix(dtype):
    """B.T, contiguous: natural pixels -> zigzag coefficients (``coefs = pix @ B.T``)."""
    return np.ascontiguousarray(block_dct_matrix(dtype).T)


def _matrices(xp, dtype):
    """B (zigzag coefficients -> natural pixels: ``pix = F @ B``) and B.T, on ``xp``."""
    dtype = np.dtype(dtype)
    return device_constant(block_dct_matrix, xp, dtype), device_constant(_inverse_block_matrix, xp, dtype)


def _default_impl(xp):
    # On the CPU one BLAS GEMM per transform ((blocks, 64) @ (64, 64), float32
    # or float64 throughout) measured ~4x faster than the per-block Numba
    # kernel; on the GPU the fused kernel avoids the intermediate arrays.
    return "numpy" if xp is np else "numba"


class DCTReLU(Function):
    """ASM/APX ReLU over the last axis (64 zigzag coefficients) of any array."""

    def forward(ctx, x, frequencies=15, method="asm", impl="auto", keep_mask=True):
        xp = get_array_module(x)
        if x.ndim < 1 or x.shape[-1] != 64:
            raise ValueError(f"DCT-domain ReLU expects coefficients (..., 64), found shape {x.shape}")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"DCT-domain ReLU expects float32 or float64 coefficients, found {x.dtype}")
        k = frequency_count(frequencies)
        ctx.k_out = k if method == "apx" else 64  # APX's output depends on F[:k] only
        ctx.impl = _default_impl(xp) if impl == "auto" else impl
        flat = xp.ascontiguousarray(x.reshape(-1, 64))
        if ctx.impl == "numba":
            out = xp.empty_like(flat)
            mask = xp.empty(flat.shape, dtype=np.uint8)
            k_val = k if method == "apx" else 64
            kernel_module("asm", xp).masked(flat, out, mask, *kernel_constants(xp, x.dtype), k_val, k, 64)
        else:
            b, bt = _matrices(xp, x.dtype)
            if method == "asm" and k == 64:  # the mask comes from the exact pixels: one IDCT
                pix = flat @ b
                mask = pix > 0 if keep_mask else None
                xp.maximum(pix, 0, out=pix)  # pix * mask (a NaN stays NaN either way)
            else:
                approx = flat[:, :k] @ b[:k]
                mask = approx > 0
                pix = approx if method == "apx" else flat @ b
                xp.multiply(pix, mask, out=pix)
            out = pix @ bt
        ctx.mask, ctx.shape = mask, x.shape
        return out.reshape(x.shape)

    def backward(ctx, g):
        xp = get_array_module(g)
        flat = xp.ascontiguousarray(g.reshape(-1, 64))
        if ctx.impl == "numba":
            out = xp.empty_like(flat)
            consts = kernel_constants(xp, g.dtype)
            kernel_module("asm", xp).masked(flat, out, ctx.mask, *consts, 64, 0, ctx.k_out)
        else:
            b, bt = _matrices(xp, g.dtype)
            t = flat @ b
            xp.multiply(t, ctx.mask, out=t)
            out = t @ (bt if ctx.k_out == 64 else bt[:, : ctx.k_out])
            if ctx.k_out < 64:
                out = xp.concatenate([out, xp.zeros((out.shape[0], 64 - ctx.k_out), g.dtype)], axis=1)
        return (out.reshape(ctx.shape),)


def _blocks(x):
    """Pixels (N, C, H, W) -> (N*C*BH*BW, 64) blocks, natural order (a copy)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 8, 8, w // 8, 8).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 64)


def _unblocks(b, shape):
    n, c, h, w = shape
    return b.reshape(n, c, h // 8, w // 8, 8, 8).transpose(0, 1, 2, 4, 3, 5).reshape(shape)


class LowPassMaskedReLU(Function):
    """ASM/APX on carried pixels (N, C, H, W): per block, the mask of the rank-k low-pass projection.

    ``low = pix @ P_k`` with ``P_k = B[:k].T @ B[:k]`` (the pixels rebuilt from
    the first k zigzag coefficients; symmetric, as B is orthogonal), evaluated
    as the (64 x k)(k x 64) product. ASM gives ``pix * [low > 0]``, APX
    ``low * [low > 0]``; the backward pass is the transpose with the mask fixed.
    """

    def forward(ctx, x, k, method):
        b, bt = _matrices(get_array_module(x), x.dtype)
        ctx.b, ctx.bt, ctx.k, ctx.method, ctx.shape = b[:k], bt[:, :k], k, method, x.shape
        low = (_blocks(x) @ ctx.bt) @ ctx.b
        mask = low > 0
        if method == "apx":
            xp = get_array_module(x)
            xp.multiply(low, mask, out=low)
            ctx.mask = mask
            return _unblocks(low, x.shape)
        ctx.mask = _unblocks(mask, x.shape)  # ASM masks the exact pixels, in place: no block copy back
        return x * ctx.mask

    def backward(ctx, g):
        if ctx.method == "asm":
            return (g * ctx.mask,)
        t = _blocks(g)
        t *= ctx.mask
        return (_unblocks((t @ ctx.bt) @ ctx.b, ctx.shape),)


def _carried_relu(x, frequencies, method):
    k = frequency_count(frequencies)
    if k == 64:  # both forms are the exact ReLU
        return CarriedDCT(relu(x.pixels))
    pixels = x.pixels
    kernel_dtype = isinstance(pixels.data, np.ndarray) and pixels.data.dtype.char in "fd"  # what it is compiled for
    if kernel_dtype and not (pixels.requires_grad and is_grad_enabled()):
        return CarriedDCT(Tensor(lowpass_relu_planes(pixels.data, frequencies, method == "apx")))
    return CarriedDCT(LowPassMaskedReLU.apply(pixels, k=k, method=method))


def lowpass_relu_planes(pixels, frequencies, apx=False):
    """ASM (APX when ``apx``) on carried CPU pixels (N, C, H, W) without a mask to keep: the
    fused engine's separable kernel (:mod:`dctnet.kernels.lowpass`) on each channel's plane,
    a few planes per task on the engine's threads. Where no backward pass follows it replaces
    :class:`LowPassMaskedReLU`'s block copies and two GEMMs (the same function, up to rounding).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 8, 16))
    >>> want = LowPassMaskedReLU.apply(Tensor(x), k=frequency_count(6), method="asm").data
    >>> bool(np.allclose(lowpass_relu_planes(x, 6), want, atol=1e-12))
    True
    """
    out = np.array(pixels, order="C")  # the kernel works in place
    n, c, h, w = out.shape
    planes = out.reshape(n * c, h, w, 1)  # each plane an image of one channel
    zero, d = np.zeros(1, out.dtype), dct_matrix(np.float64).astype(out.dtype)
    chunk, tasks = chunking(n * c, h * w * out.itemsize)

    def task(worker, t):
        part = planes[t * chunk : (t + 1) * chunk]
        lowpass_kernels.bias_lowpass_images(part, zero, part, False, d, frequencies, apx)

    parallel_for(task, tasks)
    return out


def dct_relu(x, frequencies=15, method="asm", impl="auto"):
    """ReLU of DCT-domain ``x`` (..., 64) by ``method`` "asm" or "apx".

    ``frequencies`` is n = 1..15; ``impl`` picks the Numba kernel (CPU or CUDA)
    or the NumPy/CuPy matrix path; "auto" takes the matrix path on the CPU
    (BLAS, measured fastest) and the kernel on the GPU. Returns a Tensor for a Tensor
    input, else an array of the input's module; a
    :class:`~dctnet.functional.CarriedDCT` for a CarriedDCT (computed on its
    pixels, ``impl`` unused).
    """
    if method not in ("asm", "apx"):
        raise ValueError(f"method must be 'asm' or 'apx', found {method!r}")
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, found {impl!r}")
    frequency_count(frequencies)  # validate before any work
    if isinstance(x, CarriedDCT):
        return _carried_relu(x, frequencies, method)
    # Without a backward pass to come, the fast path need not keep the mask.
    keep_mask = isinstance(x, Tensor) and x.requires_grad and is_grad_enabled()
    out = DCTReLU.apply(x, frequencies=frequencies, method=method, impl=impl, keep_mask=keep_mask)
    return out if isinstance(x, Tensor) else out.data


def asm_relu(x, frequencies=15, impl="auto"):
    """ReLU by Approximated Spatial Masking; exact for ``frequencies=15``."""
    return dct_relu(x, frequencies, "asm", impl)


def apx_relu(x, frequencies=15, impl="auto"):
    """APX, the approximation ASM is compared with: ReLU of the pixels rebuilt
    from the first n frequencies only."""
    return dct_relu(x, frequencies, "apx", impl)
