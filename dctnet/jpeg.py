"""JPEG files as quantized DCT coefficients: read, write, encode, and the exact DCT-domain decode.

``read_jpeg`` entropy-decodes a file (through libjpeg, via jpeglib) and never
runs the inverse DCT: a :class:`JpegImage` holds each component's quantized
coefficients ``(BH_c, BW_c, 64)`` in zigzag order with its quantization table
and sampling factors. :meth:`JpegImage.to_dct` turns them into the DCT-domain
picture the networks consume (DESIGN.md §2): dequantized, chroma box-upsampled
in the DCT domain, colour-mapped coefficient-wise, level shift undone.

>>> import numpy as np, dctnet
>>> img = dctnet.encode_jpeg(np.full((3, 16, 16), 200, np.uint8), quality=90)
>>> img.coefficients[0].shape, img.sampling
((2, 2, 64), ((2, 2), (1, 1), (1, 1)))
>>> x = dctnet.read_jpeg(img.to_bytes()).to_dct("rgb")       # (3, 2, 2, 64) float32
>>> round(float(x[0, 0, 0, 0]) / 8)                          # DC / 8 = block mean
200
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .transform import ZIGZAG, dct_matrix, from_dct, pad_to_blocks, quant_table, to_dct

__all__ = ["JpegError", "JpegWarning", "JpegImage", "read_jpeg", "write_jpeg", "encode_jpeg",
           "RGB_TO_YCBCR", "YCBCR_TO_RGB"]

COLOR_SPACES = ("gray", "ycbcr", "rgb")  # the colour forms of to_dct / to_pixels
FILE_SPACES = COLOR_SPACES + ("cmyk", "ycck")  # what a file's components can be
_COMPONENTS = {"gray": 1, "ycbcr": 3, "rgb": 3, "cmyk": 4, "ycck": 4}
_NO_RGB = "CMYK/YCCK pictures have no RGB DCT-domain form; use .coefficients"
SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2), "4:4:0": (2, 1)}  # luma (v, h)
MAX_PIXELS = 1 << 28  # refuse absurd declared sizes before libjpeg allocates for them

# JFIF (full range). The inverse is computed, not rounded, so encode -> decode is exact.
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                         [-0.168735892, -0.331264108, 0.5],
                         [0.5, -0.418687589, -0.081312411]])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)

_NATURAL = np.argsort(ZIGZAG)  # zigzag position of each natural index


class JpegError(ValueError):
    """A file that is not a JPEG dctnet can read, with the file and the reason."""


class JpegWarning(UserWarning):
    """libjpeg recovered from corrupt data (only with ``read_jpeg(..., strict=False)``)."""


def _blocks(size: int, factor: int, max_factor: int) -> int:
    """Blocks of a component along one axis (libjpeg: ceil(size * f / (8 * f_max)))."""
    return -(-size * factor // (8 * max_factor))


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
        vmax, hmax = (max(s[i] for s in self.sampling) for i in (0, 1))
        for c, (coef, table, (v, h)) in enumerate(zip(self.coefficients, self.qtables, self.sampling)):
            shape = (_blocks(self.height, v, vmax), _blocks(self.width, h, hmax), 64)
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
        """The image as a baseline JPEG file's bytes (coefficients and tables unchanged)."""
        fd, tmp = tempfile.mkstemp(suffix=".jpg")
        os.close(fd)
        try:
            self._write(tmp)
            return Path(tmp).read_bytes()
        finally:
            os.unlink(tmp)

    # -- internals ----------------------------------------------------------------
    def _write(self, path):
        import jpeglib
        from jpeglib.dct_jpeg import DCTJPEG

        if self.color_space in ("cmyk", "ycck"):
            raise ValueError("writing CMYK/YCCK JPEG files is not supported; dctnet writes grey, YCbCr and RGB files")
        tables, index = [], []
        for t in self.qtables:
            nat = np.asarray(t)[_NATURAL].reshape(8, 8).astype(np.uint16)
            found = [i for i, u in enumerate(tables) if np.array_equal(u, nat)]
            index.append(found[0] if found else len(tables))
            if not found:
                tables.append(nat)
        if len(tables) > 4:
            raise ValueError(f"a JPEG file holds at most 4 quantization tables, this image has {len(tables)}")
        comps = [np.ascontiguousarray(c[..., _NATURAL].reshape(*c.shape[:2], 8, 8), dtype=np.int16)
                 for c in self.coefficients]
        space = {"gray": "JCS_GRAYSCALE", "ycbcr": "JCS_YCbCr", "rgb": "JCS_RGB"}[self.color_space]
        jpeg = DCTJPEG(
            path=None, content=None, height=self.height, width=self.width,
            block_dims=np.array([c.shape[:2] for c in comps], dtype=np.int32),
            samp_factor=np.array(self.sampling, dtype=np.int32),
            markers=None, huffmans=None, jpeg_color_space=jpeglib.Colorspace[space],
            progressive_mode=False, num_scans=1,
            Y=comps[0], Cb=comps[1] if len(comps) > 1 else None, Cr=comps[2] if len(comps) > 1 else None,
            K=None, qt=np.stack(tables), quant_tbl_no=np.array(index, dtype=np.int32),
        )
        jpeg.write_dct(str(path))
        if self.color_space == "rgb":
            _mark_rgb(path)


