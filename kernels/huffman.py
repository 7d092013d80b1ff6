"""Baseline JPEG entropy decoding: Huffman-coded sequential scans to quantized coefficients.

No inverse DCT: each 8x8 block's coefficients are written in zigzag order, DC
prediction undone, straight into a flat ``(blocks, 64)`` int16 buffer that the
caller views as per-component ``(BH_c, BW_c, 64)`` arrays. The decoding follows
libjpeg 6b (what jpeglib runs) bit for bit; wherever libjpeg would warn and carry
on (data running out, a bad code, a wrong restart marker, leftover bytes) the
kernels stop with an error code instead, and every index into the byte stream,
the tables and the output is checked before use.

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

LOOKAHEAD = 9  # bits resolved by one table look-up; longer codes use the canonical walk
MAX_BLOCKS_IN_MCU = 10  # libjpeg's D_MAX_BLOCKS_IN_MCU (and the standard's)

# file table columns: image size, component count, per component c (0..2) sampling,
# block grid and first block in the output, and the file's rows of the scan table
F_HEIGHT, F_WIDTH, F_NCOMP, F_V, F_H, F_BH, F_BW, F_BASE, F_SCAN0, F_SCAN1 = 0, 1, 2, 3, 6, 9, 12, 15, 18, 19
F_COLS = 20
# scan table columns: entropy-coded data [start, end), restart interval, component count,
# then per scan component j (0..3): component index, DC table, AC table
S_START, S_END, S_RESTART, S_NCOMP, S_COMP, S_DC, S_AC = 0, 1, 2, 3, 4, 8, 12
S_COLS = 16


@njit(cache=True)
def build_table(bits, vals, is_dc, look, canon):
    """Derive the decoding tables of one DHT table; returns a ``TABLE_*`` status.

    ``bits[l]`` codes of length l (1..16), ``vals`` the symbols. ``look[w]`` for the
    next 9 bits w is ``length << 8 | symbol`` of the code they start with, or 0 when
    that code is longer (or absent); ``canon[0, l]`` is the largest code of length
    l (-1: none) and ``canon[1, l]`` maps such a code to its index in ``vals``.
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
                    entry = (l << 8) | vals[p + i]
                    for w in range((code + i) << shift, (code + i + 1) << shift):
                        look[w] = entry
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


# The bit reader's state br: [bit buffer, bits held, next byte, 1 once a marker or the end is reached].
@njit(cache=True)
def _fill(data, end, br):
    """Top up the bit buffer past 48 bits from ``data[br[2]:end]``, unstuffing, stopping at a marker."""
    acc = br[0]
    nbits = br[1]
    pos = br[2]
    while nbits <= 48 and br[3] == 0:
        if pos >= end:
            br[3] = 1
            break
        b = data[pos]
        if b == 0xFF:
            q = pos + 1
            while q < end and data[q] == 0xFF:  # fill bytes
                q += 1
            if q < end and data[q] == 0:
                pos = q + 1  # FF 00 stands for a data byte FF
            else:
                br[3] = 1  # a marker: the data ends where its FF starts
                break
        else:
            pos += 1
        acc = (acc << 8) | b  # older bits fall off the top; reads mask them out
        nbits += 8
    br[0] = acc
    br[1] = nbits
    br[2] = pos


@njit(cache=True)
def _bits(data, end, br, n):
    """The next ``n`` (<= 16) bits as an unsigned number, or -1 when the data runs out."""
    if br[1] < n:
        _fill(data, end, br)
        if br[1] < n:
            return -1
    br[1] -= n
    return (br[0] >> br[1]) & ((1 << n) - 1)


@njit(cache=True)
def _symbol(data, end, br, t, look, canon, vals):
    """The next Huffman symbol of table ``t``, or minus a status code."""
    if br[1] < 16:
        _fill(data, end, br)
    nbits = br[1]
    if nbits >= 16:
        w = (br[0] >> (nbits - 16)) & 0xFFFF
    else:  # past the data libjpeg reads zeros; using them is caught below
        w = (br[0] << (16 - nbits)) & 0xFFFF
    entry = look[t, w >> (16 - LOOKAHEAD)]
    if entry != 0:
        length = entry >> 8
        sym = entry & 0xFF
    else:
        length = 0
        sym = 0
        for l in range(LOOKAHEAD + 1, 17):
            code = w >> (16 - l)
            if code <= canon[t, 0, l]:
                i = canon[t, 1, l] + code
                if i < 0 or i >= vals.shape[1]:
                    return -BAD_CODE
                length = l
                sym = vals[t, i]
                break
        if length == 0:
            return -PAST_END if nbits < 16 else -BAD_CODE
    if length > nbits:
        return -PAST_END
    br[1] = nbits - length
    return sym


@njit(cache=True)
def _extend(v, s):
    """The signed value of the ``s``-bit magnitude category code ``v`` (F.2.2.1)."""
    return v if v >= (1 << (s - 1)) else v - (1 << s) + 1


