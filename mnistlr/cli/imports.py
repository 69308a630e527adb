"""`mnistlr import`: make your own files a named dataset (IDX files and a SHA-256 manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli import options as o
from mnistlr.cli.base import DataDirOpt, JsonOpt, QuietOpt, command


@command(
    "import",
    ("Keras' mnist.npz: both splits at once, then train on it by name",
     "mnistlr import keras mnist.npz && mnistlr train -d keras -o keras.joblib"),
    ("Kaggle's digit-recognizer train.csv as the training split only",
     "mnistlr import kaggle train.csv"),
    ("a folder of class folders for training, IDX files for testing",
     "mnistlr import mine digits/ t10k-images-idx3-ubyte.gz --test-labels t10k-labels-idx1-ubyte.gz"),
)
def import_command(
    name: Annotated[str, typer.Argument(help="The new dataset's name (not a built-in one).",
                                        metavar="NAME", show_default=False)],
    train: Annotated[Path, typer.Argument(help=f"The training images and labels: {o.SOURCE_FORMATS}.",
                                          metavar="TRAIN_SOURCE", show_default=False)],
    test: Annotated[Path | None, typer.Argument(
        help="The test images and labels (any of the same formats; a Keras .npz gives both).",
        metavar="[TEST_SOURCE]", show_default=False)] = None,
    train_labels: Annotated[Path | None, typer.Option(
        "--train-labels", metavar="SOURCE", help="Labels of TRAIN_SOURCE (IDX or .npy), when it holds none.")] = None,
    test_labels: Annotated[Path | None, typer.Option(
        "--test-labels", metavar="SOURCE", help="Labels of TEST_SOURCE (IDX or .npy), when it holds none.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier import of the same name.", metavar="")] = False,
    data_dir: DataDirOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert images with labels into a named dataset that every command reads with -d NAME.

    The data are written once as the four standard IDX files into the data directory, with a
    manifest holding their SHA-256; 'mnistlr fetch --list' shows the dataset, and a file
    changed afterwards shows as 'bad checksum' and is refused until it is imported again
    (--force). Without TEST_SOURCE only the training split exists (a Keras .npz gives both).
    """
    from mnistlr.api.fetch import import_data

    result = import_data(name, train, test, train_labels=train_labels, test_labels=test_labels,
                         force=force, data_dir=data_dir)
    if json_out:
        from mnistlr.io.json_values import json_ready

        typer.echo(json.dumps(json_ready(result), indent=2))
        return
    from mnistlr.cli.base import stdout_console

    splits = "; ".join(f"{split} {s['images']:,} images {'×'.join(map(str, s['image_shape']))} "
                       f"from {s['source']}" for split, s in result["splits"].items())
    size = sum(f["bytes"] for f in result["files"].values())
    stdout_console().print(f"{name}: imported into {result['where']} ({size / 1e6:.1f} MB): {splits}",
                           markup=False, soft_wrap=True)
    del quiet