def _mark_rgb(path):
    """Label libjpeg's output as RGB: JFIF APP0 out, Adobe APP14 (transform 0) in, components R, G, B.

    libjpeg writes the coefficients we give it but labels them YCbCr; decoders
    skip the colour transform for an Adobe marker with transform 0 and
    component ids 'R', 'G', 'B' (T.872), as libjpeg's own RGB files have.
    """
    data = bytearray(Path(path).read_bytes())
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xC0:  # SOF0: Nf, then (id, sampling, table) per component
            for c in range(3):
                data[pos + 10 + 3 * c] = b"RGB"[c]
        elif marker == 0xDA:  # SOS: Ns, then (id, tables) per component; entropy data follows
            for c in range(3):
                data[pos + 5 + 2 * c] = b"RGB"[c]
            break
        pos += 2 + length
    if data[2:4] == b"\xff\xe0":  # the JFIF segment libjpeg put first
        del data[2:4 + int.from_bytes(data[4:6], "big")]
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
    Path(path).write_bytes(bytes(data[:2]) + adobe + bytes(data[2:]))


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


# ----------------------------------------------------------------------------- reading

_SOF_NAMES = {0xC3: "lossless", 0xC5: "hierarchical (differential sequential)",
              0xC6: "hierarchical (differential progressive)", 0xC7: "hierarchical (differential lossless)",
              0xC9: "arithmetic coding", 0xCA: "arithmetic coding (progressive)",
              0xCB: "arithmetic coding (lossless)", 0xCD: "arithmetic coding (hierarchical)",
              0xCE: "arithmetic coding (hierarchical progressive)", 0xCF: "arithmetic coding (hierarchical lossless)"}


def _segments(data: bytes):
    """``(marker, payload start, length)`` of the marker segments before the first scan.

    A cheap walk (fill bytes skipped, stand-alone markers passed over) that stops
    at SOS, EOI or anything malformed, which is left to the decoders' own checks.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n and data[pos] == 0xFF:
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA) or pos + 2 > n:
            return
        length = int.from_bytes(data[pos:pos + 2], "big")
        yield marker, pos + 2, length
        pos += length


def _frame_header(data: bytes):
    """``(sof_marker, precision, height, width, components)`` from the marker segments, or None.

    So unsupported kinds of JPEG get an error that names the feature and absurd
    sizes are refused before any allocation. Malformed files return None and are
    left to libjpeg's own checks.
    """
    for marker, start, length in _segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if length < 8 or start + 6 > len(data):
                return None
            seg = data[start:start + 6]
            return marker, seg[0], int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
    return None


_STDERR_LOCK = threading.Lock()


class _LibjpegMessages:
    """Capture what libjpeg prints on file descriptor 2 (its warnings) while reading.

    libjpeg reports recoverable corruption ("Corrupt JPEG data: ...") only there;
    catching it is what lets ``read_jpeg`` refuse a damaged file instead of
    returning zeros in silence.
    """

    def __enter__(self):
        _STDERR_LOCK.acquire()
        try:
            self._file = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except BaseException:
            _STDERR_LOCK.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._file.seek(0)
            lines = self._file.read().decode("utf-8", "replace").splitlines()
            self.text = "; ".join(dict.fromkeys(line.strip() for line in lines if line.strip()))
            self._file.close()
        finally:
            _STDERR_LOCK.release()
        return False


def _source(source):
    """``(bytes, name, path or None)`` of a path, bytes-like or binary file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return path.read_bytes(), str(path), path
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>", None
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, bytes):
            raise TypeError(f"read_jpeg needs a binary file object, its read() returned {type(data).__name__}")
        return data, getattr(source, "name", "<file>"), None
    raise TypeError(f"read_jpeg expects a path, bytes or a binary file object, found {type(source).__name__}")


