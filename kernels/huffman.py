"""JPEG files in Numba: the marker walk, and the Huffman decoding of sequential scans to quantized coefficients.

``walk_markers`` is the one reading of a file's structure (its marker segments,
where each scan's entropy-coded data ends) that every dctnet reader uses
(``dctnet.jpeg.markers``, docs/design.md §5). The decoding kernels (baseline and
extended sequential Huffman scans; no inverse DCT) write each 8x8 block's
coefficients in zigzag order, DC prediction undone, straight into a flat
``(blocks, 64)`` int16 buffer that the caller views as per-component
``(BH_c, BW_c, 64)`` arrays. The decoding follows libjpeg 6b (what jpeglib runs)
bit for bit; wherever libjpeg would warn and carry on (data running out, a bad
code, a wrong restart marker, leftover bytes) the kernels stop with an error code
instead, and every index into the byte stream, the tables and the output is
checked before use.

The caller describes its files with two int64 tables (columns named below): one
row per file (geometry, where each component's blocks go, which scans are its)
and one row per scan (where its entropy-coded data lies, its components and
their Huffman tables, the restart interval). ``decode_many`` decodes the files
in parallel (``prange``), one status code per file.
"""

import numpy as np
from numba import njit, prange

# status codes returned to Python
OK, PAST_END, BAD_CODE, BAD_RUN, EXTRA_DATA, BAD_RESTART, BAD_LAYOUT = range(7)
# build_table status codes
TABLE_OK, TABLE_OVERFULL, TABLE_DC_SYMBOL = range(3)

LOOKAHEAD = 10  # bits resolved by one table look-up; longer codes use the canonical walk
MAX_BLOCKS_IN_MCU = 10  # libjpeg's D_MAX_BLOCKS_IN_MCU (and the standard's)

# file table columns: image size, component count, per component c (0..3: CMYK/YCCK have four)
# sampling, block grid and first block in the output, and the file's rows of the scan table
MAX_COMPONENTS = 4
F_HEIGHT, F_WIDTH, F_NCOMP, F_V, F_H, F_BH, F_BW, F_BASE, F_SCAN0, F_SCAN1 = 0, 1, 2, 3, 7, 11, 15, 19, 23, 24
F_COLS = 25
# scan table columns: entropy-coded data [start, end), restart interval, component count,
# then per scan component j (0..3): component index, DC table, AC table
S_START, S_END, S_RESTART, S_NCOMP, S_COMP, S_DC, S_AC = 0, 1, 2, 3, 4, 8, 12
S_COLS = 16

# the marker walk: why it stopped (WALK_EOI: it reached EOI), the columns of its segment rows
# and of its result row
WALK_EOI, WALK_EMPTY, WALK_NO_SOI, WALK_NO_EOI, WALK_NOT_MARKER, WALK_STRAY_00, WALK_SECOND_SOI, \
    WALK_CUT_LENGTH, WALK_BAD_LENGTH, WALK_CUT_SCAN = range(10)
R_MARKER, R_START, R_END, R_DATA_END = range(4)
R_COLS = 4
W_STATUS, W_WHERE, W_SEGMENTS, W_SOS, W_SCAN_START, W_SCAN_END = range(6)
W_COLS = 6

# look-up entries (int32): bits 0-4 how many bits the entry consumes, bit 5 set when the
# entry also holds the value of the magnitude bits (bits 16-31, signed), bits 8-15 the symbol
_LEN, _VALUE = 31, 32
_LMASK = (1 << LOOKAHEAD) - 1


