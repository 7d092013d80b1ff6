"""JPEG files stacked in one of three forms: quantized coefficients, DCT-domain RGB, or pixels.

- ``"coefficients"``: :class:`JpegCoefficients`, the quantized coefficients as
  stored, one ``(N, BH_c, BW_c, 64)`` int16 stack per component, and the
  tables ``(N, C, 64)`` int32;
- ``"dct"``: ``(N, 3, BH, BW, 64)`` float32, ``JpegImage.to_dct(color="rgb")``;
- ``"pixels"``: ``(N, 3, H, W)`` uint8, decoded by Pillow (libjpeg) when it is
  installed, else ``JpegImage.to_pixels(color="rgb")`` rounded and clipped.

The first two are read in batches of files by the batched reader
``read_stacked`` (one parallel decoder call per batch) and, for ``"dct"``,
turned into pictures by one ``dct_picture`` per batch: the same arrays as
reading the files one by one, several times faster on small images. Where a
batch cannot be read that way (a broken file, or files whose sizes differ but
whose block grids agree, such as 30x30 next to 32x32), it is read file by file,
which names the file at fault or stacks what the one-by-one read stacks.

>>> from dctnet.datasets import jpegtree, paths
>>> with paths.bundled("cifar10-sample.zip") as path, jpegtree.open_tree(path) as tree:
...     files = jpegtree.list_tree(tree.names("test"), "test", str(path)).files
...     y, cb, cr, qtables = stack(tree, files[:8], "sample", "coefficients")
>>> y.shape, qtables.shape
((8, 4, 4, 64), (8, 3, 64))
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import jpeg
from ..jpeg import read_stacked  # the batched reader: the one place this package imports it
from ..progressbar import progress_bar

__all__ = ["FORMS", "JpegCoefficients", "stack", "pixel_decoder", "BATCH_FILES", "BATCH_BYTES"]

FORMS = ("coefficients", "dct", "pixels")
# Files per read_stacked call, at most: large enough that one call's fixed cost
# is spread thin, small enough that the file bytes and (for "dct") the float64
# temporaries of one batch stay small next to the result, and that a progress
# bar moves.
BATCH_FILES = 4096
BATCH_BYTES = 32 << 20


class JpegCoefficients(NamedTuple):
    """Stacked quantized coefficients: ``components[c]`` is ``(N, BH_c, BW_c, 64)`` int16
    in zigzag order (Y, Cb, Cr for colour files), ``qtables`` is ``(N, C, 64)`` int32."""

    components: tuple
    qtables: np.ndarray


def pixel_decoder() -> str:
    """``"pillow"`` when Pillow is installed (libjpeg's decode), else ``"float"``."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return "float"
    return "pillow"


def stack(tree, files, where: str, form: str, decoder: str | None = None, progress: bool = False) -> list:
    """The arrays of ``files`` (member names of ``tree``) in ``form``, stacked along a first axis.

    A list: the component stacks and the tables for ``"coefficients"``, one
    array otherwise. Every file must give the first one's array shapes.
    ``decoder`` (``"pillow"`` or ``"float"``, default :func:`pixel_decoder`)
    decodes ``"pixels"``; ``where`` names the tree in errors; ``progress``
    shows a tqdm bar when tqdm is installed.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, found {form!r}")
    if form == "pixels" and decoder is None:
        decoder = pixel_decoder()
    out = _Stacks(len(files), where)
    with progress_bar(len(files), Path(where).name, "file", enabled=progress) as bar:
        if form == "pixels":  # a decode to pixels per file: nothing to batch
            for i, name in enumerate(files):
                out.put(i, [p[None] for p in _decode(tree.read(name), f"{where}:{name}", form, decoder)], name)
                bar.update(1)
        else:
            for start, blobs in _batches(tree, files):
                names = files[start : start + len(blobs)]
                try:
                    parts = _read_batch(blobs, form)
                except ValueError:  # a broken file, or sizes that read_stacked keeps apart
                    for i, (data, name) in enumerate(zip(blobs, names)):
                        out.put(start + i, [p[None] for p in _decode(data, f"{where}:{name}", form, decoder)], name)
                else:
                    out.put(start, parts, names[0])
                bar.update(len(blobs))
    return out.arrays


def _batches(tree, files):
    """``(start, [bytes, ...])``: runs of ``files``' data, at most BATCH_FILES files or about BATCH_BYTES."""
    start, blobs, size = 0, [], 0
    for name in files:
        blobs.append(tree.read(name))
        size += len(blobs[-1])
        if len(blobs) == BATCH_FILES or size >= BATCH_BYTES:
            yield start, blobs
            start, blobs, size = start + len(blobs), [], 0
    if blobs:
        yield start, blobs


def _read_batch(blobs, form):
    """The stacked arrays of files of one geometry, by one ``read_stacked`` (raises ValueError otherwise)."""
    coefficients, qtables = read_stacked(blobs)
    if form == "coefficients":
        return [*coefficients, qtables]
    img = jpeg.read_jpeg(blobs[0])  # the batch's geometry: read_stacked checked that all files share it
    return [jpeg.dct_picture(coefficients, qtables.transpose(1, 0, 2), img.sampling, img.color_space,
                             img.height, img.width, color="rgb", dtype=np.float32)]


def _decode(data: bytes, where: str, form: str, decoder: str):
    """One file as a tuple of arrays: the components and table stack, or one image array."""
    if form == "pixels" and decoder == "pillow":
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.format != "JPEG":
                    raise ValueError(f"expected a JPEG file, found {im.format}")
                rgb = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:
            raise jpeg.JpegError(f"{where}: {exc}") from exc
        return (np.ascontiguousarray(rgb.transpose(2, 0, 1)),)
    try:
        img = jpeg.read_jpeg(data)
    except ValueError as exc:  # JpegError: name the member, which the reader cannot know
        raise jpeg.JpegError(f"{where}: {exc}") from exc
    if form == "coefficients":
        return (*img.coefficients, np.stack(img.qtables).astype(np.int32))
    if form == "dct":
        return (img.to_dct(color="rgb", dtype=np.float32),)
    return (np.clip(np.rint(img.to_pixels(color="rgb")), 0, 255).astype(np.uint8),)


class _Stacks:
    """``n`` samples' arrays, filled in runs; every run must have the first one's shapes per sample."""

    def __init__(self, n, where):
        self.n, self.where, self.arrays, self.first = n, where, None, None

    def put(self, start, parts, name):
        """Store ``parts`` (arrays ``(k, ...)``, the samples from ``start`` on; ``name`` the first's file)."""
        shapes = [p.shape[1:] for p in parts]
        if self.arrays is None:
            self.arrays = [np.empty((self.n,) + p.shape[1:], dtype=p.dtype) for p in parts]
            self.first = name, shapes
        elif shapes != self.first[1]:
            raise ValueError(
                f"{self.where}:{name} has array shapes {shapes}, but the first file {self.first[0]} has "
                f"{self.first[1]}; the stacked forms need files of one size, colour components "
                "and chroma subsampling: convert the odd files, or read them one by one with "
                "dctnet.jpeg.read_jpeg"
            )
        for out, p in zip(self.arrays, parts):
            out[start : start + len(p)] = p
