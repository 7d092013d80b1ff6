"""Plots to PNG files: line charts, a training history, 8x8 quantization-table heat maps.

matplotlib is an optional extra (``dctnet[examples]``), imported only when a
plot is drawn and always on the file-only Agg backend; without it every
function here draws nothing and returns False. ``import dctnet`` does not
import this module: ``from dctnet import plots``.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "curve.png")
>>> drawn = line_chart(path, [([1, 2, 3], [0.5, 0.7, 0.8], "o-", "accuracy")], xlabel="epoch", ylabel="accuracy")
>>> drawn == os.path.isfile(path)
True
"""

import numpy as np

from .transform import ZIGZAG

__all__ = ["pyplot", "save_figure", "line_chart", "plot_history", "table_heatmap"]

_NATURAL = np.argsort(ZIGZAG)  # zigzag position of each row-major index


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _draw_lines(ax, series, xlabel, ylabel, title, references=()):
    for x, y, style, label in series:
        ax.plot(x, y, style, label=label)
    for y, label in references:
        ax.axhline(y, color="gray", lw=0.8, ls="--", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()


def save_figure(fig, path, dpi=120) -> bool:
    """Lay out ``fig`` (from :func:`pyplot`), write it to ``path`` and close it; returns True."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return True


def line_chart(path, series, *, xlabel, ylabel, title=None, references=(), figsize=(5, 3.5), dpi=120) -> bool:
    """Curves ``series = [(x, y, style, label), ...]`` and dashed horizontal lines ``references = [(y, label), ...]``.

    ``style`` is a matplotlib format string (``"o-"``, ``"s--"``). Writes
    ``path``; returns False (and writes nothing) without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=figsize)
    _draw_lines(ax, series, xlabel, ylabel, title, references)
    return save_figure(fig, path, dpi)


def plot_history(history, path, dpi=120) -> bool:
    """Loss and accuracy per epoch, train and test, side by side, from :func:`dctnet.training.fit`'s history."""
    plt = pyplot()
    if plt is None or not history:
        return False
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (key, ylabel, title) in zip(axes, (("loss", "cross-entropy", "loss"), ("acc", "accuracy", "accuracy"))):
        series = [(epochs, [r[f"{split}_{key}"] for r in history], "-", split)
                  for split in ("train", "test") if f"{split}_{key}" in history[0]]
        _draw_lines(ax, series, "epoch", ylabel, title)
    return save_figure(fig, path, dpi)


def table_heatmap(fig, ax, table, title, fmt="{:.1f}", change=False):
    """Draw a zigzag table ``(64,)`` as its 8x8 block on ``ax``, values written in, with a colour bar.

    ``change``: a diverging map centred on 0 (for differences of tables).
    ``fig`` and ``ax`` come from :func:`pyplot`'s ``subplots``.
    """
    block = np.asarray(table)[_NATURAL].reshape(8, 8)
    if change:
        lim = float(np.abs(block).max()) or 1.0
        im = ax.imshow(block, cmap="RdBu_r", vmin=-lim, vmax=lim)
    else:
        im = ax.imshow(block, cmap="viridis")
    middle = (block.min() + block.max()) / 2
    for (r, c), v in np.ndenumerate(block):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6,
                color="k" if change or v >= middle else "w")
    ax.set(title=title, xlabel="horizontal frequency", ylabel="vertical frequency")
    fig.colorbar(im, ax=ax, fraction=0.046)
