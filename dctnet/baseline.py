"""Baseline JPEG files read by dctnet's own Numba decoder: fast, parallel, bit-identical to jpeglib.

The marker segments are parsed here in Python (tables, frame, scans, colour
space decided as libjpeg 6b decides it); the entropy-coded data is decoded by
``dctnet.kernels.huffman`` straight into int16 coefficient arrays, many files
per call. Progressive files are left to :func:`dctnet.read_jpeg` (jpeglib).
Whatever libjpeg would only warn about (truncated or corrupt data) is a
:class:`~dctnet.JpegError` here, as in ``read_jpeg(..., strict=True)``.

>>> imgs = read_jpegs(["a.jpg", "b.jpg"], threads=4)          # doctest: +SKIP
>>> coefs, qt = read_stacked(paths)                           # doctest: +SKIP
>>> coefs[0].shape, qt.shape                                  # doctest: +SKIP
((1000, 4, 4, 64), (1000, 3, 64))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numba
import numpy as np

from .backend import to_device
from .jpeg import _SOF_NAMES, MAX_PIXELS, JpegError, JpegImage, JpegWarning, _blocks, _source, read_jpeg
from .kernels import huffman as hk

__all__ = ["read_baseline", "read_jpegs", "read_stacked"]

MAX_DIMENSION = 65500  # libjpeg's JPEG_MAX_DIMENSION

# The Annex K tables (K.3), as a DHT payload: Motion-JPEG frames carry no DHT and rely on them.
_STANDARD_DHT = bytes.fromhex(
    "00" "00010501010101010100000000000000" "000102030405060708090a0b"
    "10" "0002010303020403050504040000017d"
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25"
    "262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a8384"
    "85868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5"
    "d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    "01" "00030101010101010101010000000000" "000102030405060708090a0b"
    "11" "00020102040403040705040400010277"
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718"
    "191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475767778797a82"
    "838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3"
    "d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"
)

_MESSAGES = {
    hk.PAST_END: "the entropy-coded data ends before the last block (truncated or corrupt scan)",
    hk.BAD_CODE: "a bit pattern that is no code of its Huffman table (corrupt data)",
    hk.BAD_RUN: "a run of zeros past the 64th coefficient of a block (corrupt data)",
    hk.EXTRA_DATA: "extraneous bytes after the last block of a segment (corrupt data)",
    hk.BAD_RESTART: "a missing or misnumbered restart marker (corrupt data)",
    hk.BAD_LAYOUT: "an inconsistent frame or scan layout",
}


class _Tables:
    """Huffman tables of a batch, deduplicated by content, built into the kernel's lookup arrays."""

    def __init__(self):
        self.index = {}
        self.look, self.canon, self.vals = [], [], []

    def add(self, is_dc: bool, spec: bytes, name: str, tid: int) -> int:
        """Global index of the table ``spec`` (16 counts then the symbols)."""
        key = (is_dc, spec)
        if key not in self.index:
            bits = np.zeros(17, np.int32)
            bits[1:] = np.frombuffer(spec[:16], np.uint8)
            vals = np.zeros(256, np.int32)
            vals[: len(spec) - 16] = np.frombuffer(spec[16:], np.uint8)
            look, canon = np.zeros(1 << hk.LOOKAHEAD, np.int32), np.zeros((2, 17), np.int32)
            status = hk.build_table(bits, vals, is_dc, look, canon)
            if status != hk.TABLE_OK:
                what = ("has a DC symbol over 15" if status == hk.TABLE_DC_SYMBOL
                        else "has more codes of some length than fit (bad code lengths)")
                raise JpegError(f"{name}: Huffman {'DC' if is_dc else 'AC'} table {tid} {what}")
            self.index[key] = len(self.look)
            self.look.append(look)
            self.canon.append(canon)
            self.vals.append(vals)
        return self.index[key]

    def arrays(self):
        return (np.stack(self.look), np.stack(self.canon), np.stack(self.vals))


@dataclass
class _Plan:
    """What the marker segments of one baseline file say: frame, tables, scans."""

    name: str
    data: bytes
    height: int
    width: int
    color_space: str
    sampling: list  # per component (v, h)
    qtables: list  # per component (64,) int32, zigzag, latched at its first scan
    scans: list = field(default_factory=list)  # rows of the kernel's scan table, offsets into data
    notes: list = field(default_factory=list)  # lenient parsing: what it read differently from libjpeg 6b
    grid: list = field(init=False)  # per component (BH_c, BW_c), as libjpeg sizes it

    def __post_init__(self):
        self.grid = _grid(self.height, self.width, self.sampling)

    @property
    def geometry(self):
        return self.height, self.width, tuple(self.sampling), self.color_space


