"""JPEG-DL: a differentiable JPEG layer with trainable quantization tables.

Salamah et al., *JPEG Inspired Deep Learning* (ICLR 2025), put a JPEG codec
whose rounding is replaced by :func:`~dctnet.functional.soft_quantize` in front
of a network and train its quantization tables (and hardness) with the
network. :class:`JPEGLayer` takes RGB (or grey) pixels 0..255, NCHW, with H and
W multiples of 8 (or, with ``color="rgb"``, feature maps of any channel count:
:func:`insert_after_first_conv`), and computes

    RGB -> YCbCr (JFIF) -> -128 -> blockwise DCT -> soft quantization
        -> [YCbCr -> RGB, +128] -> pixels (``output="pixels"``)
                                   or DCT coefficients (``output="dct"``)

with a luma table for Y and one chroma table shared by Cb and Cr (64 entries
each, zigzag order, :class:`~dctnet.nn.Parameter`). The colour transform is
linear, so it is applied per DCT coefficient, and the level shift lives in the
DC (``8 * 128``); ``output="dct"`` returns exactly ``to_dct`` of the pixels
(the JPEG-domain input that a model from :func:`dctnet.convert` consumes).

Before every forward pass the tables are clamped in place to ``[q_min, 255]``
and the hardness ``alpha`` to ``>= 1e-5`` (as the paper does after each
step). ``alpha`` is per frequency: ``"trainable"`` Parameters, ``"fixed"``
buffers, or ``"hardness"``: tied to the tables as ``alpha = hardness / q^2``
(a scale-free softness in units of the step).

>>> import numpy as np, dctnet
>>> layer = JPEGLayer(init=(dctnet.quant_table(75, "luma"), dctnet.quant_table(75, "chroma")),
...                   alpha="hardness", hardness=1e6, bits=12)
>>> x = np.random.default_rng(0).uniform(0, 255, (1, 3, 16, 16))
>>> layer(dctnet.Tensor(x)).shape
(1, 3, 16, 16)
>>> [t[:3].tolist() for t in layer.export_qtables()]
[[8, 6, 6], [9, 9, 9]]
"""

from __future__ import annotations

import numpy as np

from . import nn, ops
from .autograd import Tensor, as_tensor
from .backend import asnumpy, get_array_module
from .functional.dct_conv import block_dct, block_idct
from .functional.soft_quant import check_window, soft_quantize
from .jpeg import RGB_TO_YCBCR, SUBSAMPLING, YCBCR_TO_RGB

__all__ = ["ALPHA_MODES", "COLORS", "OUTPUTS", "JPEGLayer", "find_jpeg_layer", "insert_after_first_conv",
           "sensitivity_tables", "tables_from_statistics"]

COLORS = ("ycbcr", "rgb")
OUTPUTS = ("pixels", "dct")
ALPHA_MODES = ("trainable", "fixed", "hardness")
Q_MAX = 255.0
ALPHA_MIN = 1e-5
_LEVEL_SHIFT = 8 * 128.0  # 128 per pixel is 1024 in the DC of the orthonormal DCT


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, found {value!r}")
    return float(value)


def _table(value, name):
    t = np.asarray(value, dtype=np.float64)
    if t.shape != (64,):
        raise ValueError(f"{name} must be 64 values in zigzag order (shape (64,)), found shape {t.shape}")
    if not np.all(np.isfinite(t)) or not np.all(t > 0):
        raise ValueError(f"{name} entries must be positive and finite, found min {t.min()!r}")
    return t


def _scale_tables(luma, chroma, q_max, q_min):
    """Scale (luma, chroma) by one factor so that max(luma) = q_max, then clip to [q_min, 255]."""
    luma, chroma = np.asarray(luma, np.float64), np.asarray(chroma, np.float64)
    finite = luma[np.isfinite(luma)]
    if finite.size == 0 or finite.max() <= 0:
        raise ValueError("cannot scale the tables: the luma entries are not positive and finite")
    scale = q_max / finite.max()
    return tuple(np.clip(np.nan_to_num(t * scale, nan=Q_MAX, posinf=Q_MAX), q_min, Q_MAX) for t in (luma, chroma))