DECODERS = ("auto", "numba", "libjpeg")


def read_jpeg(source, *, strict: bool = True, max_pixels: int | None = MAX_PIXELS, decoder: str = "auto") -> JpegImage:
    """Entropy-decode a JPEG file into its quantized coefficients (no inverse DCT).

    ``source`` is a path, bytes, or a binary file object. Baseline and progressive
    Huffman-coded 8-bit files, grey, three-component (YCbCr, or RGB without
    colour transform) or four-component (CMYK, or YCCK by Adobe's transform flag;
    their coefficients only: no ``to_dct``), any sampling and size. Raises
    :class:`JpegError` naming the file for anything else (truncated, corrupt, not a JPEG,
    12-bit,
    arithmetic-coded, lossless, hierarchical, larger than ``max_pixels``). With
    ``strict=False`` data libjpeg can recover from (e.g. a truncated last scan,
    decoded as zeros) gives a :class:`JpegWarning` instead of an error.

    ``decoder``: "auto" reads baseline files with dctnet's Numba decoder
    (:mod:`dctnet.baseline`, bit-identical and several times faster) and the
    rest, or anything it refuses, with libjpeg (jpeglib); "numba" uses only
    the former (progressive files raise), "libjpeg" only the latter.

    >>> img = read_jpeg("photo.jpg")                       # doctest: +SKIP
    >>> img.coefficients[0].shape, img.qtables[0][:3]      # doctest: +SKIP
    ((19, 29, 64), array([ 8,  6,  6], dtype=int32))
    """
    data, name, path = _source(source)
    if len(data) == 0:
        raise JpegError(f"{name}: empty file, expected JPEG data")
    if data[:2] != b"\xff\xd8":
        raise JpegError(f"{name}: not a JPEG file (expected the SOI marker FF D8, found {data[:2].hex(' ').upper() or 'nothing'})")
    frame = _frame_header(data)
    if frame is not None:
        marker, precision, height, width, ncomp = frame
        if marker in _SOF_NAMES:
            raise JpegError(f"{name}: {_SOF_NAMES[marker]} JPEG is not supported; re-encode it as baseline or progressive Huffman JPEG")
        if precision != 8:
            raise JpegError(f"{name}: {precision}-bit samples are not supported, only 8-bit JPEG")
        if ncomp not in (1, 3, 4):
            raise JpegError(f"{name}: {ncomp}-component JPEG is not supported; dctnet reads grey, three-component "
                            "(YCbCr/RGB) and four-component (CMYK/YCCK) files")
        if max_pixels is not None and height * width > max_pixels:
            raise JpegError(f"{name}: declares {width}x{height} pixels, more than max_pixels={max_pixels}; "
                            "pass a larger max_pixels if the file is trusted")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, found {decoder!r}")
    if decoder != "libjpeg":
        from .baseline import read_baseline  # imported here: baseline builds on this module

        refused = None
        try:
            image = read_baseline(data, name, max_pixels)
        except JpegError as exc:
            refused = exc
            if decoder == "numba" and strict:
                raise
            image = None  # libjpeg decides: it reads what this strict reader refuses, or names the fault
            if decoder == "numba":  # strict=False: the Numba reader's lenient mode, or its error
                return read_baseline(data, name, max_pixels, strict=False, _stacklevel=3)
        if image is not None:
            return image
        if decoder == "numba":
            raise JpegError(f"{name}: progressive JPEG: the Numba decoder reads baseline files only; use decoder='auto'")
    try:
        if path is not None:
            return _read(str(path), name, strict, data)
        fd, tmp = tempfile.mkstemp(suffix=".jpg")  # libjpeg reads from a file
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return _read(tmp, name, strict, data)
        finally:
            os.unlink(tmp)
    except JpegError as exc:
        # strict=False: libjpeg's recovery is the reference, so it goes first; what it cannot read at
        # all (e.g. a Motion-JPEG frame without Huffman tables, which libjpeg 6b refuses) the Numba
        # reader's lenient mode may still read (it warns); else libjpeg's error stands
        if decoder != "auto" or (strict and refused is None):
            raise
        from .baseline import read_baseline

        try:
            with warnings.catch_warnings(record=strict):
                image = read_baseline(data, name, max_pixels, strict=False, _stacklevel=3)
        except JpegError:
            image = None
        if image is None:
            raise exc
        if strict:  # the Numba reader's fault names what strict=False would skip
            raise JpegError(f"{refused}; read_jpeg(..., strict=False) skips it as libjpeg does") from exc
        return image


