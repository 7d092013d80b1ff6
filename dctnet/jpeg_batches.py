"""From JPEG files to a network's output: the folded input map, batches, predictions.

A decoder pays separately for dequantization, the inverse DCT, chroma
upsampling, the colour transform and the level shift, and the network then
pays for its input normalization. All of them are linear, so here they fold
(docs/design.md §4): per component one GEMM of the int16 coefficients with
``diag(q) B`` (the table folded into the inverse-DCT matrix), box upsampling
of the chroma planes, and one per-pixel affine map holding the colour
transform, the level shift and, if given, the normalization. The result,
:func:`jpeg_pixels`, is the float decode (``JpegImage.to_pixels`` with the
padding kept), which a JPEG-domain network in the carried evaluation takes as
it is (:class:`~dctnet.functional.CarriedDCT`): nothing is rounded or clamped.

:func:`jpeg_pixels_nhwc` writes the same pixels channels-last in one Numba
pass, the input of the fused engine
(:meth:`dctnet.engine.FusedNet.channels_last`). :class:`JpegBatches` reads
files (paths or bytes) in batches ready for a model; :func:`predict_jpegs`
runs a model over them, by default as the fused engine.

>>> import numpy as np, dctnet
>>> from dctnet import models
>>> files = [dctnet.encode_jpeg(np.full((3, 32, 32), v, np.uint8)).to_bytes() for v in (10, 200)]
>>> net = models.paper_resnet(3, 10).eval()
>>> logits = predict_jpegs(dctnet.convert(net), files)
>>> logits.shape
(2, 10)
"""

from __future__ import annotations

import threading
from queue import Queue

import numpy as np

from . import engine
from .autograd import Tensor, no_grad
from .backend import asnumpy, device_constant, get_array_module, is_cupy_array
from .conversion import model_domain
from .functional import CarriedDCT, as_coefficients
from .jpeg import RGB_TO_YCBCR, YCBCR_TO_RGB, read_stacked
from .kernels import jpeg_input
from .threads import num_threads, parallel_for
from .transform import block_dct_matrix, to_dct

__all__ = ["jpeg_pixels", "jpeg_pixels_nhwc", "color_matrix", "JpegBatches", "predict_jpegs"]

FORMS = ("carried", "coefficients", "pixels", "channels_last")


def color_matrix(color_space, color):
    """``(C_out, C_in)``: the colour map from a file's components to ``color`` ("gray", "ycbcr", "rgb").

    Applied to the level-shifted planes (each minus 128), as the JFIF maps are linear there.

    >>> color_matrix("gray", "rgb").tolist()
    [[1.0], [1.0], [1.0]]
    """
    if color_space in ("cmyk", "ycck"):
        raise ValueError("CMYK/YCCK pictures have no RGB form; read their .coefficients")
    if color not in ("gray", "ycbcr", "rgb"):
        raise ValueError(f"color must be 'gray', 'ycbcr' or 'rgb', found {color!r}")
    if color_space == "gray":
        return {"gray": np.ones((1, 1)), "ycbcr": np.array([[1.0], [0.0], [0.0]]), "rgb": np.ones((3, 1))}[color]
    to_ycc = RGB_TO_YCBCR if color_space == "rgb" else np.eye(3)
    return {"gray": to_ycc[:1], "ycbcr": to_ycc,
            "rgb": YCBCR_TO_RGB @ to_ycc if color_space == "ycbcr" else np.eye(3)}[color]


def _dequantizing_idct(table, dtype):
    """``diag(q) B`` (64 zigzag coefficients -> 64 natural pixels): dequantization folded into the IDCT."""
    return (np.asarray(table, np.float64)[:, None] * block_dct_matrix(np.float64)).astype(dtype)


