"""`inspect`: a saved model's card (what it is, how it was trained) and its weight images."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mnistlr.learn.options import SOLVER_PARAMS

# TrainOptions fields that matter for every solver (the model's classes are on the card itself)
_ALWAYS_PARAMS = ("l2", "C", "train_limit", "per_class", "val_size", "val_fraction", "seed")


@dataclasses.dataclass
class Inspection:
    """card: JSON-ready model card; weights: [(title, (rows, cols) float32)] when asked for."""

    card: dict[str, Any]
    weights: list[tuple[str, Any]] | None = None


def weight_images(model) -> list[tuple[str, Any]]:
    """Each output's weight column reshaped to the image: [(title, (rows, cols) float32)].

    A binary model has one image, titled "c₁ vs c₀" (positive weights favour c₁). A feature
    model's weights are mapped back to the pixels where its features allow; [] where they do
    not (`weight_note` says why).
    """
    W = model.W
    if model.features is not None:
        from mnistlr.learn.features import pixel_weights

        W, _ = pixel_weights(model.features, model.effective_weights()[0])
        if W is None:
            return []
    classes = model.classes.tolist()
    if W.shape[1] == 1:
        return [(f"{classes[1]} vs {classes[0]}", W[:, 0].reshape(model.image_shape))]
    return [(str(c), W[:, k].reshape(model.image_shape)) for k, c in enumerate(classes)]


def weight_note(model) -> str | None:
    """What a feature model's weight images show, or why there are none (None for a pixel model)."""
    if model.features is None:
        return None
    from mnistlr.learn.features import pixel_weights

    return pixel_weights(model.features, model.effective_weights()[0])[1]


def mean_images(model) -> list[tuple[str, Any]] | None:
    """The mean training image of each class [(title, (rows, cols))], or None when not stored."""
    import numpy as np

    means = model.meta.get("class_means")
    if means is None:
        return None
    means = np.asarray(means)
    if means.shape != (model.n_classes, model.image_shape[0] * model.image_shape[1]):
        return None
    return [(str(c), means[k].reshape(model.image_shape)) for k, c in enumerate(model.classes.tolist())]


def weight_summary(W) -> dict[str, Any]:
    """Shape, range, norm and sparsity of the weights (the array itself is left out)."""
    import numpy as np

    W = np.asarray(W, np.float64)
    return {"shape": list(W.shape), "min": float(W.min()), "max": float(W.max()),
            "max_abs": float(np.abs(W).max()), "l2_norm": float(np.sqrt((W * W).sum())),
            "zero_fraction": float((W == 0).mean())}


# TrainOptions fields whose None means "auto" (chosen by the solver), shown as such.
_AUTO_PARAMS = ("lr",)


def _hyperparameters(params: dict[str, Any], history: list[dict]) -> dict[str, Any]:
    """The options that shaped the fit with this solver; "auto" ones with the value chosen, where recorded."""
    solver = params.get("solver")
    keys = _ALWAYS_PARAMS[:1] + SOLVER_PARAMS.get(solver, tuple(params)) + _ALWAYS_PARAMS[1:]
    shown = {k: _auto(k, history) if k in _AUTO_PARAMS and params.get(k, 0) is None else params.get(k)
             for k in keys}
    return {k: v for k, v in shown.items() if k in params and v is not None}


def _auto(key: str, history: list[dict]) -> str:
    """"auto", with the first epoch's value when the history records it (the lr search's η₀)."""
    first = history[0].get(key) if history else None
    return "auto" if first is None else f"auto (η₀ = {first:.3g})"


def model_card(model, path: Path) -> dict[str, Any]:
    """The JSON-ready card of *model* loaded from *path*."""
    from mnistlr.io.json_values import json_ready

    meta, params = model.meta, model.params
    history = meta.get("history") or []
    card = {
        "path": str(path), "file_bytes": path.stat().st_size if path.is_file() else None,
        "kind": model.kind, "solver": params.get("solver"),
        "classes": model.classes.tolist(), "image_shape": list(model.image_shape),
        "n_features": model.n_features, "n_outputs": int(model.W.shape[1]),
        "hyperparameters": _hyperparameters(params, history),
        "preprocessing": model.preprocessor.kind,
        "features": None if model.features is None else {
            "spec": model.features.spec, "steps": model.features.describe(), "n_features": model.n_features},
        "weights_note": weight_note(model),
        "dataset": meta.get("dataset"), "train_files": meta.get("train_files"),
        "data_sha256": meta.get("data_sha256"), "n_train": meta.get("n_train"), "n_val": meta.get("n_val"),
        "seconds": meta.get("seconds"), "epochs": len(history), "n_iter": meta.get("n_iter"),
        "stop_reason": meta.get("stop_reason"), "best_epoch": meta.get("best_epoch"),
        "subsampled_phases": meta.get("subsampled_phases") or [],
        "l2_path": meta.get("l2_path"),
        "metrics": meta.get("metrics") or {},
        "history": [{k: v for k, v in r.items()} for r in history],
        "weights": weight_summary(model.W),
        "format_version": meta.get("format_version"), "created": meta.get("created"),
        "versions": meta.get("versions") or {},
    }
    return json_ready(card)


def inspect(model_path: Path, *, weights: bool = False) -> Inspection:
    """Load the model at *model_path*; its card, and its weight images when *weights*."""
    from mnistlr.learn.persistence import load_model

    model = load_model(model_path)
    return Inspection(model_card(model, Path(model_path)), weight_images(model) if weights else None)
