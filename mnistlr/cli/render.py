"""Terminal pictures and report tables (Rich): images in half-block characters, sparklines,
the evaluation report and the model card.

Images: `image_lines(img2d, diverging=False, color=True)` draws one image, two pixel rows per
text line (▀ with the upper pixel as foreground and the lower as background colour); without
colour, one character per pixel pair from a density ramp. `image_grid` lays several out side
by side within a width. Use `wants_color(console)` to choose `color`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnistlr.cli.tables import format_value

GREY_RAMP = " .:-=+*#%@"          # plain-text ink density, light → dark
POSITIVE_RAMP = ":+*#"            # plain-text diverging: |w| levels 1..4 of a positive weight
NEGATIVE_RAMP = ".-~="            # ... of a negative weight (kept lighter than the positive set)
SPARKS = "▁▂▃▄▅▆▇█"
_WHITE, _BLUE, _RED = np.array([247, 247, 247]), np.array([33, 102, 172]), np.array([178, 24, 43])
_LEVELS = 48                      # colour quantisation (shared Style objects)


def wants_color(console) -> bool:
    """True when *console* shows colour (a terminal, NO_COLOR unset) and its encoding has the half
    block ▀ the colour pictures are made of (else the plain rendering, as for NO_COLOR)."""
    from mnistlr.cli.charset import fits

    return console.color_system is not None and not console.no_color and fits("▀", console.encoding)


def _rgb(value: float, diverging: bool) -> tuple[int, int, int]:
    """Grey for t in [0, 1]; blue–white–red for t in [−1, 1]."""
    if not diverging:
        g = int(round(255 * value))
        return g, g, g
    end = _RED if value > 0 else _BLUE
    c = _WHITE + abs(value) * (end - _WHITE)
    return int(c[0]), int(c[1]), int(c[2])


def _normalised(img: np.ndarray, diverging: bool, vmax: float | None) -> np.ndarray:
    """Pixel values scaled to [0, 1] (grey) or [−1, 1] (diverging, symmetric by max |w|)."""
    img = np.asarray(img, np.float64)
    if vmax is None:
        vmax = float(np.abs(img).max()) if diverging else (255.0 if img.max() > 1 else 1.0)
    vmax = vmax or 1.0
    low = -1.0 if diverging else 0.0
    return np.clip(img / vmax, low, 1.0)


def _style_cache():
    from rich.color import Color
    from rich.style import Style

    cache: dict[tuple, Style] = {}

    def style(top: tuple[int, int, int], bottom: tuple[int, int, int] | None) -> Style:
        key = (top, bottom)
        if key not in cache:
            cache[key] = Style(color=Color.from_rgb(*top),
                               bgcolor=None if bottom is None else Color.from_rgb(*bottom))
        return cache[key]

    return style


def _plain_char(value: float, diverging: bool) -> str:
    if not diverging:
        return GREY_RAMP[min(int(value * len(GREY_RAMP)), len(GREY_RAMP) - 1)]
    level = min(int(abs(value) * 4.999 + 0.5), 4) if abs(value) >= 0.1 else 0
    if level == 0:
        return " "
    return (POSITIVE_RAMP if value > 0 else NEGATIVE_RAMP)[level - 1]


def image_lines(img, *, diverging: bool = False, color: bool = True, vmax: float | None = None):
    """One image (rows, cols) as a Rich Text of ceil(rows/2) lines × cols characters.

    Grey: raw pixels 0–255 (or 0–1), ink bright. Diverging: signed values, blue (−) – white
    (0) – red (+), scaled symmetrically by *vmax* (default: the image's max |value|).
    """
    from rich.text import Text

    t = _normalised(img, diverging, vmax)
    q = np.round(t * _LEVELS) / _LEVELS
    rows, cols = q.shape
    text = Text(no_wrap=True, overflow="crop", end="")
    style = _style_cache() if color else None
    for r in range(0, rows, 2):
        if r:
            text.append("\n")
        top, bottom = q[r], q[r + 1] if r + 1 < rows else None
        for c in range(cols):
            if style is not None:
                lower = None if bottom is None else _rgb(bottom[c], diverging)
                text.append("▀", style(_rgb(top[c], diverging), lower))
            else:
                both = top[c] if bottom is None else (top[c] + bottom[c]) / 2
                text.append(_plain_char(both, diverging))
    return text


def crop_box(images: Sequence[np.ndarray], threshold: float = 0.0) -> tuple[slice, slice]:
    """The rows and columns, common to all *images*, outside which every |value| ≤ threshold."""
    stack = np.abs(np.stack([np.asarray(i, np.float64) for i in images]))
    busy = stack.max(axis=0) > threshold
    if not busy.any():
        return slice(None), slice(None)
    r = np.flatnonzero(busy.any(axis=1))
    c = np.flatnonzero(busy.any(axis=0))
    return slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1)


def resize(img, rows: int, cols: int) -> np.ndarray:
    """Area-average *img* (r, c) to (rows, cols) float64 (each output pixel the mean it covers)."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        # A[i, j] = |cell i ∩ pixel j| / |cell i|, cells of length n_in/n_out
        edges = np.linspace(0.0, n_in, n_out + 1)
        j = np.arange(n_in)[None, :]
        overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
        return np.clip(overlap, 0.0, None) * (n_out / n_in)

    img = np.asarray(img, np.float64)
    return weights(img.shape[0], rows) @ img @ weights(img.shape[1], cols).T


def fit_size(n_images: int, size: int, width: int = 80, gap: int = 2, max_rows: int = 3) -> int:
    """The largest image width ≤ *size* (and ≥ 8) that lays *n_images* out in ≤ *max_rows* rows."""
    per_row = -(-n_images // max_rows)
    return max(min(size, 8), min(size, (width + gap) // per_row - gap))


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, *,
               diverging: bool = False, color: bool = True, vmax: float | None = None,
               width: int = 80, gap: int = 2):
    """Several images side by side (as many per row as fit *width*), each under its title."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not len(images):
        return Text("")
    cols = max(np.asarray(i).shape[1] for i in images)
    per_row = max(1, (width + gap) // (cols + gap))
    grid = Table.grid(padding=(0, gap, 1, 0), pad_edge=False)
    for _ in range(min(per_row, len(images))):
        grid.add_column(width=cols, no_wrap=True)
    cells = []
    for i, img in enumerate(images):
        title = Text((titles[i] if titles else "")[:cols], style="bold", justify="center", no_wrap=True)
        cells.append(Group(title, image_lines(img, diverging=diverging, color=color, vmax=vmax)))
    for start in range(0, len(cells), per_row):
        grid.add_row(*cells[start:start + per_row])
    return grid


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """▁▂▃▄▅▆▇█ of *values* (min → ▁, max → █); longer series are averaged into *width* bins."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return ""
    if v.size > width:
        edges = np.linspace(0, v.size, width + 1).astype(int)
        v = np.array([v[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    span = v.max() - v.min()
    if span <= 0:
        return SPARKS[len(SPARKS) // 2] * v.size
    idx = np.round((v - v.min()) / span * (len(SPARKS) - 1)).astype(int)
    return "".join(SPARKS[i] for i in idx)


def weight_legend(vmax: float, color: bool, pair: tuple[str, str] | None = None) -> str:
    """The key under a grid of weight images; *pair* = (positive, negative) class of a binary model."""
    plus, minus = ("evidence for the class", "against") if pair is None else (
        f"evidence for {pair[0]}", f"for {pair[1]}")
    if color:
        return f"red: {plus}, blue: {minus}, white: 0; scale ±{vmax:.3g} (max |w|)"
    return (f"positive ({plus}) {' '.join(POSITIVE_RAMP)}; negative ({minus}) {' '.join(NEGATIVE_RAMP)}; "
            f"weak → strong, scale ±{vmax:.3g} (max |w|)")


# ---- evaluation report -------------------------------------------------------------------

def summary_table(report: dict[str, Any]):
    """Headline metrics of an evaluation report."""
    from rich import box
    from rich.table import Table

    data = report.get("data", {})
    source = (f"{data['dataset']} ({data['split']} split)" if "dataset" in data
              else " / ".join(str(data[k]) for k in ("images", "labels") if data.get(k)))
    table = Table(title="Evaluation", box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", overflow="fold")
    rows = [("model", f"{report.get('model')} ({report.get('kind')})"), ("data", source),
            ("samples", f"{report['n_samples']:,}" + (f" ({data['left_out']:,} of other classes left out)"
                                                      if data.get("left_out") else "")),
            ("accuracy", f"{report['accuracy']:.4f}  ({report['accuracy']:.2%})"),
            ("log-loss", format_value(report["log_loss"])), ("Brier score", format_value(report["brier"])),
            ("ECE (15 bins)", format_value(report["ece"])),
            ("ROC AUC (one-vs-rest)", f"macro {format_value(report['roc_auc_ovr_macro'])}  "
                                      f"weighted {format_value(report['roc_auc_ovr_weighted'])}"),
            ("F1", f"macro {format_value(report['f1_macro'])}  weighted {format_value(report['f1_weighted'])}")]
    for key, value in rows:
        table.add_row(key, value)
    return table


def class_report_table(report: dict[str, Any]):
    """Per-class precision, recall, F1, ROC AUC and support, with accuracy and averages."""
    from rich import box
    from rich.table import Table

    table = Table(title="Per class", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("label", justify="right")
    for name in ("precision", "recall", "f1-score", "ROC AUC", "support"):
        table.add_column(name, justify="right")
    for row in report["per_class"]:
        table.add_row(str(row["label"]), format_value(row["precision"]), format_value(row["recall"]), format_value(row["f1"]),
                      format_value(row["roc_auc"]), str(row["support"]))
    n = f"{report['n_samples']}"
    table.add_section()
    table.add_row("accuracy", "", "", format_value(report["accuracy"]), "", n)
    for avg in ("macro", "weighted"):
        table.add_row(f"{avg} avg", format_value(report[f"precision_{avg}"]), format_value(report[f"recall_{avg}"]),
                      format_value(report[f"f1_{avg}"]), format_value(report[f"roc_auc_ovr_{avg}"]), n)
    averaged = report.get("average_labels", report["labels"])
    if len(averaged) < len(report["labels"]):
        absent = ", ".join(str(c) for c in report["labels"] if c not in set(averaged))
        table.caption = (f"{format_value(None)}: not in the data and never predicted ({absent}); "
                         f"the averages are over the other {len(averaged)} labels, as scikit-learn's\n")
        table.caption_justify = "left"
    return table


def _cell_style(rate: float):
    """Background shade for a row-normalised rate (√-scaled so small confusions show)."""
    from rich.style import Style

    shade = math.sqrt(max(0.0, min(rate, 1.0)))
    c = np.array([255, 255, 255]) + shade * (np.array([8, 48, 107]) - np.array([255, 255, 255]))
    fg = "white" if shade > 0.55 else "black"
    return Style(color=fg, bgcolor=f"rgb({int(c[0])},{int(c[1])},{int(c[2])})")


def confusion_table(report: dict[str, Any], normalize: bool = False, color: bool = True):
    """The confusion matrix: rows true, columns predicted; counts (or row rates with *normalize*),
    cells shaded by the row-normalised rate; zero cells shown as '·'."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from mnistlr.evaluation.metrics import row_shares

    labels = report["labels"]
    cm = np.asarray(report["confusion_matrix"], np.int64)
    support, rate = cm.sum(axis=1), row_shares(cm)
    what = "row shares" if normalize else "counts"
    title = Text(f"Confusion matrix, {what} (rows: true, columns: predicted)", style="italic")
    texts = [["·" if cm[t, p] == 0 else (f"{rate[t, p]:.2f}" if normalize else str(cm[t, p]))
              for p in range(len(labels))] for t in range(len(labels))]
    # every cell padded to one width so its shading fills the cell
    width = 1 + max(len(x) for x in [str(v) for v in labels] + sum(texts, []))
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, collapse_padding=True)
    # no_wrap: a padded cell is as wide as it is (a narrow console splits the columns, see FitWidth)
    table.add_column("true", justify="right", style="bold", no_wrap=True)
    for label in labels:
        table.add_column(str(label).rjust(width), justify="right", no_wrap=True)
    table.add_column(" n".rjust(width + 1), justify="right", no_wrap=True)
    for t, label in enumerate(labels):
        cells = []
        for p in range(len(labels)):
            style = _cell_style(rate[t, p]) if color and cm[t, p] else ("bold" if t == p else "")
            cells.append(Text(texts[t][p].rjust(width), style=style))
        table.add_row(str(label).rjust(4), *cells, str(support[t]).rjust(width + 1))
    return Group(title, table)


def confusions_table(report: dict[str, Any]):
    """The most frequent mistakes: true → predicted, count, share of the true label (None if none listed)."""
    from rich import box
    from rich.table import Table

    table = Table(title="Most confused pairs", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("true → predicted")
    table.add_column("count", justify="right")
    table.add_column("share of true", justify="right")
    for pair in report["top_confusions"]:
        table.add_row(f"{pair['true']} → {pair['predicted']}", str(pair["count"]), f"{pair['rate']:.2%}")
    if not report["top_confusions"]:
        if report["accuracy"] < 1:
            return None  # --top 0
        table.add_row("none: every image was classified correctly", "", "")
    return table


def evaluation_renderables(report: dict[str, Any], normalize: bool = False, color: bool = True) -> list:
    """Everything `evaluate` prints, in order."""
    parts = [summary_table(report), class_report_table(report),
             confusion_table(report, normalize=normalize, color=color), confusions_table(report)]
    return [part for part in parts if part is not None]


# ---- model card ----------------------------------------------------------------------------

def _kv_table(title: str, rows: list[tuple[str, str]]):
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def _history_rows(history: list[dict[str, Any]], kind: str) -> list[tuple[str, str]]:
    """Sparklines of the loss (and hold-out figures) per epoch; none for fewer than two epochs."""
    if len(history) < 2:
        return []
    rows = []
    loss = "training MSE" if kind == "ridge" else "training loss"
    for key, name in (("train_loss", loss), ("val_loss", "hold-out loss"),
                      ("val_accuracy", "hold-out accuracy")):
        values = [r.get(key) for r in history if isinstance(r.get(key), (int, float))]
        if values:
            rows.append((name, f"{sparkline(values)}  {values[0]:.4g} → {values[-1]:.4g}"))
    return rows


def phases_text(phases: list[dict[str, Any]]) -> str:
    """lbfgs's searches on subsamples before the full data, e.g. '3,750 rows: 54 iterations; 15,000 rows: 27'."""
    return "; ".join(f"{p['rows']:,} rows: {p['iterations']}" + (" iterations" if not k else "")
                     for k, p in enumerate(phases)) + "; then all rows"


def l2_path_text(path: dict[str, Any]) -> str:
    """--l2 auto's path, one line per penalty: l2, hold-out (or mean fold) log-loss and accuracy, the choice marked."""
    metric = path["metric"].replace("_", "-")
    if path.get("cv"):
        lines = [f"{len(path['points'])} penalties × {path['cv']} folds of {path['n_fit'] + path['n_val']:,} "
                 f"images, scored by the mean fold {metric} (± standard error):"]
    else:
        lines = [f"{len(path['points'])} fits on {path['n_fit']:,} images, scored on {path['n_val']:,} by {metric}:"]
    for k, point in enumerate(path["points"]):
        mark = "  ← chosen" if k == path["chosen"] else ""
        spread = [f" ± {point[key]:.4f}" if key in point else "" for key in ("val_log_loss_se", "val_accuracy_se")]
        lines.append(f"{point['l2']:8.2g}  log-loss {point['val_log_loss']:.4f}{spread[0]}  "
                     f"accuracy {point['val_accuracy']:.4f}{spread[1]}{mark}")
    return "\n".join(lines)


def _count(value: Any) -> str:
    """A whole number with thousands separators, None as '—'."""
    return "—" if value is None else f"{value:,}"


def model_card_renderables(card: dict[str, Any]) -> list:
    """The model card as Rich tables: model, training, results, file."""

    w = card["weights"]
    model_rows = [("kind", card["kind"] + (f" ({card['solver']})" if card["solver"] else "")),
                  ("classes", ", ".join(map(str, card["classes"]))),
                  ("image shape", "×".join(map(str, card["image_shape"]))),
                  ("weights", f"{w['shape'][0]}×{w['shape'][1]}, |w| ≤ {w['max_abs']:.3g}, "
                              f"‖W‖ = {w['l2_norm']:.3g}, {w['zero_fraction']:.1%} zero"),
                  ("preprocessing", card["preprocessing"])]
    if card.get("features"):
        model_rows.insert(3, ("features", " → ".join(card["features"]["steps"])
                              + f" → {card['features']['n_features']:,} inputs"))
    model_rows += [(k.replace("_", " "), format_value(v)) for k, v in card["hyperparameters"].items()]
    data = card["dataset"] or (card["train_files"] or {}).get("images") or "—"
    sha = card["data_sha256"]
    train_rows = [("data", str(data)), ("data sha256", f"{sha[:16]}…" if sha else "—"),
                  ("images", f"{_count(card['n_train'])} training, {_count(card['n_val'])} hold-out"),
                  ("time", "—" if card["seconds"] is None else f"{card['seconds']:.2f} s"),
                  ("epochs", str(card["epochs"]) + (f" (best {card['best_epoch']})" if card["best_epoch"] else "")),
                  ("stop reason", format_value(card["stop_reason"]))]
    if card.get("subsampled_phases"):
        train_rows.append(("subsampled phases", phases_text(card["subsampled_phases"])))
    if card.get("l2_path"):
        train_rows.append(("l2 path", l2_path_text(card["l2_path"])))
    results = [(k.replace("_", " "), format_value(v)) for k, v in card["metrics"].items()]
    history = _history_rows(card["history"], card["kind"]) or [
        ("history", f"{len(card['history'])} epoch(s) recorded" if card["history"] else "none recorded")]
    versions = ", ".join(f"{k} {v}" for k, v in card["versions"].items())
    file_rows = [("path", card["path"]), ("size", _count(card["file_bytes"]) + " bytes"),
                 ("format version", format_value(card["format_version"])),
                 ("created", format_value(card["created"])), ("versions", versions or "—")]
    return [_kv_table("Model", model_rows), _kv_table("Training", train_rows),
            _kv_table("Final metrics", results + history), _kv_table("File", file_rows)]
