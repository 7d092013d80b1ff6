"""The Numba JPEG decoder's driver: sequential Huffman files (baseline and extended), many per call, bit-identical to libjpeg.

Each file's marker segments (the one walk, :mod:`dctnet.jpeg.markers`) are
parsed here into a decoding plan -- tables, frame, scans, the colour space
decided as libjpeg 6b decides it -- and the entropy-coded data is decoded by
``dctnet.kernels.huffman`` straight into int16 coefficient arrays, all the files
of a :class:`Batch` in one parallel kernel call. Progressive files are left to
libjpeg (:mod:`dctnet.jpeg.libjpeg`). Whatever libjpeg would only warn about
(truncated or corrupt data) is a :class:`~dctnet.JpegError` here, as in
``read_jpeg(..., strict=True)``; ``strict=False`` reads what libjpeg recovers
from, with a :class:`~dctnet.JpegWarning`. :func:`dctnet.read_jpeg`,
:func:`dctnet.read_jpegs` and :func:`dctnet.read_stacked` use it and fall back to
libjpeg (docs/design.md §5).

>>> import numpy as np, dctnet
>>> data = dctnet.encode_jpeg(np.zeros((3, 16, 16), np.uint8)).to_bytes()
>>> read(data).coefficients[0].shape
(2, 2, 64)
>>> [img.sampling for img in Batch([data, data], ["a.jpg", "b.jpg"]).images(threads=1)]
[((2, 2), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1))]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numba
import numpy as np

from ..kernels import huffman as kernels
from .errors import JpegError, JpegWarning
from .markers import MAX_PIXELS, UNSUPPORTED_FRAMES, Markers, coded_blocks, walk, walk_many
from .picture import JpegImage, block_grids, unchecked_images

__all__ = ["read", "Batch", "stack_views", "check_threads", "STANDARD_DHT", "MAX_DIMENSION"]

MAX_DIMENSION = 65500  # libjpeg's JPEG_MAX_DIMENSION

# The Annex K tables (K.3), as a DHT payload: Motion-JPEG frames carry no DHT and rely on them.
STANDARD_DHT = bytes.fromhex(
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
    kernels.PAST_END: "the entropy-coded data ends before the last block (truncated or corrupt scan)",
    kernels.BAD_CODE: "a bit pattern that is no code of its Huffman table (corrupt data)",
    kernels.BAD_RUN: "a run of zeros past the 64th coefficient of a block (corrupt data)",
    kernels.EXTRA_DATA: "extraneous bytes after the last block of a segment (corrupt data)",
    kernels.BAD_RESTART: "a missing or misnumbered restart marker (corrupt data)",
    kernels.BAD_LAYOUT: "an inconsistent frame or scan layout",
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
            look, canon = np.zeros(1 << kernels.LOOKAHEAD, np.int32), np.zeros((2, 17), np.int32)
            status = kernels.build_table(bits, vals, is_dc, look, canon)
            if status != kernels.TABLE_OK:
                what = ("has a DC symbol over 15" if status == kernels.TABLE_DC_SYMBOL
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
    """What the marker segments of one sequential file say: frame, tables, scans."""

    height: int
    width: int
    color_space: str
    sampling: list  # per component (v, h)
    qtables: list  # per component (64,) int32, zigzag, latched at its first scan
    scans: list = field(default_factory=list)  # rows of the kernel's scan table, offsets into the file
    notes: list = field(default_factory=list)  # lenient parsing: what it read differently from libjpeg 6b
    grid: list = field(init=False)  # per component (BH_c, BW_c), as libjpeg sizes it

    def __post_init__(self):
        self.grid = block_grids(self.height, self.width, self.sampling)

    @property
    def geometry(self):
        return self.height, self.width, tuple(self.sampling), self.color_space


def _u16(data, pos):
    return data[pos] << 8 | data[pos + 1]


class _Parser:
    """Reads one file's marker segments (its :class:`Markers`) into a :class:`_Plan` (or None for progressive files)."""

    def __init__(self, markers: Markers, name: str, tables: _Tables, max_pixels, lenient: bool = False):
        self.markers, self.name, self.tables, self.max_pixels = markers, name, tables, max_pixels
        self.lenient = lenient  # a frame without DHT: the Annex K tables (libjpeg-turbo), else refused (6b)
        self.notes = []
        self.qt = {}  # id -> (64,) int32
        self.huff = {}  # (is_dc, id) -> global table index
        self.saw_dht = False
        self.restart = 0
        self.jfif = False
        self.frame = None  # (height, width, ids, sampling, qtable ids)
        self.plan = None
        self.latched = {}

    def fail(self, what: str):
        raise JpegError(f"{self.name}: {what}")

    def run(self):
        data = self.markers.data
        for marker, start, end, data_end in self.markers.segments:  # in file order: errors as they come
            seg = data[start:end]
            if marker in (0xC0, 0xC1):
                self.sof(seg)
            elif marker == 0xC2:
                return None  # progressive: the caller reads it through libjpeg
            elif marker in UNSUPPORTED_FRAMES:
                self.fail(f"{UNSUPPORTED_FRAMES[marker]} JPEG is not supported; "
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
                self.sos(seg, end, data_end)
            elif marker == 0xE0:
                self.app0(seg)
            elif not (0xE1 <= marker <= 0xEF or marker in (0xFE, 0xCC, 0xDC)):  # APPn, COM, DAC, DNL: skipped
                self.fail(f"unknown marker FF {marker:02X} at offset {start - 4} (corrupt file)")
        fault = self.markers.fault()  # what ended the walk before EOI, after the segments before it
        if fault is not None:
            self.fail(fault)
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
        adobe = self.markers.adobe_transform()
        if len(ids) == 1:
            return "gray"
        if len(ids) == 4:
            if adobe is None or adobe == 0:
                return "cmyk"
            if adobe != 2:  # libjpeg warns and assumes YCCK
                self.fail(f"Adobe colour transform {adobe} for four components, expected 0 (CMYK) or 2 (YCCK)")
            return "ycck"
        if self.jfif:
            return "ycbcr"
        if adobe is not None:
            if adobe not in (0, 1):
                self.fail(f"Adobe colour transform {adobe}, expected 0 (RGB) or 1 (YCbCr)")
            return "rgb" if adobe == 0 else "ycbcr"
        return "rgb" if ids == [82, 71, 66] else "ycbcr"

    def sos(self, seg, pos, end):
        """Record one scan, its entropy-coded data ``[pos, end)``."""
        if self.frame is None:
            self.fail("a scan (SOS) before the frame header (corrupt file)")
        height, width, ids, sampling, qids = self.frame
        if self.plan is None:
            self.plan = _Plan(height, width, self.color_space(), sampling, [])
        ns = seg[0] if seg else 0
        if not 1 <= ns <= 4 or len(seg) != 4 + 2 * ns:
            self.fail(f"SOS segment of length {len(seg) + 2} for {ns} components (corrupt file)")
        row = np.zeros(kernels.S_COLS, np.int64)
        row[kernels.S_NCOMP], row[kernels.S_RESTART] = ns, self.restart
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
            row[kernels.S_COMP + j] = c
            row[kernels.S_DC + j] = self.table(True, sel >> 4)
            row[kernels.S_AC + j] = self.table(False, sel & 15)
            if c not in self.latched:  # libjpeg latches a component's table at its first scan
                if qids[c] not in self.qt:
                    self.fail(f"component {c} uses quantization table {qids[c]}, which is not defined")
                self.latched[c] = self.qt[qids[c]]
        ss, se, a = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns]
        if (ss, se, a) != (0, 63, 0):
            self.fail(f"baseline scan with spectral selection {ss}..{se}, approximation {a:02X}; expected 0..63, 00")
        if ns > 1 and sum(sampling[c][0] * sampling[c][1] for c in row[kernels.S_COMP:kernels.S_COMP + ns]) > kernels.MAX_BLOCKS_IN_MCU:
            self.fail(f"sampling {sampling} puts more than {kernels.MAX_BLOCKS_IN_MCU} blocks in an MCU")
        row[kernels.S_START], row[kernels.S_END] = pos, end
        self.plan.scans.append(row)

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
    while pos < len(STANDARD_DHT):
        cls, tid = STANDARD_DHT[pos] >> 4, STANDARD_DHT[pos] & 15
        count = sum(STANDARD_DHT[pos + 1:pos + 17])
        out[cls == 0, tid] = (STANDARD_DHT[pos + 1:pos + 17 + count], tid)
        pos += 17 + count
    return out


