"""scikit-learn estimators over mnistlr's solvers: `SoftmaxRegression`, `LogisticRegression`
(binary, or one-vs-rest for more classes) and `RidgeClassifier` (the `sklearn` extra).

They take general feature matrices X (n_samples, n_features) of any numbers: the default
``preprocess="none"`` uses the features as they are. ``preprocess="scale"``, ``"standardize"``
or ``"center"`` treat X as pixels by the one pixel rule (`mnistlr.io.pixels`), exactly as
``mnistlr train --preprocess ...`` does: on the same data and options the weights are the
command line's, bit for bit (``estimator.model_.W``).

Their parameters are `TrainOptions` fields with the same names and defaults, except
``preprocess``; labels may be any values (numbers or strings). ``features="deskew,rff:5000"``
(a feature pipeline, as ``mnistlr train --features``) reads X as flat images (n, rows·cols) of
pixels by the pixel rule, square unless the pipeline has neither deskew nor hog, and fits the
pipeline on them; ``preprocess="scale"`` then gives the command line's defaults.

    coef_       (1, n_features) for two classes, else (n_classes, n_features): the weights
                acting on X as given (preprocessing folded in), or on the pipeline's features
    intercept_  (1,) or (n_classes,)
    decision_function(X)  X @ coef_.T + intercept_: (n,) for two classes, else (n, n_classes)
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from mnistlr.errors import DataError, InputTypeError, MissingExtraError, TrainingError, UsageError

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - depends on the installation
    raise MissingExtraError("scikit-learn", "sklearn", "mnistlr.sklearn") from None

from mnistlr.learn.options import TrainOptions

__all__ = ["LogisticRegression", "NotFittedError", "RidgeClassifier", "SoftmaxRegression", "from_model"]

_DEFAULTS = TrainOptions()


class NotFittedError(UsageError, _SklearnNotFitted):
    """An estimator used before `fit` (scikit-learn's NotFittedError, and mnistlr's)."""


class _LinearClassifier(ClassifierMixin, BaseEstimator):
    """fit / predict / predict_proba / decision_function over `mnistlr.learn.fit.fit_model`."""

    _model = "softmax"

    def _options(self) -> TrainOptions:
        return TrainOptions(model=self._model, **self.get_params(deep=False))

    def _features(self, X: Any, reset: bool, y: Any = None) -> Any:
        """Checked X (n, d): uint8/float32/float64 as given, other numbers as float64; pixels
        (a pixel preprocess) read by the one pixel rule."""
        from mnistlr.io.pixels import raw_pixels

        try:
            if reset:
                X, y = validate_data(self, X, y, dtype="numeric")
            else:
                X = validate_data(self, X, reset=False, dtype="numeric")
        except TypeError as exc:   # scikit-learn's message, as mnistlr's error
            raise InputTypeError(str(exc)) from None
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if X.dtype not in (np.uint8, np.float32, np.float64):
            X = X.astype(np.float64)
        elif not X.flags.writeable or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X).copy()  # read-only memory (memmaps) would compile new kernels
        if self.preprocess != "none" or getattr(self, "features", None) is not None:   # (pickles before `features`)
            X = raw_pixels(X)
        return (X, y) if reset else X

    def _images(self, X: np.ndarray) -> np.ndarray:
        """X (n, d) as the images fit_model takes: (n, √d, √d) for a feature pipeline on square
        images, else (n, 1, d) (deskew and hog need the images' rows: a usage error)."""
        from mnistlr.learn.features import parse

        side = int(np.sqrt(X.shape[1]))
        if self.features is not None and side * side == X.shape[1]:
            return X.reshape(len(X), side, side)
        if self.features is not None and {step.name for step in parse(self.features)} & {"deskew", "hog"}:
            raise UsageError(f"`features={self.features!r}` needs square images, but X has {X.shape[1]} columns",
                             "give flat rows of square images (e.g. 784 = 28×28), or leave out deskew and hog")
        return X.reshape(len(X), 1, -1)

    def fit(self, X: Any, y: Any) -> _LinearClassifier:
        """Fit on X (n_samples, n_features) and labels y (n_samples,)."""
        from mnistlr.learn.fit import fit_model
        from mnistlr.learn.fit_notes import capped_fit_note

        options = self._options()
        options.validate()
        X, y = self._features(X, reset=True, y=y)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise TrainingError(f"{type(self).__name__} needs at least 2 classes; the data holds 1 class "
                                f"({np.asarray(classes[0]).item()!r})", "give samples of two or more classes")
        model = fit_model(self._images(X), codes.astype(np.int64), options)
        note = capped_fit_note(model, options)
        if note:   # as scikit-learn's own solvers warn
            warnings.warn(note, ConvergenceWarning, stacklevel=2)
        return self._fitted(model, classes)

    @classmethod
    def from_model(cls, model: Any) -> _LinearClassifier:
        """The fitted estimator of a `mnistlr.Model` (or LinearModel) of this kind; see `from_model`."""
        linear = getattr(model, "linear", model)
        kinds = {"softmax": SoftmaxRegression, "logistic": LogisticRegression, "ridge": RidgeClassifier}
        estimator_class = kinds[linear.kind] if cls is _LinearClassifier else cls
        if estimator_class._model != linear.kind:
            raise UsageError(f"a {linear.kind} model is not a {estimator_class.__name__}",
                             f"use {kinds[linear.kind].__name__}.from_model")
        names = estimator_class._get_param_names()
        params = {k: v for k, v in linear.params.items() if k in names}
        if params.get("C") is not None:
            # a model trained with C also records the l2 it became (1/(C·n_train)): the estimator
            # takes the C, as given (both set the penalty twice, and fit refused them)
            params.pop("l2", None)
        estimator = estimator_class(**params)
        estimator.preprocess = linear.preprocessor.kind
        estimator.features = None if linear.features is None else linear.features.spec
        codes = dataclasses.replace(linear, classes=np.arange(linear.n_classes, dtype=np.int64))
        estimator.n_features_in_ = int(np.prod(linear.image_shape))
        return estimator._fitted(codes, np.asarray(linear.classes))

    def _fitted(self, model: Any, classes: np.ndarray) -> _LinearClassifier:
        """Set the fitted attributes from *model* (a LinearModel of class codes 0..k−1)."""
        self.model_, self.classes_ = model, classes
        W_raw, b_raw = (a.astype(np.float64) for a in self.model_.effective_weights())
        if W_raw.shape[1] == 2:
            # two outputs for two classes: the decision s₁ − s₀ = x·(w₁ − w₀) + (b₁ − b₀)
            W_raw, b_raw = W_raw[:, 1:] - W_raw[:, :1], b_raw[1:] - b_raw[:1]
        self.coef_, self.intercept_ = np.ascontiguousarray(W_raw.T), b_raw
        self.n_iter_ = self.model_.meta.get("n_iter")
        return self

    def _scores(self, X: Any) -> np.ndarray:
        """The model's scores (n, n_outputs) float64 for X (n, n_features)."""
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call 'fit' first",
                                 "fit it on (X, y) before predicting")
        return self.model_.raw_scores(self._features(X, reset=False), dtype=np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores: (n,) for two classes (positive: classes_[1]), else (n, n_classes)."""
        S = self._scores(X)
        if S.shape[1] == 1:
            return S[:, 0]
        if len(self.classes_) == 2:
            return S[:, 1] - S[:, 0]
        return S

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes) float64, columns in the order of classes_."""
        S = self._scores(X)
        return self.model_.proba_from_scores(S)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log of `predict_proba` (n, n_classes) float64, finite where a probability underflows."""
        S = self._scores(X)   # NotFittedError first
        return self.model_.log_proba_from_scores(S)

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n,), values from classes_."""
        S = self._scores(X)
        return self.classes_[self.model_.labels_from_scores(S)]


class _IterativeClassifier(_LinearClassifier):
    """The options of the iterative solvers (lbfgs, gd, sgd), named and defaulted as TrainOptions."""

    def __init__(self, *, l2: float | None = _DEFAULTS.l2, C: float | None = _DEFAULTS.C,
                 solver: str | None = _DEFAULTS.solver, l1: float = _DEFAULTS.l1,
                 lr: float = _DEFAULTS.lr, anneal: float = _DEFAULTS.anneal, accel: str | None = _DEFAULTS.accel,
                 epochs: int = _DEFAULTS.epochs, batch_size: int = _DEFAULTS.batch_size,
                 patience: int = _DEFAULTS.patience, tol: float = _DEFAULTS.tol,
                 max_iter: int = _DEFAULTS.max_iter, init: str = _DEFAULTS.init,
                 preprocess: str = "none", val_size: int | None = _DEFAULTS.val_size,
                 val_fraction: float | None = _DEFAULTS.val_fraction, seed: int = _DEFAULTS.seed,
                 features: str | None = _DEFAULTS.features):
        self.l2, self.C, self.solver, self.l1 = l2, C, solver, l1
        self.lr, self.anneal, self.accel, self.epochs, self.batch_size = lr, anneal, accel, epochs, batch_size
        self.patience, self.tol, self.max_iter, self.init = patience, tol, max_iter, init
        self.preprocess, self.val_size, self.val_fraction, self.seed = preprocess, val_size, val_fraction, seed
        self.features = features


class SoftmaxRegression(_IterativeClassifier):
    """Multinomial logistic regression: p = softmax(xW + b), mean cross-entropy + (l2/2)‖W‖²
    (+ l1‖W‖₁ with solver gd/sgd). Default solver lbfgs."""

    _model = "softmax"


class LogisticRegression(_IterativeClassifier):
    """Logistic regression σ(xw + b): binary for two classes, one-vs-rest (probabilities
    normalised to sum to 1) for more. Default solver lbfgs."""

    _model = "logistic"


class RidgeClassifier(_LinearClassifier):
    """Least squares on one-hot targets with centred inputs, W = (XᵀX + l2·I)⁻¹XᵀY, solved in
    closed form; predicts the arg-max score (probabilities: the softmax of the scores,
    uncalibrated)."""

    _model = "ridge"

    def __init__(self, *, l2: float | None = _DEFAULTS.l2, preprocess: str = "none",
                 features: str | None = _DEFAULTS.features):
        self.l2, self.preprocess, self.features = l2, preprocess, features


def from_model(model: Any) -> _LinearClassifier:
    """A model trained by mnistlr (a `mnistlr.Model`, or its LinearModel) as the fitted estimator
    of its kind, for scikit-learn's tools; it takes flat rows (n, rows·cols) by the pixel rule."""
    return _LinearClassifier.from_model(model)
