"""`mnistlr train`: fit a ridge, logistic or softmax model and save it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli import options as o
from mnistlr.cli.base import DataDirOpt, DatasetOpt, JsonOpt, QuietOpt, SeedOpt, command


@command(
    "train",
    ("softmax regression on the bundled sample (no download needed)",
     "mnistlr train --dataset mnist-sample -o sample.joblib"),
    ("a binary 3-versus-8 logistic model with an L1 penalty, by mini-batch SGD",
     "mnistlr train -d mnist-sample -m logistic --classes 3,8 --solver sgd --l1 1e-4 -o 3v8.joblib"),
    ("the first 20,000 MNIST training images, with scikit-learn's C=1",
     "mnistlr train --dataset mnist --train-limit 20000 --C 1 -o first20k.joblib"),
)
def train_command(
    model: o.ModelOpt = o.ModelKind.softmax,
    solver: o.SolverOpt = None,
    l2: o.L2Opt = None,
    l1: o.L1Opt = 0.0,
    C: o.COpt = None,
    lr: o.LrOpt = 0.5,
    anneal: o.AnnealOpt = 10.0,
    epochs: o.EpochsOpt = 100,
    batch_size: o.BatchOpt = 256,
    patience: o.PatienceOpt = 3,
    tol: o.TolOpt = 1e-3,
    max_iter: o.MaxIterOpt = 100,
    init: o.InitOpt = o.Init.zeros,
    preprocess: o.PreprocessOpt = o.Preprocess.scale,
    dataset: DatasetOpt = None,
    train_images: o.TrainImagesOpt = None,
    train_labels: o.TrainLabelsOpt = None,
    classes: o.ClassesOpt = None,
    train_limit: o.TrainLimitOpt = None,
    per_class: o.PerClassOpt = None,
    val_size: o.ValSizeOpt = None,
    val_fraction: o.ValFractionOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model.")] = Path(
        "model.joblib"),
    data_dir: DataDirOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on a dataset (default: mnist) or on IDX files, and save it.

    Models: softmax (multinomial logistic regression, the default), logistic (sigmoid; binary
    with two --classes, else one-vs-rest) and ridge (least squares on one-hot targets, closed
    form). A summary table goes to stdout (--json: one object), progress to stderr.
    """
    from mnistlr.api.train import train
    from mnistlr.cli.progress import TrainingProgress
    from mnistlr.learn.options import TrainOptions

    options = TrainOptions(
        model=model.value, solver=solver.value if solver else None, l2=l2, l1=l1, C=C, lr=lr,
        anneal=anneal, epochs=epochs, batch_size=batch_size, patience=patience, tol=tol,
        max_iter=max_iter, init=init.value, preprocess=preprocess.value,
        classes=o.parse_classes(classes), train_limit=train_limit, per_class=per_class,
        val_size=val_size, val_fraction=val_fraction, seed=seed)
    with TrainingProgress(quiet) as progress:
        result = train(options, output=output, dataset=dataset, train_images=train_images,
                       train_labels=train_labels, data_dir=data_dir, callback=progress.update)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        from mnistlr.cli.tables import key_value_table, print_stdout

        print_stdout(key_value_table(result, title="Training summary"))