def _grid(height, width, sampling):
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    return [(_blocks(height, v, vmax), _blocks(width, h, hmax)) for v, h in sampling]


def _u16(data, pos):
    return data[pos] << 8 | data[pos + 1]


def _next_marker(data: bytes, pos: int, name: str):
    """``(marker, position after it)`` of the marker at ``pos``, after any fill bytes FF."""
    n = len(data)
    if pos >= n:
        raise JpegError(f"{name}: the file ends before its EOI marker (truncated file)")
    if data[pos] != 0xFF:
        raise JpegError(f"{name}: found byte {data[pos]:02X} at offset {pos} where a marker was expected (corrupt file)")
    while pos < n and data[pos] == 0xFF:
        pos += 1
    if pos >= n:
        raise JpegError(f"{name}: the file ends before its EOI marker (truncated file)")
    if data[pos] == 0:
        raise JpegError(f"{name}: stray byte pair FF 00 at offset {pos - 1} where a marker was expected (corrupt file)")
    return data[pos], pos + 1


class _Parser:
    """Walks one file's marker segments into a :class:`_Plan` (or None for progressive files)."""

    def __init__(self, data: bytes, name: str, tables: _Tables, max_pixels, lenient: bool = False):
        self.data, self.name, self.tables, self.max_pixels = data, name, tables, max_pixels
        self.lenient = lenient  # a frame without DHT: the Annex K tables (libjpeg-turbo), else refused (6b)
        self.notes = []
        self.qt = {}  # id -> (64,) int32
        self.huff = {}  # (is_dc, id) -> global table index
        self.saw_dht = False
        self.restart = 0
        self.jfif = False
        self.adobe = None  # Adobe APP14 transform flag
        self.frame = None  # (height, width, ids, sampling, qtable ids)
        self.plan = None
        self.latched = {}

    def fail(self, what: str):
        raise JpegError(f"{self.name}: {what}")

    def run(self):
        data = self.data
        if len(data) == 0:
            self.fail("empty file, expected JPEG data")
        if data[:2] != b"\xff\xd8":
            self.fail(f"not a JPEG file (expected the SOI marker FF D8, found {data[:2].hex(' ').upper() or 'nothing'})")
        pos = 2
        while True:
            marker, pos = _next_marker(data, pos, self.name)
            if marker == 0xD9:  # EOI
                break
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn, TEM: no parameters (libjpeg skips them)
                continue
            if marker == 0xD8:
                self.fail("a second SOI marker (corrupt file)")
            if pos + 2 > len(data):
                self.fail("the file ends inside a marker segment (truncated file)")
            length = _u16(data, pos)
            if length < 2 or pos + length > len(data):
                self.fail(f"marker FF {marker:02X} at offset {pos - 2} has a bad length {length} (truncated or corrupt file)")
            seg = data[pos + 2:pos + length]
            pos += length
            if marker in (0xC0, 0xC1):
                self.sof(seg)
            elif marker == 0xC2:
                return None  # progressive: the caller reads it through jpeglib
            elif marker in _SOF_NAMES or marker == 0xC8:
                self.fail(f"{_SOF_NAMES.get(marker, 'JPG extension')} JPEG is not supported; "
                          "re-encode it as baseline or progressive Huffman JPEG")
            elif marker == 0xC4:
                self.dht(seg)
            elif marker == 0xDB:
                self.dqt(seg)
            elif marker == 0xDD:
                if len(seg) != 2:
                    self.fail(f"DRI segment of length {len(seg) + 2}, expected 4")
                self.restart = _u16(seg, 0)
            elif marker == 0xDA:
                pos = self.sos(seg, pos)
            elif marker == 0xE0:
                self.app0(seg)
            elif marker == 0xEE:
                if self.plan is None and len(seg) >= 12 and seg[:5] == b"Adobe":
                    self.adobe = seg[11]
            elif not (0xE1 <= marker <= 0xEF or marker in (0xFE, 0xCC, 0xDC)):  # APPn, COM, DAC, DNL: skipped
                self.fail(f"unknown marker FF {marker:02X} at offset {pos - length - 2} (corrupt file)")
        if self.plan is None or not self.plan.scans:
            self.fail("no image data (no frame header or no scan before EOI)")
        missing = [c for c in range(len(self.frame[2])) if c not in self.latched]
        if missing:
            self.fail(f"component {missing[0]} is in no scan (incomplete file)")
        self.plan.qtables = [self.latched[c] for c in range(len(self.frame[2]))]
        self.plan.notes = self.notes
        return self.plan

    def app0(self, seg):
        if len(seg) >= 14 and seg[:5] == b"JFIF\0":
            if seg[5] != 1:  # libjpeg warns: an incompatible JFIF version
                self.fail(f"JFIF major version {seg[5]}, expected 1")
            if self.plan is None:
                self.jfif = True

    def dqt(self, seg):
        pos = 0
        while pos < len(seg):
            precision, tid = seg[pos] >> 4, seg[pos] & 15
            if tid > 3 or precision > 1:
                self.fail(f"DQT defines table {tid} with precision code {precision}; expected table 0..3, precision 0 or 1")
            size = 128 if precision else 64
            if pos + 1 + size > len(seg):
                self.fail("DQT segment shorter than its tables (corrupt file)")
            dtype = ">u2" if precision else np.uint8
            self.qt[tid] = np.frombuffer(seg, dtype, 64, pos + 1).astype(np.int32)  # zigzag, as in the file
            pos += 1 + size

    def dht(self, seg):
        pos = 0
        self.saw_dht = True
        while pos < len(seg):
            if pos + 17 > len(seg):
                self.fail("DHT segment shorter than its tables (corrupt file)")
            cls, tid = seg[pos] >> 4, seg[pos] & 15
            count = sum(seg[pos + 1:pos + 17])
            if count > 256:
                self.fail(f"Huffman table with {count} symbols, at most 256 are possible")
            if cls > 1 or tid > 3:
                self.fail(f"DHT defines table class {cls}, id {tid}; expected class 0 or 1, id 0..3")
            if pos + 17 + count > len(seg):
                self.fail("DHT segment shorter than its tables (corrupt file)")
            self.huff[cls == 0, tid] = (seg[pos + 1:pos + 17 + count], tid)
            pos += 17 + count

    def sof(self, seg):
        if self.frame is not None:
            self.fail("a second frame header (SOF) (corrupt file)")
        if len(seg) < 6:
            self.fail("SOF segment too short (corrupt file)")
        precision, height, width, ncomp = seg[0], _u16(seg, 1), _u16(seg, 3), seg[5]
        if precision != 8:
            self.fail(f"{precision}-bit samples are not supported, only 8-bit JPEG")
        if height == 0 or width == 0 or ncomp == 0:
            self.fail(f"empty image ({width}x{height} pixels, {ncomp} components)")
        if ncomp not in (1, 3, 4):
            self.fail(f"{ncomp}-component JPEG is not supported; dctnet reads grey, three-component (YCbCr/RGB) "
                      "and four-component (CMYK/YCCK) files")
        if len(seg) != 6 + 3 * ncomp:
            self.fail(f"SOF segment of length {len(seg) + 2} for {ncomp} components (corrupt file)")
        if height > MAX_DIMENSION or width > MAX_DIMENSION:
            self.fail(f"{width}x{height} pixels, more than libjpeg's limit of {MAX_DIMENSION} per side")
        if self.max_pixels is not None and height * width > self.max_pixels:
            self.fail(f"declares {width}x{height} pixels, more than max_pixels={self.max_pixels}; "
                      "pass a larger max_pixels if the file is trusted")
        ids = [seg[6 + 3 * c] for c in range(ncomp)]
        sampling = [(seg[7 + 3 * c] & 15, seg[7 + 3 * c] >> 4) for c in range(ncomp)]
        qids = [seg[8 + 3 * c] for c in range(ncomp)]
        if len(set(ids)) != ncomp:
            self.fail(f"component ids {ids} repeat (corrupt file)")
        if not all(1 <= f <= 4 for s in sampling for f in s):
            self.fail(f"sampling factors {sampling} outside 1..4 (corrupt file)")
        self.frame = (height, width, ids, sampling, qids)

    def color_space(self):
        """libjpeg 6b's choice: JFIF, then Adobe's transform flag, then the component ids
        (four components: Adobe's flag alone, CMYK without the marker)."""
        ids = self.frame[2]
        if len(ids) == 1:
            return "gray"
        if len(ids) == 4:
            if self.adobe is None or self.adobe == 0:
                return "cmyk"
            if self.adobe != 2:  # libjpeg warns and assumes YCCK
                self.fail(f"Adobe colour transform {self.adobe} for four components, expected 0 (CMYK) or 2 (YCCK)")
            return "ycck"
        if self.jfif:
            return "ycbcr"
        if self.adobe is not None:
            if self.adobe not in (0, 1):
                self.fail(f"Adobe colour transform {self.adobe}, expected 0 (RGB) or 1 (YCbCr)")
            return "rgb" if self.adobe == 0 else "ycbcr"
        return "rgb" if ids == [82, 71, 66] else "ycbcr"

    def sos(self, seg, pos):
        """Record one scan; returns where its entropy-coded data ends."""
        if self.frame is None:
            self.fail("a scan (SOS) before the frame header (corrupt file)")
        height, width, ids, sampling, qids = self.frame
        if self.plan is None:
            self.plan = _Plan(self.name, self.data, height, width, self.color_space(), sampling, [])
        ns = seg[0] if seg else 0
        if not 1 <= ns <= 4 or len(seg) != 4 + 2 * ns:
            self.fail(f"SOS segment of length {len(seg) + 2} for {ns} components (corrupt file)")
        row = np.zeros(hk.S_COLS, np.int64)
        row[hk.S_NCOMP], row[hk.S_RESTART] = ns, self.restart
        seen = []
        for j in range(ns):
            cid, sel = seg[1 + 2 * j], seg[2 + 2 * j]
            if cid in seen:  # libjpeg 6b decodes both into the one component and leaves another
                # unscanned (all zero); libjpeg-turbo and IJG 9 refuse it: refused here too
                self.fail(f"scan names component id {cid} twice (the frame has {ids}) (corrupt file)")
            if cid not in ids:
                self.fail(f"scan names component id {cid}, the frame has {ids} (corrupt file)")
            seen.append(cid)
            c = ids.index(cid)
            row[hk.S_COMP + j] = c
            row[hk.S_DC + j] = self.table(True, sel >> 4)
            row[hk.S_AC + j] = self.table(False, sel & 15)
            if c not in self.latched:  # libjpeg latches a component's table at its first scan
                if qids[c] not in self.qt:
                    self.fail(f"component {c} uses quantization table {qids[c]}, which is not defined")
                self.latched[c] = self.qt[qids[c]]
        ss, se, a = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns]
        if (ss, se, a) != (0, 63, 0):
            self.fail(f"baseline scan with spectral selection {ss}..{se}, approximation {a:02X}; expected 0..63, 00")
        if ns > 1 and sum(sampling[c][0] * sampling[c][1] for c in row[hk.S_COMP:hk.S_COMP + ns]) > hk.MAX_BLOCKS_IN_MCU:
            self.fail(f"sampling {sampling} puts more than {hk.MAX_BLOCKS_IN_MCU} blocks in an MCU")
        end = hk.segment_end(np.frombuffer(self.data, np.uint8), pos)
        if end >= len(self.data):
            self.fail("the file ends inside the entropy-coded data (truncated file)")
        row[hk.S_START], row[hk.S_END] = pos, end
        self.plan.scans.append(row)
        return end

    def table(self, is_dc: bool, tid: int) -> int:
        kind = "DC" if is_dc else "AC"
        if (is_dc, tid) not in self.huff:
            if self.saw_dht or tid > 1:
                self.fail(f"scan uses Huffman {kind} table {tid}, which is not defined")
            if not self.lenient:  # libjpeg 6b: "Huffman table 0x00 was not defined"
                self.fail(f"scan uses Huffman {kind} table {tid}, but the file defines no Huffman tables (DHT), "
                          "as in Motion-JPEG: libjpeg 6b refuses it as corrupt (strict=False: the Annex K tables)")
            self.notes.append("no Huffman tables (DHT): decoded with the standard Annex K tables, as libjpeg-turbo does")
            self.huff.update(_standard_tables())
        spec, tid = self.huff[is_dc, tid]
        return self.tables.add(is_dc, spec, self.name, tid)


