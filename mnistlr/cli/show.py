"""`mnistlr show`: a dataset's counts, label shares, pixel statistics and example images; one
image drawn large; or the test images a model gets most confidently wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli import options as o
from mnistlr.cli.base import DataDirOpt, JsonOpt, QuietOpt, Split, command, complete_dataset, echo

GAP = 2  # columns between pictures


@command(
    "show",
    ("counts, label shares, pixel statistics and example images", "mnistlr show mnist-sample"),
    ("test image 7 drawn large, with its label", "mnistlr show mnist-sample --split test --index 7"),
    ("the 12 test images a model gets most confidently wrong, also as a PNG",
     "mnistlr show mnist-sample --model sample.joblib --errors --top 12 --plot errors.png"),
)
def show_command(
    dataset: Annotated[str | None, typer.Argument(
        help="A dataset name (see 'mnistlr fetch --list'); or use --images/--labels.",
        metavar="DATASET", show_default=False, autocompletion=complete_dataset)] = None,
    split: Annotated[Split | None, typer.Option(
        "--split", help="Which split to draw from (default: test with --errors, else train).")] = None,
    images: o.ImagesOpt = None,
    labels: o.LabelsOpt = None,
    index: Annotated[int | None, typer.Option(
        "--index", "-i", help="Draw image N (counted from 0) large, with its label.")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="A model file, for --errors (or to add its prediction to --index).")] = None,
    errors: Annotated[bool, typer.Option(
        "--errors", help="Show the images the model misclassifies with the highest confidence.", metavar="")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=200, help="How many mistakes to show.")] = 10,
    only_model_classes: o.OnlyModelClassesOpt = False,
    per_class: Annotated[int, typer.Option(
        "--per-class", "-k", min=1, max=20, help="Example images per class (the default fits 80 columns).")] = 3,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, help="Choose the examples at random with this seed (default: the first of each class).")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also write the pictures as a PNG figure (needs the 'plot' extra).")] = None,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Look at data and at a model's mistakes.

    Without options: the number of images, their shape, the label counts and shares (train and
    test side by side), pixel statistics and a few example images of each class. --index N draws
    one image large; --model M --errors lists the test images M gets most confidently wrong.
    """
    from mnistlr.api.show import show

    result = show(dataset, split=split.value if split else None, images=images, labels=labels,
                  data_dir=data_dir, index=index, model=model, errors=errors, top=top,
                  per_class=per_class, seed=seed, plot=plot, only_model_classes=only_model_classes)
    if json_out:
        typer.echo(json.dumps(result.info))
    else:
        from mnistlr.cli.base import stdout_console

        console = stdout_console()
        {"overview": _print_overview, "image": _print_image, "errors": _print_errors}[result.mode](
            console, result)
    if result.figure and not quiet:
        echo(f"wrote {result.figure}", err=True)  # plain: a path must not be wrapped


# ---- layout --------------------------------------------------------------------------------

def layout_width(console) -> int:
    """Columns to lay pictures out in: the console's, capped by $COLUMNS when set."""
    width = console.width
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        width = min(width, int(columns))
    return max(width, 20)


def fit_images(images: list, columns: int) -> list:
    """Crop *images* to the box any of them inks, then shrink (area average, aspect kept) to at
    most *columns* wide (and at least 8)."""
    import numpy as np

    from mnistlr.cli.render import crop_box, resize

    rows, cols = crop_box(images)
    cropped = [np.asarray(img, np.float64)[rows, cols] for img in images]
    height, width = cropped[0].shape
    if width > max(columns, 8):
        size = max(columns, 8)
        cropped = [resize(img, max(1, round(height * size / width)), size) for img in cropped]
    return cropped