@njit(cache=True)
def build_table(bits, vals, is_dc, look, canon):
    """Derive the decoding tables of one DHT table; returns a ``TABLE_*`` status.

    ``bits[l]`` codes of length l (1..16), ``vals`` the symbols. ``look[w]`` for the
    next ``LOOKAHEAD`` bits w is 0 when the code they start with is longer (or absent);
    else it holds the code's symbol and, when the code and its magnitude bits fit
    in w, their total length and the signed value they stand for (the ``_VALUE``
    flag), otherwise the code length alone. ``canon[0, l]`` is the largest code of
    length l (-1: none) and ``canon[1, l]`` maps such a code to its index in ``vals``.
    Refuses what libjpeg refuses: more than 256 symbols, a length over-subscribed
    or holding the all-ones code, DC symbols over 15.
    """
    total = 0
    for l in range(1, 17):
        total += bits[l]
    if total > 256 or total > vals.shape[0]:
        return TABLE_OVERFULL
    if is_dc:
        for i in range(total):
            if vals[i] > 15:  # a DC difference has at most 15 bits
                return TABLE_DC_SYMBOL
    look[:] = 0
    canon[:, :] = 0
    code = 0
    p = 0
    for l in range(1, 17):
        n = bits[l]
        canon[0, l] = -1
        if n > 0:
            if code + n >= (1 << l):
                return TABLE_OVERFULL
            canon[1, l] = p - code
            if l <= LOOKAHEAD:
                shift = LOOKAHEAD - l
                for i in range(n):
                    sym = vals[p + i]
                    s = sym & 15  # the magnitude bits (a DC symbol is at most 15)
                    for w in range((code + i) << shift, (code + i + 1) << shift):
                        if l + s <= LOOKAHEAD:
                            v = (w >> (shift - s)) & ((1 << s) - 1)
                            value = _extend(v, s) if s > 0 else 0
                            look[w] = (value << 16) | (sym << 8) | _VALUE | (l + s)
                        else:
                            look[w] = (sym << 8) | l
            p += n
            code += n
            canon[0, l] = code - 1
        code <<= 1
    return TABLE_OK


@njit(cache=True)
def segment_end(data, pos):
    """Index of the marker (its first FF) that ends the entropy-coded data at ``pos``.

    Stuffed bytes (FF 00, also after fill bytes FF FF 00) and restart markers
    belong to the scan; ``len(data)`` when no marker follows (a truncated file).
    """
    n = data.shape[0]
    while pos < n:
        if data[pos] != 0xFF:
            pos += 1
            continue
        q = pos + 1
        while q < n and data[q] == 0xFF:
            q += 1
        if q >= n:
            return n
        c = data[q]
        if c != 0 and not 0xD0 <= c <= 0xD7:
            return pos
        pos = q + 1
    return n


@njit(cache=True)
def walk_markers(data, lo, hi, rows, result):
    """The marker walk of the file ``data[lo:hi]``: the one place where a JPEG file's structure is read.

    From SOI to EOI, fill bytes skipped and stand-alone markers (RSTn, TEM) passed
    over, each marker segment becomes a row of ``rows`` (columns ``R_*``, offsets
    in the file): its marker, where its payload starts (after the length) and ends,
    and where its data ends -- for SOS the end of the entropy-coded data that
    follows (the FF of the next marker other than RSTn), else the payload's end.
    Rows past ``rows``' capacity are counted but not written. ``result`` (columns
    ``W_*``) gets the ``WALK_*`` status that ended the walk, the offset of the byte
    at fault (the FF of the marker concerned, or of EOI), the number of segments,
    the row of the first SOS (-1: none) and that scan's entropy-coded data
    [start, end) (-1: none). Only lengths are read; what the segments say is left
    to the caller.
    """
    cap = rows.shape[0]
    result[W_WHERE] = 0
    result[W_SOS] = -1
    result[W_SCAN_START] = -1
    result[W_SCAN_END] = -1
    n = 0
    if not 0 <= lo <= hi <= data.shape[0]:
        status = WALK_NO_SOI
    elif hi == lo:
        status = WALK_EMPTY
    elif hi - lo < 2 or data[lo] != 0xFF or data[lo + 1] != 0xD8:
        status = WALK_NO_SOI
    else:
        pos = lo + 2
        while True:
            if pos >= hi:
                status = WALK_NO_EOI
                break
            if data[pos] != 0xFF:
                status = WALK_NOT_MARKER
                result[W_WHERE] = pos - lo
                break
            while pos < hi and data[pos] == 0xFF:  # fill bytes
                pos += 1
            if pos >= hi:
                status = WALK_NO_EOI
                break
            m = data[pos]
            pos += 1
            result[W_WHERE] = pos - 2 - lo  # the marker's (last) FF
            if m == 0:
                status = WALK_STRAY_00
                break
            if m == 0xD9:
                status = WALK_EOI
                break
            if (0xD0 <= m <= 0xD7) or m == 0x01:  # RSTn, TEM: no parameters (libjpeg skips them)
                continue
            if m == 0xD8:
                status = WALK_SECOND_SOI
                break
            if pos + 2 > hi:
                status = WALK_CUT_LENGTH
                break
            length = (np.int64(data[pos]) << 8) | data[pos + 1]
            if length < 2 or pos + length > hi:
                status = WALK_BAD_LENGTH
                break
            start, stop = pos + 2, pos + length
            pos = stop
            if m == 0xDA:
                pos = segment_end(data[:hi], stop)
                if result[W_SOS] < 0:
                    result[W_SOS] = n
                    result[W_SCAN_START] = stop - lo
                    result[W_SCAN_END] = pos - lo
            if n < cap:
                rows[n, R_MARKER] = m
                rows[n, R_START] = start - lo
                rows[n, R_END] = stop - lo
                rows[n, R_DATA_END] = pos - lo
            n += 1
            if m == 0xDA and pos >= hi:  # the scan's entropy-coded data runs to the end of the file
                status = WALK_CUT_SCAN
                break
    result[W_STATUS] = status
    result[W_SEGMENTS] = n