def _standard_tables():
    """The Annex K tables keyed like ``_Parser.huff``."""
    out, pos = {}, 0
    while pos < len(_STANDARD_DHT):
        cls, tid = _STANDARD_DHT[pos] >> 4, _STANDARD_DHT[pos] & 15
        count = sum(_STANDARD_DHT[pos + 1:pos + 17])
        out[cls == 0, tid] = (_STANDARD_DHT[pos + 1:pos + 17 + count], tid)
        pos += 17 + count
    return out


def _parse(data: bytes, name: str, tables: _Tables, max_pixels):
    return _Parser(data, name, tables, max_pixels).run()


def _parse_lenient(data: bytes, name: str, tables: _Tables, max_pixels):
    return _Parser(data, name, tables, max_pixels, lenient=True).run()


class _Batch:
    """The files of one call concatenated, each with its plan, and the kernel's tables for them.

    Files of the plain shape (SOI, marker segments, one scan, EOI: what
    ``walk_headers`` recognises) whose bytes up to the scan's data are identical
    share one plan, parsed once: the parser's outcome depends on nothing else, as
    the scan's own data only decides where it ends. Other files are parsed one by one.
    ``plans[i]`` is None for files the kernel does not take (progressive, refused:
    :func:`dctnet.read_jpeg` reads or names them).
    """

    def __init__(self, blobs, names, max_pixels, parse=None):
        parse = parse or _plan
        self.names = names
        self.tables = _Tables()
        n = len(blobs)
        self.offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(b) for b in blobs], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(blobs), np.uint8)
        info = np.zeros((n, 3), np.int64)
        hk.walk_headers(self.data, self.offsets, info)
        self.span = info[:, :2]  # the first scan's data [start, end) in the file
        self.unique = []  # the distinct plans (no None)
        self.shared = []  # per distinct plan: whether it is a header's plan (its files have one scan, at span)
        templates = {}  # header bytes -> plan id (-1: None)
        pid = []  # per file: its plan's index in unique, -1 for None
        last_key, last_id = None, -1
        for i, blob in enumerate(blobs):
            if info[i, 2]:
                size = int(info[i, 0])
                if last_key is not None and size == len(last_key) and blob.startswith(last_key):
                    pid.append(last_id)
                    continue
                key = blob[:size]
                if key not in templates:
                    templates[key] = self._add(parse(blob, names[i], self.tables, max_pixels), True)
                last_key, last_id = key, templates[key]
                pid.append(last_id)
            else:
                pid.append(self._add(parse(blob, names[i], self.tables, max_pixels), False))
        self.pid = np.array(pid, np.int64)

    def _add(self, plan, shared):
        if plan is None:
            return -1
        plan.sampling = tuple(tuple(s) for s in plan.sampling)
        plan.qt = np.stack(plan.qtables)
        plan.valid = bool(plan.qt.min() >= 1 and plan.qt.max() <= 65535)  # JpegImage's check, once per plan
        self.unique.append(plan)
        self.shared.append(shared)
        return len(self.unique) - 1

    def plan(self, i):
        return self.unique[self.pid[i]] if self.pid[i] >= 0 else None

    def decode(self, index, bases, nblocks: int, threads, lenient=False):
        """Run the kernel on the files ``index``; ``bases[k, c]``: first output block of file index[k]'s component c.

        Returns ``(out, {k: message})`` for the files the kernel refused; with ``lenient``
        (see ``hk.decode_scan``) also ``{k: message}`` for the files it read leniently.
        """
        offsets = self.offsets
        index = np.asarray(index, np.int64)
        m = len(index)
        table = np.zeros((max(len(self.unique), 1), hk.F_COLS), np.int64)
        for r, p in enumerate(self.unique):  # one row of file columns per distinct plan
            row = table[r]
            row[hk.F_HEIGHT], row[hk.F_WIDTH], row[hk.F_NCOMP] = p.height, p.width, len(p.sampling)
            for c, ((v, h), (bh, bw)) in enumerate(zip(p.sampling, p.grid)):
                row[hk.F_V + c], row[hk.F_H + c], row[hk.F_BH + c], row[hk.F_BW + c] = v, h, bh, bw
        kinds = self.pid[index]
        files = table[kinds]
        files[:, hk.F_BASE:hk.F_BASE + bases.shape[1]] = bases
        shared = np.array(self.shared + [False], bool)[kinds]
        # files of a header's plan: its one scan, at the span walk_headers found
        first = np.stack([p.scans[0] for p in self.unique] or [np.zeros(hk.S_COLS, np.int64)])
        scans = first[kinds[shared]]
        at = index[shared]
        scans[:, hk.S_START] = offsets[at] + self.span[at, 0]
        scans[:, hk.S_END] = offsets[at] + self.span[at, 1]
        files[shared, hk.F_SCAN0] = np.arange(len(scans))
        files[shared, hk.F_SCAN1] = np.arange(1, len(scans) + 1)
        extra = []
        for k in np.flatnonzero(~shared):  # the others: their own scans, offsets into their file
            files[k, hk.F_SCAN0] = len(scans) + len(extra)
            for s in self.unique[kinds[k]].scans:
                s = s.copy()
                s[[hk.S_START, hk.S_END]] += offsets[index[k]]
                extra.append(s)
            files[k, hk.F_SCAN1] = len(scans) + len(extra)
        if extra:
            scans = np.concatenate([scans, np.stack(extra)])
        out = np.empty((nblocks, 64), np.int16)  # the kernel writes every block of the files it decodes
        status = np.zeros(m, np.int32)
        where = np.zeros(m, np.int64)
        skipped = np.zeros((m if lenient else 0, 3), np.int64)
        if m:
            with _threads(threads):
                zeros = np.zeros(4096 if lenient else 0, np.uint8)  # see hk.decode_scan
                zeros.flags.writeable = self.data.flags.writeable  # the same Numba type as the data
                hk.decode_many(self.data, files, scans, *self.tables.arrays(), out, status, where, skipped, lenient,
                               zeros)
        failed = {int(k): f"{self.names[index[k]]}: {_MESSAGES.get(int(status[k]), f'decoder status {status[k]}')}, "
                          f"near byte {where[k] - offsets[index[k]]}" for k in np.flatnonzero(status)}
        if not lenient:
            return out, failed
        notes = {}
        for k in np.flatnonzero(skipped[:, 0] + skipped[:, 1]):
            size, resyncs, first = (int(v) for v in skipped[k])
            what = [f"skipped {size} extraneous bytes before markers in the entropy-coded data "
                    f"(the first near byte {first - offsets[index[k]]})"] if size else []
            if resyncs:
                what.append(f"resynchronized at {resyncs} missing or misnumbered restart markers")
            notes[int(k)] = f"{self.names[index[k]]}: corrupt JPEG data: {'; '.join(what)}, as libjpeg does"
        return out, failed, notes


