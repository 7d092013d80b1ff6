"""A JPEG file's marker segments, walked once for every reader (docs/design.md §5).

:func:`walk` runs the Numba walk (``dctnet.kernels.huffman.walk_markers``) over
one file: each marker segment from SOI to EOI, where each scan's entropy-coded
data ends, and why the walk stopped. The libjpeg path reads the frame header and
Adobe's colour transform flag from it, the Numba decoder parses its segments into
a decoding plan, and :func:`walk_many` does the walk for a whole batch in one call.

>>> import numpy as np, dctnet
>>> m = walk(dctnet.encode_jpeg(np.zeros((3, 16, 16), np.uint8)).to_bytes())
>>> m.complete, m.frame()                       # (SOF marker, precision, height, width, components)
(True, (192, 8, 16, 16, 3))
>>> [hex(marker) for marker, *_ in m.segments][-1]
'0xda'
"""

from __future__ import annotations

import numpy as np

from ..kernels import huffman as kernels

__all__ = ["MAX_PIXELS", "UNSUPPORTED_FRAMES", "Markers", "walk", "walk_many", "coded_blocks", "too_short"]

MAX_PIXELS = 1 << 28  # refuse absurd declared sizes before anything is allocated for them

# frame (SOF) markers of JPEG processes dctnet does not read, named for the error message
UNSUPPORTED_FRAMES = {
    0xC3: "lossless", 0xC5: "hierarchical (differential sequential)",
    0xC6: "hierarchical (differential progressive)", 0xC7: "hierarchical (differential lossless)",
    0xC8: "JPG extension", 0xC9: "arithmetic coding", 0xCA: "arithmetic coding (progressive)",
    0xCB: "arithmetic coding (lossless)", 0xCD: "arithmetic coding (hierarchical)",
    0xCE: "arithmetic coding (hierarchical progressive)", 0xCF: "arithmetic coding (hierarchical lossless)"}

_ROWS = 32  # segment rows tried first; a file with more is walked again with room for all


def _is_frame(marker: int) -> bool:
    return 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)  # SOFn; C4 DHT, CC DAC; C8 reserved


class Markers:
    """The marker walk of one file.

    - ``segments``: ``[marker, start, end, data_end]`` per marker segment in file
      order: its payload ``data[start:end]`` (after the length field) and, for SOS,
      the end of the entropy-coded data that follows (``data[end:data_end]``);
    - ``status``: why the walk stopped (``kernels.huffman.WALK_*``), ``where`` the
      offset concerned; ``complete`` when it reached EOI and :meth:`fault` is None.
    """

    __slots__ = ("data", "segments", "status", "where", "first_scan")

    def __init__(self, data: bytes, segments: list, status: int, where: int, first_scan: int):
        self.data, self.segments, self.status, self.where = data, segments, status, where
        self.first_scan = first_scan  # index of the first SOS in segments, -1: none

    @property
    def complete(self) -> bool:
        return self.status == kernels.WALK_EOI

    @property
    def has_soi(self) -> bool:
        """False for empty data and data not starting with the SOI marker: no JPEG file at all."""
        return self.status not in (kernels.WALK_EMPTY, kernels.WALK_NO_SOI)

    def fault(self) -> str | None:
        """What stopped the walk before EOI, as an error message without the file name; None when complete."""
        data, where, status = self.data, self.where, self.status
        if status == kernels.WALK_EOI:
            return None
        if status == kernels.WALK_EMPTY:
            return "empty file, expected JPEG data"
        if status == kernels.WALK_NO_SOI:
            return f"not a JPEG file (expected the SOI marker FF D8, found {data[:2].hex(' ').upper() or 'nothing'})"
        if status == kernels.WALK_NOT_MARKER:
            return f"found byte {data[where]:02X} at offset {where} where a marker was expected (corrupt file)"
        if status == kernels.WALK_STRAY_00:
            return f"stray byte pair FF 00 at offset {where} where a marker was expected (corrupt file)"
        if status == kernels.WALK_BAD_LENGTH:
            length = int.from_bytes(data[where + 2:where + 4], "big")
            return (f"marker FF {data[where + 1]:02X} at offset {where} has a bad length {length} "
                    "(truncated or corrupt file)")
        return {kernels.WALK_NO_EOI: "the file ends before its EOI marker (truncated file)",
                kernels.WALK_SECOND_SOI: "a second SOI marker (corrupt file)",
                kernels.WALK_CUT_LENGTH: "the file ends inside a marker segment (truncated file)",
                kernels.WALK_CUT_SCAN: "the file ends inside the entropy-coded data (truncated file)",
                }.get(status, f"marker walk status {status}")

    def header(self) -> list:
        """The segments before the first scan (all of them when there is none)."""
        return self.segments if self.first_scan < 0 else self.segments[:self.first_scan]

    def frame(self):
        """``(sof_marker, precision, height, width, components)`` of the first frame header, or None.

        Read before any decoding, so that unsupported kinds of JPEG get an error naming
        the feature and absurd sizes are refused before any allocation. A frame header
        cut short by the end of the file is read when its first six bytes are there.
        """
        data = self.data
        for marker, start, end, _ in self.header():
            if _is_frame(marker):
                return _frame(data, marker, start) if end - start >= 6 else None
        if self.status == kernels.WALK_BAD_LENGTH and self.first_scan < 0 and _is_frame(data[self.where + 1]):
            start = self.where + 4
            length = int.from_bytes(data[self.where + 2:start], "big")
            if length >= 8 and start + 6 <= len(data):
                return _frame(data, data[self.where + 1], start)
        return None

    def shortfall(self) -> str | None:
        """Why the file is far too short for the size its frame header declares (see :func:`too_short`), or None.

        Counted: the blocks of the components that a scan codes from the start
        (sequential, or a progressive DC-first scan), all components when no scan is
        there; the bytes after the first scan header as the most the data can hold.
        """
        data = self.data
        frame = next(((start, end) for marker, start, end, _ in self.header() if _is_frame(marker)), None)
        if frame is None or frame[1] - frame[0] < 6:
            return None
        start, end = frame
        height, width, ncomp = _u16(data, start + 1), _u16(data, start + 3), data[start + 5]
        comps = {data[at]: (data[at + 1] & 15, data[at + 1] >> 4)
                 for at in range(start + 6, min(end, start + 6 + 3 * ncomp) - 2, 3)}
        if self.first_scan < 0:
            coded, present = set(comps), 0
        else:
            coded, present = set(), len(data) - self.segments[self.first_scan][1]
            for marker, s, e, _ in self.segments[self.first_scan:]:
                ns = data[s] if marker == 0xDA and e > s else 0
                spectral = s + 1 + 2 * ns  # Ss, Se, Ah/Al after the component list
                if marker == 0xDA and e - s >= 4 + 2 * ns and data[spectral] == 0 and data[spectral + 2] >> 4 == 0:
                    coded.update(data[s + 1 + 2 * k] for k in range(ns))  # Ss = 0, Ah = 0: each block coded
        sampling = [comps[c] for c in coded if c in comps]
        if not sampling or min(min(f) for f in comps.values()) < 1:  # a malformed frame: the decoders name it
            return None
        hmax, vmax = max(h for _, h in comps.values()), max(v for v, _ in comps.values())
        return too_short(height, width, sampling, vmax, hmax, present)

    def adobe_transform(self):
        """The colour transform flag of the last Adobe APP14 segment before the first scan, or None (as libjpeg reads it)."""
        found = None
        for marker, start, end, _ in self.header():
            if marker == 0xEE and end - start >= 12 and self.data[start:start + 5] == b"Adobe":
                found = self.data[start + 11]
        return found