@njit(cache=True)
def walk_many(data, offsets, results):
    """:func:`walk_markers` of every file ``data[offsets[f]:offsets[f + 1]]`` into ``results[f]``, no rows kept.

    A file of the plain shape -- SOI, marker segments, one scan, EOI -- has status
    ``WALK_EOI`` and its first SOS as its last segment; its bytes up to the scan's
    data (``results[f, W_SCAN_START]``) are then all its decoder needs besides that data.
    """
    rows = np.empty((0, R_COLS), np.int64)
    for f in range(offsets.shape[0] - 1):
        walk_markers(data, offsets[f], offsets[f + 1], rows, results[f])


@njit(cache=True, inline="always")
def _extend(v, s):
    """The signed value of the ``s``-bit magnitude category code ``v`` (F.2.2.1)."""
    return v if v >= (1 << (s - 1)) else v - (1 << s) + 1


# The bit reader lives in local variables: acc (bit buffer, the low nbits valid), nbits,
# pos (next byte), lim (where the data ends for the reader: end, or the marker found).
@njit(cache=True, inline="always")
def _refill(data, acc, nbits, pos, lim):
    """Top up the bit buffer past 56 bits, unstuffing; at a marker ``lim`` drops to its FF."""
    if pos + 8 <= lim:  # the common case: no end check per byte
        while nbits <= 56:
            b = data[pos]
            if b == 0xFF:
                break  # stuffing or a marker: the careful loop below
            acc = (acc << 8) | b
            nbits += 8
            pos += 1
    while nbits <= 56 and pos < lim:
        b = data[pos]
        if b == 0xFF:
            q = pos + 1
            while q < lim and data[q] == 0xFF:  # fill bytes
                q += 1
            if q < lim and data[q] == 0:
                pos = q + 1  # FF 00 stands for a data byte FF
            else:
                lim = pos  # a marker: the data ends where its FF starts
                break
        else:
            pos += 1
        acc = (acc << 8) | b  # older bits fall off the top; reads mask them out
        nbits += 8
    return acc, nbits, pos, lim