class _threads:
    """Run Numba's parallel loops on ``threads`` threads (None: Numba's default) inside the block."""

    def __init__(self, threads):
        if threads is not None and not (isinstance(threads, int) and 1 <= threads <= numba.config.NUMBA_NUM_THREADS):
            raise ValueError(f"threads must be an integer in 1..{numba.config.NUMBA_NUM_THREADS} or None, found {threads!r}")
        self.threads = threads

    def __enter__(self):
        self.saved = numba.get_num_threads()
        if self.threads is not None:
            numba.set_num_threads(self.threads)

    def __exit__(self, *exc):
        numba.set_num_threads(self.saved)
        return False


def _new_image(coefficients, qtables, plan) -> JpegImage:
    """A JpegImage of what the parser and kernel guarantee, without re-checking it (``plan.valid`` must hold)."""
    img = _NEW(JpegImage)
    img.__dict__.update(coefficients=coefficients, qtables=qtables, sampling=plan.sampling,
                        height=plan.height, width=plan.width, color_space=plan.color_space, progressive=False)
    return img


_NEW = object.__new__


def _image(plan, name, coefficients, qtables) -> JpegImage:
    if plan.valid:
        return _new_image(coefficients, qtables, plan)
    try:
        return JpegImage(coefficients, qtables, plan.sampling, plan.height, plan.width, plan.color_space, False)
    except ValueError as exc:  # e.g. a quantization table holding a zero
        raise JpegError(f"{name}: {exc}") from exc