def _adobe_transform(data: bytes):
    """The transform flag of the last Adobe APP14 segment before the first scan, or None (as libjpeg records it)."""
    found = None
    for marker, start, length in _segments(data):
        if marker == 0xEE and length >= 14 and data[start:start + 5] == b"Adobe" and start + 12 <= len(data):
            found = data[start + 11]
    return found


def _read(path: str, name: str, strict: bool, data: bytes = b"") -> JpegImage:
    import jpeglib

    messages = _LibjpegMessages()
    try:
        with messages:
            jpeg = jpeglib.read_dct(path)
            jpeg.load()
    except (OSError, ValueError, IndexError, TypeError, MemoryError) as exc:
        detail = "; ".join(filter(None, [getattr(messages, "text", ""), str(exc).replace(path, name)]))
        raise JpegError(f"{name}: libjpeg cannot read it ({detail})") from exc
    if messages.text:
        if strict:
            raise JpegError(f"{name}: corrupt JPEG data ({messages.text}); "
                            "read_jpeg(..., strict=False) accepts what libjpeg recovered")
        warnings.warn(f"{name}: {messages.text}", JpegWarning, stacklevel=3)
    space = {"JCS_GRAYSCALE": "gray", "JCS_YCbCr": "ycbcr", "JCS_RGB": "rgb",
             "JCS_CMYK": "cmyk", "JCS_YCCK": "cmyk"}.get(jpeg.jpeg_color_space.name)
    ncomp = int(jpeg.num_components)
    if space == "cmyk":  # jpeglib names both CMYK; libjpeg 6b: no Adobe marker or transform 0 CMYK, else YCCK
        space = "cmyk" if _adobe_transform(data or Path(path).read_bytes()) in (None, 0) else "ycck"
    if space is None or ncomp != _COMPONENTS[space]:
        raise JpegError(f"{name}: colour space {jpeg.jpeg_color_space.name} with {ncomp} components is not "
                        "supported; dctnet reads grey, YCbCr, RGB, CMYK and YCCK files")
    arrays = [jpeg.Y] + ([jpeg.Cb, jpeg.Cr] if ncomp >= 3 else []) + ([jpeg.K] if ncomp == 4 else [])
    coefficients = tuple(np.ascontiguousarray(a.reshape(*a.shape[:2], 64)[..., ZIGZAG], dtype=np.int16)
                         for a in arrays)
    qt = np.asarray(jpeg.qt).reshape(-1, 64)
    qtables = tuple(qt[int(i)][ZIGZAG].astype(np.int32) for i in np.asarray(jpeg.quant_tbl_no)[:ncomp])
    sampling = tuple(tuple(int(f) for f in s) for s in np.asarray(jpeg.samp_factor)[:ncomp])
    try:
        return JpegImage(coefficients, qtables, sampling, int(jpeg.height), int(jpeg.width),
                         space, bool(jpeg.progressive_mode))
    except ValueError as exc:  # libjpeg accepted something inconsistent
        raise JpegError(f"{name}: {exc}") from exc


# ----------------------------------------------------------------------------- writing


def write_jpeg(path, image: JpegImage) -> Path:
    """Write ``image``'s coefficients and tables to ``path`` as a baseline JPEG file.

    Lossless with respect to the coefficients: ``read_jpeg(path)`` returns the
    same coefficients, tables and sampling. The file is written beside ``path``
    first and renamed, so an interrupted write never leaves half a file.

    >>> write_jpeg("out.jpg", encode_jpeg(pixels, quality=90))   # doctest: +SKIP
    """
    if not isinstance(image, JpegImage):
        raise TypeError(f"write_jpeg expects a JpegImage (from read_jpeg or encode_jpeg), found {type(image).__name__}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".jpg.tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        image._write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def encode_jpeg(pixels, quality: int | None = None, qtables=None, subsampling: str = "4:2:0") -> JpegImage:
    """JPEG-compress ``pixels`` into a :class:`JpegImage` (write it with :func:`write_jpeg`).

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
