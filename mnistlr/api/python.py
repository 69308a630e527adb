"""The Python API behind ``import mnistlr``: `train`, `Model`, `load`, `evaluate`, `load_dataset`.

Arrays in, arrays out. Images X are (n, rows, cols) or (n, rows·cols); pixels are uint8 0–255
or floats on either scale, by the one pixel rule of `mnistlr.io.pixels` (the same as the
command line's). A `Model` is a thin wrapper over the learning layer's `LinearModel`; errors
are the project's (`mnistlr.errors`), which are ValueError / TypeError subclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import (
    ConvergenceWarning,
    DataError,
    InputTypeError,
    UnknownOptionError,
    UsageError,
)
from mnistlr.learn.model import LinearModel
from mnistlr.learn.options import TrainOptions, is_whole

# TrainOptions fields that train() takes as keywords (model is its own argument)
TRAIN_KEYWORDS = tuple(f.name for f in dataclasses.fields(TrainOptions) if f.name != "model")


class Model:
    """A fitted linear classifier (softmax, logistic or ridge) of images or features.

    Wraps the learning layer's `LinearModel` (``model.linear``): weights ``W`` (n_features,
    n_outputs) and intercepts ``b`` act on the preprocessed inputs.
    """

    def __init__(self, linear: LinearModel, path: str | os.PathLike | None = None):
        self.linear = linear
        self.path = None if path is None else str(path)

    # ------------------------------------------------------------ what it is
    @property
    def kind(self) -> str:
        """"softmax", "logistic" or "ridge"."""
        return self.linear.kind

    @property
    def classes_(self) -> np.ndarray:
        """The labels (n_classes,) int64, in the order of the probability columns."""
        return self.linear.classes

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.linear.image_shape)

    @property
    def n_features(self) -> int:
        return self.linear.n_features

    @property
    def params(self) -> dict[str, Any]:
        """The training options it was fitted with (l2 after any C conversion)."""
        return self.linear.params

    @property
    def meta(self) -> dict[str, Any]:
        """Dataset, sizes, history, stop reason, timings, final metrics, ..."""
        return self.linear.meta

    def __repr__(self) -> str:
        p, m = self.params, self.meta.get("metrics") or {}
        classes = self.classes_.tolist()
        shown = (f"[{classes[0]}..{classes[-1]}]" if len(classes) > 4
                 and classes == list(range(classes[0], classes[-1] + 1)) else str(classes))
        parts = [f"kind={self.kind!r}", f"classes={shown}", f"image_shape={self.image_shape}",
                 f"preprocess={self.linear.preprocessor.kind!r}"]
        parts += [f"{k}={p[k]!r}" for k in ("solver", "l2", "l1") if p.get(k) not in (None, 0.0)]
        if m.get("train_accuracy") is not None:
            parts.append(f"train_accuracy={m['train_accuracy']:.4f}")
        return f"mnistlr.Model({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        """Equal when they compute the same: kind, classes, image shape, preprocessing, feature
        pipeline, weights and training options (metadata such as history and timings is not
        compared)."""
        if not isinstance(other, Model):
            return NotImplemented
        a, b = self.linear, other.linear
        return (a.kind == b.kind and tuple(a.image_shape) == tuple(b.image_shape)
                and _same(a.preprocessor.to_dict(), b.preprocessor.to_dict())
                and _same([a.classes, a.W, a.b], [b.classes, b.W, b.b]) and _same(a.params, b.params)
                and _same(None if a.features is None else a.features.to_dict(),
                          None if b.features is None else b.features.to_dict()))

    __hash__ = None  # mutable, compared by content

    # ------------------------------------------------------------ predictions
    def decision_function(self, X: Any) -> np.ndarray:
        """Scores (n, n_outputs) float32; n_outputs is 1 for a binary logistic model."""
        return self.linear.decision_function(_numbers(X, "X"))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) float32, columns in the order of `classes_`."""
        return self.linear.predict_proba(_numbers(X, "X"))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (n,) int64, values from `classes_`."""
        return self.linear.predict(_numbers(X, "X"))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the share of images whose predicted label is y."""
        X = _numbers(X, "X")
        y = _labels(y, len(X))
        return float((self.predict(X) == y).mean())

    # ------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file (joblib, read back by `mnistlr.load` and every command), atomically;
        a name ending like an export (.onnx, .npz, .csv) is a UsageError pointing to `export`."""
        from mnistlr.api.export import refuse_export_name
        from mnistlr.learn.persistence import save_model

        refuse_export_name(path, python=True)
        save_model(self.linear, path)
        return Path(path)

    def export(self, path: str | os.PathLike, *, input_type: str | None = None,
               input_layout: str | None = None) -> Path:
        """Write an export told by the extension, atomically, as `mnistlr export`: .onnx (the
        `onnx` extra; input *input_type* "uint8" (default) or "float32", *input_layout* "images"
        (n, rows, cols; default) or "flat" (n, rows·cols)), .npz (NumPy arrays, read back by
        `mnistlr.load`) or .csv (the raw-pixel weights); the input options are for .onnx only."""
        from mnistlr.api.export import export

        export(self.linear, path, input_type=input_type, input_layout=input_layout)
        return Path(path)


def _same(a: Any, b: Any) -> bool:
    """Equal plain values: dicts, lists and tuples item by item, arrays by shape, dtype kind and values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _numbers(X: Any, name: str) -> np.ndarray:
    """X as a NumPy array of numbers, at least 2-D (one row per image)."""
    try:
        X = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise InputTypeError(f"{name} is not an array of numbers ({exc})", "give a NumPy array") from None
    if X.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} holds {X.dtype} values, not numbers",
                             "give uint8 pixels 0–255 or floats")
    if X.ndim not in (2, 3) or len(X) == 0:
        raise DataError(f"{name} has shape {X.shape}; images are (n, rows, cols) or (n, rows·cols)",
                        "give a non-empty array; one image x: x[None]")
    return X