@njit(cache=True)
def _slow_symbol(acc, nbits, t, look, canon, vals):
    """``(symbol, code length)`` of a code longer than the look-up (or near the data's end), or (-status, 0)."""
    if nbits >= 16:
        w = (acc >> (nbits - 16)) & 0xFFFF
    else:  # past the data libjpeg reads zeros; using them is caught below
        w = (acc << (16 - nbits)) & 0xFFFF
    entry = look[t, w >> (16 - LOOKAHEAD)]
    if entry != 0:
        sym = (entry >> 8) & 0xFF
        length = entry & _LEN
        if entry & _VALUE:
            length -= sym & 15
    else:
        length = 0
        sym = 0
        for l in range(LOOKAHEAD + 1, 17):
            code = w >> (16 - l)
            if code <= canon[t, 0, l]:
                i = canon[t, 1, l] + code
                if i < 0 or i >= vals.shape[1]:
                    return -BAD_CODE, 0
                length = l
                sym = vals[t, i]
                break
        if length == 0:
            return (-PAST_END if nbits < 16 else -BAD_CODE), 0
    if length > nbits:
        return -PAST_END, 0
    return sym, length


@njit(cache=True, inline="always")
def _decode(data, acc, nbits, pos, lim, t, look, canon, vals):
    """The next symbol of table ``t`` and the value of its magnitude bits.

    Returns ``(symbol or -status, value, acc, nbits, pos, lim)``.
    """
    if nbits < 16:
        acc, nbits, pos, lim = _refill(data, acc, nbits, pos, lim)
    if nbits >= LOOKAHEAD:
        w = (acc >> (nbits - LOOKAHEAD)) & _LMASK
    else:
        w = (acc << (LOOKAHEAD - nbits)) & _LMASK
    entry = look[t, w]
    if entry & _VALUE:  # the fast path: code and magnitude in one look-up
        n = entry & _LEN
        if n > nbits:
            return -PAST_END, 0, acc, nbits, pos, lim
        return (entry >> 8) & 0xFF, entry >> 16, acc, nbits - n, pos, lim
    if nbits < 32:  # a code and its magnitude bits take at most 16 + 15
        acc, nbits, pos, lim = _refill(data, acc, nbits, pos, lim)
        if nbits >= LOOKAHEAD:  # the same leading bits, unless the data was near its end
            w = (acc >> (nbits - LOOKAHEAD)) & _LMASK
        else:
            w = (acc << (LOOKAHEAD - nbits)) & _LMASK
        entry = look[t, w]
        if entry & _VALUE:
            n = entry & _LEN
            if n > nbits:
                return -PAST_END, 0, acc, nbits, pos, lim
            return (entry >> 8) & 0xFF, entry >> 16, acc, nbits - n, pos, lim
    if entry != 0 and nbits >= 16:
        sym = (entry >> 8) & 0xFF
        nbits -= entry & _LEN
    else:
        sym, length = _slow_symbol(acc, nbits, t, look, canon, vals)
        if sym < 0:
            return sym, 0, acc, nbits, pos, lim
        nbits -= length
    s = sym & 15
    if s == 0:
        return sym, 0, acc, nbits, pos, lim
    if s > nbits:
        return -PAST_END, 0, acc, nbits, pos, lim
    nbits -= s
    v = (acc >> nbits) & ((1 << s) - 1)
    return sym, _extend(v, s), acc, nbits, pos, lim


@njit(cache=True)
def _segment_done(data, acc, nbits, pos, lim):
    """After a segment's last MCU: no whole data byte may be left (libjpeg warns of extraneous data)."""
    acc, nbits, pos, lim = _refill(data, acc, nbits, pos, lim)
    return (EXTRA_DATA if nbits >= 8 else OK), pos


@njit(cache=True)
def _restart_at(data, pos, end, n):
    """Position after the restart marker RSTn that must start at ``pos``, or -1."""
    q = pos
    while q < end and data[q] == 0xFF:
        q += 1
    if q >= end or q == pos or data[q] != 0xD0 + n:
        return -1
    return q + 1


@njit(cache=True)
def _tail(data, pos, end):
    """After the scan's last MCU only fill bytes and stray restart markers may precede ``end``."""
    q = pos
    while q < end:
        if data[q] != 0xFF:
            return EXTRA_DATA
        while q < end and data[q] == 0xFF:
            q += 1
        if q < end:
            if not 0xD0 <= data[q] <= 0xD7:
                return EXTRA_DATA
            q += 1
    return OK


