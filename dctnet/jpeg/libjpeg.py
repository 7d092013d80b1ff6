"""JPEG files through libjpeg (jpeglib): coefficients read with libjpeg's warnings caught, baseline files written.

The reference reader: :func:`dctnet.read_jpeg` uses it for what the Numba
decoder does not read (progressive files, and whatever it refuses), and with
``decoder="libjpeg"``. It works on the fields of :class:`dctnet.JpegImage`
(this module sits below it: ``JpegImage.to_bytes`` writes through :func:`write`).
See docs/design.md §5.

>>> import numpy as np, dctnet
>>> data = to_bytes(dctnet.encode_jpeg(np.zeros((1, 8, 8), np.uint8)))
>>> fields = read(data, "<bytes>", strict=True, markers=walk(data))
>>> fields["color_space"], fields["coefficients"][0].shape
('gray', (1, 1, 64))
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from ..transform import ZIGZAG
from .errors import JpegError, JpegWarning
from .markers import Markers, walk

__all__ = ["read", "write", "to_bytes"]

_NATURAL = np.argsort(ZIGZAG)  # zigzag position of each natural index
# jpeglib's colour space -> (dctnet's, components); libjpeg 6b tells CMYK from YCCK by Adobe's flag (see read)
_SPACES = {"JCS_GRAYSCALE": ("gray", 1), "JCS_YCbCr": ("ycbcr", 3), "JCS_RGB": ("rgb", 3),
           "JCS_CMYK": ("cmyk", 4), "JCS_YCCK": ("cmyk", 4)}
_STDERR_LOCK = threading.Lock()
_PATTERNS = None  # _message_patterns(), made on first use (it loads libjpeg)


def _message_patterns() -> re.Pattern:
    """A pattern matching each line libjpeg (and jpeglib's C wrapper) can print.

    libjpeg has no per-call message channel in jpeglib: its ``output_message``
    prints to the process's stderr. The formats come from libjpeg's own message
    table (``jpeg_std_message_table``, exported by the loaded library), so a line
    is libjpeg's only when it has the shape of one of its messages. A build that
    does not export the table gets a pattern taking every line as libjpeg's.
    """
    from jpeglib._bind import CJpegLib  # the loaded libjpeg build

    try:
        table = (ctypes.c_char_p * 1024).in_dll(CJpegLib.get(), "jpeg_std_message_table")
    except (ValueError, AttributeError, OSError):  # not exported: libjpeg's lines cannot be told apart
        return re.compile(b".*", re.S)
    formats = []
    for entry in table:
        if entry is None:  # the table ends with NULL
            break
        formats.append(entry.decode("latin-1"))
    # jpeglib's wrapper prints these itself
    formats += ["not possible to open %s", "can't open %s", "you must specify %s"]
    alternatives = []
    for fmt in formats:
        parts = re.split(r"%[-+ #0]*\d*(?:\.\d+)?[hlLqjzt]*[diouxXeEfgGcsp]", fmt.replace("%%", "\0"))
        alternatives.append(".*?".join(re.escape(part).replace("\0", "%") for part in parts))
    return re.compile(b"(?:" + "|".join(alternatives).encode("latin-1") + b")\\r?\n?")


class _LibjpegMessages:
    """Catch libjpeg's messages (its warnings, its errors' text) during one call; pass everything else on.

    libjpeg reports recoverable corruption ("Corrupt JPEG data: ...") only on file
    descriptor 2, so fd 2 goes to a temporary file for the call (one call at a
    time in the process). Of what arrives there, lines in the shape of libjpeg's
    own messages (:func:`_message_patterns`) are kept in ``text``; the rest (other
    threads' output) is written to the real stderr when the call ends, so it is
    neither taken for libjpeg's nor lost, only delayed by the call.
    """

    def __enter__(self):
        global _PATTERNS
        if _PATTERNS is None:
            _PATTERNS = _message_patterns()
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
            ours, others = [], []
            for line in self._file.read().splitlines(keepends=True):
                (ours if _PATTERNS.fullmatch(line) else others).append(line)
            self._file.close()
            if others:
                _write_all(2, b"".join(others))
            text = (line.decode("utf-8", "replace").strip() for line in ours)
            self.text = "; ".join(dict.fromkeys(line for line in text if line))
        finally:
            _STDERR_LOCK.release()
        return False


def _write_all(fd: int, data: bytes):
    while data:
        data = data[os.write(fd, data):]


def read(data: bytes, name: str, strict: bool, markers: Markers, path=None) -> dict:
    """libjpeg's reading of one file: the fields of its :class:`dctnet.JpegImage`, as a dict.

    ``data`` are the file's bytes, ``markers`` their :func:`~dctnet.jpeg.markers.walk`;
    ``path`` the file on disk when there is one (libjpeg reads from a file; without
    one the bytes go to a temporary file). Raises :class:`~dctnet.JpegError` naming
    ``name`` when libjpeg cannot read it, or (``strict``) when libjpeg warns of
    corrupt data; with ``strict=False`` the warning is a :class:`~dctnet.JpegWarning`.
    """
    if path is not None:
        return _read(str(path), name, strict, markers)
    fd, tmp = tempfile.mkstemp(suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _read(tmp, name, strict, markers)
    finally:
        os.unlink(tmp)


def _read(path: str, name: str, strict: bool, markers: Markers) -> dict:
    import jpeglib  # imported on first use: it loads libjpeg

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
        warnings.warn(f"{name}: {messages.text}", JpegWarning, stacklevel=4)  # read_jpeg's caller
    space, count = _SPACES.get(jpeg.jpeg_color_space.name, (None, 0))
    ncomp = int(jpeg.num_components)
    if space == "cmyk":  # jpeglib names both CMYK; libjpeg 6b: no Adobe marker or transform 0 CMYK, else YCCK
        space = "cmyk" if markers.adobe_transform() in (None, 0) else "ycck"
    if space is None or ncomp != count:
        raise JpegError(f"{name}: colour space {jpeg.jpeg_color_space.name} with {ncomp} components is not "
                        "supported; dctnet reads grey, YCbCr, RGB, CMYK and YCCK files")
    arrays = [jpeg.Y] + ([jpeg.Cb, jpeg.Cr] if ncomp >= 3 else []) + ([jpeg.K] if ncomp == 4 else [])
    coefficients = tuple(np.ascontiguousarray(a.reshape(*a.shape[:2], 64)[..., ZIGZAG], dtype=np.int16)
                         for a in arrays)
    qt = np.asarray(jpeg.qt).reshape(-1, 64)
    qtables = tuple(qt[int(i)][ZIGZAG].astype(np.int32) for i in np.asarray(jpeg.quant_tbl_no)[:ncomp])
    sampling = tuple(tuple(int(f) for f in s) for s in np.asarray(jpeg.samp_factor)[:ncomp])
    return dict(coefficients=coefficients, qtables=qtables, sampling=sampling, height=int(jpeg.height),
                width=int(jpeg.width), color_space=space, progressive=bool(jpeg.progressive_mode))


def write(path, image, name=None) -> None:
    """Write ``image`` (a :class:`dctnet.JpegImage`) to ``path`` as a baseline JPEG file, coefficients and tables unchanged.

    Grey, YCbCr and RGB images (RGB labelled with an Adobe marker, transform 0).
    Not atomic: :func:`dctnet.write_jpeg` writes beside the target and renames.
    When libjpeg refuses (e.g. a coefficient too large for baseline coding) a
    :class:`~dctnet.JpegError` names ``name`` (default ``path``) and libjpeg's reason.
    """
    import jpeglib
    from jpeglib.dct_jpeg import DCTJPEG

    if image.color_space in ("cmyk", "ycck"):
        raise ValueError("writing CMYK/YCCK JPEG files is not supported; dctnet writes grey, YCbCr and RGB files")
    tables, index = [], []
    for t in image.qtables:
        nat = np.asarray(t)[_NATURAL].reshape(8, 8).astype(np.uint16)
        found = [i for i, u in enumerate(tables) if np.array_equal(u, nat)]
        index.append(found[0] if found else len(tables))
        if not found:
            tables.append(nat)
    if len(tables) > 4:
        raise ValueError(f"a JPEG file holds at most 4 quantization tables, this image has {len(tables)}")
    comps = [np.ascontiguousarray(c[..., _NATURAL].reshape(*c.shape[:2], 8, 8), dtype=np.int16)
             for c in image.coefficients]
    space = {"gray": "JCS_GRAYSCALE", "ycbcr": "JCS_YCbCr", "rgb": "JCS_RGB"}[image.color_space]
    jpeg = DCTJPEG(
        path=None, content=None, height=image.height, width=image.width,
        block_dims=np.array([c.shape[:2] for c in comps], dtype=np.int32),
        samp_factor=np.array(image.sampling, dtype=np.int32),
        markers=None, huffmans=None, jpeg_color_space=jpeglib.Colorspace[space],
        progressive_mode=False, num_scans=1,
        Y=comps[0], Cb=comps[1] if len(comps) > 1 else None, Cr=comps[2] if len(comps) > 1 else None,
        K=None, qt=np.stack(tables), quant_tbl_no=np.array(index, dtype=np.int32),
    )
    messages = _LibjpegMessages()
    try:
        with messages:
            jpeg.write_dct(str(path))
    except OSError as exc:  # jpeglib's message names only the file; libjpeg's reason went to stderr
        reason = getattr(messages, "text", "") or str(exc).replace(str(path), "the file")
        raise JpegError(f"{name or path}: libjpeg cannot write it ({reason})") from exc
    if image.color_space == "rgb":
        _mark_rgb(path)


def to_bytes(image) -> bytes:
    """The bytes :func:`write` writes for ``image``."""
    fd, tmp = tempfile.mkstemp(suffix=".jpg")
    os.close(fd)
    try:
        write(tmp, image, "<bytes>")
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


def _mark_rgb(path):
    """Label libjpeg's output as RGB: JFIF APP0 out, Adobe APP14 (transform 0) in, components R, G, B.

    libjpeg writes the coefficients we give it but labels them YCbCr; decoders
    skip the colour transform for an Adobe marker with transform 0 and
    component ids 'R', 'G', 'B' (T.872), as libjpeg's own RGB files have.
    """
    data = bytearray(Path(path).read_bytes())
    segments = walk(bytes(data)).segments
    for marker, start, _, _ in segments:
        if marker == 0xC0:  # SOF0: P, Y, X, Nf, then (id, sampling, table) per component
            for c in range(3):
                data[start + 6 + 3 * c] = b"RGB"[c]
        elif marker == 0xDA:  # SOS: Ns, then (id, tables) per component; entropy data follows
            for c in range(3):
                data[start + 1 + 2 * c] = b"RGB"[c]
            break
    if segments and segments[0][0] == 0xE0:  # the JFIF segment libjpeg put first
        del data[2:segments[0][2]]
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
    Path(path).write_bytes(bytes(data[:2]) + adobe + bytes(data[2:]))
