"""PNG figures for `evaluate --plot`: confusion matrix, ROC curves, learning curves, weight images
(and the regularisation path of an --l2 auto model).

Needs the `plot` extra (matplotlib). Figures are drawn on matplotlib's Agg canvas (no display,
no pyplot global state) and saved atomically. Each `*_figure` function takes plain arrays
and returns a Figure; `write_figures` saves all four into a folder.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import MissingExtraError, MnistlrError
from mnistlr.io.atomic import atomic_write

FIGURES = ("confusion", "roc", "learning_curves", "weights")  # file names: NAME.png
DPI = 110


def require_matplotlib(purpose: str = "writing PNG figures (--plot)") -> None:
    """Raise MissingExtraError when matplotlib (the `plot` extra) is not installed."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise MissingExtraError("matplotlib", "plot", purpose) from None


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (never a window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    """*fig* as the bytes of a PNG file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save_figure(fig, path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Write *fig* as PNG to *path* atomically; returns the path."""
    path = Path(path)
    with atomic_write(path, "wb", inputs=inputs) as handle:
        handle.write(png_bytes(fig))
    return path


def confusion_figure(cm: np.ndarray, labels: list, title: str | None = None):
    """Heatmap of the confusion matrix (K, K): colour = share of the true class, text = count."""
    cm = np.asarray(cm)
    n_classes = len(labels)
    support = cm.sum(axis=1, keepdims=True)
    # rate[t, p] = C[t, p] / Σ_p C[t, p]
    rate = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
    size = 2.2 + 0.55 * n_classes
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    font = max(5, min(10, 90 // max(n_classes, 1)))
    for t in range(n_classes):
        for p in range(n_classes):
            if cm[t, p]:
                ax.text(p, t, f"{cm[t, p]:,}", ha="center", va="center", fontsize=font,
                        color="white" if rate[t, p] > 0.5 else "black")
    ticks = np.arange(n_classes)
    ax.set_xticks(ticks, [str(c) for c in labels])
    ax.set_yticks(ticks, [str(c) for c in labels])
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    total = int(cm.sum())
    accuracy = np.trace(cm) / total if total else float("nan")
    ax.set_title(title or f"Confusion matrix (n = {total:,}, accuracy {accuracy:.2%})")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true label (row-normalised)")
    return fig


def roc_figure(curves: list[dict[str, Any]], title: str = "One-vs-rest ROC curves",
               legend_title: str = "class (one-vs-rest)"):
    """ROC curves: each of *curves* is {label, fpr, tpr, auc}; full view and a zoom on the top-left."""
    fig = new_figure(12.5, 5)
    full, zoom = fig.subplots(1, 2)
    colours = _colours(len(curves))
    for curve, colour in zip(curves, colours, strict=True):
        auc = curve["auc"]
        name = f"{curve['label']} (AUC {auc:.4f})" if auc is not None else f"{curve['label']} (AUC n/a)"
        for ax in (full, zoom):
            ax.plot(curve["fpr"], curve["tpr"], color=colour, lw=1.3, label=name)
    full.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance (AUC 0.5)")
    full.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
             title=title)
    full.set_aspect("equal")
    # zoom: FPR ≤ 0.2, TPR from just below the lowest curve there (rounded down to 0.05)
    low = min((float(np.interp(0.2, c["fpr"], c["tpr"])) for c in curves), default=0.8)
    zoom.set(xlim=(0, 0.2), ylim=(max(0.0, math.floor((low - 0.02) * 20) / 20), 1.002),
             xlabel="false positive rate", ylabel="true positive rate", title="zoom: false positive rate ≤ 0.2")
    zoom.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title=legend_title)
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
    return fig


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _series(history: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the records where *key* is a finite number."""
    pairs = [(r.get("epoch", i + 1), r.get(key)) for i, r in enumerate(history)]
    pairs = [(e, v) for e, v in pairs if isinstance(v, (int, float)) and math.isfinite(v)]
    if not pairs:
        return np.empty(0), np.empty(0)
    epochs, values = zip(*pairs, strict=True)
    return np.asarray(epochs, float), np.asarray(values, float)


# the loss axis turns logarithmic when the losses drawn span more than this ratio (an early spike)
LOG_LOSS_RATIO = 10.0
PARTS = (("train", "-", "training"), ("val", "--", "hold-out"), ("test", ":", "test"))


def learning_curves_figure(history: list[dict[str, Any]] | None, *, best_epoch: int | None = None,
                           note: str | None = None, loss_name: str = "cross-entropy",
                           step_name: str = "epoch", log_loss: bool | None = None):
    """Loss and accuracy (in percent) per epoch for the training, hold-out and test parts, and the
    learning rate when the records carry one (gd/sgd).

    log_loss: a logarithmic loss axis; None chooses it when the losses span more than
    LOG_LOSS_RATIO. With fewer than two records (or a *note*, e.g. for a closed-form fit) the
    figure says so in a box instead of drawing curves.
    """
    history = history or []
    if note is not None or len(history) < 2:
        return _no_curves_figure(history, note or "no learning curves: this model records "
                          f"{len(history)} training step{'s' if len(history) != 1 else ''}", loss_name)
    steps, rates = _series(history, "lr")
    fig = new_figure(16 if len(rates) else 11, 4.5)
    axes = fig.subplots(1, 3 if len(rates) else 2)
    loss_ax, acc_ax = axes[0], axes[1]
    for ax, metric, name in ((loss_ax, "loss", f"loss ({loss_name})"), (acc_ax, "accuracy", "percent correct")):
        for part, style, label in PARTS:
            part_steps, values = _series(history, f"{part}_{metric}")
            if len(values):
                values = 100 * values if metric == "accuracy" else values
                ax.plot(part_steps, values, style, marker="o" if len(values) < 30 else None, ms=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"best {step_name} ({best_epoch})")
        ax.set(xlabel=step_name, ylabel=name, title=f"{name} per {step_name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    losses = np.concatenate([_series(history, f"{part}_loss")[1] for part, _, _ in PARTS])
    if log_loss or (log_loss is None and losses.min() > 0 and losses.max() > LOG_LOSS_RATIO * losses.min()):
        loss_ax.set_yscale("log")
        loss_ax.set_title(f"{loss_ax.get_title()} (log scale)")
    if len(rates):
        axes[2].plot(steps, rates, "-", marker="o" if len(rates) < 30 else None, ms=3, color="tab:purple")
        axes[2].set(xlabel=step_name, ylabel="learning rate η", title=f"learning rate per {step_name}")
        axes[2].grid(alpha=0.3)
    notes = []
    if not _series(history, "val_loss")[1].size:
        notes.append("training part only: the model was trained without a hold-out")
    if _series(history, "test_loss")[1].size:
        notes.append("test curves are for the picture only: never used for stopping or selection")
    if notes:
        fig.suptitle("; ".join(notes), fontsize=9)
    return fig


def path_figure(path: dict[str, Any]):
    """--l2 auto's regularisation path: hold-out (or mean fold) log-loss and accuracy against l2 (log axis),
    with ± one standard error over the folds under --cv, the choice marked.

    path: {points: [{l2, val_log_loss, val_accuracy (, *_se)}], chosen: index, metric, n_fit, n_val, cv}.
    """
    points = path["points"]
    l2 = np.array([p["l2"] for p in points])
    scored = f"{path['cv']} folds, mean" if path.get("cv") else "hold-out"
    fig = new_figure(11, 4.2)
    for ax, key, name in zip(fig.subplots(1, 2), ("val_log_loss", "val_accuracy"),
                             (f"{scored} log-loss", f"{scored} percent correct"), strict=True):
        unit = 100 if key == "val_accuracy" else 1
        values = np.array([p[key] for p in points]) * unit
        spread = [p.get(f"{key}_se") for p in points]
        ax.errorbar(l2, values, yerr=None if None in spread else np.array(spread) * unit, fmt="-o", ms=4, capsize=2)
        chosen = path["chosen"]
        ax.plot(l2[chosen], values[chosen], "*", ms=14, color="tab:red", label=f"chosen l2 = {l2[chosen]:.3g}")
        ax.set_xscale("log")
        ax.invert_xaxis()     # strongest penalty first, as the path was fitted
        ax.set(xlabel="l2 (strong → weak)", ylabel=name, title=f"{name} along the path")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    how = (f"each on {path['cv']} stratified folds of {path['n_fit'] + path['n_val']:,} images" if path.get("cv")
           else f"on {path['n_fit']:,} images, scored on {path['n_val']:,} held out")
    fig.suptitle(f"--l2 auto: {len(points)} warm-started fits {how} by {path['metric'].replace('_', '-')}",
                 fontsize=10)
    return fig


def _no_curves_figure(history: list[dict[str, Any]], note: str, loss_name: str):
    """A figure that says why there are no curves, with the final training figures if any."""
    lines = [note]
    if history:
        last = history[-1]
        for key, name in (("train_loss", f"training loss ({loss_name})"), ("train_accuracy", "training accuracy"),
                          ("val_loss", "hold-out loss"), ("val_accuracy", "hold-out accuracy")):
            if isinstance(last.get(key), (int, float)):
                lines.append(f"{name}: {last[key]:.4f}")
    return _note_figure(lines, "Learning curves")


def _weight_layout(n_weights: int, n_means: int) -> tuple[int, int, list, list]:
    """Grid (rows, cols) and the (row, col) of each weight image and each mean image.

    Several classes: columns of up to 5 classes, each weight image above its class mean.
    One (binary) weight image: [mean of class 0 | weights | mean of class 1] in a row.
    """
    if n_weights == 1 and n_means == 2:
        return 1, 3, [(0, 1)], [(0, 0), (0, 2)]
    n_cols = min(max(n_weights, 1), 5)
    per_block = 2 if n_means else 1
    n_rows = math.ceil(n_weights / n_cols) * per_block
    weights_at = [((i // n_cols) * per_block, i % n_cols) for i in range(n_weights)]
    means_at = [((i // n_cols) * per_block + 1, i % n_cols) for i in range(n_means)]
    return n_rows, n_cols, weights_at, means_at


ZERO_COLOUR, ZERO_NAME = "#f2d24b", "yellow"


def weights_figure(weights: list[tuple[str, np.ndarray]], means: list[tuple[str, np.ndarray]] | None = None,
                   note: str | None = None):
    """Each class's weight image (blue–white–red, ±max|w|) beside its mean training image.

    weights: [(title, (rows, cols))]; means: [(title, (rows, cols) raw pixels 0–255)] or None;
    note: what a feature model's weight images show, or (with no weights) why there are none.
    """
    if not weights:
        return _note_figure([note or "no weight images for this model"], "Weight images")
    means = means or []
    n_rows, n_cols, weights_at, means_at = _weight_layout(len(weights), len(means))
    fig = new_figure(1.7 * n_cols + 1.6, 1.75 * n_rows + 1.4)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    from matplotlib import colormaps

    vmax = max(float(np.abs(w).max()) for _, w in weights) or 1.0
    # exact zeros (masked) in a colour of their own, so an L1 model's sparsity shows
    cmap = colormaps["RdBu_r"].with_extremes(bad=ZERO_COLOUR)
    n_zero = sum(int(np.count_nonzero(np.asarray(w) == 0)) for _, w in weights)
    for (title, w), (r, c) in zip(weights, weights_at, strict=True):
        shown = axes[r, c].imshow(np.ma.masked_equal(np.asarray(w, np.float64), 0.0), cmap=cmap,
                                  vmin=-vmax, vmax=vmax)
        axes[r, c].set_title(f"weights {title}", fontsize=9)
    zeros = f"; {ZERO_NAME}: exactly 0 ({n_zero / sum(np.size(w) for _, w in weights):.0%})" if n_zero else ""
    fig.colorbar(shown, ax=axes.ravel().tolist(), location="bottom", shrink=0.5, aspect=40, pad=0.02,
                 label=f"weight (red: evidence for the class, blue: against{zeros})")
    for (title, m), (r, c) in zip(means, means_at, strict=True):
        axes[r, c].imshow(m, cmap="gray_r", vmin=0, vmax=255)
        axes[r, c].set_title(f"mean image {title}", fontsize=9)
    suffix = ("mean images: ink 0–255, dark = more ink" if means
              else "no class means stored in this model")
    where = f" ({note})" if note else ""
    fig.suptitle(f"Weight image of each class{where} beside its mean training image\n"
                 f"weights scaled to ±max|w| = {vmax:.3g}; {suffix}", fontsize=10)
    return fig


def _note_figure(lines: list[str], title: str):
    """A figure holding one boxed note (a figure that cannot be drawn, and why), long lines wrapped."""
    import textwrap

    fig = new_figure(8, 2.6)
    fig.text(0.5, 0.5, "\n".join(textwrap.fill(line, 72) for line in lines), ha="center", va="center", fontsize=12, linespacing=1.6,
             bbox={"boxstyle": "round,pad=0.8", "facecolor": "lightyellow", "edgecolor": "grey"})
    fig.suptitle(title, fontsize=11)
    return fig


def check_directory(directory: str | Path) -> Path:
    """Refuse a figures folder that is an existing file (before any work is done)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise MnistlrError(f"{directory}: is a file, not a folder for the figures",
                           "give a folder name; it is created if missing")
    return directory


def write_figures(directory: str | Path, *, confusion: dict[str, Any], roc: dict[str, Any],
                  learning_curves: dict[str, Any], weights: dict[str, Any],
                  path: dict[str, Any] | None = None, inputs: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Draw the four figures (each dict holds its `*_figure` arguments) into *directory*,
    creating it if needed; returns name → path of confusion, roc, learning_curves, weights, and
    l2_path with *path* (the arguments of `path_figure`, for an --l2 auto model).
    All are written or none (a full disk leaves the folder as it was)."""
    from mnistlr.io.atomic import describe_os_error, write_files_atomic

    require_matplotlib()
    directory = check_directory(directory)
    created = [p for p in (directory, *directory.parents) if not p.exists()]  # deepest first
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(directory, exc) from None
    makers = {"confusion": (confusion_figure, confusion), "roc": (roc_figure, roc),
              "learning_curves": (learning_curves_figure, learning_curves),
              "weights": (weights_figure, weights)}
    if path is not None:
        makers["l2_path"] = (path_figure, path)
    paths = {name: directory / f"{name}.png" for name in makers}
    try:
        write_files_atomic({paths[name]: png_bytes(make(**kwargs))
                            for name, (make, kwargs) in makers.items()}, inputs=inputs)
    except BaseException:
        for folder in created:  # the folders this call made, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return paths


# The PNG figure of `show --plot`: example images in one column per class (`plot_image_columns`),
# or a model's mistakes or one image drawn large (`plot_image_grid`); every image under its title.
CELL = 1.5           # inches per image cell (width); a title adds a little height
MAX_COLS = 5         # plot_image_grid (the errors) wraps after this many images


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


TITLE_MARGIN = 0.3   # inches of a figure's width the title leaves free (the layout's pads)


def fitted_title(text: str, width: float, fontsize: float) -> str:
    """*text* with its lines broken so that each fits a figure *width* inches wide at *fontsize*:
    between words, and inside a word (a long file name) only when the word alone is too wide."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, font = RendererAgg(1, 1, DPI), FontProperties(size=fontsize)
    room = (width - TITLE_MARGIN) * DPI

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, font, ismath=False)[0] <= room

    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and not fits(f"{line} {word}"):
                lines.append(line)
                line = ""
            line = f"{line} {word}" if line else word
            while len(line) > 1 and not fits(line):   # one word wider than the figure: fold it
                cut = max([1] + [k for k in range(2, len(line)) if fits(line[:k])])
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return "\n".join(lines)


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
    width = max(cell * n_cols + 0.2, 3.2)
    title = fitted_title(title, width, 10)
    height = (cell + 0.16 * _title_lines(titles)) * n_rows + 0.2 * (title.count("\n") + 1) + 0.3
    fig = new_figure(width, height)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            _draw(ax, images[i], titles[i], 11 if large else 8)
        else:
            ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_image_columns(columns: Sequence[tuple[str, Sequence, Sequence[str]]], path: str | Path,
                       title: str) -> Path:
    """Draw one column of images per heading [(heading, [img], [title])] (e.g. examples of
    each class, the label on top) and save a PNG."""
    n_cols = max(1, len(columns))
    n_rows = max(1, max((len(imgs) for _, imgs, _ in columns), default=1))
    n_lines = _title_lines([t for _, _, ts in columns for t in ts])
    width = max(CELL * 0.9 * n_cols + 0.2, 3.2)
    title = fitted_title(title, width, 10)
    height = (CELL * 0.9 + 0.16 * n_lines) * n_rows + 0.55 + 0.2 * (title.count("\n") + 1)
    fig = new_figure(width, height)
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
    return save_figure(fig, path)

