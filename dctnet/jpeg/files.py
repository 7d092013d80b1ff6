"""JPEG files in and out: :func:`read_jpeg`, :func:`read_jpegs`, :func:`read_stacked`, :func:`read_header`, :func:`write_jpeg`.

Which decoder reads what (docs/design.md §5): sequential Huffman files go to
dctnet's Numba decoder (:mod:`dctnet.jpeg.huffman`, bit-identical to libjpeg and
many files per call), progressive files and anything it refuses to libjpeg
(:mod:`dctnet.jpeg.libjpeg`), which reads what it reads cleanly or names the
fault. Each file's marker segments are walked once (:mod:`dctnet.jpeg.markers`):
unsupported kinds of JPEG, absurd sizes and files far too short for their
declared size are refused before any decoding.

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
from typing import NamedTuple

import numpy as np

from ..backend import to_device
from . import huffman, libjpeg
from .errors import JpegError
from .markers import MAX_PIXELS, UNSUPPORTED_FRAMES, Markers, walk
from .picture import JpegImage, block_grids

__all__ = ["read_jpeg", "read_jpegs", "read_stacked", "read_header", "JpegHeader", "write_jpeg", "DECODERS", "ERRORS"]

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
    short = markers.shortfall()
    if short:  # strict or not: decoding it would allocate the declared size for zeros
        raise JpegError(f"{name}: {short}")


def read_jpeg(source, *, strict: bool = True, max_pixels: int | None = MAX_PIXELS, decoder: str = "auto") -> JpegImage:
    """Entropy-decode a JPEG file into its quantized coefficients (no inverse DCT).

    ``source`` is a path, bytes, or a binary file object. Baseline and progressive
    Huffman-coded 8-bit files, grey, three-component (YCbCr, or RGB without
    colour transform) or four-component (CMYK, or YCCK by Adobe's transform flag;
    their coefficients only: no ``to_dct``), any sampling and size. Raises
    :class:`~dctnet.JpegError` naming the file for anything else (truncated,
    corrupt, not a JPEG, 12-bit, arithmetic-coded, lossless, hierarchical, larger
    than ``max_pixels``, or far too short for the size it declares: less than one
    bit of scan data per block, refused before any decoding, strict or not). With ``strict=False`` data libjpeg can recover from (e.g.
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
    return _read(*_source(source), strict=strict, max_pixels=max_pixels, decoder=decoder)


def _read(data: bytes, name: str, path, strict=True, max_pixels=MAX_PIXELS, decoder="auto") -> JpegImage:
    """:func:`read_jpeg` of a file's bytes, under the ``name`` its errors give it."""
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


class JpegHeader(NamedTuple):
    """What a file's headers say: its size, chroma sampling (per component) and colour space."""

    height: int
    width: int
    sampling: tuple
    color_space: str


def read_header(source, max_pixels: int | None = MAX_PIXELS) -> JpegHeader:
    """A JPEG file's size, sampling and colour space from its headers, as :func:`read_jpeg` reads them.

    A sequential file's scan is not decoded (nor checked: :func:`read_stacked` or
    :func:`read_jpeg` still name a corrupt one); any other file (progressive, or one
    the Numba decoder's parser refuses) is read whole by :func:`read_jpeg`'s path,
    whose :class:`~dctnet.JpegError` this raises. A third of the cost of reading a
    CIFAR-10 file (86 against 279 us).

    >>> import numpy as np, dctnet
    >>> dctnet.read_header(dctnet.encode_jpeg(np.zeros((3, 16, 8), np.uint8)).to_bytes())
    JpegHeader(height=16, width=8, sampling=((2, 2), (1, 1), (1, 1)), color_space='ycbcr')
    """
    data, name, path = _source(source)
    batch = huffman.Batch([data], [name], max_pixels)
    if batch.taken[0]:
        return JpegHeader(*batch.geometry(0))
    return _header(_read(data, name, path, max_pixels=max_pixels))


def _header(image: JpegImage) -> JpegHeader:
    return JpegHeader(image.height, image.width, image.sampling, image.color_space)


ERRORS = ("raise", "collect")


def _load(sources, caller: str, errors: str):
    """``(bytes, names, paths)``, lists over the sources; bytes and unnamed file objects named by their index."""
    if isinstance(sources, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(sources, "read"):
        raise TypeError(f"{caller} expects a list of sources (paths, bytes or file objects), found one "
                        f"{type(sources).__name__}; pass a list, e.g. {caller}([source]), or use read_jpeg")
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, found {errors!r}")
    blobs, names, paths = [], [], []
    for i, source in enumerate(sources):
        if type(source) is bytes:  # the common case, without _source's dispatch
            data, name, path = source, "<bytes>", None
        else:
            data, name, path = _source(source)
        if name in ("<bytes>", "<file>"):  # which one of the list: "<bytes #17>"
            name = f"{name[:-1]} #{i}>"
        blobs.append(data)
        names.append(name)
        paths.append(path)
    return blobs, names, paths


def _reader(blobs, names, paths, max_pixels, failed):
    """``read(i)``: file i through :func:`read_jpeg`'s path, its JpegError raised, or (``failed`` a list)
    recorded there as ``(i, error)`` with None returned."""
    def read(i):
        try:
            return _read(blobs[i], names[i], paths[i], max_pixels=max_pixels)
        except JpegError as exc:
            if failed is None:
                raise
            failed.append((i, exc))
            return None
    return read


def _none_read(failed) -> JpegError:
    first = min(failed, key=lambda f: f[0])[1]
    return JpegError(f"read_stacked: none of the {len(failed)} files could be read; the first: {first}")


def read_jpegs(sources, threads=None, max_pixels=MAX_PIXELS, errors="raise"):
    """Read many JPEG files (a list of paths, bytes or file objects) into :class:`~dctnet.JpegImage` objects, in order.

    Sequential files are decoded together in one parallel Numba kernel call on
    ``threads`` threads (None: Numba's default); the rest (progressive files, and
    any file the kernel refuses) go through :func:`read_jpeg`, which reads what
    libjpeg reads cleanly. The images of one call share one coefficient buffer
    (their arrays are views). A file that is not a JPEG dctnet reads raises
    :class:`~dctnet.JpegError` naming it (bytes and unnamed file objects by their
    index in ``sources``: ``<bytes #17>``).

    ``errors="collect"`` returns ``(images, failed)`` instead: ``images`` has one
    entry per source, None where the file failed, and ``failed`` lists
    ``(index, JpegError)`` for those files, in order. Other errors (a missing
    file, a source of the wrong type) still raise.

    >>> images = read_jpegs(["a.jpg", "b.jpg"], threads=4)                 # doctest: +SKIP
    >>> images, failed = read_jpegs(blobs, errors="collect")               # doctest: +SKIP
    >>> failed                                                             # doctest: +SKIP
    [(17, JpegError('<bytes #17>: the file ends before its EOI marker (truncated file)'))]
    """
    huffman.check_threads(threads)  # before any work
    blobs, names, paths = _load(sources, "read_jpegs", errors)
    failed = [] if errors == "collect" else None
    batch = huffman.Batch(blobs, names, max_pixels)
    try:
        images = batch.images(threads)
    except JpegError:  # a file of a zero quantization step: each file alone, so the others are kept
        if failed is None:
            raise
        images = [None] * len(blobs)
    read = _reader(blobs, names, paths, max_pixels, failed)
    images = [img if img is not None else read(i) for i, img in enumerate(images)]
    return images if failed is None else (images, sorted(failed, key=lambda f: f[0]))


def read_stacked(sources, threads=None, max_pixels=MAX_PIXELS, device=None, errors="raise", return_header=False):
    """Files of one geometry as stacked arrays: ``(coefficients, qtables)``.

    ``coefficients``: per component ``(N, BH_c, BW_c, 64)`` int16 (zigzag);
    ``qtables``: ``(N, n_components, 64)`` int32. All files must share size,
    sampling and colour space (a ``ValueError`` names the first that differs).
    Decoded, and failures named, as :func:`read_jpegs` does.

    ``device``: None or ``"cpu"`` for NumPy arrays, ``"gpu"`` for CuPy arrays. The
    component stacks are slices of one contiguous buffer, so the coefficients go
    to the GPU in one host-to-device copy (and the tables in another); without a
    working CuPy ``"gpu"`` raises :func:`dctnet.to_device`'s error before any decoding.

    ``return_header=True`` adds their :class:`JpegHeader` (what :func:`read_header`
    gives for each of them) as a third item, taken from the parse that the
    reading does anyway.

    ``errors="collect"`` stacks only the files that read and returns
    ``((coefficients, qtables), indices, failed)``: ``indices`` (int64) the
    position in ``sources`` of each stacked row, ``failed`` the ``(index,
    JpegError)`` of the others. When none reads, the first file's error is raised.

    >>> coefs, qt = read_stacked(paths)                           # doctest: +SKIP
    >>> coefs[0].shape, qt.shape                                  # doctest: +SKIP
    ((1000, 4, 4, 64), (1000, 3, 64))
    >>> (coefs, qt), indices, failed = read_stacked(paths, errors="collect")   # doctest: +SKIP
    >>> len(indices), [i for i, _ in failed]                      # doctest: +SKIP
    (998, [17, 512])
    """
    huffman.check_threads(threads)
    blobs, names, paths = _load(sources, "read_stacked", errors)
    # a bad device name, or no GPU: the backend's error before any work
    gpu = device is not None and not isinstance(to_device(np.zeros(0, np.int16), device), np.ndarray)
    if not blobs:
        raise ValueError("read_stacked needs at least one file")
    failed = [] if errors == "collect" else None
    read = _reader(blobs, names, paths, max_pixels, failed)
    batch = huffman.Batch(blobs, names, max_pixels)
    others = {int(i): read(int(i)) for i in np.flatnonzero(~batch.taken)}
    others = {i: img for i, img in others.items() if img is not None}
    ok = np.flatnonzero(batch.taken).tolist() + sorted(others)
    if not ok:
        raise _none_read(failed)
    geometry = {i: batch.geometry(i) if batch.taken[i] else tuple(_header(others[i])) for i in ok}
    first = min(ok)
    for i in sorted(ok):  # name the first file that differs from the first
        if geometry[i] != geometry[first]:
            raise ValueError(f"read_stacked needs files of one geometry: {names[first]} is {geometry[first]}, "
                             f"{names[i]} is {geometry[i]} (size, sampling, colour space); use read_jpegs")
    height, width, sampling, _ = geometry[first]
    n = len(blobs)
    grid = block_grids(height, width, sampling)
    buffer, qtables, decoded = batch.stacked(grid, threads)
    for i in np.flatnonzero(batch.taken & ~decoded).tolist():  # what the kernel refuses, libjpeg reads or names
        img = read(i)
        if img is not None:
            others[i] = img
    coefficients = huffman.stack_views(buffer, n, grid)
    for i, img in others.items():
        for c, coef in enumerate(img.coefficients):
            coefficients[c][i] = coef
        qtables[i] = np.stack(img.qtables)
    good = np.zeros(n, bool)
    good[np.flatnonzero(batch.taken & decoded)] = True
    good[list(others)] = True
    for i in np.flatnonzero(good & (qtables.min(axis=(1, 2)) < 1)).tolist():
        # JpegImage's check, for the files not made into one: a zero step cannot be dequantized
        error = JpegError(f"{names[i]}: a quantization table holds a zero")
        if failed is None:
            raise error
        failed.append((i, error))
        good[i] = False
    indices = np.flatnonzero(good)
    if not len(indices):
        raise _none_read(failed)
    if len(indices) < n:  # collect: the good files' blocks, in the same component-major layout
        buffer = np.concatenate([c[indices].reshape(-1, 64) for c in coefficients])
        qtables = qtables[indices]
        coefficients = huffman.stack_views(buffer, len(indices), grid)
    if gpu:  # one host-to-device copy of every coefficient, sliced into the stacks on the device
        buffer = to_device(np.ascontiguousarray(buffer), device)
        coefficients, qtables = huffman.stack_views(buffer, len(indices), grid), to_device(qtables, device)
    result = (coefficients, qtables, JpegHeader(*geometry[first])) if return_header else (coefficients, qtables)
    if failed is None:
        return result
    return result, indices, sorted(failed, key=lambda f: f[0])


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
        try:
            libjpeg.write(tmp, image)
        except JpegError as exc:  # it names the temporary file; the user knows theirs
            raise JpegError(f"{path}: {str(exc).removeprefix(f'{tmp}: ')}") from exc
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