@njit(cache=True)
def _find_marker(data, pos, end):
    """libjpeg's ``next_marker`` from ``pos``: ``(marker code, its FF, after it, bytes skipped)``.

    Bytes other than a marker (data, stuffed FF 00 pairs) are skipped and counted;
    the scan's own end marker (at ``end``) or the end of the data read as code 0xD9.
    """
    q = pos
    skipped = 0
    n = data.shape[0]
    while q < end:
        if data[q] != 0xFF:
            q += 1
            skipped += 1
            continue
        r = q + 1
        while r < n and data[r] == 0xFF:
            r += 1
        if r < n and data[r] != 0:
            return np.int64(data[r]), q, r + 1, skipped
        skipped += 2
        q = r + 1
    return np.int64(0xD9), end, end, skipped


@njit(cache=True)
def _resync(data, pos, end, desired, work):
    """Lenient restart: skip to the next marker and resynchronize as libjpeg's
    ``jpeg_resync_to_restart`` does. Returns ``(where the next segment's data starts, empty)``:
    ``empty`` when the marker found is left for a later restart (the segment reads as empty)."""
    m, at, after, skipped = _find_marker(data, pos, end)
    _note(work, skipped, pos)
    if m == 0xD0 + desired:
        return after, False
    work[13] += 1
    while True:
        if m < 0xC0:
            action = 2  # not a valid marker: look further
        elif not 0xD0 <= m <= 0xD7:
            action = 3  # a valid marker other than RSTn: stop before it
        elif m == 0xD0 + ((desired + 1) & 7) or m == 0xD0 + ((desired + 2) & 7):
            action = 3  # one of the next two restarts: this segment is lost
        elif m == 0xD0 + ((desired - 1) & 7) or m == 0xD0 + ((desired - 2) & 7):
            action = 2  # an earlier restart: look further
        else:
            action = 1  # the desired one, or too far away to tell: take it
        if action == 1:
            return after, False
        if action == 3:
            return at, True
        if after >= end:
            return end, True
        p = after
        m, at, after, skipped = _find_marker(data, p, end)
        _note(work, skipped, p)


@njit(cache=True)
def _note(work, skipped, pos):
    """Lenient mode's tally in ``work``: [12] bytes skipped, [13] resynchronizations, [14] first skip."""
    if skipped > 0:
        work[12] += skipped
        if work[14] < 0:
            work[14] = pos


@njit(cache=True)
def _check_scan(data, file, scan, ntables, nout):
    """Whether a scan row and its file row only point inside the data, tables and output."""
    nc = file[F_NCOMP]
    if not 1 <= nc <= MAX_COMPONENTS or file[F_HEIGHT] < 1 or file[F_WIDTH] < 1:
        return False
    for c in range(nc):
        if not (1 <= file[F_V + c] <= 4 and 1 <= file[F_H + c] <= 4 and file[F_BH + c] >= 1
                and file[F_BW + c] >= 1 and file[F_BASE + c] >= 0
                and file[F_BASE + c] + file[F_BH + c] * file[F_BW + c] <= nout):
            return False
    if not 0 <= scan[S_START] <= scan[S_END] <= data.shape[0] or scan[S_RESTART] < 0:
        return False
    ns = scan[S_NCOMP]
    if not 1 <= ns <= 4:
        return False
    blocks = 0
    for j in range(ns):
        c = scan[S_COMP + j]
        if not (0 <= c < nc and 0 <= scan[S_DC + j] < ntables and 0 <= scan[S_AC + j] < ntables):
            return False
        blocks += file[F_V + c] * file[F_H + c]
    return ns == 1 or blocks <= MAX_BLOCKS_IN_MCU


