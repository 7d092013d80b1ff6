"""JPEG files in and out: :func:`read_jpeg`, :func:`read_jpegs`, :func:`read_stacked`, :func:`write_jpeg`.

Which decoder reads what (docs/design.md §5): sequential Huffman files go to
dctnet's Numba decoder (:mod:`dctnet.jpeg.huffman`, bit-identical to libjpeg and
many files per call), progressive files and anything it refuses to libjpeg
(:mod:`dctnet.jpeg.libjpeg`), which reads what it reads cleanly or names the
fault. Each file's marker segments are walked once (:mod:`dctnet.jpeg.markers`):
unsupported kinds of JPEG and absurd sizes are refused before any decoding.

>>> import numpy as np, dctnet
>>> data = dctnet.encode_jpeg(np.zeros((3, 32, 32), np.uint8)).to_bytes()
>>> read_jpeg(data)
JpegImage(32x32 ycbcr, sampling 22x11x11, baseline)
>>> coefs, qt = read_stacked([data, data])
>>> [c.shape for c in coefs], qt.shape
([(2, 4, 4, 64), (2, 2, 2, 64), (2, 2, 2, 64)], (2, 3, 64))
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..backend import to_device
from . import huffman, libjpeg
from .errors import JpegError
from .markers import MAX_PIXELS, UNSUPPORTED_FRAMES, Markers, walk
from .picture import JpegImage, block_grids

__all__ = ["read_jpeg", "read_jpegs", "read_stacked", "write_jpeg", "DECODERS"]

DECODERS = ("auto", "numba", "libjpeg")


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


def _check_frame(markers: Markers, name: str, max_pixels):
    """Refuse, before any decoding, what the frame header says dctnet cannot read; malformed headers
    are left to the decoders' own checks."""
    frame = markers.frame()
    if frame is None:
        return
    marker, precision, height, width, ncomp = frame
    if marker in UNSUPPORTED_FRAMES:
        raise JpegError(f"{name}: {UNSUPPORTED_FRAMES[marker]} JPEG is not supported; "
                        "re-encode it as baseline or progressive Huffman JPEG")
    if precision != 8:
        raise JpegError(f"{name}: {precision}-bit samples are not supported, only 8-bit JPEG")
    if ncomp not in (1, 3, 4):
        raise JpegError(f"{name}: {ncomp}-component JPEG is not supported; dctnet reads grey, three-component "
                        "(YCbCr/RGB) and four-component (CMYK/YCCK) files")
    if max_pixels is not None and height * width > max_pixels:
        raise JpegError(f"{name}: declares {width}x{height} pixels, more than max_pixels={max_pixels}; "
                        "pass a larger max_pixels if the file is trusted")


def read_jpeg(source, *, strict: bool = True, max_pixels: int | None = MAX_PIXELS, decoder: str = "auto") -> JpegImage:
    """Entropy-decode a JPEG file into its quantized coefficients (no inverse DCT).

    ``source`` is a path, bytes, or a binary file object. Baseline and progressive
    Huffman-coded 8-bit files, grey, three-component (YCbCr, or RGB without
    colour transform) or four-component (CMYK, or YCCK by Adobe's transform flag;
    their coefficients only: no ``to_dct``), any sampling and size. Raises
    :class:`~dctnet.JpegError` naming the file for anything else (truncated,
    corrupt, not a JPEG, 12-bit, arithmetic-coded, lossless, hierarchical, larger
    than ``max_pixels``). With ``strict=False`` data libjpeg can recover from (e.g.
    a truncated last scan, decoded as zeros) gives a :class:`~dctnet.JpegWarning`
    instead of an error.

    ``decoder``: "auto" reads sequential (baseline) files with dctnet's Numba
    decoder (:mod:`dctnet.jpeg.huffman`, bit-identical) and the rest, or anything
    it refuses, with libjpeg (jpeglib); "numba" uses only the former (progressive
    files raise), "libjpeg" only the latter.

    >>> img = read_jpeg("photo.jpg")                       # doctest: +SKIP
    >>> img.coefficients[0].shape, img.qtables[0][:3]      # doctest: +SKIP
    ((19, 29, 64), array([ 8,  6,  6], dtype=int32))
    """
    data, name, path = _source(source)
    markers = walk(data)
    if not markers.has_soi:
        raise JpegError(f"{name}: {markers.fault()}")  # empty, or not a JPEG file
    _check_frame(markers, name, max_pixels)
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, found {decoder!r}")
    refused = None
    if decoder != "libjpeg":
        try:
            image = huffman.read(data, name, max_pixels, markers=markers)
        except JpegError as exc:
            refused = exc
            if decoder == "numba" and strict:
                raise
            image = None  # libjpeg decides: it reads what this strict reader refuses, or names the fault
            if decoder == "numba":  # strict=False: the Numba reader's lenient mode, or its error
                return huffman.read(data, name, max_pixels, strict=False, markers=markers, stacklevel=3)
        if image is not None:
            return image
        if decoder == "numba":
            raise JpegError(f"{name}: progressive JPEG: the Numba decoder reads baseline files only; use decoder='auto'")
    try:
        fields = libjpeg.read(data, name, strict, markers, path)
        try:
            return JpegImage(**fields)
        except ValueError as exc:  # libjpeg accepted something inconsistent
            raise JpegError(f"{name}: {exc}") from exc
    except JpegError as exc:
        # strict=False: libjpeg's recovery is the reference, so it goes first; what it cannot read at
        # all (e.g. a Motion-JPEG frame without Huffman tables, which libjpeg 6b refuses) the Numba
        # reader's lenient mode may still read (it warns); else libjpeg's error stands
        if decoder != "auto" or (strict and refused is None):
            raise
        try:
            with warnings.catch_warnings(record=strict):
                image = huffman.read(data, name, max_pixels, strict=False, markers=markers, stacklevel=3)
        except JpegError:
            image = None
        if image is None:
            raise exc
        if strict:  # the Numba reader's fault names what strict=False would skip
            raise JpegError(f"{refused}; read_jpeg(..., strict=False) skips it as libjpeg does") from exc
        return image


