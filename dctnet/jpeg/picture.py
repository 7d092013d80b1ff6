"""The JPEG picture: quantized coefficients (:class:`JpegImage`), their exact DCT-domain decode, and the encoder.

A :class:`JpegImage` holds each component's quantized coefficients
``(BH_c, BW_c, 64)`` in zigzag order with its quantization table and sampling
factors, as a file stores them. :meth:`JpegImage.to_dct` (and
:func:`dct_picture`, for a stack of images) turns them into the DCT-domain
picture the networks consume (docs/design.md §2): dequantized, chroma
box-upsampled in the DCT domain, colour-mapped coefficient-wise, level shift
undone. :func:`encode_jpeg` is the exact inverse path from pixels. How files
become images is docs/design.md §5.

>>> import numpy as np
>>> img = encode_jpeg(np.full((3, 16, 16), 200, np.uint8), quality=90)
>>> x = img.to_dct("rgb")                                    # (3, 2, 2, 64) float32
>>> x.shape, round(float(x[0, 0, 0, 0]) / 8)                 # DC / 8 = block mean
((3, 2, 2, 64), 200)
>>> stack = dct_picture([c[None] for c in img.coefficients], [q[None] for q in img.qtables],
...                     img.sampling, img.color_space, 16, 16)    # a batch of one
>>> stack.shape, bool(np.array_equal(stack[0], x))
((1, 3, 2, 2, 64), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..transform import ZIGZAG, dct_matrix, from_dct, pad_to_blocks, quant_table, to_dct
from . import libjpeg

__all__ = ["JpegImage", "dct_picture", "encode_jpeg", "block_grids", "unchecked_images",
           "RGB_TO_YCBCR", "YCBCR_TO_RGB", "SUBSAMPLING", "COLOR_SPACES", "FILE_SPACES"]

COLOR_SPACES = ("gray", "ycbcr", "rgb")  # the colour forms of to_dct / to_pixels
FILE_SPACES = COLOR_SPACES + ("cmyk", "ycck")  # what a file's components can be
_COMPONENTS = {"gray": 1, "ycbcr": 3, "rgb": 3, "cmyk": 4, "ycck": 4}
_NO_RGB = "CMYK/YCCK pictures have no RGB DCT-domain form; use .coefficients"
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2), "4:4:0": (2, 1)}  # luma (v, h)

# JFIF (full range). The inverse is computed, not rounded, so encode -> decode is exact.
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                         [-0.168735892, -0.331264108, 0.5],
                         [0.5, -0.418687589, -0.081312411]])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)

_NATURAL = np.argsort(ZIGZAG)  # zigzag position of each natural index


def _blocks(size: int, factor: int, max_factor: int) -> int:
    """Blocks of a component along one axis (libjpeg: ceil(size * f / (8 * f_max)))."""
    return -(-size * factor // (8 * max_factor))


def block_grids(height: int, width: int, sampling) -> list:
    """Per component ``(BH_c, BW_c)``: the block grid of a ``height`` x ``width`` picture, as libjpeg sizes it.

    >>> block_grids(17, 33, ((2, 2), (1, 1), (1, 1)))
    [(3, 5), (2, 3), (2, 3)]
    """
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    return [(_blocks(height, v, vmax), _blocks(width, h, hmax)) for v, h in sampling]


@dataclass(eq=False)
class JpegImage:
    """The quantized coefficients of a JPEG file and what is needed to decode them.

    - ``coefficients``: per component ``(BH_c, BW_c, 64)`` int16, zigzag order
      (Y, Cb, Cr for ``color_space="ycbcr"``; R, G, B for ``"rgb"``; one for ``"gray"``;
      C, M, Y, K for ``"cmyk"``; Y, Cb, Cr, K for ``"ycck"``, as Adobe's transform flag says);
    - ``qtables``: per component ``(64,)`` int32, zigzag;
    - ``sampling``: per component ``(vertical, horizontal)`` factors, e.g.
      ``((2, 2), (1, 1), (1, 1))`` for 4:2:0;
    - ``height``, ``width``: the picture size (block grids cover it, padded);
    - ``progressive``: whether the file was progressive (written back as baseline).
    """

    coefficients: tuple
    qtables: tuple
    sampling: tuple
    height: int
    width: int
    color_space: str = "ycbcr"
    progressive: bool = False

    def __post_init__(self):
        self.coefficients = tuple(np.asarray(c) for c in self.coefficients)
        self.qtables = tuple(np.asarray(q) for q in self.qtables)
        self.sampling = tuple(tuple(int(f) for f in s) for s in self.sampling)
        n = len(self.coefficients)
        if self.color_space not in FILE_SPACES:
            raise ValueError(f"color_space must be one of {FILE_SPACES}, found {self.color_space!r}")
        want = _COMPONENTS[self.color_space]
        if n != want or len(self.qtables) != n or len(self.sampling) != n:
            raise ValueError(
                f"a {self.color_space} JpegImage needs {want} components with one table and one "
                f"sampling pair each, found {n} coefficient arrays, {len(self.qtables)} tables, "
                f"{len(self.sampling)} sampling pairs"
            )
        if not (isinstance(self.height, (int, np.integer)) and isinstance(self.width, (int, np.integer))
                and 1 <= self.height <= 65535 and 1 <= self.width <= 65535):
            raise ValueError(f"height and width must be integers in 1..65535, found {self.height} x {self.width}")
        self.height, self.width = int(self.height), int(self.width)
        if any(len(s) != 2 or not all(1 <= f <= 4 for f in s) for s in self.sampling):
            raise ValueError(f"sampling factors must be (v, h) pairs in 1..4, found {self.sampling}")
        grids = block_grids(self.height, self.width, self.sampling)
        for c, (coef, table, (v, h), grid) in enumerate(zip(self.coefficients, self.qtables, self.sampling, grids)):
            shape = (*grid, 64)
            if coef.shape != shape or coef.dtype.kind not in "iu":
                raise ValueError(
                    f"component {c} of a {self.height}x{self.width} image sampled {(v, h)} needs integer "
                    f"coefficients of shape {shape}, found {coef.dtype} {coef.shape}"
                )
            if table.shape != (64,) or table.dtype.kind not in "iu" or table.min() < 1 or table.max() > 65535:
                found = f"values {table.min()}..{table.max()}" if table.shape == (64,) else f"shape {table.shape}"
                raise ValueError(f"qtable {c} must be 64 integers in 1..65535 (zigzag), found {table.dtype} {found}")

    @property
    def blocks(self) -> tuple[int, int]:
        """The full-resolution block grid ``(BH, BW)`` that :meth:`to_dct` returns."""
        return -(-self.height // 8), -(-self.width // 8)

    def __repr__(self) -> str:
        sub = "x".join(f"{v}{h}" for v, h in self.sampling)
        kind = "progressive" if self.progressive else "baseline"
        return f"JpegImage({self.width}x{self.height} {self.color_space}, sampling {sub}, {kind})"

    def to_dct(self, color: str | None = None, dtype=np.float32) -> np.ndarray:
        """The decoded picture in the DCT domain, ``(C, BH, BW, 64)`` zigzag, pixel units.

        ``color`` is ``"rgb"``, ``"ycbcr"`` or ``"gray"`` (default: ``"gray"`` for a
        grey file, else ``"rgb"``). Exact: equals ``to_dct`` of the float IDCT
        decode (no rounding, clamping or fancy upsampling); the grid covers the
        picture padded to whole blocks.

        >>> img = encode_jpeg(np.zeros((1, 8, 8), np.uint8))
        >>> img.to_dct().shape
        (1, 1, 1, 64)
        """
        return dct_picture(self.coefficients, self.qtables, self.sampling, self.color_space,
                           self.height, self.width, color, dtype)

    def to_pixels(self, color: str | None = None, dtype=np.float32, crop: bool = True) -> np.ndarray:
        """The float decode ``(C, H, W)``: the IDCT of :meth:`to_dct`, unrounded and unclamped.

        ``crop=False`` keeps the padding to whole blocks. libjpeg's decode differs by
        a few grey levels (integer IDCT, fancy upsampling, rounding, clamping).
        """
        pixels = from_dct(self.to_dct(color, np.float64))
        if crop:
            pixels = pixels[:, : self.height, : self.width]
        return np.ascontiguousarray(pixels, dtype=dtype)

    def to_bytes(self) -> bytes:
        """The image as a baseline JPEG file's bytes (coefficients and tables unchanged), written by libjpeg."""
        return libjpeg.to_bytes(self)


def unchecked_images(fields: dict, coefficients: list, qtables: list) -> list:
    """JpegImages made without the constructor's checks, for readers that checked the values already.

    One image per ``coefficients[i]``, ``qtables[i]`` (tuples of arrays as
    :class:`JpegImage` holds them), all with the other ``fields`` (``sampling``,
    ``height``, ``width``, ``color_space``, ``progressive``, normalized as the
    constructor leaves them). The Numba decoder checks a header once for all the
    files that share it; the constructor's checks per file would cost more than
    decoding a small file.

    >>> img = encode_jpeg(np.zeros((1, 8, 8), np.uint8))
    >>> fields = dict(sampling=img.sampling, height=8, width=8, color_space="gray", progressive=False)
    >>> unchecked_images(fields, [img.coefficients], [img.qtables])[0]
    JpegImage(8x8 gray, sampling 11, baseline)
    """
    new = object.__new__
    images = []
    for coefs, tables in zip(coefficients, qtables):
        img = new(JpegImage)
        d = img.__dict__ = fields.copy()
        d["coefficients"] = coefs
        d["qtables"] = tables
        images.append(img)
    return images


def dct_picture(coefficients, qtables, sampling, color_space, height, width, color=None, dtype=np.float32):
    """:meth:`JpegImage.to_dct` of one image or of a stack of images of one geometry.

    ``coefficients``: per component ``(..., BH_c, BW_c, 64)`` quantized, zigzag;
    ``qtables``: per component ``(..., 64)``. With the output of
    :func:`dctnet.read_stacked` this builds a whole batch's DCT-domain pictures
    ``(N, C, BH, BW, 64)`` at once.

    >>> coefs, qt = dctnet.read_stacked(files)                                    # doctest: +SKIP
    >>> x = dct_picture(coefs, qt.transpose(1, 0, 2), ((2, 2), (1, 1), (1, 1)), "ycbcr", 32, 32)  # doctest: +SKIP
    """
    if color_space in ("cmyk", "ycck"):
        raise ValueError(_NO_RGB)
    color = ("gray" if color_space == "gray" else "rgb") if color is None else color
    if color not in COLOR_SPACES:
        raise ValueError(f"color must be one of {COLOR_SPACES}, found {color!r}")
    grid = (-(-height // 8), -(-width // 8))
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    planes = []  # dequantized, natural 8x8, upsampled to the full grid, float64
    for coef, table, (v, h) in zip(coefficients, qtables, sampling):
        table = np.asarray(table, np.float64)[..., None, None, :]
        f = (coef.astype(np.float64) * table)[..., _NATURAL].reshape(*coef.shape[:-1], 8, 8)
        planes.append(_upsample(f, vmax // v, hmax // h, grid)
                      if (v, h) != (vmax, hmax) else f[..., : grid[0], : grid[1], :, :])
    if color_space == "gray":
        zero = np.zeros_like(planes[0])
        planes = {"gray": [planes[0]], "ycbcr": [planes[0], zero, zero], "rgb": planes * 3}[color]
    else:
        to_ycc = RGB_TO_YCBCR if color_space == "rgb" else np.eye(3)
        matrix = {"gray": to_ycc[:1], "ycbcr": to_ycc,
                  "rgb": YCBCR_TO_RGB @ to_ycc if color_space == "ycbcr" else np.eye(3)}[color]
        planes = [sum(m * p for m, p in zip(row, planes) if m != 0) for row in matrix]
    out = np.stack(planes, axis=-5)  # (..., C, BH, BW, 8, 8)
    out = out.reshape(*out.shape[:-2], 64)[..., ZIGZAG]
    out[..., 0] += 1024.0  # level shift: 128 per pixel is 8 * 128 in the DC
    return out.astype(dtype, copy=False)


def _upsample(f, fy, fx, grid):
    """Box (nearest) upsampling of natural DCT blocks ``(..., BH_c, BW_c, 8, 8)`` by (fy, fx), cropped to ``grid``.

    For factors dividing 8 every output block comes from one input block through
    ``A_p F A_q^T`` with ``A_p = D E_p D^T`` (E_p repeats rows): no pixels made.
    Other factors (3, allowed by the standard) go through the exact float IDCT.
    """
    if 8 % fy or 8 % fx:
        pixels = from_dct(f.reshape(*f.shape[:-2], 64)[..., ZIGZAG])
        pixels = np.repeat(np.repeat(pixels, fy, axis=-2), fx, axis=-1)
        pixels = pixels[..., : 8 * grid[0], : 8 * grid[1]]  # the grid never exceeds the upsampled planes
        return to_dct(pixels)[..., _NATURAL].reshape(*pixels.shape[:-2], *grid, 8, 8)
    f = np.einsum("pru,...bcuv->...bpcrv", _box_maps(fy), f)
    f = f.reshape(*f.shape[:-5], -1, f.shape[-3], 8, 8)
    f = np.einsum("qsv,...bcuv->...bcqus", _box_maps(fx), f)
    f = f.reshape(*f.shape[:-5], f.shape[-5], -1, 8, 8)
    return f[..., : grid[0], : grid[1], :, :]


def _box_maps(factor: int) -> np.ndarray:
    """``(factor, 8, 8)``: the 1-D DCT-domain maps of the ``factor`` output blocks of one block."""
    d = dct_matrix(np.float64)
    rows = np.arange(8)
    maps = np.zeros((factor, 8, 8))
    for p in range(factor):
        e = np.zeros((8, 8))
        e[rows, (8 * p + rows) // factor] = 1.0
        maps[p] = d @ e @ d.T
    return maps


def encode_jpeg(pixels, quality: int | None = None, qtables=None, subsampling: str = "4:2:0") -> JpegImage:
    """JPEG-compress ``pixels`` into a :class:`JpegImage` (write it with :func:`dctnet.write_jpeg`).

    ``pixels``: ``(3, H, W)`` RGB or ``(H, W)``/``(1, H, W)`` grey, values 0..255
    (uint8 or float). The encoder is the exact transform of this package: JFIF
    colour conversion, chroma box-averaged for ``subsampling`` ("4:4:4",
    "4:2:2", "4:2:0", "4:4:0"), edge padding to whole MCUs, orthonormal DCT, and
    rounding to ``qtables`` — ``(luma, chroma)`` zigzag tables of integers
    1..255 (one table for grey) — or to the IJG tables of ``quality`` (default 75).

    >>> img = encode_jpeg(np.zeros((3, 32, 32), np.uint8), quality=75)
    >>> [c.shape for c in img.coefficients]
    [(4, 4, 64), (2, 2, 64), (2, 2, 64)]
    """
    x = np.asarray(pixels)
    if x.dtype.kind not in "uif" or x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[0] not in (1, 3)):
        raise ValueError(f"encode_jpeg expects pixels (3, H, W) or (H, W) of numbers 0..255, found {x.dtype} {x.shape}")
    x = x.reshape(1, *x.shape) if x.ndim == 2 else x
    if not 1 <= min(x.shape[1:]) or max(x.shape[1:]) > 65535:
        raise ValueError(f"encode_jpeg needs 1..65535 pixels per side, found {x.shape[1:]}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
        raise ValueError(f"encode_jpeg expects pixel values in 0..255, found {x.min()}..{x.max()}")
    gray = x.shape[0] == 1
    tables = _encode_tables(quality, qtables, gray)
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLING)}, found {subsampling!r}")
    v, h = (1, 1) if gray else SUBSAMPLING[subsampling]
    height, width = x.shape[1:]
    planes = x - 128.0 if gray else np.einsum("kc,chw->khw", RGB_TO_YCBCR, x - 128.0)
    planes = pad_to_blocks(planes, (8 * v, 8 * h))
    coefficients = []
    for c, plane in enumerate(planes):
        if c:  # chroma: the mean of each v x h cell
            plane = plane.reshape(plane.shape[0] // v, v, plane.shape[1] // h, h).mean(axis=(1, 3))
            shape = (_blocks(height, 1, v), _blocks(width, 1, h))
        else:
            shape = (_blocks(height, 1, 1), _blocks(width, 1, 1))
        plane = pad_to_blocks(plane)[: 8 * shape[0], : 8 * shape[1]]
        q = tables[min(c, 1)]
        coefficients.append(np.clip(np.rint(to_dct(plane) / q), -32767, 32767).astype(np.int16))
    sampling = ((1, 1),) if gray else ((v, h), (1, 1), (1, 1))
    qt = tuple(tables[min(c, 1)].astype(np.int32) for c in range(len(planes)))
    return JpegImage(tuple(coefficients), qt, sampling, height, width, "gray" if gray else "ycbcr")


def _encode_tables(quality, qtables, gray):
    if quality is not None and qtables is not None:
        raise ValueError("pass quality or qtables, not both")
    if qtables is None:
        quality = 75 if quality is None else quality
        return [quant_table(quality, "luma"), quant_table(quality, "chroma")]
    tables = [np.asarray(qtables)] if np.ndim(qtables) == 1 else [np.asarray(t) for t in qtables]
    if len(tables) == 1 and not gray:
        raise ValueError("a colour image needs two tables (luma, chroma); found one")
    for t in tables:
        if t.shape != (64,) or not np.all(t == np.round(t)) or t.min() < 1 or t.max() > 255:
            raise ValueError(f"quantization tables must be 64 integers in 1..255 (zigzag order), found {t.dtype} {t.shape}")
    return [t.astype(np.int64) for t in tables[:2]] * (2 if len(tables) == 1 else 1)