def _layout(batch, index):
    """Output layout of the files ``index`` (all with plans): files of one geometry side by side,
    component-major, in order. Returns ``(bases (len(index), 4), total blocks, groups)``, a group
    being ``(positions in index, per component (first block, BH, BW))``."""
    geo = {}
    plan_geo = np.array([geo.setdefault(p.geometry, len(geo)) for p in batch.unique] + [-1], np.int64)
    grids = {g: p.grid for p in batch.unique for g in [geo[p.geometry]]}
    gid = plan_geo[batch.pid[np.asarray(index, np.int64)]]
    bases = np.zeros((len(index), hk.MAX_COMPONENTS), np.int64)
    total, groups = 0, []
    for g in range(len(geo)):
        at = np.flatnonzero(gid == g)
        if not len(at):
            continue
        comps = []
        for c, (bh, bw) in enumerate(grids[g]):
            bases[at, c] = total + np.arange(len(at)) * (bh * bw)
            comps.append((total, bh, bw))
            total += len(at) * bh * bw
        groups.append((at, comps))
    return bases, total, groups


def read_baseline(data: bytes, name: str = "<bytes>", max_pixels=MAX_PIXELS, strict: bool = True,
                  _stacklevel: int = 2) -> JpegImage | None:
    """Decode one baseline (or extended sequential) Huffman JPEG; None when it is progressive.

    Bit-identical to ``dctnet.read_jpeg`` (jpeglib); raises :class:`~dctnet.JpegError`
    naming ``name`` for anything unsupported, truncated or corrupt. With
    ``strict=False`` extraneous bytes before a marker inside a scan are skipped and
    missing or misnumbered restart markers resynchronized as libjpeg does (a lost
    segment reads as zero blocks), with a :class:`~dctnet.JpegWarning` saying what
    was skipped; other faults still raise.
    """
    batch = _Batch([bytes(data)], [name], max_pixels, parse=_parse if strict else _parse_lenient)
    plan = batch.plan(0)
    if plan is None:
        return None
    bases, total, _ = _layout(batch, [0])
    if strict:
        out, failed = batch.decode([0], bases, total, None)
    else:
        out, failed, notes = batch.decode([0], bases, total, None, lenient=True)
        what = plan.notes + ([notes[0].removeprefix(f"{name}: ")] if notes else [])
        if what and not failed:
            warnings.warn(f"{name}: {'; '.join(what)}", JpegWarning, stacklevel=_stacklevel)
    if failed:
        raise JpegError(failed[0])
    coefficients = tuple(out[b:b + bh * bw].reshape(bh, bw, 64) for b, (bh, bw) in zip(bases[0], plan.grid))
    return _image(plan, name, coefficients, tuple(plan.qt.copy()))


