"""`train`: load the data, fit a model, save it; returns the run's summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistlr.errors import UsageError
from mnistlr.learn.fit import fit_model
from mnistlr.learn.fit_notes import capped_fit_note, short_classes_note, weak_fit_note
from mnistlr.learn.options import TrainOptions, applies


def load_training_data(dataset: str | None, train_images: Path | None, train_labels: Path | None,
                       data_dir: Path | None, split: str = "train"):
    """Images (n, rows, cols) uint8 and labels (n,) from a dataset name, or from --train-images in
    any format `mnistlr.io.labelled` reads (with --train-labels when it holds no labels)."""
    from mnistlr.data import registry

    if train_labels is not None and train_images is None:
        raise UsageError("--train-labels goes with --train-images", "give the images too, or --dataset")
    if train_images is not None:
        if dataset is not None:
            raise UsageError("--dataset and --train-images both name the training data", "give only one")
        return registry.load_source(train_images, train_labels, split, data_dir, "train_labels")
    return registry.load_dataset(dataset or "mnist", split, data_dir)


def training_inputs(dataset: str | None, train_images: Path | None, train_labels: Path | None,
                    data_dir: Path | None) -> list[Path]:
    """The files training reads (an output must never be one of them)."""
    from mnistlr.data import registry

    if train_images is not None or train_labels is not None:
        return [p for p in (train_images, train_labels) if p is not None]
    return registry.dataset_files(dataset or "mnist", None, data_dir)


def load_test_data(dataset: str | None, train_images: Path | None, track_test: bool,
                   test_images: Path | None, test_labels: Path | None, data_dir: Path | None):
    """The test images and labels whose curves the history records, or None (see `train`)."""
    from mnistlr.data import registry

    check_test_options(train_images, track_test, test_images, test_labels)
    if test_images is not None:
        return registry.load_source(test_images, test_labels, "test", data_dir, "test_labels")
    return registry.load_dataset(dataset or "mnist", "test", data_dir) if track_test else None


def check_test_options(train_images: Path | None, track_test: bool, test_images: Path | None,
                       test_labels: Path | None) -> None:
    """UsageError for a test-set combination that cannot work (before any data is read)."""
    if test_labels is not None and test_images is None:
        raise UsageError("`test_labels` goes with `test_images`", "give the test images too")
    if track_test and test_images is None and train_images is not None:
        raise UsageError("`track_test` takes the test split of `dataset`; the training data are files",
                         "give `test_images` and `test_labels`")


def train(options: TrainOptions, *, output: Path, dataset: str | None = None,
          train_images: Path | None = None, train_labels: Path | None = None,
          data_dir: Path | None = None, track_test: bool = False,
          test_images: Path | None = None, test_labels: Path | None = None,
          callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Fit a model as *options* say and save it to *output*; returns the summary dict, whose
    "warnings" lists what the fit should be warned of (L-BFGS stopped by max_iter, nothing learnt).

    track_test (the dataset's test split) or test_images/test_labels: every history record also
    carries test_loss and test_accuracy, for the learning curves only (never used for stopping
    or selection).
    """
    from mnistlr.api.export import refuse_export_name
    from mnistlr.io.atomic import check_output
    from mnistlr.learn.persistence import save_model

    options.validate()
    check_test_options(train_images, track_test, test_images, test_labels)
    if "-" in map(str, (train_images, train_labels)) and "-" in map(str, (test_images, test_labels)):
        raise UsageError("'-' (standard input) is given for both the training and the test data",
                         "give one of them as files")
    inputs = list(training_inputs(dataset, train_images, train_labels, data_dir))
    inputs += [p for p in (test_images, test_labels) if p is not None]
    refuse_export_name(output)
    check_output(output, inputs)
    images, labels = load_training_data(dataset, train_images, train_labels, data_dir)
    test = load_test_data(dataset, train_images, track_test, test_images, test_labels, data_dir)
    name = None if train_images is not None else (dataset or "mnist")
    model = fit_model(images, labels, options, callback=callback, dataset=name, test=test)
    if train_images is not None:
        model.meta["train_files"] = {"images": str(train_images),
                                     "labels": None if train_labels is None else str(train_labels)}
    save_model(model, output, inputs=inputs)
    notes = [note for note in (short_classes_note(options, labels), capped_fit_note(model, options),
                               weak_fit_note(model, labels)) if note]
    return summary(model, output) | {"warnings": notes}


def summary(model, output: Path | None) -> dict[str, Any]:
    """The run's headline figures, as `train --json` prints them. The keys are the same for every
    model; `l1` is None where the solver has no L1 penalty (ridge's closed form)."""
    meta, metrics = model.meta, model.meta["metrics"]
    history = meta["history"]
    # gd's momentum (models saved before it existed: plain gd)
    accel = {"accel": model.params.get("accel", "none")} if model.params["solver"] == "gd" else {}
    return {
        "model": model.kind, "solver": model.params["solver"], **accel, "dataset": meta.get("dataset"),
        "classes": model.classes.tolist(), "l2": model.params["l2"],
        "l1": model.params["l1"] if applies("l1", model.params["solver"]) else None,
        "n_train": meta["n_train"], "n_val": meta["n_val"],
        "train_accuracy": metrics["train_accuracy"], "val_accuracy": metrics["val_accuracy"],
        "train_loss": metrics["train_loss"], "val_loss": metrics["val_loss"],
        "epochs": len(history), "best_epoch": meta["best_epoch"], "stop_reason": meta["stop_reason"],
        "subsampled_phases": meta.get("subsampled_phases") or [],
        "seconds": round(meta["seconds"], 4), "output": None if output is None else str(output),
    } | ({"l2_path": meta["l2_path"]} if meta.get("l2_path") else {})
