"""`mnistlr evaluate`: score a saved model on labelled data; report, JSON and PNG figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli import options as o
from mnistlr.cli.base import (
    DataDirOpt,
    DatasetOpt,
    JsonOpt,
    ModelArg,
    QuietOpt,
    Split,
    command,
    echo,
)


@command(
    "evaluate",
    ("the test split of the dataset the model was trained on",
     "mnistlr evaluate sample.joblib"),
    ("also write confusion.png, roc.png, learning_curves.png and weights.png",
     "mnistlr evaluate sample.joblib --plot figures/"),
    ("explicit IDX files (raw or gzip)",
     "mnistlr evaluate sample.joblib --images t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz"),
)
def evaluate_command(
    model: ModelArg,
    dataset: DatasetOpt = None,
    split: Annotated[Split | None, typer.Option(
        "--split", help="Which split of --dataset (default: test).")] = None,
    images: o.ImagesOpt = None,
    labels: o.LabelsOpt = None,
    only_model_classes: o.OnlyModelClassesOpt = False,
    normalize: Annotated[bool, typer.Option(
        "--normalize", help="Print the confusion matrix as shares of each true label, not counts "
        "(--json: confusion_matrix_shares beside the counts).", metavar="")] = False,
    top: Annotated[int, typer.Option("--top", min=0, max=100, help="How many confused pairs to list.")] = 5,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write confusion.png, roc.png, learning_curves.png and weights.png (and l2_path.png "
        "for an --l2 auto model) into this folder (needs the 'plot' extra).")] = None,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score a saved model on labelled images and report where it fails.

    Accuracy, per-class precision/recall/F1, ROC AUC, log-loss, Brier score, calibration
    error, the confusion matrix and the most confused pairs. The data default to the test
    split of the dataset the model was trained on.
    """
    from mnistlr.api.evaluate import evaluate

    report = evaluate(model, dataset=dataset, split=split.value if split else None, images=images,
                      labels=labels, data_dir=data_dir, only_model_classes=only_model_classes,
                      plot_dir=plot, top=top, normalize=normalize and json_out)
    if json_out:
        typer.echo(json.dumps(report))
    else:
        from mnistlr.cli.base import stdout_console
        from mnistlr.cli.render import evaluation_renderables, wants_color

        console = stdout_console()
        for renderable in evaluation_renderables(report, normalize=normalize, color=wants_color(console)):
            console.print(renderable)
    if report.get("figures") and not quiet:
        for path in report["figures"].values():
            echo(f"wrote {path}", err=True)  # plain: a path must not be wrapped
