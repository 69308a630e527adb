"""`mnistlr train`: fit a ridge, logistic or softmax model and save it."""

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
    QuietOpt,
    SeedOpt,
    command,
    print_warning,
    report_stream,
)
from mnistlr.learn.options import TrainOptions


@command(
    "train",
    ("softmax regression on the bundled sample (no download needed)",
     "mnistlr train --dataset mnist-sample -o sample.joblib"),
    ("a binary 3-versus-8 logistic model with an L1 penalty, by mini-batch SGD",
     "mnistlr train -d mnist-sample -m logistic --classes 3,8 --solver sgd --l1 1e-4 -o 3v8.joblib"),
    ("the first 20,000 MNIST training images, with scikit-learn's C=1",
     "mnistlr train --dataset mnist --train-limit 20000 --C 1 -o first20k.joblib"),
)
@o.training_options
def train_command(
    dataset: DatasetOpt = None,
    train_images: o.TrainImagesOpt = None,
    train_labels: o.TrainLabelsOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model.")] = Path(
        "model.joblib"),
    data_dir: DataDirOpt = None,
    track_test: Annotated[bool, typer.Option(
        "--track-test", help="Record test loss and accuracy in every history record (the dataset's test split), "
        "for the learning curves only: never used for stopping or selection.", rich_help_panel=o.DATA_PANEL)] = False,
    test_images: Annotated[Path | None, typer.Option(
        "--test-images", metavar="SOURCE", help="Test images and labels to record as --track-test does, "
        "in any format --train-images reads (a Keras .npz: x_test/y_test).", rich_help_panel=o.DATA_PANEL)] = None,
    test_labels: Annotated[Path | None, typer.Option(
        "--test-labels", metavar="SOURCE", help="Labels of --test-images (IDX or .npy), when it holds none.",
        rich_help_panel=o.DATA_PANEL)] = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    options: TrainOptions = None,
) -> None:
    """Train a model on a dataset (default: mnist) or on IDX files, and save it.

    Models: softmax (multinomial logistic regression, the default), logistic (sigmoid; binary
    with two --classes, else one-vs-rest) and ridge (least squares on one-hot targets, closed
    form). A summary table goes to stdout (--json: one object), progress to stderr.
    """
    from mnistlr.api.train import train
    from mnistlr.cli.progress import TrainingProgress

    with TrainingProgress(quiet) as progress:
        result = train(options, output=output, dataset=dataset, train_images=train_images,
                       train_labels=train_labels, data_dir=data_dir, track_test=track_test,
                       test_images=test_images, test_labels=test_labels, callback=progress.update)
    for note in result["warnings"]:
        print_warning(note)
    with report_stream(output):   # -o /dev/stdout: the model's bytes, then no summary after them
        if json_out:
            typer.echo(json.dumps(result))
        else:
            _print_summary(result)


def _print_summary(result: dict) -> None:
    """The training summary table (stdout)."""
    from mnistlr.cli.render import l2_path_text, phases_text
    from mnistlr.cli.tables import print_key_values

    if "l2_path" in result:
        result = result | {"l2_path": l2_path_text(result["l2_path"])}
    if result["subsampled_phases"]:
        result = result | {"subsampled_phases": phases_text(result["subsampled_phases"])}
    # no L1 penalty with this solver (ridge), no subsampled phases: no row claims them; the warnings went to stderr
    result = {k: v for k, v in result.items()
              if k != "warnings" and (k != "l1" or v is not None) and (k != "subsampled_phases" or v)}
    print_key_values(result, title="Training summary")