def tables_from_statistics(stats, q_max=64.0, q_min=1.0, power=1.0):
    """(luma, chroma) float tables ``Q ∝ 1 / mean|coef|^power`` per frequency.

    ``stats`` is :func:`dctnet.qtables.dct_statistics` output of YCbCr images
    (3 channels; the chroma statistic is the mean of Cb and Cr) or grey ones
    (1 channel; chroma then equals luma). Frequencies with more energy get
    finer steps, as in the IJG tables. One factor scales both tables so the
    largest luma entry is ``q_max``; entries are clipped to ``[q_min, 255]``.
    """
    mean_abs = np.asarray(getattr(stats, "mean_abs", None) if not isinstance(stats, np.ndarray) else stats, np.float64)
    if mean_abs.ndim != 2 or mean_abs.shape[1] != 64 or mean_abs.shape[0] not in (1, 3):
        raise ValueError(
            f"tables_from_statistics expects dct_statistics output with mean_abs of shape (1 or 3, 64), "
            f"found {mean_abs.shape}"
        )
    luma = mean_abs[0]
    chroma = mean_abs[1:].mean(axis=0) if mean_abs.shape[0] == 3 else luma
    with np.errstate(divide="ignore"):
        return _scale_tables(luma ** -power, chroma ** -power, _positive(q_max, "q_max"), _positive(q_min, "q_min"))


def sensitivity_tables(model, x_batches, y_batches, q_max=64.0, q_min=1.0, power=1.0, input="pixels"):
    """(luma, chroma) tables ``Q ∝ 1 / sensitivity^power`` from a trained model.

    The sensitivity of a frequency is ``E[(dloss/dcoef)^2]`` of the model's
    cross-entropy with respect to the YCbCr DCT coefficients (level-shifted,
    unquantized) of the images, averaged over every block of the batches
    (``x_batches``: pixels (N, 3 or 1, H, W) 0..255; ``y_batches``: labels), and
    over Cb and Cr for the chroma table. Sensitive frequencies get fine steps.
    ``power=0.5`` equalizes the expected loss increase ``sens * q^2 / 12``
    across frequencies; the default 1 follows Q ∝ 1/sensitivity. ``input`` is
    what the model takes: ``"pixels"`` or ``"dct"`` (RGB coefficients, as
    ``JPEGLayer(output="dct")`` gives). The model runs in eval mode; its mode
    is restored afterwards.
    """
    from .functional import cross_entropy

    if input not in OUTPUTS:
        raise ValueError(f"input must be one of {OUTPUTS}, found {input!r}")
    if isinstance(x_batches, (np.ndarray, Tensor)):
        x_batches, y_batches = [x_batches], [y_batches]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    total, count, channels = None, 0, None
    try:
        for xb, yb in zip(x_batches, y_batches):
            x = as_tensor(xb)
            _check_pixels(x)
            coefs = _to_ycc(block_dct(x.data), x.shape[1])  # raw arrays: the leaf
            leaf = Tensor(coefs, requires_grad=True)
            rgb = _from_ycc(leaf, x.shape[1])
            inp = block_idct(rgb) if input == "pixels" else rgb
            loss = cross_entropy(model(inp), asnumpy(as_tensor(yb).data).astype(np.int64), reduction="sum")
            loss.backward()
            g2 = asnumpy(leaf.grad).astype(np.float64) ** 2  # (N, C, BH, BW, 64)
            s = g2.sum(axis=(0, 2, 3))
            total = s if total is None else total + s
            count += g2.shape[0] * g2.shape[2] * g2.shape[3]
            channels = g2.shape[1]
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    if not count:
        raise ValueError("sensitivity_tables found no batches; pass x_batches and y_batches of equal length")
    sens = total / count
    luma = sens[0]
    chroma = sens[1:].mean(axis=0) if channels == 3 else luma
    with np.errstate(divide="ignore"):
        return _scale_tables(luma ** -power, chroma ** -power, _positive(q_max, "q_max"), _positive(q_min, "q_min"))


