"""2-D convolution (cross-correlation, as PyTorch's ``conv2d``) by im2col + GEMM.

Two evaluations of the same op, pinned against each other by the tests:

* NumPy arrays run on the CPU engine (see "CPU path" below): NCHW in and
  out, a few images per task on the engine's threads (:mod:`dctnet.threads`),
  Numba im2col into cache-sized pieces, one single-threaded GEMM per image
  straight into the NCHW output; backward likewise (weight gradient per task,
  added in task order; input gradient by transposed convolution per stride
  phase). The fused engine's channels-last pieces are in
  :mod:`dctnet.functional.channels_last`.
* CuPy arrays run the array expressions below, where the batch is processed in
  chunks of CHUNK_BYTES and every chunk is one GEMM
  ``W (Cout, Cin*kh*kw) @ cols (Cin*kh*kw, P)``. Stride-1 columns are gathered
  "flat": each zero-padded image is read as one flat row, so the input of
  kernel tap (i, j) for all output pixels is the contiguous run starting at
  ``i*Wp + j``; the run also covers the ``kw - 1`` columns between output rows,
  computed and dropped. Strided columns are a strided window view, copied once.
  Backward recomputes each chunk's columns for ``dW = g @ cols.T`` and gets
  ``dx`` by transposed convolution: per stride phase, one stride-1 conv of g
  with the flipped sub-kernel that reaches that phase (no multiplications by
  inserted zeros, no col2im).

>>> import numpy as np
>>> x = np.ones((1, 1, 4, 4), np.float32)
>>> conv2d(x, np.ones((1, 1, 3, 3), np.float32), padding=1).data[0, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from .. import buffers
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import conv as conv_kernels
from ..threads import parallel_for, scratch
from ._utils import check_float, pair, shape_of

__all__ = ["conv2d"]

# Bytes of column matrix per piece. "cpu": the CPU engine's pieces (this
# module's NumPy path and dctnet.functional.channels_last), which should stay
# in a core's cache (2 MiB of L2 per core here) next to their input and
# output. "numpy"/"cupy": the array path's chunks; on a GPU large GEMMs are
# best, and on NumPy arrays (the tests' reference) 2-8 MiB measured best with
# multi-threaded BLAS.
CHUNK_BYTES = {"cpu": 1 << 20, "numpy": 4 << 20, "cupy": 512 << 20}


def _as_strided(xp, a, shape, strides):
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=[s * a.itemsize for s in strides])


class _Geometry:
    """Sizes of one conv call, the chunking of its batch and its im2col buffers.

    ``padding`` is (top, bottom, left, right): the input gradient convolves with
    asymmetric padding.
    """

    def __init__(self, xp, xshape, wshape, stride, padding, dtype):
        self.xp, self.dtype = xp, dtype
        self.n, self.c, self.h, self.w = xshape
        self.o, _, self.kh, self.kw = wshape
        (self.sh, self.sw), (self.top, bottom, self.left, right) = stride, padding
        self.hp, self.wp = self.h + self.top + bottom, self.w + self.left + right
        self.ho = (self.hp - self.kh) // self.sh + 1
        self.wo = (self.wp - self.kw) // self.sw + 1
        self.flat = stride == (1, 1)
        self.wc = self.wp if self.flat else self.wo  # columns per output row in cols
        self.k = self.c * self.kh * self.kw
        per_image = self.k * self.ho * self.wc * np.dtype(dtype).itemsize
        budget = CHUNK_BYTES["numpy" if xp is np else "cupy"]
        self.chunk = int(min(self.n, max(1, budget // per_image)))
        self.image = self.c * self.hp * self.wp  # elements of one padded image

    def chunks(self):
        return [(s, min(self.chunk, self.n - s)) for s in range(0, self.n, self.chunk)]

    def buffers(self):
        """A zero-padded chunk (kw spare zeros: flat runs read a little past the
        last image) and room for its columns."""
        pbuf = self.xp.zeros(self.chunk * self.image + self.kw, self.dtype)
        return pbuf, self.xp.empty(self.chunk * self.k * self.ho * self.wc, self.dtype)

    def im2col(self, x, start, count, pbuf, cbuf):
        """Columns (K, count*ho*wc) of images ``start .. start+count`` of ``x``."""
        xpad = pbuf[: count * self.image].reshape(count, self.c, self.hp, self.wp)
        xpad[:, :, self.top : self.top + self.h, self.left : self.left + self.w] = x[start : start + count]
        if self.flat:
            shape = (self.c, self.kh, self.kw, count, self.ho * self.wp)
            strides = (self.hp * self.wp, self.wp, 1, self.image, 1)
        else:
            shape = (self.c, self.kh, self.kw, count, self.ho, self.wo)
            strides = (self.hp * self.wp, self.wp, 1, self.image, self.sh * self.wp, self.sw)
        cols = cbuf[: self.k * count * self.ho * self.wc].reshape(shape)
        cols[...] = _as_strided(self.xp, pbuf, shape, strides)
        return cols.reshape(self.k, -1)

    def grad_chunk(self, g, start, count, gbuf):
        """``g[start:start+count]`` as (Cout, count*ho*wc), laid out like the GEMM output.

        Columns beyond wo (flat layout) stay zero, so dropped outputs pass no
        gradient: ``gbuf`` starts zeroed and rows are wc apart whatever ``count``.
        """
        gc = gbuf[: self.o * count * self.ho * self.wc].reshape(self.o, count, self.ho, self.wc)
        gc[..., : self.wo] = g[start : start + count].transpose(1, 0, 2, 3)
        return gc.reshape(self.o, -1)


def _forward(xp, x, weight, bias, stride, padding):
    geo = _Geometry(xp, x.shape, weight.shape, stride, padding, x.dtype)
    w2 = weight.reshape(geo.o, geo.k)
    out = xp.empty((geo.n, geo.o, geo.ho, geo.wo), x.dtype)
    pbuf, cbuf = geo.buffers()
    obuf = xp.empty(geo.o * geo.chunk * geo.ho * geo.wc, x.dtype)
    for start, count in geo.chunks():
        cols = geo.im2col(x, start, count, pbuf, cbuf)
        y = xp.matmul(w2, cols, out=obuf[: geo.o * cols.shape[1]].reshape(geo.o, -1))
        y = y.reshape(geo.o, count, geo.ho, geo.wc)[..., : geo.wo].transpose(1, 0, 2, 3)
        if bias is None:
            out[start : start + count] = y
        else:  # the bias add rides on the copy back to NCHW
            xp.add(y, bias.reshape(-1, 1, 1), out=out[start : start + count])
    return out


def _weight_grad(xp, x, g, wshape, stride, padding):
    geo = _Geometry(xp, x.shape, wshape, stride, padding, x.dtype)
    gbuf = xp.zeros(geo.o * geo.chunk * geo.ho * geo.wc, g.dtype)
    pbuf, cbuf = geo.buffers()
    # (K, P) @ (P, Cout): measured 2x faster in BLAS than (Cout, P) @ (P, K)
    gwt = xp.zeros((geo.k, geo.o), g.dtype)
    for start, count in geo.chunks():
        gwt += geo.im2col(x, start, count, pbuf, cbuf) @ geo.grad_chunk(g, start, count, gbuf).T
    return gwt.T.reshape(wshape)


def _input_grad(xp, g, weight, xshape, stride, padding):
    """dL/dx as transposed convolutions, one per stride phase (polyphase).

    The input pixels of one phase (u = start + s*m) meet the kernel taps
    ``a::s`` only, so their gradient is an ordinary stride-1 conv of g with that
    sub-kernel flipped and transposed: one GEMM per chunk with inner dimension
    Cout*taps, and no multiplications by inserted zeros. Measured 1.4-2x faster
    than col2im (a (Cin*kh*kw, Cout) GEMM, whose inner dimension is only Cout,
    plus kh*kw scatter-adds) on the paper's shapes, all but the 3-channel input
    layer, whose input gradient a network never needs.
    """
    (sh, sw), (ph, pw) = stride, padding
    h, w = xshape[2:]
    ho, wo = g.shape[2:]
    # pixels that no tap reaches (e.g. odd ones of a 1x1 stride-2 conv) keep zero
    gx = None if (sh, sw) == (1, 1) else xp.zeros(xshape, g.dtype)
    for a in range(sh):
        th, r0, rows, top, bottom = stride_phase(a, weight.shape[2], sh, ph, h, ho)
        for b in range(sw):
            tw, c0, cols, left, right = stride_phase(b, weight.shape[3], sw, pw, w, wo)
            gs = g[:, :, max(0, -top) : ho - max(0, -bottom), max(0, -left) : wo - max(0, -right)]
            if min(th, tw, rows, cols) <= 0 or gs.size == 0:
                continue
            sub = weight[:, :, a::sh, b::sw].transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
            pad4 = (max(0, top), max(0, bottom), max(0, left), max(0, right))
            part = _forward(xp, gs, xp.ascontiguousarray(sub), None, (1, 1), pad4)
            if gx is None:  # stride 1: one phase, the whole gradient
                return part
            gx[:, :, r0::sh, c0::sw] = part
    return gx


# ----------------------------------------------------------------------------- CPU path
#
# conv2d on NumPy arrays, NCHW in and out: no layout conversion at the op's
# boundary (the fused engine, which keeps activations channels-last from layer
# to layer, has its own pieces in dctnet.functional.channels_last). The
# functions ending in ``_images`` compute one task's share (a few images) on
# the calling thread; the ``cpu_*`` drivers spread tasks over the threads.

# At least this many tasks per call when the batch allows, so that every
# thread of a small machine gets work; a constant, so that the chunking (and
# with it every sum's order) does not depend on the thread count.
MIN_TASKS = 4


def split(n, most):
    """(images per task, tasks) for ``n`` images, at most ``most`` and a MIN_TASKS-th of ``n``
    per task, the task count rounded up to a multiple of MIN_TASKS as far as equal chunks allow, so
    that two or four threads get equal shares (40 images in 8 tasks of 5, not 5 of 8, where one
    of two threads would wait a fifth of the call)."""
    chunk = max(1, min(n, most, -(-n // MIN_TASKS)))
    tasks = -(-n // chunk)
    tasks = min(n, -(-tasks // MIN_TASKS) * MIN_TASKS)  # up to a multiple of MIN_TASKS, then equal chunks
    chunk = -(-n // tasks)
    return chunk, -(-n // chunk)


def chunking(n, per_image_bytes):
    """:func:`split` of ``n`` images with as many per task as CHUNK_BYTES["cpu"] of ``per_image_bytes`` hold."""
    return split(n, CHUNK_BYTES["cpu"] // max(1, per_image_bytes))


def stride_phase(a, k, s, p, n_in, n_out):
    """Input positions ``u = start + s*m`` (m < count) see kernel taps ``a, a+s, ...``;
    their gradient is a stride-1 correlation of g, padded by (top, bottom), with
    those taps flipped. Returns (taps, start, count, top, bottom)."""
    taps = len(range(a, k, s))
    m0 = -((a - p) // s)  # first m with s*m + a >= p, i.e. inside the unpadded input
    count = (p + n_in - 1 - a) // s - m0 + 1
    top = taps - 1 - m0
    return taps, s * m0 + a - p, count, top, count + m0 - n_out


def _forward_images(x, w2, kernel, stride, top, left, out, epilogue=None):
    """``out`` (n, Cout, ho, wo) = conv of ``x`` (n, Cin, H, W) by ``w2`` (Cout, Cin*kh*kw).

    ``top``/``left`` pad before the image (negative: crop); ``out``'s size
    fixes the padding after it. The columns are built in cache-sized pieces of
    images, each followed by one GEMM per image straight into the NCHW output
    and, while that is still in cache, ``epilogue(start, count, y)`` with
    ``y = out[start:start+count]`` as (count, Cout, ho*wo). A 1x1 stride-1
    unpadded conv multiplies its input as it is (no im2col).
    """
    n, c, h, w = x.shape
    o, k = w2.shape
    (kh, kw), (sh, sw) = kernel, stride
    ho, wo = out.shape[2:]
    hw = ho * wo
    direct = (kh, kw, sh, sw, top, left, ho, wo) == (1, 1, 1, 1, 0, 0, h, w)
    piece = n if direct else max(1, CHUNK_BYTES["cpu"] // (k * hw * x.itemsize))
    for s in range(0, n, piece):
        m = min(piece, n - s)
        if direct:
            cols = x[s : s + m].reshape(m, k, hw)
        else:
            cols = scratch("conv.cols", (m, k, hw), x.dtype)
            conv_kernels.im2col(x, s, m, kh, kw, sh, sw, top, left, ho, wo, cols.reshape(-1), k * hw, hw)
        y = np.matmul(w2, cols, out=out[s : s + m].reshape(m, o, hw))
        if epilogue is not None:
            epilogue(s, m, y)
    return out


def _weight_grad_images(x, g, kernel, stride, top, left, out):
    """``out`` (Cin*kh*kw, Cout) = this chunk's dL/dweight, transposed: cols @ g^T.

    (K, P) @ (P, Cout) is the operand order BLAS runs fastest here, so the
    gradient is copied once to (P, Cout).
    """
    n, c = x.shape[:2]
    o, ho, wo = g.shape[1:]
    (kh, kw), (sh, sw) = kernel, stride
    k, hw = c * kh * kw, ho * wo
    cols = scratch("conv.cols", (k, n * hw), x.dtype)
    conv_kernels.im2col(x, 0, n, kh, kw, sh, sw, top, left, ho, wo, cols.reshape(-1), hw, n * hw)
    gt = scratch("conv.grad", (n, hw, o), g.dtype)
    gt[...] = g.reshape(n, o, hw).transpose(0, 2, 1)
    return np.matmul(cols, gt.reshape(n * hw, o), out=out)


def input_grad_phases(weight, size, grad_size, stride, padding):
    """The stride phases of a conv's input gradient: for each phase that some tap
    reaches, ``(sub, (th, tw), top, left, rows, cols, r0, c0)`` where ``sub`` is the
    flipped, transposed sub-kernel (Cin, Cout, th, tw) of a stride-1 conv of g
    padded by ``top``/``left`` into ``rows x cols`` outputs, the input pixels
    ``r0::sh, c0::sw``. ``size``/``grad_size`` are (H, W) of x and of g."""
    (sh, sw), (ph, pw) = stride, padding
    (h, w), (ho, wo) = size, grad_size
    for a in range(sh):
        th, r0, rows, top, _ = stride_phase(a, weight.shape[2], sh, ph, h, ho)
        for b in range(sw):
            tw, c0, cols, left, _ = stride_phase(b, weight.shape[3], sw, pw, w, wo)
            if min(th, tw, rows, cols) > 0:
                sub = weight[:, :, a::sh, b::sw].transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
                yield sub, (th, tw), top, left, rows, cols, r0, c0


class _InputGradPlan:
    """dL/dx of a conv as transposed convolutions, one stride-1 conv per stride phase.

    The input pixels of one phase (u = start + s*m) meet the kernel taps
    ``a::s`` only, so their gradient is an ordinary stride-1 conv of g with
    that sub-kernel flipped and transposed: no multiplications by inserted
    zeros, no col2im (see :func:`_input_grad`).
    """

    def __init__(self, weight, xshape, gshape, stride, padding):
        self.cin, self.stride = weight.shape[1], stride
        self.phases = [(np.ascontiguousarray(sub).reshape(self.cin, -1), *rest)
                       for sub, *rest in input_grad_phases(weight, xshape[2:], gshape[2:], stride, padding)]

    def images(self, g, out):
        """``out`` (n, Cin, H, W) = dL/dx of the images whose output gradient is ``g``."""
        n = g.shape[0]
        if self.stride == (1, 1):  # one phase, the whole gradient
            w2, kernel, top, left = self.phases[0][:4]
            return _forward_images(g, w2, kernel, (1, 1), top, left, out)
        # pixels that no tap reaches (e.g. odd ones of a 1x1 stride-2 conv) stay zero
        out[...] = 0
        for w2, kernel, top, left, rows, cols, r0, c0 in self.phases:
            part = scratch("conv.phase", (n, self.cin, rows, cols), g.dtype)
            _forward_images(g, w2, kernel, (1, 1), top, left, part)
            out[:, :, r0 :: self.stride[0], c0 :: self.stride[1]] = part
        return out


def cpu_forward(x, weight, bias, stride, padding):
    """conv2d of C-contiguous NumPy arrays, a few images per task on the engine's threads."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    w2 = weight.reshape(o, -1)
    out = buffers.empty((n, o, ho, wo), x.dtype)
    chunk, tasks = chunking(n, w2.shape[1] * ho * wo * x.itemsize)

    def add_bias(start, count, y):
        conv_kernels.bias_act(y, bias, False)

    def task(worker, t):
        part = slice(t * chunk, (t + 1) * chunk)
        _forward_images(x[part], w2, (kh, kw), stride, ph, pw, out[part], None if bias is None else add_bias)

    parallel_for(task, tasks)
    return out