def _plan(data, name, tables, max_pixels):
    """The file's decoding plan; None for files the kernel does not take (progressive, or refused)."""
    try:
        return _parse(data, name, tables, max_pixels)
    except JpegError:
        return None  # read_jpeg decides: libjpeg may read what this strict parser refuses, or names the fault


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

    Baseline files are decoded together in one parallel kernel call on ``threads``
    threads (None: Numba's default); the rest (progressive files, and any file the
    kernel refuses) go through :func:`dctnet.read_jpeg`, which reads what libjpeg
    reads cleanly and raises :class:`~dctnet.JpegError` naming the file otherwise.
    The images of one call share one coefficient buffer (their arrays are views).
    """
    _threads(threads)  # check the argument before any work
    blobs, names, srcs = _load(sources)
    batch = _Batch(blobs, names, max_pixels)
    index = np.flatnonzero(batch.pid >= 0)
    images = [None] * len(blobs)
    if len(index):
        bases, total, groups = _layout(batch, index)
        out, failed = batch.decode(index, bases, total, threads)
        for at, comps in groups:
            files = index[at].tolist()
            stacks = [out[b:b + len(at) * bh * bw].reshape(len(at), bh, bw, 64) for b, bh, bw in comps]
            ids, inverse = np.unique(batch.pid[index[at]], return_inverse=True)
            plans = [batch.unique[p] for p in ids]
            qts = np.stack([p.qt for p in plans])[inverse]  # a copy: each image owns its tables
            coefs = list(zip(*stacks))
            tables = list(map(tuple, qts))
            which = inverse.tolist()
            # per plan, the attributes its images share: each image's __dict__ is a copy plus two keys
            shared = [dict(sampling=p.sampling, height=p.height, width=p.width, color_space=p.color_space,
                           progressive=False) if p.valid else None for p in plans]
            new = _NEW
            for r, (i, k) in enumerate(zip(files, at.tolist())):
                if k in failed:
                    continue
                template = shared[which[r]]
                if template is None:
                    images[i] = _image(plans[which[r]], names[i], coefs[r], tables[r])
                    continue
                img = new(JpegImage)
                d = img.__dict__ = template.copy()
                d["coefficients"] = coefs[r]
                d["qtables"] = tables[r]
                images[i] = img
    return [img if img is not None else read_jpeg(src, max_pixels=max_pixels)
            for img, src in zip(images, srcs)]


def read_stacked(sources, threads=None, max_pixels=MAX_PIXELS, device=None):
    """Files of one geometry as stacked arrays: ``(coefficients, qtables)``.

    ``coefficients``: per component ``(N, BH_c, BW_c, 64)`` int16 (zigzag);
    ``qtables``: ``(N, n_components, 64)`` int32. All files must share size,
    sampling and colour space (a ``ValueError`` names the first that differs).

    ``device``: None or ``"cpu"`` for NumPy arrays, ``"gpu"`` for CuPy arrays. The
    component stacks are slices of one contiguous buffer, so the coefficients go
    to the GPU in one host-to-device copy (and the tables in another); without a
    working CuPy ``"gpu"`` raises :func:`dctnet.to_device`'s error before any decoding.
    """
    _threads(threads)
    # a bad device name, or no GPU: the backend's error before any work
    gpu = device is not None and not isinstance(to_device(np.zeros(0, np.int16), device), np.ndarray)
    blobs, names, srcs = _load(sources)
    if not blobs:
        raise ValueError("read_stacked needs at least one file")
    batch = _Batch(blobs, names, max_pixels)
    pid = batch.pid
    others = {int(i): read_jpeg(srcs[i], max_pixels=max_pixels) for i in np.flatnonzero(pid < 0)}
    kinds = {p.geometry for p in batch.unique} | {
        (img.height, img.width, img.sampling, img.color_space) for img in others.values()}
    if len(kinds) > 1:  # name the first file that differs from the first
        geometry = [batch.plan(i).geometry if pid[i] >= 0 else
                    (others[i].height, others[i].width, others[i].sampling, others[i].color_space)
                    for i in range(len(blobs))]
        for i, g in enumerate(geometry):
            if g != geometry[0]:
                raise ValueError(f"read_stacked needs files of one geometry: {names[0]} is {geometry[0]}, "
                                 f"{names[i]} is {g} (size, sampling, colour space); use read_jpegs")
    height, width, sampling, _ = kinds.pop()
    n = len(blobs)
    grid = _grid(height, width, sampling)
    starts = np.cumsum([0] + [n * bh * bw for bh, bw in grid])  # component-major: each stack contiguous
    baseline = np.flatnonzero(pid >= 0)
    bases = np.zeros((len(baseline), hk.MAX_COMPONENTS), np.int64)
    for c, (bh, bw) in enumerate(grid):
        bases[:, c] = starts[c] + baseline * (bh * bw)
    if len(baseline):
        out, failed = batch.decode(baseline, bases, int(starts[-1]), threads)
    else:
        out, failed = np.zeros((int(starts[-1]), 64), np.int16), {}
    for k in failed:  # what the kernel refuses, libjpeg reads or names
        i = int(baseline[k])
        others[i] = read_jpeg(srcs[i], max_pixels=max_pixels)
    coefficients = _stacks(out, starts, n, grid)
    qtables = np.zeros((n, len(grid), 64), np.int32)
    if len(baseline):
        qtables[baseline] = np.stack([p.qt for p in batch.unique])[pid[baseline]]
    for i, img in others.items():
        for c, coef in enumerate(img.coefficients):
            coefficients[c][i] = coef
        qtables[i] = np.stack(img.qtables)
    bad = np.flatnonzero(qtables.min(axis=(1, 2)) < 1)
    if len(bad):  # JpegImage's check, for the files not made into one: a zero step cannot be dequantized
        raise JpegError(f"{names[bad[0]]}: a quantization table holds a zero")
    if gpu:  # one host-to-device copy of every coefficient, sliced into the stacks on the device
        out = to_device(np.ascontiguousarray(out), device)
        return _stacks(out, starts, n, grid), to_device(qtables, device)
    return coefficients, qtables


def _stacks(out, starts, n, grid):
    """The per-component ``(n, BH_c, BW_c, 64)`` views of the component-major buffer ``out`` (NumPy or CuPy)."""
    return tuple(out[int(starts[c]):int(starts[c + 1])].reshape(n, bh, bw, 64) for c, (bh, bw) in enumerate(grid))