class Batch:
    """The files of one call concatenated, each parsed into a decoding plan, and the kernel's tables for them.

    ``blobs``: the files' bytes, ``names`` what errors call them. Files of the plain
    shape (SOI, marker segments, one scan, EOI: what :func:`~dctnet.jpeg.markers.walk_many`
    recognises) whose bytes up to the scan's data are identical share one plan,
    parsed once: the parser's outcome depends on nothing else, as the scan's own
    data only decides where it ends. Other files are parsed one by one, from their
    ``markers`` when the caller has walked them already (then no plan is shared).

    ``taken[i]``: whether file i has a plan (False for progressive files and for
    files the parser refuses: libjpeg reads or names them; ``errors[i]`` holds the
    parser's :class:`~dctnet.JpegError` for the files it parsed). ``lenient``: the
    parser and kernel's ``strict=False`` mode (see :func:`read`).
    """

    def __init__(self, blobs, names, max_pixels=MAX_PIXELS, lenient: bool = False, markers=None):
        self.names, self.max_pixels, self.lenient = names, max_pixels, lenient
        self.tables = _Tables()
        self.errors = {}
        n = len(blobs)
        self.offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(b) for b in blobs], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(blobs), np.uint8)
        self.unique = []  # the distinct plans (no None)
        self.shared = []  # per distinct plan: whether it is a header's plan (its files have one scan, at span)
        pid = []  # per file: its plan's index in unique, -1 for None
        if markers is not None:
            self.span = np.zeros((n, 2), np.int64)
            pid = [self._add(self._parse(i, walked), False) for i, walked in enumerate(markers)]
        else:
            walks = walk_many(self.data, self.offsets)
            self.span = walks[:, kernels.W_SCAN_START:kernels.W_SCAN_END + 1]  # the first scan's data in the file
            plain = ((walks[:, kernels.W_STATUS] == kernels.WALK_EOI)
                     & (walks[:, kernels.W_SOS] == walks[:, kernels.W_SEGMENTS] - 1)).tolist()
            heads = walks[:, kernels.W_SCAN_START].tolist()
            templates = {}  # header bytes -> plan id (-1: None)
            last_key, last_id = None, -1
            for i, blob in enumerate(blobs):
                if plain[i]:
                    size = heads[i]
                    if last_key is not None and size == len(last_key) and blob.startswith(last_key):
                        pid.append(last_id)
                        continue
                    key = blob[:size]
                    if key not in templates:
                        templates[key] = self._add(self._parse(i, walk(blob)), True)
                    last_key, last_id = key, templates[key]
                    pid.append(last_id)
                else:
                    pid.append(self._add(self._parse(i, walk(blob)), False))
        self.pid = np.array(pid, np.int64)
        if markers is None:  # read_jpeg checked its file; here a file far too short for its size goes to read_jpeg
            self._refuse_short()
        self.taken = self.pid >= 0

    def _refuse_short(self):
        """Untake the files whose scan data cannot code their size (``markers.too_short``): before any allocation."""
        if not self.unique:
            return
        # one block count per plan, then one comparison for all files: too_short(...) is None iff 8 * present >= blocks
        blocks = np.array([coded_blocks(p.height, p.width, p.sampling, max(v for v, _ in p.sampling),
                                        max(h for _, h in p.sampling)) for p in self.unique], np.int64)
        present = np.diff(self.offsets) - self.span[:, 0]
        taken = self.pid >= 0
        self.pid[taken & (8 * present < blocks[np.maximum(self.pid, 0)])] = -1

    def _parse(self, i, markers):
        try:
            return _Parser(markers, self.names[i], self.tables, self.max_pixels, self.lenient).run()
        except JpegError as exc:
            self.errors[i] = exc
            return None

    def _add(self, plan, shared):
        if plan is None:
            return -1
        plan.sampling = tuple(tuple(s) for s in plan.sampling)
        plan.qt = np.stack(plan.qtables)
        plan.valid = bool(plan.qt.min() >= 1 and plan.qt.max() <= 65535)  # JpegImage's check, once per plan
        plan.fields = dict(sampling=plan.sampling, height=plan.height, width=plan.width,
                           color_space=plan.color_space, progressive=False)  # what its images share
        self.unique.append(plan)
        self.shared.append(shared)
        return len(self.unique) - 1

    def geometry(self, i):
        """``(height, width, sampling, color_space)`` of file ``i`` (which must be taken)."""
        return self.unique[self.pid[i]].geometry

    def geometries(self) -> set:
        """The distinct geometries of the taken files."""
        return {p.geometry for p in self.unique}

    def images(self, threads=None) -> list:
        """A :class:`~dctnet.JpegImage` per file the kernel decodes, None for the others (not taken or refused).

        One parallel kernel call on ``threads`` threads (None: Numba's default);
        the images share one coefficient buffer (their arrays are views), each owns
        its tables. A plan with a zero quantization step raises its file's JpegError.
        """
        index = np.flatnonzero(self.taken)
        images = [None] * len(self.pid)
        if not len(index):
            return images
        bases, total, groups = self._layout(index)
        out, failed, _ = self.decode(index, bases, total, threads)
        for at, comps in groups:
            files = index[at].tolist()
            stacks = [out[b:b + len(at) * bh * bw].reshape(len(at), bh, bw, 64) for b, bh, bw in comps]
            ids, inverse = np.unique(self.pid[index[at]], return_inverse=True)
            plans = [self.unique[p] for p in ids]
            qts = np.stack([p.qt for p in plans])[inverse]  # a copy: each image owns its tables
            coefs, tables = list(zip(*stacks)), list(map(tuple, qts))
            rows = [[] for _ in plans]  # per plan, the positions in the group of its files the kernel decoded
            for r, (j, k) in enumerate(zip(inverse.tolist(), at.tolist())):
                if k not in failed:
                    rows[j].append(r)
            for plan, mine in zip(plans, rows):
                if plan.valid:
                    made = unchecked_images(plan.fields, [coefs[r] for r in mine], [tables[r] for r in mine])
                else:
                    made = [_checked_image(plan, self.names[files[r]], coefs[r], tables[r]) for r in mine]
                for r, img in zip(mine, made):
                    images[files[r]] = img
        return images

    def stacked(self, grid, threads=None):
        """Decode the taken files, all of block grids ``grid``, into one buffer laid out for :func:`stack_views`.

        Returns ``(buffer (blocks, 64) int16, qtables (files, components, 64) int32,
        decoded (files,) bool)``; the blocks of the files not decoded (not taken, or
        refused by the kernel) are left unwritten and their tables zero or their plan's,
        for the caller to fill.
        """
        n = len(self.pid)
        starts = _starts(n, grid)
        taken = np.flatnonzero(self.taken)
        bases = np.zeros((len(taken), kernels.MAX_COMPONENTS), np.int64)
        for c, (bh, bw) in enumerate(grid):
            bases[:, c] = starts[c] + taken * (bh * bw)
        if len(taken):
            out, failed, _ = self.decode(taken, bases, int(starts[-1]), threads)
        else:
            out, failed = np.zeros((int(starts[-1]), 64), np.int16), {}
        qtables = np.zeros((n, len(grid), 64), np.int32)
        if len(taken):
            qtables[taken] = np.stack([p.qt for p in self.unique])[self.pid[taken]]
        decoded = self.taken.copy()
        decoded[taken[list(failed)]] = False
        return out, qtables, decoded

    def decode(self, index, bases, nblocks: int, threads):
        """Run the kernel on the files ``index``; ``bases[k, c]``: first output block of file index[k]'s component c.

        Returns ``(out, {k: message}, {k: message})``: the files the kernel refused, and
        (``lenient``, see ``kernels.decode_scan``) what it skipped in the files it read.
        """
        lenient = self.lenient
        offsets = self.offsets
        index = np.asarray(index, np.int64)
        m = len(index)
        table = np.zeros((max(len(self.unique), 1), kernels.F_COLS), np.int64)
        for r, p in enumerate(self.unique):  # one row of file columns per distinct plan
            row = table[r]
            row[kernels.F_HEIGHT], row[kernels.F_WIDTH], row[kernels.F_NCOMP] = p.height, p.width, len(p.sampling)
            for c, ((v, h), (bh, bw)) in enumerate(zip(p.sampling, p.grid)):
                row[kernels.F_V + c], row[kernels.F_H + c], row[kernels.F_BH + c], row[kernels.F_BW + c] = v, h, bh, bw
        kinds = self.pid[index]
        files = table[kinds]
        files[:, kernels.F_BASE:kernels.F_BASE + bases.shape[1]] = bases
        shared = np.array(self.shared + [False], bool)[kinds]
        # files of a header's plan: its one scan, at the span walk_many found
        first = np.stack([p.scans[0] for p in self.unique] or [np.zeros(kernels.S_COLS, np.int64)])
        scans = first[kinds[shared]]
        at = index[shared]
        scans[:, kernels.S_START] = offsets[at] + self.span[at, 0]
        scans[:, kernels.S_END] = offsets[at] + self.span[at, 1]
        files[shared, kernels.F_SCAN0] = np.arange(len(scans))
        files[shared, kernels.F_SCAN1] = np.arange(1, len(scans) + 1)
        extra = []
        for k in np.flatnonzero(~shared):  # the others: their own scans, offsets into their file
            files[k, kernels.F_SCAN0] = len(scans) + len(extra)
            for s in self.unique[kinds[k]].scans:
                s = s.copy()
                s[[kernels.S_START, kernels.S_END]] += offsets[index[k]]
                extra.append(s)
            files[k, kernels.F_SCAN1] = len(scans) + len(extra)
        if extra:
            scans = np.concatenate([scans, np.stack(extra)])
        out = np.empty((nblocks, 64), np.int16)  # the kernel writes every block of the files it decodes
        status = np.zeros(m, np.int32)
        where = np.zeros(m, np.int64)
        skipped = np.zeros((m if lenient else 0, 3), np.int64)
        if m:
            with _threads(threads):
                zeros = np.zeros(4096 if lenient else 0, np.uint8)  # see kernels.decode_scan
                zeros.flags.writeable = self.data.flags.writeable  # the same Numba type as the data
                kernels.decode_many(self.data, files, scans, *self.tables.arrays(), out, status, where, skipped,
                                    lenient, zeros)
        failed = {int(k): f"{self.names[index[k]]}: {_MESSAGES.get(int(status[k]), f'decoder status {status[k]}')}, "
                          f"near byte {where[k] - offsets[index[k]]}" for k in np.flatnonzero(status)}
        notes = {}
        for k in np.flatnonzero(skipped[:, 0] + skipped[:, 1]):
            size, resyncs, first = (int(v) for v in skipped[k])
            what = [f"skipped {size} extraneous bytes before markers in the entropy-coded data "
                    f"(the first near byte {first - offsets[index[k]]})"] if size else []
            if resyncs:
                what.append(f"resynchronized at {resyncs} missing or misnumbered restart markers")
            notes[int(k)] = f"{self.names[index[k]]}: corrupt JPEG data: {'; '.join(what)}, as libjpeg does"
        return out, failed, notes

    def _layout(self, index):
        """Output layout of the files ``index`` (all taken): files of one geometry side by side,
        component-major, in order. Returns ``(bases (len(index), 4), total blocks, groups)``, a group
        being ``(positions in index, per component (first block, BH, BW))``."""
        geo = {}
        plan_geo = np.array([geo.setdefault(p.geometry, len(geo)) for p in self.unique] + [-1], np.int64)
        grids = {g: p.grid for p in self.unique for g in [geo[p.geometry]]}
        gid = plan_geo[self.pid[np.asarray(index, np.int64)]]
        bases = np.zeros((len(index), kernels.MAX_COMPONENTS), np.int64)
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


