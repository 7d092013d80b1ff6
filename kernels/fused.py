"""Serial Numba kernels of the fused training layers (:mod:`dctnet.functional.fused`).

Batch-norm moments taken in the conv's epilogue, BN + (BN'd shortcut) + ReLU
in one pass, and the backward passes that mask by the ReLU and take the
moments the BN gradient needs in the same sweep. Arrays are channels-last
(P, C), C-contiguous: P pixels (of one or more images) by C channels.

Every kernel walks its arrays flat, in runs of whole rows at least ``RUN``
values long, with the per-channel coefficients tiled to the run's length: a
loop over the 16 or 32 channels of one row is too short for LLVM, which leaves
it scalar (1.5-2x slower at C = 16, docs/design.md §6). The float64 moments
accumulate per position in the run (each a fixed set of rows of one channel),
and a channel's positions are added in order at the end: a fixed order, so
results are reproducible. Like
:mod:`dctnet.kernels.conv` they run on the engine's threads (``nogil``, no
``prange``); CuPy arrays take the unfused array ops instead.
"""

import numpy as np
from numba import njit

from .conv import tiled

RUN = 256
"""The least number of values per flat run (whole rows)."""


@njit(nogil=True, cache=True, inline="always")
def _run_length(c):
    """Values per run: the fewest whole rows of ``c`` values that make at least RUN."""
    return max(1, -(-RUN // c)) * c


@njit(nogil=True, cache=True, inline="always")
def _fold(lanes, c, sums, row):
    """``sums[row, ch] +=`` the run positions of channel ``ch``, added in order."""
    for ch in range(c):
        total = 0.0
        for t in range(ch, lanes.size, c):
            total += lanes[t]
        sums[row, ch] += total


@njit(nogil=True, cache=True, inline="always")
def _sums(gr, yr, s0, s1):
    """Per run position, in float64: ``s0 += g``, ``s1 += g * y``."""
    for t in range(gr.size):
        f = float(gr[t])
        s0[t] += f
        s1[t] += f * yr[t]


@njit(nogil=True, cache=True)
def moments(y, sums):
    """``sums[0] += y.sum(axis=0)``, ``sums[1] += (y * y).sum(axis=0)``, in float64."""
    c = y.shape[1]
    n, run = y.size, _run_length(c)
    yf = y.reshape(-1)
    s0, s1 = np.zeros(run), np.zeros(run)
    for base in range(0, n, run):
        yr = yf[base : min(base + run, n)]
        for t in range(yr.size):
            v = float(yr[t])
            s0[t] += v
            s1[t] += v * v
    _fold(s0, c, sums, 0)
    _fold(s1, c, sums, 1)


@njit(nogil=True, cache=True)
def affine2_relu(y, a, b, r, ar, br, out):
    """``out = max(a * y + b + ar * r + br, 0)``: the end of a residual block."""
    zero = y.dtype.type(0)
    n, run = y.size, _run_length(y.shape[1])
    at, art, bt = tiled(a, run), tiled(ar, run), tiled(b + br, run)
    yf, rf, of = y.reshape(-1), r.reshape(-1), out.reshape(-1)
    for base in range(0, n, run):
        end = min(base + run, n)
        yr, rr, orr = yf[base:end], rf[base:end], of[base:end]
        for t in range(yr.size):
            orr[t] = max(at[t] * yr[t] + art[t] * rr[t] + bt[t], zero)


@njit(nogil=True, cache=True)
def masked_moments(g, out, y, r, has_r, gm, sums):
    """``gm = g * (out > 0)`` and, in float64, ``sums[0] += gm.sum(0)``,
    ``sums[1] += (gm * y).sum(0)``, ``sums[2] += (gm * r).sum(0)`` (when ``has_r``)."""
    zero = g.dtype.type(0)
    c = g.shape[1]
    n, run = g.size, _run_length(c)
    gf, of, yf, rf, mf = g.reshape(-1), out.reshape(-1), y.reshape(-1), r.reshape(-1), gm.reshape(-1)
    s0, s1, s2 = np.zeros(run), np.zeros(run), np.zeros(run)
    for base in range(0, n, run):
        end = min(base + run, n)
        gr, orr, yr, rr, mr = gf[base:end], of[base:end], yf[base:end], rf[base:end], mf[base:end]
        # the mask, then the sums reading it back from L1: each loop vectorizes on its own, while
        # one loop that stores to an output that might alias its inputs stays scalar
        for t in range(gr.size):
            mr[t] = gr[t] if orr[t] > zero else zero
        if has_r:
            for t in range(mr.size):
                f = float(mr[t])
                s0[t] += f
                s1[t] += f * yr[t]
                s2[t] += f * rr[t]
        else:
            _sums(mr, yr, s0, s1)
    _fold(s0, c, sums, 0)
    _fold(s1, c, sums, 1)
    if has_r:
        _fold(s2, c, sums, 2)


@njit(nogil=True, cache=True)
def affine_grad(g, y, a, b, c0, out):
    """``out = a * g + b * y + c0`` with per-channel coefficients: batch norm's input gradient."""
    n, run = g.size, _run_length(g.shape[1])
    at, bt, ct = tiled(a, run), tiled(b, run), tiled(c0, run)
    gf, yf, of = g.reshape(-1), y.reshape(-1), out.reshape(-1)
    for base in range(0, n, run):
        end = min(base + run, n)
        gr, yr, orr = gf[base:end], yf[base:end], of[base:end]
        for t in range(gr.size):
            orr[t] = at[t] * gr[t] + bt[t] * yr[t] + ct[t]


@njit(nogil=True, cache=True)
def relu_grad_moments(g, y, a, b, sums):
    """In place ``g *= (a * y + b > 0)``, the mask of ``relu(a * y + b)`` (per-channel
    ``a``, ``b``), then (float64) ``sums[0] += g.sum(0)``, ``sums[1] += (g * y).sum(0)``."""
    zero = g.dtype.type(0)
    c = g.shape[1]
    n, run = g.size, _run_length(c)
    at, bt = tiled(a, run), tiled(b, run)
    gf, yf = g.reshape(-1), y.reshape(-1)
    s0, s1 = np.zeros(run), np.zeros(run)
    for base in range(0, n, run):
        end = min(base + run, n)
        gr, yr = gf[base:end], yf[base:end]
        for t in range(gr.size):
            if not at[t] * yr[t] + bt[t] > zero:
                gr[t] = zero
        _sums(gr, yr, s0, s1)
    _fold(s0, c, sums, 0)
    _fold(s1, c, sums, 1)