def _labels(y: Any, n: int) -> np.ndarray:
    """Labels (n,) int64 from integers (or whole-number floats)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind not in "iuf":
        if y.dtype.kind in "USO":   # names ("cat", "dog"): the estimators keep them, a model file holds integers
            raise InputTypeError(f"labels hold {y.dtype} values (text), not integers",
                                 "give integer codes (np.unique(y, return_inverse=True)[1]), or fit "
                                 "mnistlr.sklearn's estimators, which take labels of any kind")
        raise InputTypeError(f"labels hold {y.dtype} values", "labels are integers, e.g. 0–9")
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{n:,} images but labels of shape {y.shape}", "give one label per image")
    from mnistlr.io.labels import integer_labels

    return integer_labels(y, lambda i: f"label {i:,} ({y[i]:g})")


def _check_keywords(options: dict[str, Any]) -> None:
    for name in options:
        if name not in TRAIN_KEYWORDS:
            close = difflib.get_close_matches(name, TRAIN_KEYWORDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"options: {', '.join(TRAIN_KEYWORDS)}"
            raise UnknownOptionError(f"train() got an unknown keyword argument {name!r}", hint)


def as_images(X: np.ndarray, image_shape: Sequence[int] | None, pixels: bool) -> np.ndarray:
    """Images (n, rows, cols) on the raw scale from X (n, rows, cols) or (n, rows·cols).

    pixels: apply the one pixel rule (False: general features, taken as they are).
    """
    from mnistlr.io.pixels import raw_pixels

    if image_shape is not None and (
            isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__") or len(image_shape) != 2
            or not all(is_whole(d) and d >= 1 for d in image_shape)):
        raise UsageError(f"image_shape must be two whole numbers (rows, cols), got {image_shape!r}",
                         "e.g. image_shape=(28, 28)")
    if X.ndim == 3 and image_shape is not None and tuple(int(d) for d in image_shape) != X.shape[1:]:
        raise DataError(f"image_shape {'×'.join(str(int(d)) for d in image_shape)} contradicts X's images of "
                        f"{X.shape[1]}×{X.shape[2]}", "drop image_shape, or give X as rows (n, rows·cols)")
    if X.ndim == 2:
        n_features = X.shape[1]
        if image_shape is None:
            side = math.isqrt(n_features)
            if side * side != n_features:
                raise DataError(f"X has {n_features} features per row, not a square image",
                                "give image_shape=(rows, cols), or X shaped (n, rows, cols)")
            image_shape = (side, side)
        rows, cols = (int(d) for d in image_shape)
        if rows * cols != n_features:
            raise DataError(f"image_shape {rows}×{cols} does not hold {n_features} features",
                            "give image_shape whose product is the number of columns of X")
        X = X.reshape(len(X), rows, cols)
    if pixels:
        return raw_pixels(X)
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise DataError("X holds NaN or an infinite value", "give finite numbers")
    return X


def train(X: Any, y: Any, *, model: str = "softmax", image_shape: Sequence[int] | None = None,
          **options: Any) -> Model:
    """Fit a model on images X (n, rows, cols) or (n, rows·cols) and labels y (n,).

    model: "softmax", "logistic" or "ridge"; options: any `mnistlr train` option by its
    Python name (l2, C, solver, epochs, preprocess, classes, seed, ...; same defaults as
    `mnistlr.learn.options.TrainOptions`). image_shape: for (n, d) rows that are not square.
    The same data and options as `mnistlr train` give identical weights.
    """
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.fit_notes import capped_fit_note, short_classes_note, weak_fit_note

    _check_keywords(options)
    settings = TrainOptions(model=model, **options)
    settings.validate()
    X = _numbers(X, "X")
    y = _labels(y, len(X))
    images = as_images(X, image_shape, pixels=settings.preprocess != "none")
    fitted = fit_model(images, y, settings)
    note = short_classes_note(settings, y)
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    note = capped_fit_note(fitted, settings)
    if note:
        warnings.warn(note, ConvergenceWarning, stacklevel=2)
    note = weak_fit_note(fitted, y)
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    return Model(fitted)


def load(path: str | os.PathLike) -> Model:
    """Read a model: a file of `Model.save` / `mnistlr train` (joblib), or an `.npz` export."""
    from mnistlr.learn.persistence import load_model

    return Model(load_model(path), path)


def evaluate(model: Model | str | os.PathLike, X: Any, y: Any, *, only_model_classes: bool = False,
             top: int = 5) -> dict[str, Any]:
    """The report of `mnistlr evaluate --json` (same keys) for images X and labels y.

    model: a Model or a model file. only_model_classes: leave out images of other labels
    (instead of an error).
    """
    from mnistlr.api.evaluate import json_ready, score_report

    if not (is_whole(top) and 0 <= top <= 100):   # the command line's --top range
        raise UsageError(f"`top` must be a whole number from 0 to 100, got {top!r}", "e.g. `top=5`")
    if not isinstance(model, Model):
        model = load(model)
    X = _numbers(X, "X")
    y = _labels(y, len(X))
    raw = model.linear.model_inputs(X)
    report, _ = score_report(model.linear, raw, y, {"arrays": True, "images": len(y)},
                             model.path, only_model_classes, top)
    return json_ready(report)


def load_dataset(name_or_source: str | os.PathLike | Sequence[str | os.PathLike],
                 split: str = "train", *, labels: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, rows, cols) uint8 and labels (n,) of a dataset, as `--dataset` reads them.

    name_or_source: a dataset name (registered: "mnist", "fashion-mnist", "kmnist" once fetched,
    "mnist-sample"; or imported with `mnistlr import`), a labelled file or folder in any format
    the command line reads (IDX, .npy, .npz, CSV, Parquet, DIR/<label>/), or a pair (images
    file, labels file). split: "train" or "test". labels: a labels file for an images source.
    """
    from mnistlr.data import registry

    if isinstance(name_or_source, (list, tuple)):
        if len(name_or_source) != 2 or labels is not None:
            raise UsageError(f"a source is a name, a file or a pair (images, labels), got {len(name_or_source)} items",
                             "e.g. load_dataset(('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'))")
        name_or_source, labels = name_or_source
    if not isinstance(name_or_source, (str, os.PathLike)):
        raise InputTypeError(f"load_dataset() takes a name or a source, not {type(name_or_source).__name__}",
                             "e.g. load_dataset('mnist-sample')")
    return registry.load(name_or_source, split, labels, data_dir)