def check_threads(threads):
    """Raise ``ValueError`` unless ``threads`` is None (Numba's default) or a thread count Numba can run."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= numba.config.NUMBA_NUM_THREADS):
        raise ValueError(f"threads must be an integer in 1..{numba.config.NUMBA_NUM_THREADS} or None, found {threads!r}")


class _threads:
    """Run Numba's parallel loops on ``threads`` threads (None: Numba's default) inside the block."""

    def __init__(self, threads):
        check_threads(threads)
        self.threads = threads

    def __enter__(self):
        self.saved = numba.get_num_threads()
        if self.threads is not None:
            numba.set_num_threads(self.threads)

    def __exit__(self, *exc):
        numba.set_num_threads(self.saved)
        return False


def _checked_image(plan, name, coefficients, qtables) -> JpegImage:
    """A JpegImage through its constructor's checks, for a plan that fails them (e.g. a zero quantization step)."""
    try:
        return JpegImage(coefficients, qtables, plan.sampling, plan.height, plan.width, plan.color_space, False)
    except ValueError as exc:
        raise JpegError(f"{name}: {exc}") from exc


def _starts(n, grid):
    """First block of each component's stack in the component-major buffer of ``n`` files of block grids ``grid``."""
    return np.cumsum([0] + [n * bh * bw for bh, bw in grid])