def coded_blocks(height: int, width: int, sampling, vmax: int, hmax: int) -> int:
    """The 8x8 blocks of the components of ``sampling`` ``(v, h)`` each (of a frame's largest ``vmax``, ``hmax``), without MCU padding.

    >>> coded_blocks(16, 16, [(2, 2), (1, 1), (1, 1)], 2, 2)
    6
    """
    return sum(_ceil(_ceil(height * v, vmax), 8) * _ceil(_ceil(width * h, hmax), 8) for v, h in sampling)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def too_short(height: int, width: int, sampling, vmax: int, hmax: int, present: int) -> str | None:
    """The error message (without the file name) when ``present`` bytes cannot code such a picture, else None.

    Every block of a component coded from the start takes at least one bit (its DC
    Huffman code), so a file with fewer bits than blocks is truncated or its header
    lies; refusing it before decoding keeps a 6 KB file that claims 16384x16384
    pixels from costing gigabytes (docs/design.md §5).

    >>> too_short(16384, 16384, [(1, 1)], 1, 1, 5700)
    'declares 16384x16384 pixels (4194304 blocks, at least 524288 bytes of entropy-coded data) but holds 5700 bytes of scan data: far too short (truncated file, or a wrong size in its header)'
    """
    blocks = coded_blocks(height, width, sampling, vmax, hmax)
    if 8 * present >= blocks:
        return None
    return (f"declares {width}x{height} pixels ({blocks} blocks, at least {_ceil(blocks, 8)} bytes of entropy-coded "
            f"data) but holds {present} bytes of scan data: far too short (truncated file, or a wrong size in its header)")


def _u16(data, pos):
    return int.from_bytes(data[pos:pos + 2], "big")


def _frame(data, marker, start):
    seg = data[start:start + 6]
    return marker, seg[0], int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]


def walk(data: bytes) -> Markers:
    """The :class:`Markers` of one file's bytes.

    >>> walk(b"\\xff\\xd8\\xff\\xd9").complete, walk(b"\\xff\\xd8").fault()
    (True, 'the file ends before its EOI marker (truncated file)')
    """
    array = np.frombuffer(data, np.uint8)
    result = np.empty(kernels.W_COLS, np.int64)
    rows = np.empty((_ROWS, kernels.R_COLS), np.int64)
    kernels.walk_markers(array, 0, len(array), rows, result)
    n = int(result[kernels.W_SEGMENTS])
    if n > _ROWS:
        rows = np.empty((n, kernels.R_COLS), np.int64)
        kernels.walk_markers(array, 0, len(array), rows, result)
    return Markers(data, rows[:n].tolist(), int(result[kernels.W_STATUS]), int(result[kernels.W_WHERE]),
                   int(result[kernels.W_SOS]))


def walk_many(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The walk of every file ``data[offsets[f]:offsets[f + 1]]`` (uint8, int64), without segments.

    Returns ``(files, kernels.huffman.W_COLS)`` int64: per file the status, where,
    number of segments, the index of its first SOS and that scan's data [start, end).
    """
    results = np.empty((len(offsets) - 1, kernels.W_COLS), np.int64)
    kernels.walk_many(data, offsets, results)
    return results