def _check_pixels(x, any_channels=False):
    if x.ndim != 4 or not (x.shape[1] >= 1 if any_channels else x.shape[1] in (1, 3)):
        wanted = "(N, C, H, W)" if any_channels else "pixels (N, 3 or 1, H, W)"
        raise ValueError(f"JPEGLayer expects {wanted}, found shape {x.shape}")
    if x.shape[2] % 8 or x.shape[3] % 8:
        fix = ("inside a network, the input must give maps of such sizes here (pad it with dctnet.pad_to_blocks)"
               if any_channels else "pad first with dctnet.pad_to_blocks(x)")
        raise ValueError(f"JPEGLayer expects H and W that are multiples of 8, found {x.shape[2]}x{x.shape[3]}; {fix}")
    if x.dtype.kind != "f":
        raise TypeError(f"JPEGLayer expects floating-point pixels, found {x.dtype}; cast with .astype(np.float32)")


def _mix(matrix, c):
    """Apply a 3x3 colour matrix over the channel axis (1) of (N, 3, ...) coefficients or pixels."""
    c = as_tensor(c)
    n, ch, *rest = c.shape
    xp = c.xp if hasattr(c, "xp") else get_array_module(c.data)
    m = xp.asarray(matrix.astype(c.dtype))
    return ops.matmul(m, c.reshape(n, ch, int(np.prod(rest)))).reshape(n, ch, *rest)


def _dc_shift(c, amount):
    xp = get_array_module(c.data if isinstance(c, Tensor) else c)
    shift = np.zeros(64)
    shift[0] = amount
    return c + xp.asarray(shift.astype(c.dtype))


def _to_ycc(c, channels, color="ycbcr", shift=_LEVEL_SHIFT):
    """RGB coefficients (level shift in the DC) -> level-shifted YCbCr (or RGB) coefficients."""
    c = _dc_shift(c, -shift) if shift else c
    return _mix(RGB_TO_YCBCR, c) if channels == 3 and color == "ycbcr" else c


def _from_ycc(c, channels, color="ycbcr", shift=_LEVEL_SHIFT):
    c = _mix(YCBCR_TO_RGB, c) if channels == 3 and color == "ycbcr" else c
    return _dc_shift(c, shift) if shift else c