def stack_views(buffer, n: int, grid) -> tuple:
    """The per-component ``(n, BH_c, BW_c, 64)`` views of :meth:`Batch.stacked`'s buffer (NumPy or CuPy).

    >>> buffer = np.zeros((2 * (4 + 1 + 1), 64), np.int16)
    >>> [v.shape for v in stack_views(buffer, 2, [(2, 2), (1, 1), (1, 1)])]
    [(2, 2, 2, 64), (2, 1, 1, 64), (2, 1, 1, 64)]
    """
    starts = _starts(n, grid)
    return tuple(buffer[int(starts[c]):int(starts[c + 1])].reshape(n, bh, bw, 64) for c, (bh, bw) in enumerate(grid))


def read(data: bytes, name: str = "<bytes>", max_pixels=MAX_PIXELS, strict: bool = True, markers: Markers | None = None,
         stacklevel: int = 2) -> JpegImage | None:
    """Decode one sequential Huffman JPEG (baseline or extended); None when it is progressive.

    Bit-identical to libjpeg (``dctnet.read_jpeg(..., decoder="libjpeg")``); raises
    :class:`~dctnet.JpegError` naming ``name`` for anything unsupported, truncated
    or corrupt. With ``strict=False`` extraneous bytes before a marker inside a scan
    are skipped and missing or misnumbered restart markers resynchronized as libjpeg
    does (a lost segment reads as zero blocks), a frame without Huffman tables is
    read with the Annex K tables, with a :class:`~dctnet.JpegWarning` (at
    ``stacklevel``) saying what was skipped; other faults still raise. ``markers``:
    the file's walk, when the caller has it.
    """
    data = bytes(data)
    batch = Batch([data], [name], max_pixels, lenient=not strict, markers=[markers or walk(data)])
    if 0 in batch.errors:
        raise batch.errors[0]
    if not batch.taken[0]:
        return None
    plan = batch.unique[batch.pid[0]]
    bases, total, _ = batch._layout([0])
    out, failed, notes = batch.decode([0], bases, total, 1)  # one file: waking Numba's other threads costs more
    what = plan.notes + ([notes[0].removeprefix(f"{name}: ")] if notes else [])  # strict: none
    if what and not failed:
        warnings.warn(f"{name}: {'; '.join(what)}", JpegWarning, stacklevel=stacklevel)
    if failed:
        raise JpegError(failed[0])
    coefficients = tuple(out[b:b + bh * bw].reshape(bh, bw, 64) for b, (bh, bw) in zip(bases[0], plan.grid))
    if not plan.valid:
        return _checked_image(plan, name, coefficients, tuple(plan.qt.copy()))
    return unchecked_images(plan.fields, [coefficients], [tuple(plan.qt.copy())])[0]