def picture_grid(rows: list[tuple[str, list, list[str]]], color: bool, width: int):
    """Rows of (heading, images, titles) as a Rich grid within *width* columns.

    With headings, each row keeps its images on one line (shrunk to fit); without, the images
    keep their (cropped) size and wrap onto as many lines as needed.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from mnistlr.cli.render import image_lines

    heading_width = max((len(h) for h, _, _ in rows), default=0)
    n_across = max((len(imgs) for _, imgs, _ in rows), default=1) if heading_width else 1
    room = width - (heading_width + GAP if heading_width else 0)
    images = fit_images([img for _, imgs, _ in rows for img in imgs], (room + GAP) // n_across - GAP)
    n_across = n_across if heading_width else len(images)
    cols = images[0].shape[1]
    n_across = max(1, min(n_across, (room + GAP) // (cols + GAP)))
    grid = Table.grid(padding=(0, GAP, 1, 0), pad_edge=False)
    if heading_width:
        grid.add_column(width=heading_width, no_wrap=True, justify="right")
    for _ in range(n_across):
        grid.add_column(width=cols, no_wrap=True)
    start = 0
    for heading, imgs, titles in rows:
        cells = [Group(Text(t, no_wrap=True, overflow="crop"), image_lines(images[start + j], color=color))
                 for j, t in enumerate(titles)]
        start += len(imgs)
        for first in range(0, max(len(cells), 1), n_across):
            lead = [Text(heading if first == 0 else "", style="bold")] if heading_width else []
            grid.add_row(*lead, *cells[first:first + n_across])
    return grid


# ---- the three views -----------------------------------------------------------------------

def _print_overview(console, result) -> None:
    from mnistlr.cli.render import wants_color

    info = result.info
    console.print(_source_line(info["source"], overview=True), style="bold", markup=False)
    console.print(_summary_table(info["splits"]))
    console.print(_labels_table(info))
    ex = info["examples"]
    k = ex["per_class"]
    how = f"first {k} per class" if ex["seed"] is None else f"{k} per class at random, seed {ex['seed']}"
    split = info["source"].get("split")
    console.print(f"Examples{f' ({split} split)' if split else ''}, {how} (title: image index)",
                  style="italic", markup=False)
    rows = [(p.heading, p.images, p.titles) for p in result.panels]
    console.print(picture_grid(rows, wants_color(console), layout_width(console)))


def _source_line(source: dict, overview: bool = False) -> str:
    if "dataset" not in source:
        return f"images {source['images']}" + (f", labels {source['labels']}" if source["labels"] else "")
    if overview:
        return f"{source['dataset']}: {source['description']}"
    return f"the {source['split']} split of {source['dataset']}"


def _summary_table(splits: dict):
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, title="Images", title_justify="left")
    table.add_column("")
    for name in splits:
        table.add_column(name, justify="right")
    rows = [("images", lambda s: f"{s['n_images']:,}"),
            ("image shape", lambda s: "×".join(map(str, s["image_shape"]))),
            ("pixel mean", lambda s: f"{s['pixels']['mean']:.2f}"),
            ("pixel std", lambda s: f"{s['pixels']['std']:.2f}"),
            ("zero pixels", lambda s: f"{s['pixels']['zero_share']:.1%}"),
            ("pixel range", lambda s: f"{s['pixels']['min']}–{s['pixels']['max']}")]
    for name, cell in rows:
        table.add_row(name, *(cell(s) for s in splits.values()))
    return table


def _labels_table(info: dict):
    from rich import box
    from rich.table import Table

    splits = info["splits"]
    named = any(c["name"] != str(c["label"]) for c in info["classes"])
    table = Table(box=box.SIMPLE_HEAD, title="Labels", title_justify="left")
    table.add_column("label", justify="right")
    if named:
        table.add_column("name")
    for name in splits:
        table.add_column(f"{name} count", justify="right")
        table.add_column("share", justify="right")
    for i, c in enumerate(info["classes"]):
        cells = [str(c["label"])] + ([c["name"]] if named else [])
        for s in splits.values():
            row = s["labels"][i]
            cells += [f"{row['count']:,}", f"{row['share']:.1%}"]
        table.add_row(*cells)
    table.add_section()
    table.add_row("all", *([""] if named else []),
                  *sum(([f"{s['n_images']:,}", "100.0%"] for s in splits.values()), []))
    return table


def _print_image(console, result) -> None:
    import numpy as np

    from mnistlr.cli.render import image_lines, wants_color

    info, panel = result.info, result.panels[0]
    console.print(panel.titles[0], style="bold", markup=False)
    console.print(f"from {_source_line(info['source'])}", style="italic", markup=False)
    img = np.asarray(panel.images[0])
    rows, cols = img.shape
    width = layout_width(console)
    # scale s: the image s·cols wide and s·rows/2 lines high, within the width and ~40 lines
    scale = max(1, min(width // cols, 80 // rows))
    console.print(image_lines(np.kron(img, np.ones((scale, scale))), color=wants_color(console)))
    if "predicted" in info:
        verdict = "right" if info["predicted"] == info["label"] else "wrong"
        p_true = info["probability_true"]
        console.print(f"model predicts {info['predicted']} with probability {info['probability']:.4f} "
                      f"({verdict}); p({info['label']}) = " + ("—" if p_true is None else f"{p_true:.4f}"),
                      markup=False)


def _print_errors(console, result) -> None:
    from rich import box
    from rich.table import Table

    from mnistlr.cli.render import wants_color

    info = result.info
    left = f"; {info['left_out']:,} images of other classes left out" if info["left_out"] else ""
    console.print(f"{Path(info['model']).name} on {_source_line(info['source'])}:\n{info['n_errors']:,} of "
                  f"{info['n_images']:,} images misclassified (accuracy {info['accuracy']:.4f}){left}",
                  style="bold", markup=False)
    if not info["errors"]:
        console.print("no mistakes to show: every image was classified correctly", markup=False)
        return
    console.print(f"The {len(info['errors'])} most confident mistakes (title: index, true→predicted, "
                  "its probability)", style="italic", markup=False)
    panel = result.panels[0]
    width = layout_width(console)
    console.print(picture_grid([("", panel.images, panel.titles)], wants_color(console), width))
    table = Table(box=box.SIMPLE_HEAD, title="Where they fall", title_justify="left")
    for name in ("true → predicted", "shown", "all errors"):
        table.add_column(name, justify="right")
    for pair in info["pairs"]:
        table.add_row(f"{pair['true']} → {pair['predicted']}", str(pair["count"]), f"{pair['total']:,}")
    console.print(table)