def cpu_weight_grad(x, g, wshape, stride, padding):
    """dL/dweight: per-task partial sums, added in task order (whatever thread ran which)."""
    n, c = x.shape[:2]
    o, _, kh, kw = wshape
    chunk, tasks = chunking(n, c * kh * kw * g.shape[2] * g.shape[3] * x.itemsize)
    partial = np.empty((tasks, c * kh * kw, o), g.dtype)

    def task(worker, t):
        part = slice(t * chunk, (t + 1) * chunk)
        _weight_grad_images(x[part], g[part], (kh, kw), stride, *padding, partial[t])

    parallel_for(task, tasks)
    return partial.sum(axis=0).T.reshape(wshape)


def cpu_input_grad(g, weight, xshape, stride, padding):
    """dL/dx by :class:`InputGradPlan`, a few images per task on the engine's threads."""
    plan = _InputGradPlan(weight, xshape, g.shape, stride, padding)
    gx = buffers.empty(xshape, g.dtype)
    o, _, kh, kw = weight.shape
    chunk, tasks = chunking(g.shape[0], o * kh * kw * xshape[2] * xshape[3] * g.itemsize)

    def task(worker, t):
        part = slice(t * chunk, (t + 1) * chunk)
        plan.images(g[part], gx[part])

    parallel_for(task, tasks)
    return gx