@njit(cache=True)
def decode_scan(data, file, scan, look, canon, vals, out, work, lenient, zeros):
    """Decode one scan into ``out``; returns ``(status code, byte offset where it stopped)``.

    ``work``: int64 scratch of at least 24 entries. ``lenient``: extraneous bytes
    before a marker are skipped and restart markers resynchronized as libjpeg does
    (tallied in ``work[12:15]``, see ``_note``) instead of stopping with an error.
    A segment lost to resynchronization reads as libjpeg 6b reads it: its first MCU
    decoded from zero bits (``zeros``: zero bytes, of ``data``'s type), unless the
    segment before was lost too, the rest zero blocks.
    """
    if not _check_scan(data, file, scan, look.shape[0], out.shape[0]):
        return BAD_LAYOUT, scan[S_START] if 0 <= scan[S_START] <= data.shape[0] else 0
    end = scan[S_END]
    ns = scan[S_NCOMP]
    # per scan component j: blocks per MCU (v x h, 1 x 1 unless interleaved), DC prediction
    for j in range(4):
        work[j] = 1
        work[4 + j] = 1
        work[8 + j] = 0
    if ns == 1:
        c = scan[S_COMP]
        mcu_rows, mcu_cols = file[F_BH + c], file[F_BW + c]
    else:
        vmax = 1
        hmax = 1
        for c in range(file[F_NCOMP]):  # the MCU spans the largest factors of the frame, not the scan
            vmax = max(vmax, file[F_V + c])
            hmax = max(hmax, file[F_H + c])
        for j in range(ns):
            work[j] = file[F_V + scan[S_COMP + j]]
            work[4 + j] = file[F_H + scan[S_COMP + j]]
        mcu_rows = -(-file[F_HEIGHT] // (8 * vmax))
        mcu_cols = -(-file[F_WIDTH] // (8 * hmax))
    acc = 0
    nbits = 0
    pos = scan[S_START]
    lim = end
    restart = scan[S_RESTART]
    left = restart  # MCUs until the next restart marker
    marker = 0
    src = data  # lenient mode reads a lost segment's first MCU from zeros
    empty = 0  # lenient mode: 1 in a lost segment's first MCU, 2 after it (zero blocks)
    pending = 0  # where the marker that ended the last segment lies, while empty
    for my in range(mcu_rows):
        for mx in range(mcu_cols):
            if restart > 0:
                if left == 0:
                    if lenient:
                        if empty:  # the marker that emptied the last segment is still unread
                            q, lost = _resync(data, pending, end, marker, work)
                        else:
                            work[12] += nbits >> 3  # whole bytes left in the bit buffer: discarded
                            if nbits >= 8 and work[14] < 0:
                                work[14] = pos
                            q, lost = _resync(data, pos, end, marker, work)
                        if lost:
                            empty = 1 if empty == 0 else 2
                            pending = q
                            src = zeros
                            q = 0
                            lim = zeros.shape[0]
                        else:
                            empty = 0
                            src = data
                            lim = end
                    else:
                        st, pos = _segment_done(data, acc, nbits, pos, lim)
                        if st != OK:
                            return st, pos
                        q = _restart_at(data, pos, end, marker)
                        if q < 0:
                            return BAD_RESTART, pos
                        lim = end
                    acc, nbits, pos = 0, 0, q
                    marker = (marker + 1) & 7
                    left = restart
                    for j in range(4):
                        work[8 + j] = 0
                left -= 1
            for j in range(ns):
                c = scan[S_COMP + j]
                dc, ac = scan[S_DC + j], scan[S_AC + j]
                bh, bw, base = file[F_BH + c], file[F_BW + c], file[F_BASE + c]
                vj, hj = work[j], work[4 + j]
                for yy in range(vj):
                    by = my * vj + yy
                    for xx in range(hj):
                        bx = mx * hj + xx
                        b = base + by * bw + bx if by < bh and bx < bw else -1  # MCU padding blocks
                        if empty == 2:
                            if b >= 0:
                                for z in range(64):
                                    out[b, z] = 0
                            continue
                        sym, value, acc, nbits, pos, lim = _decode(src, acc, nbits, pos, lim, dc, look, canon, vals)
                        if sym < 0:
                            return -sym, pos if empty == 0 else pending
                        pred = work[8 + j] + value
                        work[8 + j] = pred
                        if b >= 0:  # int16 wrap-around, as libjpeg's (JCOEF) cast
                            for z in range(1, 64):  # out need not be zeroed: each block is written once
                                out[b, z] = 0
                            out[b, 0] = ((pred + 32768) & 0xFFFF) - 32768
                        k = 1
                        while k < 64:
                            if nbits < 16:
                                acc, nbits, pos, lim = _refill(src, acc, nbits, pos, lim)
                            if nbits >= 16:  # the fast path: code and magnitude in one look-up, no end checks
                                entry = look[ac, (acc >> (nbits - LOOKAHEAD)) & _LMASK]
                                if entry & _VALUE:  # its length is at most LOOKAHEAD < nbits
                                    nbits -= entry & _LEN
                                    sym = (entry >> 8) & 0xFF
                                    if sym & 15:
                                        k += sym >> 4
                                        if k > 63:
                                            return BAD_RUN, pos if empty == 0 else pending
                                        if b >= 0:
                                            out[b, k] = entry >> 16
                                        k += 1
                                        continue
                                    if sym != 0xF0:  # EOB (libjpeg ends the block at any run without a value but ZRL)
                                        break
                                    k += 16  # ZRL: sixteen zeros
                                    if k > 64:
                                        return BAD_RUN, pos if empty == 0 else pending
                                    continue
                            sym, value, acc, nbits, pos, lim = _decode(src, acc, nbits, pos, lim, ac, look, canon,
                                                                       vals)
                            if sym < 0:
                                return -sym, pos if empty == 0 else pending
                            r = sym >> 4
                            if sym & 15:
                                k += r
                                if k > 63:  # libjpeg would write past the block's end into coefficient 63
                                    return BAD_RUN, pos if empty == 0 else pending
                                if b >= 0:
                                    out[b, k] = value
                                k += 1
                            elif r == 15:  # ZRL: sixteen zeros
                                k += 16
                                if k > 64:
                                    return BAD_RUN, pos if empty == 0 else pending
                            else:  # EOB
                                break
            if empty == 1:
                empty = 2
    if lenient:  # libjpeg skips whatever follows, up to the next marker that is no RSTn
        if empty:
            pos = pending
        else:
            work[12] += nbits >> 3
            if nbits >= 8 and work[14] < 0:
                work[14] = pos
        while pos < end:
            m, at, after, skipped = _find_marker(data, pos, end)
            _note(work, skipped, pos)
            pos = after
        return OK, pos
    st, pos = _segment_done(data, acc, nbits, pos, lim)
    if st != OK:
        return st, pos
    return _tail(data, pos, end), pos


@njit(parallel=True, cache=True)
def decode_many(data, files, scans, look, canon, vals, out, status, where, skipped, lenient, zeros):
    """Decode every file (row of ``files``) in parallel into ``out`` (blocks, 64) int16 (each block of a
    file decoded in full is written whole; a failed file's blocks are left partly unwritten).

    ``status[f]`` gets a status code, ``where[f]`` the byte offset in ``data`` where
    decoding stopped (meaningful when the status is not OK). ``lenient``: see
    ``decode_scan``; ``skipped[f]`` gets the bytes skipped, the restart markers
    resynchronized and the offset of the first skip (-1: none); ``zeros``: zero bytes
    (a few KiB when lenient) of ``data``'s type.
    """
    for f in prange(files.shape[0]):
        work = np.empty(24, np.int64)
        work[12] = 0
        work[13] = 0
        work[14] = -1
        st = OK
        at = 0
        first, stop = files[f, F_SCAN0], files[f, F_SCAN1]
        if not 0 <= first <= stop <= scans.shape[0]:
            st = BAD_LAYOUT
        else:
            for s in range(first, stop):
                st, at = decode_scan(data, files[f], scans[s], look, canon, vals, out, work, lenient, zeros)
                if st != OK:
                    break
        status[f] = st
        where[f] = at
        if lenient:
            for i in range(3):
                skipped[f, i] = work[12 + i]
