"""The JPEG transform: zigzag order, the orthonormal 8x8 DCT, quantization, blocking.

Conventions (docs/design.md §2): a pixel array ``(..., H, W)`` maps to a DCT-domain
array ``(..., H/8, W/8, 64)`` whose last axis is in JPEG zigzag order; the DCT is
the orthonormal DCT-II, so ``DC = 8 * block mean`` and energy is preserved.

>>> import numpy as np, dctnet
>>> x = np.full((8, 16), 3.0)
>>> c = dctnet.to_dct(x)
>>> c.shape, round(float(c[0, 0, 0]), 9)
((1, 2, 64), 24.0)
>>> np.allclose(dctnet.from_dct(c), x)
True

This is the plain-array layer: NumPy or CuPy arrays in and out, no autograd
(``dctnet.functional.block_dct`` / ``block_idct`` are the differentiable forms).
"""

from __future__ import annotations

import numpy as np

from .backend import device_constant, get_array_module, is_tensor, kernel_module

__all__ = [
    "ZIGZAG",
    "FREQUENCY_COUNTS",
    "dct_matrix",
    "block_dct_matrix",
    "frequency_count",
    "frequency_mask",
    "kernel_constants",
    "to_dct",
    "from_dct",
    "quant_table",
    "quantize",
    "dequantize",
    "pad_to_blocks",
    "jpeg_matrix",
]


def _zigzag() -> np.ndarray:
    # Walk the anti-diagonals s = a + b; odd ones go down-left (a rising),
    # even ones up-right (a falling), as in the JPEG scan.
    order = []
    for s in range(15):
        diag = [(a, s - a) for a in range(8) if 0 <= s - a < 8]
        order += diag if s % 2 else diag[::-1]
    return np.array([a * 8 + b for a, b in order], dtype=np.intp)


ZIGZAG = _zigzag()
"""``ZIGZAG[k]`` is the row-major index ``alpha*8+beta`` of the k-th zigzag coefficient."""
ZIGZAG.flags.writeable = False

FREQUENCY_COUNTS = (1, 3, 6, 10, 15, 21, 28, 36, 43, 49, 54, 58, 61, 63, 64)
"""Zigzag prefix length that keeps ``alpha+beta <= n-1``, for n = 1..15."""


def dct_matrix(dtype=np.float64) -> np.ndarray:
    """The 8x8 orthonormal DCT-II matrix ``D[u, m] = V(u)/2 cos((2m+1) u pi/16)``."""
    u = np.arange(8)[:, None]
    m = np.arange(8)[None, :]
    d = 0.5 * np.cos((2 * m + 1) * u * np.pi / 16)
    d[0] /= np.sqrt(2.0)
    return d.astype(dtype)


def block_dct_matrix(dtype=np.float64) -> np.ndarray:
    """The 64x64 matrix ``B`` with ``zigzag_coefs = B @ block.ravel()``.

    ``B`` is orthogonal, so ``block.ravel() = B.T @ coefs``.
    """
    d = dct_matrix(np.float64)
    full = np.einsum("am,bn->abmn", d, d).reshape(64, 64)
    return np.ascontiguousarray(full[ZIGZAG]).astype(dtype)