def _load(sources):
    """``(bytes, names, what to hand read_jpeg)``, lists over the sources."""
    blobs, names, srcs = [], [], []
    for source in sources:
        if type(source) is bytes:  # the common case, without _source's dispatch
            blobs.append(source)
            names.append("<bytes>")
            srcs.append(source)
            continue
        data, name, path = _source(source)
        blobs.append(data)
        names.append(name)
        srcs.append(path if path is not None else data)
    return blobs, names, srcs


def read_jpegs(sources, threads=None, max_pixels=MAX_PIXELS) -> list:
    """Read many JPEG files (paths or bytes) into :class:`~dctnet.JpegImage` objects, in order.

    Sequential files are decoded together in one parallel Numba kernel call on
    ``threads`` threads (None: Numba's default); the rest (progressive files, and
    any file the kernel refuses) go through :func:`read_jpeg`, which reads what
    libjpeg reads cleanly and raises :class:`~dctnet.JpegError` naming the file
    otherwise. The images of one call share one coefficient buffer (their arrays
    are views).

    >>> images = read_jpegs(["a.jpg", "b.jpg"], threads=4)          # doctest: +SKIP
    """
    huffman.check_threads(threads)  # before any work
    blobs, names, srcs = _load(sources)
    images = huffman.Batch(blobs, names, max_pixels).images(threads)
    return [img if img is not None else read_jpeg(src, max_pixels=max_pixels) for img, src in zip(images, srcs)]


def read_stacked(sources, threads=None, max_pixels=MAX_PIXELS, device=None):
    """Files of one geometry as stacked arrays: ``(coefficients, qtables)``.

    ``coefficients``: per component ``(N, BH_c, BW_c, 64)`` int16 (zigzag);
    ``qtables``: ``(N, n_components, 64)`` int32. All files must share size,
    sampling and colour space (a ``ValueError`` names the first that differs).
    Decoded as :func:`read_jpegs` decodes them.

    ``device``: None or ``"cpu"`` for NumPy arrays, ``"gpu"`` for CuPy arrays. The
    component stacks are slices of one contiguous buffer, so the coefficients go
    to the GPU in one host-to-device copy (and the tables in another); without a
    working CuPy ``"gpu"`` raises :func:`dctnet.to_device`'s error before any decoding.

    >>> coefs, qt = read_stacked(paths)                           # doctest: +SKIP
    >>> coefs[0].shape, qt.shape                                  # doctest: +SKIP
    ((1000, 4, 4, 64), (1000, 3, 64))
    """
    huffman.check_threads(threads)
    # a bad device name, or no GPU: the backend's error before any work
    gpu = device is not None and not isinstance(to_device(np.zeros(0, np.int16), device), np.ndarray)
    blobs, names, srcs = _load(sources)
    if not blobs:
        raise ValueError("read_stacked needs at least one file")
    batch = huffman.Batch(blobs, names, max_pixels)
    others = {int(i): read_jpeg(srcs[i], max_pixels=max_pixels) for i in np.flatnonzero(~batch.taken)}
    kinds = batch.geometries() | {(img.height, img.width, img.sampling, img.color_space) for img in others.values()}
    if len(kinds) > 1:  # name the first file that differs from the first
        geometry = [batch.geometry(i) if batch.taken[i] else
                    (others[i].height, others[i].width, others[i].sampling, others[i].color_space)
                    for i in range(len(blobs))]
        for i, g in enumerate(geometry):
            if g != geometry[0]:
                raise ValueError(f"read_stacked needs files of one geometry: {names[0]} is {geometry[0]}, "
                                 f"{names[i]} is {g} (size, sampling, colour space); use read_jpegs")
    height, width, sampling, _ = kinds.pop()
    n = len(blobs)
    grid = block_grids(height, width, sampling)
    buffer, qtables, decoded = batch.stacked(grid, threads)
    for i in np.flatnonzero(batch.taken & ~decoded):  # what the kernel refuses, libjpeg reads or names
        others[int(i)] = read_jpeg(srcs[i], max_pixels=max_pixels)
    coefficients = huffman.stack_views(buffer, n, grid)
    for i, img in others.items():
        for c, coef in enumerate(img.coefficients):
            coefficients[c][i] = coef
        qtables[i] = np.stack(img.qtables)
    bad = np.flatnonzero(qtables.min(axis=(1, 2)) < 1)
    if len(bad):  # JpegImage's check, for the files not made into one: a zero step cannot be dequantized
        raise JpegError(f"{names[bad[0]]}: a quantization table holds a zero")
    if gpu:  # one host-to-device copy of every coefficient, sliced into the stacks on the device
        buffer = to_device(np.ascontiguousarray(buffer), device)
        return huffman.stack_views(buffer, n, grid), to_device(qtables, device)
    return coefficients, qtables


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
        libjpeg.write(tmp, image)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
