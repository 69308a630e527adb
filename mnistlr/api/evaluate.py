"""`evaluate`: score a saved model on a labelled dataset; metrics, confusions and figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mnistlr.errors import DataError, UsageError
from mnistlr.io.json_values import json_ready


def load_eval_data(model, dataset: str | None, split: str | None, images: Path | None,
                   labels: Path | None, data_dir: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    """Images (n, rows, cols), labels (n,) and a description of where they came from.

    Default: the test split of the dataset the model was trained on.
    """
    from mnistlr.data import registry

    if labels is not None and images is None:
        raise UsageError("--labels goes with --images", "give the images too, or --dataset")
    if images is not None:
        if dataset is not None:
            raise UsageError("--images and --dataset both name the data", "give only one")
        if split is not None and str(images) != "-" and Path(images).suffix.lower() != ".npz":
            raise UsageError(f"`split` chooses a split of a dataset or of a Keras .npz (x_train/x_test), but "
                             f"{images} holds one set of images", "drop `split`, or give `dataset`")
        X, y = registry.load_source(images, labels, split or "test", data_dir)
        return X, y, {"images": str(images), "labels": None if labels is None else str(labels)}
    name = dataset or model.meta.get("dataset")
    if name is None:
        raise UsageError("the model does not record a dataset name (it was trained on files or arrays, not a named dataset)",
                         "give --dataset NAME or --images PATH --labels PATH")
    split = split or "test"
    X, y = registry.load_dataset(name, split, data_dir)
    return X, y, {"dataset": name, "split": split}


def evaluate(model_path: Path, *, dataset: str | None = None, split: str | None = None,
             images: Path | None = None, labels: Path | None = None, data_dir: Path | None = None,
             only_model_classes: bool = False, plot_dir: Path | None = None,
             top: int = 5, normalize: bool = False) -> dict[str, Any]:
    """Score the model at *model_path*; returns the JSON-ready report (see `metrics.classification_report`),
    plus `model`, `data`, with *normalize* `confusion_matrix_shares` (each true label's row as
    shares) and, with *plot_dir*, `figures` (name → path)."""
    from mnistlr.learn.persistence import load_model

    if plot_dir is not None:
        from mnistlr.evaluation.figures import check_directory, require_matplotlib

        require_matplotlib()
        check_directory(plot_dir)
    model = load_model(model_path)
    X, y, source = load_eval_data(model, dataset, split, images, labels, data_dir)
    try:
        report, (y, P) = score_report(model, X, y, source, str(model_path), only_model_classes, top)
    except DataError as exc:   # the images' shape or labels against the model's: name the data
        where = str(images) if images is not None else f"dataset '{source['dataset']}'"
        raise DataError(f"{where}: {exc.message}", exc.hint) from None
    if normalize:
        import numpy as np

        from mnistlr.evaluation.metrics import row_shares

        report["confusion_matrix_shares"] = row_shares(np.asarray(report["confusion_matrix"]))
    if plot_dir is not None:
        read = [model_path] + ([images, labels] if images is not None else [])
        report["figures"] = write_figures(model, report, y, P, Path(plot_dir), read)
    return json_ready(report)


def score_report(model, X, y, source: dict[str, Any], name: str | None,
                 only_model_classes: bool = False, top: int = 5) -> tuple[dict[str, Any], tuple]:
    """The report of `evaluate` for raw pixels X (n, rows, cols) or (n, n_features) and labels y
    (n,), and the (labels, probabilities (n, n_classes)) it was computed from."""
    from mnistlr.evaluation.metrics import classification_report, model_class_rows

    keep = model_class_rows(y, model.classes, only_model_classes)
    n_out = len(y) - len(keep)
    if n_out:
        X, y = X[keep], y[keep]
    S = model.raw_scores(X)
    P, y_pred = model.proba_from_scores(S), model.labels_from_scores(S)
    report = {"model": name, "kind": model.kind, "data": source | {"left_out": n_out}}
    report |= classification_report(y, P, model.classes, y_pred=y_pred, top=top)
    return report, (y, P)


def roc_curves(y, P, classes) -> list[dict[str, Any]]:
    """One-vs-rest ROC curves [{label, fpr, tpr, auc}]; a binary model has the one curve of class 1."""
    from mnistlr.evaluation.metrics import binary_roc_auc, roc_curve

    ks = [1] if len(classes) == 2 else range(len(classes))
    curves = []
    for k in ks:
        positive = y == classes[k]
        fpr, tpr = roc_curve(positive, P[:, k])
        auc = binary_roc_auc(positive, P[:, k])
        label = f"{classes[1]} vs {classes[0]}" if len(classes) == 2 else str(classes[k])
        curves.append({"label": label, "fpr": fpr, "tpr": tpr, "auc": None if math.isnan(auc) else auc})
    return curves


def write_figures(model, report: dict[str, Any], y, P, directory: Path,
                  inputs: list[Path] | tuple = ()) -> dict[str, str]:
    """Write confusion.png, roc.png, learning_curves.png, weights.png (and l2_path.png) into *directory*."""
    from mnistlr.api.inspect import mean_images, weight_images, weight_note
    from mnistlr.evaluation import figures

    binary = len(model.classes) == 2
    pair = f"{model.classes[1]} vs {model.classes[0]}"
    written = figures.write_figures(
        directory,
        confusion={"cm": report["confusion_matrix"], "labels": report["labels"]},
        roc={"curves": roc_curves(y, P, model.classes),
             "title": f"ROC curve, {pair}" if binary else "One-vs-rest ROC curves",
             "legend_title": "positive class" if binary else "class (one-vs-rest)"},
        learning_curves={"history": model.meta.get("history"), "best_epoch": model.meta.get("best_epoch"),
                         "note": _no_curves_note(model),
                         "loss_name": "mean squared error" if model.kind == "ridge" else "cross-entropy",
                         "step_name": "iteration" if model.params.get("solver") == "lbfgs" else "epoch"},
        weights={"weights": weight_images(model), "means": mean_images(model), "note": weight_note(model)},
        path={"path": model.meta["l2_path"]} if model.meta.get("l2_path") else None,
        inputs=inputs)
    return {name: str(path) for name, path in written.items()}


def _no_curves_note(model) -> str | None:
    """Why there are no learning curves to draw (None when there are)."""
    history = model.meta.get("history") or []
    if model.params.get("solver") == "closed":
        return "no learning curves: ridge is solved in closed form, in one step"
    if len(history) < 2:
        return f"no learning curves: this model records {len(history)} training step(s)"
    return None