def frequency_count(n: int) -> int:
    """Number of zigzag coefficients with ``alpha+beta <= n-1`` (n spatial frequencies).

    >>> frequency_count(1), frequency_count(15)
    (1, 64)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 15:
        raise ValueError(f"the number of spatial frequencies must be an integer in 1..15, found {n!r}")
    return FREQUENCY_COUNTS[int(n) - 1]


def frequency_mask(n: int) -> np.ndarray:
    """Boolean (64,) mask over zigzag positions of the first ``frequency_count(n)``."""
    mask = np.zeros(64, dtype=bool)
    mask[: frequency_count(n)] = True
    return mask


def _inverse_zigzag():
    return np.argsort(ZIGZAG).astype(np.int64)  # natural index -> zigzag position


def kernel_constants(xp, dtype):
    """``(D, izz)``, the arrays every blockwise kernel takes, as arrays of ``xp``.

    ``D`` is :func:`dct_matrix` in ``dtype`` (that of the data), ``izz`` the
    inverse zigzag permutation, int64 (``izz[alpha*8+beta]`` is the zigzag
    position of that coefficient). Both are built once per module and dtype
    and shared: read-only.

    >>> d, izz = kernel_constants(np, np.float32)
    >>> d.dtype, int(izz[8])
    (dtype('float32'), 2)
    """
    return device_constant(dct_matrix, xp, np.dtype(dtype)), device_constant(_inverse_zigzag, xp)


def _float_array(x, name):
    """``x`` as a float32/float64 array of its own module; other dtypes -> float32."""
    if is_tensor(x):
        raise TypeError(
            f"{name} must be an array, found a dctnet.Tensor; pass its .data, or use "
            "dctnet.functional.block_dct / block_idct to keep the gradient"
        )
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind == "c":
        raise TypeError(f"{name} must be real, found dtype {x.dtype}")
    if x.dtype not in (np.float32, np.float64):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a numeric array, found dtype {x.dtype}")
        x = x.astype(np.float32)
    return xp, x


def to_dct(x, *, serial=False):
    """Blockwise DCT: pixels ``(..., H, W)`` -> coefficients ``(..., H/8, W/8, 64)``.

    H and W must be multiples of 8 (use :func:`pad_to_blocks`); empty inputs
    (no images, or H or W = 0) give empty outputs of the matching shape. float32 and
    float64 are kept; other numeric dtypes become float32. Runs the Numba kernel
    of the input's backend (CPU ``prange`` or CUDA). ``serial=True`` keeps a
    NumPy input on the calling thread: for callers that alternate with BLAS
    calls, whose worker threads would contend with Numba's (the JPEG-domain
    layers do); CuPy inputs ignore it.
    """
    xp, x = _float_array(x, "to_dct input")
    if x.ndim < 2:
        raise ValueError(f"to_dct expects an array (..., H, W), found shape {x.shape}")
    h, w = x.shape[-2:]
    if h % 8 or w % 8:
        raise ValueError(
            f"to_dct expects H and W that are multiples of 8, found {h}x{w}; "
            "pad first with dctnet.pad_to_blocks(x)"
        )
    lead = x.shape[:-2]
    if x.size == 0:  # reshape((-1, 0, w)) is ambiguous, and the kernels need not see empty arrays
        return xp.zeros(lead + (h // 8, w // 8, 64), dtype=x.dtype)
    flat = xp.ascontiguousarray(x.reshape((-1, h, w)))
    out = xp.empty((flat.shape[0], h // 8, w // 8, 64), dtype=x.dtype)
    kernel = kernel_module("blockdct", xp)
    (kernel.fdct_serial if serial and xp is np else kernel.fdct)(flat, out, *kernel_constants(xp, x.dtype))
    return out.reshape(lead + out.shape[1:])


def from_dct(c, *, serial=False):
    """Inverse of :func:`to_dct`: ``(..., BH, BW, 64)`` -> pixels ``(..., 8 BH, 8 BW)``.

    ``serial`` as in :func:`to_dct`; empty inputs give empty outputs.
    """
    xp, c = _float_array(c, "from_dct input")
    if c.ndim < 3 or c.shape[-1] != 64:
        raise ValueError(
            f"from_dct expects coefficients of shape (..., BH, BW, 64), found {c.shape}"
        )
    bh, bw = c.shape[-3:-1]
    lead = c.shape[:-3]
    if c.size == 0:
        return xp.zeros(lead + (8 * bh, 8 * bw), dtype=c.dtype)
    flat = xp.ascontiguousarray(c.reshape((-1, bh, bw, 64)))
    out = xp.empty((flat.shape[0], 8 * bh, 8 * bw), dtype=c.dtype)
    kernel = kernel_module("blockdct", xp)
    (kernel.idct_serial if serial and xp is np else kernel.idct)(flat, out, *kernel_constants(xp, c.dtype))
    return out.reshape(lead + out.shape[1:])


# IJG / ITU-T T.81 Annex K tables, natural (row-major) order.
_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
])
_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
])


def quant_table(quality: int = 50, kind: str = "luma") -> np.ndarray:
    """IJG standard quantization table scaled as libjpeg does, in zigzag order.

    ``quality`` is 1..100 (50 is the unscaled Annex K table); entries are clamped
    to 1..255 (libjpeg's ``force_baseline``). Returns int32 of shape (64,).

    >>> quant_table(50, "luma")[:4]
    array([16, 11, 12, 14], dtype=int32)
    """
    if kind not in ("luma", "chroma"):
        raise ValueError(f"kind must be 'luma' or 'chroma', found {kind!r}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100, found {quality!r}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = _LUMA if kind == "luma" else _CHROMA
    table = np.clip((base * scale + 50) // 100, 1, 255)
    return table[ZIGZAG].astype(np.int32)


def _check_table(table, xp, name="qtable"):
    t = xp.asarray(table)
    if t.shape != (64,):
        raise ValueError(f"{name} must have shape (64,) in zigzag order, found {t.shape}")
    if not bool(xp.all(t > 0)):
        raise ValueError(f"{name} entries must be positive, found min {t.min()}")
    return t


def quantize(coefs, table):
    """Round ``coefs / table`` to the nearest integer (int32), per zigzag position."""
    xp = get_array_module(coefs, table)
    coefs = xp.asarray(coefs)
    if coefs.ndim < 1 or coefs.shape[-1] != 64:
        raise ValueError(f"quantize expects coefficients (..., 64), found {coefs.shape}")
    t = _check_table(table, xp)
    return xp.rint(coefs / t).astype(np.int32)


def dequantize(qcoefs, table, dtype=np.float32):
    """Multiply quantized coefficients by their table: the unquantized DCT domain."""
    xp = get_array_module(qcoefs, table)
    qcoefs = xp.asarray(qcoefs)
    if qcoefs.ndim < 1 or qcoefs.shape[-1] != 64:
        raise ValueError(f"dequantize expects coefficients (..., 64), found {qcoefs.shape}")
    t = _check_table(table, xp)
    return qcoefs.astype(dtype) * t.astype(dtype)


def pad_to_blocks(x, block=8):
    """Pad the last two axes up to multiples of ``block`` by edge replication.

    ``block`` is an int or a ``(rows, cols)`` pair (e.g. ``(16, 16)`` for a
    4:2:0 MCU). This is what JPEG encoders do with partial blocks. Returns ``x``
    itself when no padding is needed.
    """
    bh, bw = (block, block) if np.ndim(block) == 0 else block
    xp = get_array_module(x)
    x = xp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"pad_to_blocks expects an array (..., H, W), found shape {x.shape}")
    h, w = x.shape[-2:]
    ph, pw = -h % bh, -w % bw
    if not (ph or pw):
        return x
    if h == 0 or w == 0:
        raise ValueError(f"cannot pad an empty image of size {h}x{w}")
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return xp.pad(x, pad, mode="edge")


_MAX_MATRIX_PIXELS = 4096


def jpeg_matrix(h: int, w: int, qtable=None, inverse: bool = False) -> np.ndarray:
    """The paper's explicit linear map J (or J~ with ``inverse=True``) for small images.

    ``J @ image.ravel()`` equals ``(to_dct(image) / qtable).ravel()`` (no rounding),
    for an ``h x w`` image with h, w multiples of 8 and at most 4,096 pixels.
    ``J~ = J^-1`` maps such coefficients back to pixels. ``qtable=None`` means
    a table of ones (the unquantized transform domain).
    """
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise ValueError(f"jpeg_matrix needs h and w that are positive multiples of 8, found {h}x{w}")
    if h * w > _MAX_MATRIX_PIXELS:
        raise ValueError(
            f"jpeg_matrix is dense ({h * w}x{h * w}); it is meant for images of at most "
            f"{_MAX_MATRIX_PIXELS} pixels, found {h}x{w}; use to_dct/from_dct for larger ones"
        )
    q = np.ones(64) if qtable is None else _check_table(qtable, np).astype(np.float64)
    bh, bw = h // 8, w // 8
    b = block_dct_matrix()
    # Pixel (8i+m, 8j+n) feeds block (i, j), coefficient k with weight B[k, 8m+n].
    j = np.zeros((bh, bw, 64, h, w))
    for i in range(bh):
        for jj in range(bw):
            j[i, jj, :, 8 * i : 8 * i + 8, 8 * jj : 8 * jj + 8] = b.reshape(64, 8, 8)
    j = j.reshape(bh * bw, 64, h * w)
    if inverse:  # orthogonal blocks: J~ = J0^T diag(q)
        return (j * q[None, :, None]).reshape(h * w, h * w).T.copy()
    return (j / q[None, :, None]).reshape(h * w, h * w)