class JPEGLayer(nn.Module):
    """A differentiable JPEG codec with trainable quantization tables (JPEG-DL).

    Arguments:

    - ``color``: ``"ycbcr"`` (JPEG's: Y by the luma table, Cb and Cr by the
      chroma table) or ``"rgb"`` (no colour transform; every channel by the
      luma table, no chroma table; any number of channels, so the layer also
      compresses feature maps, e.g. after a network's first convolution:
      see :func:`insert_after_first_conv`). Grey input (C = 1) uses the luma
      table.
    - ``level_shift``: subtracted from every value before the DCT and added
      back after (JPEG's 128 for pixels 0..255; 0 for feature maps).
    - ``subsampling``: ``"4:4:4"``, or for ``color="ycbcr"`` ``"4:2:2"``,
      ``"4:2:0"``, ``"4:4:0"``: chroma is box-averaged before its DCT and
      repeated after, as :func:`dctnet.encode_jpeg` and the exact decode
      (``JpegImage.to_dct``) do; H and W must then be multiples of the MCU
      (16 where a direction is halved).
    - ``init``: ``"constant"`` (every entry ``q_init``) or a pair
      ``(luma, chroma)`` of 64 zigzag entries (e.g. :func:`dctnet.quant_table`,
      :func:`tables_from_statistics`, :func:`sensitivity_tables`).
    - ``alpha``: ``"trainable"`` / ``"fixed"`` per-frequency tables initialized
      to ``alpha_init`` (a number; None: ``hardness / q^2`` of the initial
      tables), or ``"hardness"``: ``alpha = hardness / q^2`` at every step.
    - ``rounds``: compress this many times in sequence, each round with its
      own tables (parameters ``round{k}_q_luma``, ``round{k}_q_chroma``,
      ``round{k}_alpha_luma``, ...).
    - ``output``: ``"pixels"`` (N, C, H, W) or ``"dct"`` (N, C, H/8, W/8, 64),
      RGB in the pixel units of :func:`dctnet.to_dct`.
    - ``q_min``: the smallest step (tables are clamped to ``[q_min, 255]``;
      feature maps of unit scale want steps well below 1, and more ``bits``).
    - ``levels``, ``bits``: see :func:`~dctnet.functional.soft_quantize`.
    """

    def __init__(self, color="ycbcr", subsampling="4:4:4", init="constant", q_init=8.0, alpha="trainable",
                 alpha_init=None, hardness=5.0, rounds=1, output="pixels", q_min=1.0, levels=5, bits=8,
                 level_shift=128.0):
        if color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, found {color!r}")
        if subsampling not in SUBSAMPLING:
            raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLING)}, found {subsampling!r}")
        if subsampling != "4:4:4" and color != "ycbcr":
            raise ValueError(f"subsampling {subsampling!r} needs color='ycbcr' (it halves chroma), found {color!r}")
        if alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {ALPHA_MODES}, found {alpha!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, found {output!r}")
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
            raise ValueError(f"rounds must be an integer >= 1, found {rounds!r}")
        check_window(levels, bits)
        q_min = _positive(q_min, "q_min")
        if q_min > Q_MAX:
            raise ValueError(f"q_min must be at most {Q_MAX:g}, found {q_min!r}")
        hardness = _positive(hardness, "hardness")
        if isinstance(level_shift, bool) or not isinstance(level_shift, (int, float, np.integer, np.floating)) \
                or not np.isfinite(level_shift):
            raise ValueError(f"level_shift must be a finite number, found {level_shift!r}")
        if isinstance(init, str):
            if init != "constant":
                raise ValueError(f"init must be 'constant' or a pair (luma, chroma) of 64-entry tables, found {init!r}")
            q = _positive(q_init, "q_init")
            luma = chroma = np.full(64, q)
        else:
            if len(init) != 2:
                raise ValueError(f"init must be 'constant' or a pair (luma, chroma) of 64-entry tables, found {len(init)} items")
            luma, chroma = _table(init[0], "init luma table"), _table(init[1], "init chroma table")
        luma, chroma = (np.clip(t, q_min, Q_MAX) for t in (luma, chroma))
        self.color, self.output, self.alpha_mode, self.subsampling = color, output, alpha, subsampling
        self.rounds, self.q_min, self.levels, self.bits = int(rounds), q_min, int(levels), int(bits)
        self.hardness, self.level_shift = hardness, float(level_shift)
        names = ("luma", "chroma") if color == "ycbcr" else ("luma",)
        tables = {"luma": luma, "chroma": chroma}
        for k in range(self.rounds):
            for name in names:
                setattr(self, f"round{k}_q_{name}", nn.Parameter(tables[name].astype(np.float32)))
            if alpha == "hardness":
                continue
            for name in names:
                a = hardness / tables[name] ** 2 if alpha_init is None else np.full(64, _positive(alpha_init, "alpha_init"))
                a = np.maximum(a, ALPHA_MIN).astype(np.float32)
                if alpha == "trainable":
                    setattr(self, f"round{k}_alpha_{name}", nn.Parameter(a))
                else:
                    self.register_buffer(f"round{k}_alpha_{name}", a)

    # -- tables ------------------------------------------------------------------
    @property
    def q_luma(self):
        """The first round's luma table (a Parameter)."""
        return self._parameters["round0_q_luma"]

    @property
    def q_chroma(self):
        """The first round's chroma table (the luma table for ``color="rgb"``)."""
        return self._parameters["round0_q_chroma" if self.color == "ycbcr" else "round0_q_luma"]

    def clamp_(self):
        """Clamp the tables to ``[q_min, 255]`` and alpha to ``>= 1e-5``, in place."""
        xp_clip = lambda a, lo, hi: get_array_module(a).clip(a, lo, hi, out=a)
        for name, p in self._parameters.items():
            if "_q_" in name:
                xp_clip(p.data, self.q_min, Q_MAX)
            elif "_alpha_" in name:
                xp_clip(p.data, ALPHA_MIN, None)
        for name, b in self._buffers.items():
            if "_alpha_" in name:
                xp_clip(b, ALPHA_MIN, None)
        return self

    def export_qtables(self, round=0):
        """``(luma, chroma)`` int32 zigzag tables of ``round``, rounded and clipped to 1..255 (for encode_jpeg)."""
        if not 0 <= round < self.rounds:
            raise ValueError(f"round must be in 0..{self.rounds - 1}, found {round!r}")
        out = []
        for name in ("luma", "chroma" if self.color == "ycbcr" else "luma"):
            q = asnumpy(self._parameters[f"round{round}_q_{name}"].data).astype(np.float64)
            out.append(np.clip(np.rint(q), 1, 255).astype(np.int32))
        return tuple(out)

    @classmethod
    def init_from_statistics(cls, stats, q_max=64.0, **kwargs):
        """A layer whose tables come from :func:`tables_from_statistics` (``q_max``: largest luma step)."""
        kwargs.setdefault("q_min", 1.0)
        return cls(init=tables_from_statistics(stats, q_max=q_max, q_min=kwargs["q_min"]), **kwargs)

    @classmethod
    def init_from_sensitivity(cls, model, x_batches, y_batches, q_max=64.0, power=1.0, **kwargs):
        """A layer whose tables come from :func:`sensitivity_tables` of a trained ``model``."""
        kwargs.setdefault("q_min", 1.0)
        tables = sensitivity_tables(model, x_batches, y_batches, q_max=q_max, q_min=kwargs["q_min"], power=power)
        return cls(init=tables, **kwargs)

    # -- forward -----------------------------------------------------------------
    def _round_tables(self, k, dtype, channels):
        """q and alpha for round k, shaped (C, 1, 1, 64) (as Tensors/arrays of ``dtype``)."""
        names = ("luma", "chroma", "chroma") if channels == 3 and self.color == "ycbcr" else ("luma",) * channels

        def cast(t):
            return t if t.dtype == dtype else ops.astype(t, dtype)

        qs = {n: cast(self._parameters[f"round{k}_q_{n}"]) for n in set(names)}
        if self.alpha_mode == "hardness":
            alphas = {n: self.hardness / (qs[n] * qs[n]) for n in qs}
        elif self.alpha_mode == "trainable":
            alphas = {n: cast(self._parameters[f"round{k}_alpha_{n}"]) for n in qs}
        else:
            alphas = {n: self._buffers[f"round{k}_alpha_{n}"].astype(dtype, copy=False) for n in qs}

        def stack(table):
            if len(set(names)) == 1:
                t = table[names[0]]
                return t.reshape(1, 1, 1, 64) if channels == 1 else ops.concatenate([t.reshape(1, 64)] * channels).reshape(channels, 1, 1, 64)
            return ops.concatenate([table[n].reshape(1, 64) for n in names]).reshape(channels, 1, 1, 64)

        return stack(qs), stack(alphas)

    def forward(self, x):
        x = as_tensor(x)
        _check_pixels(x, any_channels=self.color == "rgb")
        self.clamp_()
        channels = x.shape[1]
        if channels == 3 and self.subsampling != "4:4:4":
            out = self._subsampled(x)
            return block_dct(out) if self.output == "dct" else out
        shift = 8 * self.level_shift  # the DC of the orthonormal DCT is 8x the block mean
        c = block_dct(x)  # RGB coefficients, level shift in the DC
        for k in range(self.rounds):
            q, alpha = self._round_tables(k, x.dtype, channels)
            ycc = _to_ycc(c, channels, self.color, shift)
            ycc = soft_quantize(ycc, q, alpha, levels=self.levels, bits=self.bits)
            c = _from_ycc(ycc, channels, self.color, shift)
        return c if self.output == "dct" else block_idct(c)

    def _subsampled(self, x):
        """Pixels through the rounds with chroma at reduced resolution (box down, repeat up)."""
        v, h = SUBSAMPLING[self.subsampling]
        n, _, height, width = x.shape
        if height % (8 * v) or width % (8 * h):
            raise ValueError(
                f"JPEGLayer with subsampling {self.subsampling!r} expects H and W that are multiples of "
                f"{8 * v} and {8 * h}, found {height}x{width}; pad first with dctnet.pad_to_blocks(x, {(8 * v, 8 * h)})"
            )
        ycc = _mix(RGB_TO_YCBCR, x - self.level_shift)  # level-shifted YCbCr pixels
        cells = (n, 2, height // v, v, width // h, h)
        ones = ycc.xp.ones((1, 1, 1, v, 1, h), dtype=x.dtype)
        for k in range(self.rounds):
            q, alpha = self._round_tables(k, x.dtype, 3)
            y = block_idct(soft_quantize(block_dct(ycc[:, :1]), q[:1], alpha[:1], levels=self.levels, bits=self.bits))
            chroma = ops.mean(ycc[:, 1:].reshape(*cells), axis=(3, 5))
            chroma = block_idct(soft_quantize(block_dct(chroma), q[1:], alpha[1:], levels=self.levels, bits=self.bits))
            chroma = (chroma.reshape(n, 2, height // v, 1, width // h, 1) * ones).reshape(n, 2, height, width)
            ycc = ops.concatenate([y, chroma], axis=1)
        return _mix(YCBCR_TO_RGB, ycc) + self.level_shift

    def extra_repr(self):
        keys = ("color", "subsampling", "alpha", "rounds", "output", "q_min", "levels", "bits", "level_shift")
        return ", ".join(f"{k}={self._args[k]!r}" for k in keys)


def insert_after_first_conv(model, layer):
    """Put ``layer`` right after ``model``'s first :class:`~dctnet.nn.Conv2d`; returns ``model``.

    The convolution is replaced, in place, by ``nn.Sequential(conv, layer)``,
    so parameters stay shared and the model saves and loads as before: the
    layer then compresses that convolution's feature maps (use
    ``JPEGLayer(color="rgb", level_shift=0, ...)`` with small steps). Other
    paths keep the raw input: in :func:`~dctnet.models.paper_resnet` the
    first block's projection shortcut (a 1x1 convolution, not the first
    Conv2d) still carries the image past the layer. The model must be a pixel
    model (insert before :func:`dctnet.convert`); calling this twice puts the
    second layer between the convolution and the first layer.

    >>> from dctnet.models import paper_resnet
    >>> net = insert_after_first_conv(paper_resnet(), JPEGLayer(color="rgb", level_shift=0, q_init=0.25, q_min=0.01))
    >>> type(net[0].conv1).__name__, type(net[0].conv1[1]).__name__
    ('Sequential', 'JPEGLayer')
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be a dctnet.nn.Module, found {type(layer).__name__}")
    if isinstance(model, nn.Conv2d):
        raise TypeError("model is itself a convolution: compose nn.Sequential(conv, layer) instead")
    if any(isinstance(m, nn.DCTConv2d) for m in model.modules()):
        raise ValueError("model is a JPEG-domain model: insert the layer into the pixel model, then dctnet.convert it")
    for parent in model.modules():
        for name, child in parent._modules.items():
            if type(child) is nn.Conv2d:
                setattr(parent, name, nn.Sequential(child, layer))
                return model
    raise ValueError(f"{type(model).__name__} has no Conv2d to put the layer after")


def find_jpeg_layer(model):
    """The first :class:`JPEGLayer` inside ``model`` (or ``model`` itself), or None."""
    return next((m for m in model.modules() if isinstance(m, JPEGLayer)), None)