class Conv2d(Function):
    # NumPy float32/float64 arrays take the CPU engine's path (threads, Numba
    # im2col, one GEMM per image, kernels compiled for those two); CuPy arrays,
    # and float16 NumPy ones, the array expressions above.
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        xp = get_array_module(x)
        if xp is np and x.dtype.char in "fd":
            x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
            ctx.save_for_backward(x, weight)
            return cpu_forward(x, weight, bias, stride, padding)
        ph, pw = padding
        ctx.save_for_backward(x, weight)
        return _forward(xp, x, weight, bias, stride, (ph, ph, pw, pw))

    def backward(ctx, g):
        x, weight = ctx.saved
        xp = get_array_module(g)
        (ph, pw), need = ctx.padding, ctx.needs_input_grad
        if xp is np and g.dtype.char in "fd":
            g = np.ascontiguousarray(g)
            gx = cpu_input_grad(g, weight, x.shape, ctx.stride, ctx.padding) if need[0] else None
            gw = cpu_weight_grad(x, g, weight.shape, ctx.stride, ctx.padding) if need[1] else None
        else:
            gx = _input_grad(xp, g, weight, x.shape, ctx.stride, ctx.padding) if need[0] else None
            gw = _weight_grad(xp, x, g, weight.shape, ctx.stride, (ph, ph, pw, pw)) if need[1] else None
        gb = g.sum(axis=(0, 2, 3)) if ctx.has_bias and need[2] else None
        return gx, gw, gb


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution of ``x`` (N, Cin, H, W) with ``weight`` (Cout, Cin, kh, kw).

    ``bias`` is (Cout,) or None; ``stride`` and zero ``padding`` are an int or an
    (h, w) pair. Returns (N, Cout, Ho, Wo) with ``Ho = (H + 2*ph - kh) // sh + 1``.
    Differentiable w.r.t. ``x``, ``weight`` and ``bias``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    >>> conv2d(x, np.ones((4, 3, 3, 3), np.float32), stride=2, padding=1).shape
    (2, 4, 4, 4)
    """
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    xs, ws = shape_of(x), shape_of(weight)
    if len(xs) != 4:
        raise ValueError(f"conv2d expects x of shape (N, Cin, H, W), found shape {xs}")
    if len(ws) != 4 or ws[1] != xs[1]:
        raise ValueError(f"conv2d expects weight of shape (Cout, {xs[1]}, kh, kw) for x of shape {xs}, found {ws}")
    if bias is not None and shape_of(bias) != (ws[0],):
        raise ValueError(f"conv2d expects bias of shape ({ws[0]},) for {ws[0]} output channels, found {shape_of(bias)}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d needs stride >= 1 and padding >= 0, found stride {stride}, padding {padding}")
    padded = (xs[2] + 2 * padding[0], xs[3] + 2 * padding[1])
    if ws[2] > padded[0] or ws[3] > padded[1]:
        raise ValueError(
            f"conv2d kernel {ws[2]}x{ws[3]} is larger than the padded input {padded[0]}x{padded[1]} "
            f"(x {xs}, padding {padding})"
        )
    check_float("conv2d", x=x, weight=weight, bias=bias)
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding)