@njit(cache=True)
def _block(data, end, br, dc, ac, look, canon, vals, out, b, pred, j):
    """Decode one block into ``out[b]`` (``b < 0``: a padding block, decoded and dropped)."""
    s = _symbol(data, end, br, dc, look, canon, vals)
    if s < 0:
        return -s
    if s > 0:
        v = _bits(data, end, br, s)
        if v < 0:
            return PAST_END
        pred[j] += _extend(v, s)
    if b >= 0:  # int16 wrap-around, as libjpeg's (JCOEF) cast
        out[b, 0] = ((pred[j] + 32768) & 0xFFFF) - 32768
    k = 1
    while k < 64:
        rs = _symbol(data, end, br, ac, look, canon, vals)
        if rs < 0:
            return -rs
        r = rs >> 4
        s = rs & 15
        if s > 0:
            k += r
            if k > 63:  # libjpeg would write past the block's end into coefficient 63
                return BAD_RUN
            v = _bits(data, end, br, s)
            if v < 0:
                return PAST_END
            if b >= 0:
                out[b, k] = _extend(v, s)
            k += 1
        elif r == 15:  # ZRL: sixteen zeros
            k += 16
            if k > 64:
                return BAD_RUN
        else:  # EOB
            break
    return OK


@njit(cache=True)
def _segment_done(data, end, br):
    """After a segment's last MCU: no whole data byte may be left (libjpeg warns of extraneous data)."""
    _fill(data, end, br)
    return EXTRA_DATA if br[1] >= 8 else OK


@njit(cache=True)
def _restart(data, end, br, n):
    """Step over the restart marker RSTn that must come next, and reset the bit reader."""
    st = _segment_done(data, end, br)
    if st != OK:
        return st
    q = br[2]
    while q < end and data[q] == 0xFF:
        q += 1
    if q >= end or q == br[2] or data[q] != 0xD0 + n:
        return BAD_RESTART
    br[0] = 0
    br[1] = 0
    br[2] = q + 1
    br[3] = 0
    return OK


@njit(cache=True)
def _scan_tail(data, end, br):
    """After the scan's last MCU only fill bytes and stray restart markers may precede ``end``."""
    st = _segment_done(data, end, br)
    if st != OK:
        return st
    q = br[2]
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
def _check_scan(data, file, scan, ntables, nout):
    """Whether a scan row and its file row only point inside the data, tables and output."""
    nc = file[F_NCOMP]
    if not 1 <= nc <= 3 or file[F_HEIGHT] < 1 or file[F_WIDTH] < 1:
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
def decode_scan(data, file, scan, look, canon, vals, out, br):
    """Decode one scan into ``out``; returns a status code (``br[2]`` says where it stopped)."""
    if not _check_scan(data, file, scan, look.shape[0], out.shape[0]):
        return BAD_LAYOUT
    end = scan[S_END]
    br[0] = 0
    br[1] = 0
    br[2] = scan[S_START]
    br[3] = 0
    ns = scan[S_NCOMP]
    v = np.ones(4, np.int64)  # blocks per MCU of each scan component: 1 x 1 unless interleaved
    h = np.ones(4, np.int64)
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
            v[j] = file[F_V + scan[S_COMP + j]]
            h[j] = file[F_H + scan[S_COMP + j]]
        mcu_rows = -(-file[F_HEIGHT] // (8 * vmax))
        mcu_cols = -(-file[F_WIDTH] // (8 * hmax))
    pred = np.zeros(4, np.int64)
    restart = scan[S_RESTART]
    count = 0
    for my in range(mcu_rows):
        for mx in range(mcu_cols):
            if restart > 0 and count > 0 and count % restart == 0:
                st = _restart(data, end, br, (count // restart - 1) & 7)
                if st != OK:
                    return st
                pred[:] = 0
            for j in range(ns):
                c = scan[S_COMP + j]
                bh, bw, base = file[F_BH + c], file[F_BW + c], file[F_BASE + c]
                for yy in range(v[j]):
                    by = my * v[j] + yy
                    for xx in range(h[j]):
                        bx = mx * h[j] + xx
                        b = base + by * bw + bx if by < bh and bx < bw else -1  # MCU padding blocks
                        st = _block(data, end, br, scan[S_DC + j], scan[S_AC + j], look, canon, vals,
                                    out, b, pred, j)
                        if st != OK:
                            return st
            count += 1
    return _scan_tail(data, end, br)


@njit(parallel=True, cache=True)
def decode_many(data, files, scans, look, canon, vals, out, status, where):
    """Decode every file (row of ``files``) in parallel into the zeroed ``out`` (blocks, 64) int16.

    ``status[f]`` gets a status code, ``where[f]`` the byte offset in ``data`` where
    decoding stopped (meaningful when the status is not OK).
    """
    for f in prange(files.shape[0]):
        br = np.zeros(4, np.int64)
        st = OK
        first, stop = files[f, F_SCAN0], files[f, F_SCAN1]
        if not 0 <= first <= stop <= scans.shape[0]:
            st = BAD_LAYOUT
        else:
            for s in range(first, stop):
                st = decode_scan(data, files[f], scans[s], look, canon, vals, out, br)
                if st != OK:
                    break
        status[f] = st
        where[f] = br[2]
