"""DeepN-JPEG: JPEG quantization tables designed from data statistics (Liu et al., DAC 2018).

DeepN-JPEG measures, per colour component and zigzag frequency, the standard
deviation ``delta`` of the blockwise DCT coefficients of a training set and
maps it through a piecewise linear function to a quantization step: frequencies
that vary a lot (and so carry what a network uses) get fine steps, quiet ones
coarse steps. :func:`dct_statistics` streams the statistics, :func:`deepn_table`
and :func:`deepn_tables` build the tables, :func:`encode_dataset` writes real
JPEG files with them.

>>> rng = np.random.default_rng(0)
>>> stats = dct_statistics(rng.integers(0, 256, (4, 3, 16, 16)))
>>> luma, chroma = deepn_tables(stats)
>>> luma.shape, luma.dtype, int(luma.min()) >= 1
((64,), dtype('int32'), True)
>>> sizes = file_sizes(encode_dataset(rng.integers(0, 256, (2, 3, 16, 16)), qtables=(luma, chroma)))
>>> sizes.shape
(2,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .progressbar import progress as track_progress
from .jpeg import RGB_TO_YCBCR, SUBSAMPLING, encode_jpeg
from .transform import pad_to_blocks, to_dct

__all__ = [
    "DCTStatistics", "dct_statistics", "deepn_table", "deepn_tables", "encode_dataset", "file_sizes", "scan_sizes",
]

COLORS = ("ycbcr", "rgb")


@dataclass(frozen=True)
class DCTStatistics:
    """Per channel and zigzag frequency statistics of blockwise DCT coefficients.

    ``mean``, ``std`` (population), ``mean_abs``: float64 ``(C, 64)`` in zigzag
    order, pixel units (DCT of level-shifted pixels, so ``DC = 8 * (block mean - 128)``);
    ``count``: the number of 8x8 blocks per channel behind them.
    """

    mean: np.ndarray
    std: np.ndarray
    mean_abs: np.ndarray
    count: int


# ----------------------------------------------------------------------------- statistics


def _batches(images, batch_size):
    """Chunks of at most ``batch_size`` images from one array or an iterable of batches."""
    if isinstance(images, np.ndarray):
        images = [images]
    for batch in images:
        batch = _check_batch(batch)
        for start in range(0, len(batch), batch_size):
            yield batch[start:start + batch_size]


def _check_batch(batch):
    x = np.asarray(batch)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"dct_statistics expects numeric pixels 0..255, found dtype {x.dtype}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"dct_statistics expects images (N, C, H, W) with C = 1 (grey) or 3 (RGB), or an iterable "
            f"of such batches, found shape {x.shape}"
        )
    if x.shape[0] and (x.shape[2] == 0 or x.shape[3] == 0):
        raise ValueError(f"dct_statistics expects images of at least 1x1 pixels, found shape {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError("dct_statistics expects finite pixel values, found NaN or inf")
    return x


def _coefficients(x, color):
    """DCT coefficients ``(C, blocks, 64)`` float64 of a batch ``(n, C, H, W)``."""
    x = x.astype(np.float64) - 128.0
    if x.shape[1] == 3 and color == "ycbcr":
        x = np.einsum("kc,nchw->nkhw", RGB_TO_YCBCR, x)
    coefs = to_dct(pad_to_blocks(x))  # (n, C, BH, BW, 64)
    return np.moveaxis(coefs, 1, 0).reshape(x.shape[1], -1, 64)


def dct_statistics(images, color: str = "ycbcr", batch_size: int = 1000, progress: bool = False) -> DCTStatistics:
    """Mean, std, mean |x| of the blockwise DCT coefficients per channel and zigzag frequency.

    ``images``: pixels ``(N, C, H, W)`` of 0..255 (C = 1 or 3), or an iterable of
    such batches, streamed ``batch_size`` images at a time. Colour images are
    converted to JFIF YCbCr first (``color="rgb"`` keeps RGB); every channel is
    level-shifted by 128, edge-padded to whole blocks and DCT'd (orthonormal).
    Batches are merged with Chan's parallel update in float64, so streaming
    gives the result of one pass over all the data.

    >>> s = dct_statistics(np.full((2, 1, 8, 8), 130.0))
    >>> round(float(s.mean[0, 0]), 6), float(s.std[0, 0]), s.count
    (16.0, 0.0, 2)
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, found {color!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, found {batch_size!r}")
    total = -(-len(images) // batch_size) if isinstance(images, np.ndarray) else None
    count, mean, m2, abs_sum, channels = 0, None, None, None, None
    for x in track_progress(_batches(images, batch_size), total, "DCT statistics", "batch", enabled=progress):
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"every batch must have the first batch's {channels} channels, found shape {x.shape}")
        channels = x.shape[1]
        coefs = _coefficients(x, color)
        n = coefs.shape[1]
        if n == 0:
            continue
        batch_mean = coefs.mean(axis=1)
        batch_m2 = ((coefs - batch_mean[:, None]) ** 2).sum(axis=1)
        if mean is None:
            count, mean, m2, abs_sum = n, batch_mean, batch_m2, np.abs(coefs).sum(axis=1)
            continue
        # Chan et al.: merge (count, mean, M2) of two parts without cancellation.
        delta = batch_mean - mean
        total_n = count + n
        mean = mean + delta * (n / total_n)
        m2 = m2 + batch_m2 + delta**2 * (count * n / total_n)
        abs_sum = abs_sum + np.abs(coefs).sum(axis=1)
        count = total_n
    if count == 0:
        raise ValueError("dct_statistics found no images; expected (N, C, H, W) pixels with N >= 1")
    arrays = [mean, np.sqrt(m2 / count), abs_sum / count]
    for a in arrays:
        a.flags.writeable = False  # the dataclass is frozen; keep its arrays so too
    return DCTStatistics(*arrays, int(count))


# ----------------------------------------------------------------------------- tables


def deepn_table(std, *, a=255, b=80, c=240, t1=20, t2=60, k1=9.75, k2=1, k3=3, q_min=5, scale=1.0) -> np.ndarray:
    """DeepN-JPEG quantization steps from coefficient standard deviations ``delta``.

    ``Q = a - k1*delta`` for ``delta <= t1``, ``b - k2*delta`` for ``t1 < delta <= t2``,
    ``c - k3*delta`` above; then at least ``q_min``, times ``scale``, rounded half up
    and clipped to 1..255. ``std``: ``(..., 64)`` zigzag; returns int32 of the same shape.
    Defaults are the paper's parameters.

    >>> deepn_table(np.array([0, 20, 40, 60, 61, 100] + [0] * 58))[:6].tolist()
    [255, 60, 40, 20, 57, 5]
    """
    delta = np.asarray(std, dtype=np.float64)
    if delta.ndim < 1 or delta.shape[-1] != 64:
        raise ValueError(f"std must have 64 zigzag entries in its last axis, found shape {delta.shape}")
    if not np.isfinite(delta).all() or (delta < 0).any():
        raise ValueError(f"std must be finite and >= 0, found values {delta.min()}..{delta.max()}")
    if not (np.isscalar(scale) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, found {scale!r}")
    if not (np.isscalar(q_min) and 1 <= q_min <= 255):
        raise ValueError(f"q_min must be a number in 1..255, found {q_min!r}")
    q = np.where(delta <= t1, a - k1 * delta, np.where(delta <= t2, b - k2 * delta, c - k3 * delta))
    q = np.maximum(q, q_min) * scale
    return np.clip(np.floor(q + 0.5), 1, 255).astype(np.int32)


def deepn_tables(stats, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``(luma, chroma)`` tables ``(64,)`` int32 from :class:`DCTStatistics` (or a std array ``(C, 64)``).

    Luma from channel 0, chroma from the mean std of channels 1 and 2; grey
    statistics give the luma table twice. ``kw`` go to :func:`deepn_table`.

    >>> luma, chroma = deepn_tables(np.zeros((1, 64)))
    >>> bool((luma == chroma).all()), int(luma[0])
    (True, 255)
    """
    std = np.asarray(stats.std if isinstance(stats, DCTStatistics) else stats, dtype=np.float64)
    if std.ndim != 2 or std.shape[0] not in (1, 3):
        raise ValueError(f"deepn_tables expects statistics of 1 or 3 channels, std (C, 64), found shape {std.shape}")
    luma = deepn_table(std[0], **kw)
    chroma = deepn_table(std[1:].mean(axis=0), **kw) if len(std) == 3 else luma.copy()
    return luma, chroma


# ----------------------------------------------------------------------------- encoding


def encode_dataset(images, qtables=None, quality=None, subsampling: str = "4:4:4") -> list[bytes]:
    """JPEG files (bytes) of pixels ``(N, C, H, W)`` 0..255, C = 1 (grey) or 3 (RGB).

    ``qtables``: ``(luma, chroma)`` zigzag tables (e.g. from :func:`deepn_tables`),
    or ``quality`` for the IJG tables; see :func:`dctnet.encode_jpeg`.

    >>> files = encode_dataset(np.zeros((2, 1, 8, 8)), quality=90)
    >>> len(files), files[0][:2]
    (2, b'\\xff\\xd8')
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"encode_dataset expects images (N, C, H, W) with C = 1 or 3, found shape {x.shape}")
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLING)}, found {subsampling!r}")
    return [encode_jpeg(img, quality=quality, qtables=qtables, subsampling=subsampling).to_bytes() for img in x]


def file_sizes(encoded) -> np.ndarray:
    """Sizes in bytes ``(N,)`` int64 of encoded files.

    >>> file_sizes([b"abc", b"de"]).tolist()
    [3, 2]
    """
    return np.array([len(b) for b in encoded], dtype=np.int64)


def _scan_size(data: bytes) -> int:
    """Bytes of entropy-coded data: from the end of the first SOS header to EOI."""
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"not a JPEG marker at byte {pos}: expected FF, found {data[pos]:02X}")
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # SOS: the scan follows its header
            end = len(data) - 2 if data.endswith(b"\xff\xd9") else len(data)
            return end - pos
    raise ValueError("no SOS marker: not a complete JPEG file")


def scan_sizes(encoded) -> np.ndarray:
    """Entropy-coded bytes ``(N,)`` int64 of single-scan files: their size without headers and tables.

    For tiny images the headers (quantization and Huffman tables, ~600 bytes)
    outweigh the coded data, so this is the size that the tables change.

    >>> files = encode_dataset(np.zeros((1, 1, 8, 8)), quality=90)
    >>> bool(scan_sizes(files)[0] < file_sizes(files)[0])
    True
    """
    return np.array([_scan_size(b) for b in encoded], dtype=np.int64)