def _input_map(color_space, color, components, mean, std):
    """The folded per-pixel affine map: ``(rows, const)`` with ``out[r] = const[r] + rows[r] @ planes``
    (colour, level shift and normalization; the planes are the components' inverse DCTs)."""
    color = ("gray" if color_space == "gray" else "rgb") if color is None else color
    matrix = color_matrix(color_space, color)
    if components != matrix.shape[1]:
        raise ValueError(f"a {color_space} picture has {matrix.shape[1]} components; found {components} "
                         "coefficient stacks")
    channels = matrix.shape[0]
    mean = np.zeros(channels) if mean is None else np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (channels,))
    std = np.ones(channels) if std is None else np.broadcast_to(np.asarray(std, np.float64).reshape(-1), (channels,))
    if not np.all(std > 0):
        raise ValueError(f"std must be positive, found {std}")
    return matrix / std[:, None], (128.0 - mean) / std


def _check_parts(coefficients, qtables, sampling):
    if len(qtables) != len(coefficients) or len(sampling) != len(coefficients):
        raise ValueError(f"found {len(coefficients)} coefficient stacks, {len(qtables)} tables and {len(sampling)} "
                         "sampling factors; give one of each per component")


def jpeg_pixels(coefficients, qtables, sampling, color_space, height, width, color=None, mean=None, std=None,
                dtype=np.float32):
    """The float decode of a stack of JPEG images ``(N, C, 8*BH, 8*BW)`` from their quantized coefficients.

    Arguments as :func:`dctnet.dct_picture` (with :func:`dctnet.read_stacked`'s
    output: per component ``(N, BH_c, BW_c, 64)`` int16 and tables ``(N, 64)``
    or ``(64,)`` per component); ``mean``/``std`` (one per output channel, or
    None) fold the input normalization ``(x - mean) / std`` in. Equals
    ``from_dct(dct_picture(...))`` normalized, to float rounding; the grid is
    the picture padded to whole blocks. NumPy or CuPy arrays.
    """
    rows, const = _input_map(color_space, color, len(coefficients), mean, std)
    _check_parts(coefficients, qtables, sampling)
    dtype = np.dtype(dtype)
    xp = get_array_module(coefficients[0])
    gh, gw = -(-height // 8), -(-width // 8)
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    planes = []
    for coef, table, (v, h) in zip(coefficients, qtables, sampling):
        n, bh, bw, _ = coef.shape
        table = asnumpy(table)
        if table.ndim == 2 and not (table == table[:1]).all():  # tables differ between the images
            flat = (coef.astype(dtype) * xp.asarray(table.astype(dtype))[:, None, None, :]).reshape(-1, 64)
            pix = flat @ device_constant(block_dct_matrix, xp, dtype)
        else:
            pix = coef.reshape(-1, 64).astype(dtype) @ xp.asarray(_dequantizing_idct(table.reshape(-1, 64)[0], dtype))
        plane = pix.reshape(n, bh, bw, 8, 8).transpose(0, 1, 3, 2, 4).reshape(n, 8 * bh, 8 * bw)
        fy, fx = vmax // v, hmax // h
        if fy > 1:
            plane = xp.repeat(plane, fy, axis=1)
        if fx > 1:
            plane = xp.repeat(plane, fx, axis=2)
        planes.append(plane[:, : 8 * gh, : 8 * gw])
    out = xp.empty((planes[0].shape[0], rows.shape[0], 8 * gh, 8 * gw), dtype)
    for r in range(rows.shape[0]):  # colour, level shift (+128) and normalization in one affine map per pixel
        target = out[:, r]
        target[...] = const[r]
        for m, plane in zip(rows[r], planes):
            if m != 0:
                target += dtype.type(m) * plane
    return out


def jpeg_pixels_nhwc(coefficients, qtables, sampling, color_space, height, width, color=None, mean=None, std=None,
                     dtype=np.float32):
    """:func:`jpeg_pixels` channels-last, ``(N, 8*BH, 8*BW, C)``, in one pass (NumPy).

    The input of :meth:`dctnet.engine.FusedNet.channels_last`: each block is
    dequantized and transformed once, skipping its zero coefficients, and each
    pixel written once with the colour map and normalization folded in
    (:mod:`dctnet.kernels.jpeg_input`), on chunks of images in the engine's
    threads; nothing is transposed afterwards.

    >>> import numpy as np, dctnet
    >>> f = dctnet.encode_jpeg(np.full((3, 16, 8), 100, np.uint8)).to_bytes()
    >>> coefs, qt, first = dctnet.read_stacked([f], return_header=True)
    >>> x = jpeg_pixels_nhwc(coefs, list(qt.transpose(1, 0, 2)), first.sampling, "ycbcr", 16, 8)
    >>> x.shape, bool(np.allclose(x, 100, atol=1))
    ((1, 16, 8, 3), True)
    """
    rows, const = _input_map(color_space, color, len(coefficients), mean, std)
    _check_parts(coefficients, qtables, sampling)
    if any(is_cupy_array(c) for c in coefficients):
        raise TypeError("jpeg_pixels_nhwc runs on the CPU; for CuPy arrays use jpeg_pixels")
    dtype = np.dtype(dtype)
    gh, gw = -(-height // 8), -(-width // 8)
    vmax, hmax = (max(s[i] for s in sampling) for i in (0, 1))
    n = coefficients[0].shape[0]
    out = np.empty((n, 8 * gh, 8 * gw, rows.shape[0]), dtype)
    coefs = tuple(np.ascontiguousarray(c, np.int16) for c in coefficients)
    tables = tuple(np.ascontiguousarray(np.broadcast_to(np.asarray(asnumpy(t), dtype).reshape(-1, 64), (n, 64)))
                   for t in qtables)
    fy = np.array([vmax // v for v, _ in sampling], np.int64)
    fx = np.array([hmax // h for _, h in sampling], np.int64)
    args = block_dct_matrix(dtype), fy, fx, np.ascontiguousarray(rows, dtype), const.astype(dtype)
    # one task per thread: the images are independent, and each task's call costs a dispatch of
    # tuples of arrays under the GIL (a CIFAR-10 batch of 128: 5.2 us per image in 2 tasks, 5.7 in 16)
    per_task = max(1, -(-n // num_threads()))
    tasks = -(-n // per_task)

    def task(worker, t):
        s = slice(t * per_task, (t + 1) * per_task)
        jpeg_input.pixels_nhwc(tuple(c[s] for c in coefs), tuple(q[s] for q in tables), *args, out[s])

    parallel_for(task, tasks)
    return out


class JpegBatches:
    """Batches of JPEG files (paths or bytes) as a model's input, in order.

    Each batch is read with :func:`dctnet.read_stacked` (its files must share
    one geometry) and mapped by :func:`jpeg_pixels`; ``form`` says what is
    yielded: ``"carried"`` (a :class:`~dctnet.functional.CarriedDCT`, the
    input of a JPEG-domain model in the carried evaluation), ``"coefficients"``
    (a ``(N, C, BH, BW, 64)`` array, any JPEG-domain model), ``"pixels"``
    (the float decode ``(N, C, 8*BH, 8*BW)``, for a pixel model) or
    ``"channels_last"`` (the float decode ``(N, 8*BH, 8*BW, C)`` by
    :func:`jpeg_pixels_nhwc`, the input of
    :meth:`dctnet.engine.FusedNet.channels_last`). ``color``, ``mean``,
    ``std``, ``dtype`` as in :func:`jpeg_pixels`. With ``prefetch`` a thread
    reads batch b+1 while the caller works on batch b.

    >>> import numpy as np, dctnet
    >>> files = [dctnet.encode_jpeg(np.zeros((1, 16, 8), np.uint8)).to_bytes()] * 3
    >>> [x.shape for x in JpegBatches(files, batch_size=2, form="coefficients")]
    [(2, 1, 2, 1, 64), (1, 1, 2, 1, 64)]
    """

    def __init__(self, files, batch_size=128, form="carried", color=None, mean=None, std=None, dtype=np.float32,
                 prefetch=True, threads=None):
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, found {form!r}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer, found {batch_size!r}")
        self.files = list(files)
        self.batch_size, self.form, self.color, self.mean, self.std = batch_size, form, color, mean, std
        self.dtype, self.prefetch, self.threads = np.dtype(dtype), prefetch, threads

    def __len__(self):
        return -(-len(self.files) // self.batch_size)

    def batch(self, b):
        """Batch ``b`` (0-based), read now."""
        files = self.files[b * self.batch_size:(b + 1) * self.batch_size]
        if not files:
            raise IndexError(f"batch {b} is out of range: {len(self)} batches of {len(self.files)} files")
        coefs, qtables, first = read_stacked(files, threads=self.threads, return_header=True)
        make = jpeg_pixels_nhwc if self.form == "channels_last" else jpeg_pixels
        pixels = make(coefs, list(qtables.transpose(1, 0, 2)), first.sampling, first.color_space,
                      first.height, first.width, self.color, self.mean, self.std, self.dtype)
        if self.form in ("pixels", "channels_last"):
            return pixels
        return CarriedDCT(pixels) if self.form == "carried" else to_dct(pixels)

    def __iter__(self):
        if not self.prefetch or len(self) < 2:
            yield from (self.batch(b) for b in range(len(self)))
            return
        ready = Queue(maxsize=1)  # one batch ahead: the reader never runs away with the memory

        def read():
            for b in range(len(self)):
                try:
                    ready.put((self.batch(b), None))
                except Exception as exc:  # handed to the caller, in order
                    ready.put((None, exc))
                    return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        for _ in range(len(self)):
            batch, exc = ready.get()
            if exc is not None:
                raise exc
            yield batch
        thread.join()


def _fused(model, dtype, fused):
    """``engine.fuse(model)`` when ``fused`` allows it and the model can take it, else None."""
    if fused is False:
        return None
    net = engine.fuse_if_possible(model, dtype)
    if net is None and fused:
        engine.fuse(model)  # raises the engine's own reason when it is a layer
        raise TypeError(f"the fused engine runs on the CPU in the batches' dtype {np.dtype(dtype)}; the "
                        f"model's parameters are {sorted({str(p.dtype) for p in model.parameters()})}"
                        f"{' on the GPU' if any(is_cupy_array(p.data) for p in model.parameters()) else ''}")
    return net


def predict_jpegs(model, files, batch_size=128, color=None, dtype=np.float32, prefetch=False, threads=1,
                  fused=None):
    """``model``'s outputs for JPEG ``files`` (paths or bytes), a NumPy array ``(N, ...)``, in order.

    A JPEG-domain model (:func:`dctnet.convert`) gets the coefficients, carried
    as pixels where its layers use the carried evaluation; a pixel model gets
    the float decode. By default (``fused=None``) a CPU model whose layers the
    fused engine takes (:data:`dctnet.engine.SUPPORTED`, ``SUPPORTED_JPEG``)
    runs as :func:`dctnet.engine.fuse` of it, fed by :func:`jpeg_pixels_nhwc`
    with the model's input normalization folded into the input map; the
    same function, faster (docs/design.md §4). ``fused=False`` runs the model
    itself, ``True`` requires the engine. ``prefetch`` is off by default: on a
    2-core machine reading ahead in a thread took as much from the engine as it
    hid (docs/design.md §4). ``threads`` are the decoder's
    (:func:`dctnet.read_stacked`), one by default: its OpenMP workers spin
    after each batch and took the cores from the network (3.0k against 3.7k
    CIFAR-10 images/s, docs/design.md §4). Runs in eval mode without recording
    gradients (the model's mode is restored). See :class:`JpegBatches` for the
    other arguments.
    """
    net = _fused(model, dtype, fused)
    if net is not None:
        affine = net.input_affine
        mean, std = (None, None) if affine is None else (-affine[1] / affine[0], 1 / affine[0])
        batches = JpegBatches(files, batch_size, "channels_last", color, mean, std, dtype, prefetch, threads)
        outs = [asnumpy(as_coefficients(net.channels_last(x, affine_applied=affine is not None)).data)
                for x in batches]
        return np.concatenate(outs) if outs else np.zeros((0,))
    domain = model_domain(model)
    carried = domain == "jpeg" and any(getattr(m, "evaluation", None) == "carried" for m in model.modules())
    form = "pixels" if domain == "pixel" else "carried" if carried else "coefficients"
    batches = JpegBatches(files, batch_size, form, color, dtype=dtype, prefetch=prefetch, threads=threads)
    training = model.training
    model.eval()
    try:
        with no_grad():
            outs = [asnumpy(as_coefficients(model(x if form == "carried" else Tensor(x))).data) for x in batches]
    finally:
        model.train(training)
    return np.concatenate(outs) if outs else np.zeros((0,))
