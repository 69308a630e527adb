"""The PNG figure of `show --plot`: example images in one column per class
(`plot_image_columns`), or a model's mistakes or one image drawn large (`plot_image_grid`);
every image under its title.

Needs the `plot` extra (matplotlib); drawn on an Agg canvas and written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnistlr.plots import new_figure as _figure
from mnistlr.plots import require_matplotlib as _require_matplotlib
from mnistlr.plots import save_figure as save_png

CELL = 1.5           # inches per image cell (width); a title adds a little height
MAX_COLS = 5         # plot_image_grid (the errors) wraps after this many images


def require_matplotlib(purpose: str = "writing the 'show' figure (--plot)") -> None:
    """Raise MissingExtraError when matplotlib (the `plot` extra) is not installed."""
    _require_matplotlib(purpose)


def _draw(ax, image, title: str, fontsize: int) -> None:
    """One image (raw 0–255, ink dark) in *ax* under *title*, in a light frame, no ticks."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.imshow(np.asarray(image), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    for spine in ax.spines.values():
        spine.set_color("0.8")


def _title_lines(titles) -> int:
    return max((t.count("\n") + 1 for t in titles), default=0)


def plot_image_grid(images: Sequence, titles: Sequence[str], path: str | Path, title: str, *,
                    large: bool = False) -> Path:
    """Draw images (rows, cols) raw 0–255, each under its title, MAX_COLS to a row; save a PNG.

    Ink is dark on white (grey scale 0–255, as in `evaluate`'s mean images); each image keeps
    its aspect ratio. *large*: one image drawn big (the `--index` view). No images: an empty
    figure with just the *title*.
    """
    n_cols = max(1, min(len(images), MAX_COLS))
    n_rows = max(1, -(-len(images) // MAX_COLS))
    cell = 4.0 if large else CELL
    height = (cell + 0.16 * _title_lines(titles)) * n_rows + 0.2 * (title.count("\n") + 1) + 0.3
    fig = _figure(max(cell * n_cols + 0.2, 3.2), height)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            _draw(ax, images[i], titles[i], 11 if large else 8)
        else:
            ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def plot_image_columns(columns: Sequence[tuple[str, Sequence, Sequence[str]]], path: str | Path,
                       title: str) -> Path:
    """Draw one column of images per heading [(heading, [img], [title])] (e.g. examples of
    each class, the label on top) and save a PNG."""
    n_cols = max(1, len(columns))
    n_rows = max(1, max((len(imgs) for _, imgs, _ in columns), default=1))
    n_lines = _title_lines([t for _, _, ts in columns for t in ts])
    height = (CELL * 0.9 + 0.16 * n_lines) * n_rows + 0.55 + 0.2 * (title.count("\n") + 1)
    fig = _figure(max(CELL * 0.9 * n_cols + 0.2, 3.2), height)
    subfigures = np.atleast_1d(fig.subfigures(1, n_cols))
    for sub, (heading, images, titles) in zip(subfigures, columns, strict=True):
        sub.suptitle(heading, fontsize=11, fontweight="bold")
        axes = np.atleast_1d(sub.subplots(n_rows, 1, squeeze=False)[:, 0])
        for r, ax in enumerate(axes):
            if r < len(images):
                _draw(ax, images[r], titles[r], 8)
            else:
                ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)

