"""The fitted model: preprocessing, weights and what it was trained with.

A model consumes pixels shaped (n, rows, cols) or (n, rows·cols): uint8 0–255, or floats
on either scale by the one pixel rule of `mnistlr.io.pixels` (`decision_function`,
`predict`, ...); `raw_scores` takes raw pixels 0–255 already checked. Preprocessing is
folded into effective weights, so scoring reads the raw pixels once:
s = ((x/255 − μ)/σ)W + b = x·(W/(255σ)) + (b − (μ/σ)W).
A model with preprocessing "none" takes general features x as they are (z = x; the
scikit-learn estimators' default).
A model with a feature pipeline (`mnistlr.learn.features`) scores its features instead,
computed a block of rows at a time.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistlr.errors import DataError, InputTypeError, ModelFileError, UsageError
from mnistlr.io.pixels import raw_pixels
from mnistlr.learn.options import PREPROCESS_KINDS

if TYPE_CHECKING:   # a model without features (most) never imports the feature steps
    from mnistlr.learn.features import FeaturePipeline

SCORE_BLOCK_ROWS = 256   # float inputs converted to float64 at a time (5,000 features: 10 MB)
FEATURE_SCORE_ROWS = 512  # rows a thread takes through the feature pipeline and scoring at a time
SCORE_SPAN_ROWS = 2048   # float inputs a thread scores at a time (a multiple of SCORE_BLOCK_ROWS)


def fold_affine(W, b, affine=None) -> tuple[np.ndarray, np.ndarray]:
    """(W_x, b_x) acting on raw x for weights (W, b) acting on z = x·scale − shift, affine = (scale, shift).

    W (n_features, n_outputs), b (n_outputs,); returned as given when affine is None, else float64.
    The one place the preprocessing is folded into weights (scoring, objectives, metrics).
    """
    if affine is None:
        return W, b
    scale, shift = affine
    W64 = np.asarray(W, dtype=np.float64)
    # z·W + b = x·(scale⊙W) + (b − shift·W)
    return scale[:, None] * W64, np.asarray(b, dtype=np.float64) - shift @ W64


def _float64_scores(X: np.ndarray, W64: np.ndarray, b64: np.ndarray, S: np.ndarray,
                    work: np.ndarray | None = None) -> None:
    """S (n, k) = X·W64 + b64 for float inputs X (n, d), accumulated in float64 a block of rows at a
    time; work: a float64 scratch (≥ 1 row, d) reused across calls (else one is made)."""
    # a small block of rows at a time into one reused float64 buffer (a float64 copy of
    # 16,384 × 5,000 features would be 0.65 GB; 256 rows of them stay in cache)
    block = work if work is not None else np.empty((max(1, min(SCORE_BLOCK_ROWS, len(X))), X.shape[1]))
    for start in range(0, len(X), len(block)):
        rows = slice(start, start + len(block))
        x64 = block[:len(X[rows])]
        np.copyto(x64, X[rows])
        # s = x·W_raw + b_raw
        S[rows] = x64 @ W64 + b64


def _float32_scores(X: np.ndarray, WT: np.ndarray, b: np.ndarray, S: np.ndarray) -> None:
    """S (n, k) float32 = X·W + b for float32 rows X (n, d), WT = Wᵀ (k, d) and b (k,) float32.

    One BLAS matrix-vector product per row (NumPy's matmul over a stack of rows): every row meets
    the same call whatever the rows beside it, so its bits do not depend on the batch, the row's
    place in it or the thread count; the sums are float32 (a gemm's bits follow the row's place
    in its micro-tile, and float64 sums cost a float64 copy of the rows: 3× the time).
    """
    # s_i = Wᵀ·x_i + b
    np.add(np.matmul(WT, X[:, :, None])[:, :, 0], b, out=S)


def _column_std(X: np.ndarray, column_mean: np.ndarray, block_rows: int = 2048) -> np.ndarray:
    """Per-column standard deviation (n_features,) float64 of X (n, n_features), a block of rows
    at a time (X.std would make a float64 copy of all of X: 0.9 GB for 22,699 × 5,000 features)."""
    total = np.zeros(X.shape[1])
    for start in range(0, len(X), block_rows):
        # Σ_i (x_ij − μ_j)²
        centred = X[start:start + block_rows].astype(np.float64) - column_mean
        total += np.einsum("ij,ij->j", centred, centred)
    return np.sqrt(total / len(X))


@dataclasses.dataclass
class Preprocessor:
    """x ↦ (x/255 − mean)/std per pixel; mean = 0 and std = 1 for plain scaling.

    Kind "none" (general features, taken as they are): x ↦ x, mean = 0, std = 1/255.
    mean, std: (n_features,) float32.
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, kind: str, X: np.ndarray, unit: float = 255.0) -> Preprocessor:
        """Fit on training inputs X (n_samples, n_features): pixels 0–255 (unit 255), or features (unit 1).

        mean and std are kept in units of x/255, so features (unit 1) get z = (x − 255μ)/(255σ).
        """
        if kind not in PREPROCESS_KINDS:
            raise UsageError(f"unknown preprocessing '{kind}'", f"use one of {', '.join(PREPROCESS_KINDS)}")
        if kind == "none":
            unit = 1.0   # z = x: plain scaling of unit 1
        n_features = X.shape[1]
        mean = np.zeros(n_features, np.float32)
        # plain scaling: z = x/unit, i.e. σ = unit/255
        std = np.full(n_features, unit / 255.0, np.float32)
        if kind in ("center", "standardize"):
            # μ_j = mean_i x_ij / 255, accumulated in float64
            column_mean = X.mean(axis=0, dtype=np.float64)
            mean = (column_mean / 255.0).astype(np.float32)
        if kind == "standardize":
            # σ_j = std_i x_ij / 255; constant inputs (σ ≈ 0 relative to the unit) keep σ = unit/255
            sd = _column_std(X, column_mean) / 255.0
            std = np.where(sd > 1e-8 * unit / 255.0, sd, unit / 255.0).astype(np.float32)
        return cls(kind, mean, std)

    @property
    def pixels(self) -> bool:
        """Whether the model's inputs are pixels 0–255 (False: general features, kind "none")."""
        return self.kind != "none"

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Raw pixels (n, n_features) → float32 model inputs (n, n_features)."""
        # z = (x/255 − μ)/σ
        Z = np.asarray(X, dtype=np.float32) * np.float32(1.0 / 255.0)
        if self.kind != "scale":
            Z -= self.mean
        if self.kind == "standardize" or np.any(self.std != 1):
            Z /= self.std
        return Z

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift), each (n_features,) float64, with transform(x) = x·scale − shift."""
        std = self.std.astype(np.float64)
        # z = (x/255 − μ)/σ = x·(1/(255σ)) − μ/σ
        return 1.0 / (255.0 * std), self.mean.astype(np.float64) / std

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(str(data["kind"]), np.asarray(data["mean"], np.float32),
                   np.asarray(data["std"], np.float32))


@dataclasses.dataclass
class LinearModel:
    """A fitted linear classifier.

    W: (n_features, n_outputs) float32, b: (n_outputs,) float32 act on preprocessed
    inputs; n_outputs is 1 for a binary logistic model, else n_classes.
    classes: (n_classes,) int64 labels; image_shape: (rows, cols).
    params: hyperparameters; meta: seed, data hash, history, metrics, versions, ...
    features: the fitted feature pipeline (None: W acts on the pixels themselves).
    """

    kind: str
    classes: np.ndarray
    image_shape: tuple[int, int]
    preprocessor: Preprocessor
    W: np.ndarray
    b: np.ndarray
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    features: FeaturePipeline | None = None

    def __post_init__(self) -> None:
        self._effective: tuple[np.ndarray, np.ndarray] | None = None
        self._effective64: tuple[np.ndarray, np.ndarray] | None = None
        self._effective32T: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))

    def effective_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights acting on raw pixels: (W_raw (n_features, n_outputs) float32, b_raw)."""
        if self._effective is None:
            # W_raw = W / (255σ);  b_raw = b − (μ/σ)·W
            W_raw, b_raw = fold_affine(self.W, self.b, self.preprocessor.affine())
            self._effective = (np.ascontiguousarray(W_raw, np.float32), b_raw.astype(np.float32))
        return self._effective

    def flatten_inputs(self, X: np.ndarray) -> np.ndarray:
        """Check X's image shape against the model's and return (n, n_features) without copying."""
        X = np.asarray(X)
        rows, cols = self.image_shape
        if X.ndim == 3 and X.shape[1:] == (rows, cols):
            return X.reshape(len(X), rows * cols)
        if X.ndim == 2 and X.shape[1] == rows * cols:
            return X
        if X.shape == (rows, cols):   # one image, not `rows` rows of `cols` features
            raise DataError(f"input of shape {X.shape} is {rows} rows of {cols} values, but the model "
                            f"expects images of {rows}×{cols}", "for one image x, give x[None]")
        got = "×".join(str(d) for d in X.shape[1:]) or "scalar"
        raise DataError(f"input images are {got} but the model expects {rows}×{cols}",
                        "give images of the shape the model was trained on")

    def model_inputs(self, X: np.ndarray) -> np.ndarray:
        """Inputs X (n, rows, cols) or (n, n_features) → (n, n_features) raw model inputs.

        Pixel models: the one pixel rule (`mnistlr.io.pixels.raw_pixels`), uint8 untouched;
        feature models (preprocessing "none"): finite numbers, as they are.
        """
        X = self.flatten_inputs(X)
        if self.preprocessor.pixels:
            return raw_pixels(X)
        if X.dtype.kind not in "iuf":
            raise InputTypeError(f"features of type {X.dtype} are not numbers", "give a numeric array")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            i = int(np.argmin(np.isfinite(X).all(axis=1)))
            raise DataError(f"row {i:,} holds NaN or an infinite value", "give finite numbers")
        return X

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (n, n_outputs) float32 for inputs X (n, rows, cols) or (n, n_features).

        Pixels are read by the one pixel rule: uint8 0–255, or floats in [0, 1] or 0–255.
        """
        return self.raw_scores(self.model_inputs(X))

    def raw_scores(self, X: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Scores (n, n_outputs) of raw inputs X (n, rows, cols) or (n, n_features), already
        checked (pixels 0–255), through the feature pipeline if any. dtype: float32, or float64
        (the scikit-learn estimators)."""
        X = self.flatten_inputs(X)
        if self.features is None:
            return self.scores_of_inputs(X, dtype)
        from mnistlr.learn.features import TILE_ROWS
        from mnistlr.learn.kernels.blas import blas_on_one_thread
        from mnistlr.learn.kernels.threads import run_blocks

        S = np.empty((len(X), self.W.shape[1]), dtype)

        def score_block(start: int) -> None:
            # the float64 copy of a tile, reused (float64 scores only)
            work = np.empty((TILE_ROWS, self.n_features)) if dtype == np.float64 else None

            def score_tile(offset: int, F: np.ndarray) -> None:
                self.scores_of_inputs(F, dtype, work, out=S[start + offset:start + offset + len(F)])

            with np.errstate(over="ignore", invalid="ignore"):   # out-of-range parameters: checked below
                self.features.transform_tiles(X[start:start + FEATURE_SCORE_ROWS], score_tile)

        # blocks on two threads, BLAS on one thread each (two BLAS threads spin on these small
        # products: 0.31 → 0.19 CPU s for 10,000 × 5,000 features)
        self.scores_of_inputs(np.zeros((0, self.n_features), np.float32), dtype)   # builds the shared weights
        with blas_on_one_thread():
            run_blocks(range(0, len(X), FEATURE_SCORE_ROWS), score_block)
        if not np.isfinite(S).all():
            raise ModelFileError("the model's feature parameters give scores that are not finite numbers",
                                 "the model file was damaged or crafted; retrain the model")
        return S

    def scores_of_inputs(self, X: np.ndarray, dtype: type = np.float32, work: np.ndarray | None = None,
                         out: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, n_outputs) of the model's inputs X (n, n_features): pixels, or features.

        The same scores for a row whatever the batch it comes in: uint8 pixels go through
        `kernels.scoring.scores_uint8` (exact integer sums of the weights on a fine grid); float32
        inputs (features) through one matrix-vector product per row in float32 (`_float32_scores`,
        dtype float32, the default); other inputs, and dtype float64, are accumulated in float64,
        where the different summation orders of BLAS for one row (gemv) and a block (gemm) vanish
        in the rounding to float32 (float64 keeps the float64 sums). work: a float64 scratch
        (≥ 1 row, n_features) reused across calls for up to SCORE_SPAN_ROWS rows (else one of
        ≤ SCORE_BLOCK_ROWS rows is made); out: an (n, n_outputs) array of dtype to write them into.
        """
        W_raw, b_raw = self.effective_weights()
        if X.dtype == np.uint8 and dtype == np.float32:
            from mnistlr.learn.kernels.scoring import scores_uint8

            S = scores_uint8(X, W_raw, b_raw)
            if out is None:
                return S
            out[...] = S
            return out
        S = out if out is not None else np.empty((len(X), W_raw.shape[1]), dtype)
        if len(X) <= SCORE_SPAN_ROWS:
            self._float_scorer(X.dtype, dtype, work)(X, S)
            return S
        from mnistlr.learn.kernels.blas import blas_on_one_thread
        from mnistlr.learn.kernels.threads import run_blocks

        score = self._float_scorer(X.dtype, dtype)

        def score_span(start: int) -> None:
            rows = slice(start, start + SCORE_SPAN_ROWS)
            score(X[rows], S[rows])

        # spans of rows on two threads (the same blocks as on one), BLAS on one thread each
        with blas_on_one_thread():
            run_blocks(range(0, len(X), SCORE_SPAN_ROWS), score_span)
        return S

    def _float_scorer(self, X_dtype: np.dtype, dtype: type, work: np.ndarray | None = None):
        """score(X, S): S (n, n_outputs) = X·W_raw + b_raw for non-uint8 inputs X (n, n_features) of
        X_dtype, in float32 for float32 inputs and scores, else in float64 (the weights built once)."""
        W_raw, b_raw = self.effective_weights()
        if X_dtype == np.float32 and dtype == np.float32:
            if self._effective32T is None:
                self._effective32T = np.ascontiguousarray(W_raw.T)
            WT = self._effective32T
            return lambda X, S: _float32_scores(X, WT, b_raw, S)
        if self._effective64 is None:
            self._effective64 = (W_raw.astype(np.float64), b_raw.astype(np.float64))
        W64, b64 = self._effective64
        return lambda X, S: _float64_scores(X, W64, b64, S, work)

    def proba_from_scores(self, S: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) from scores S (n, n_outputs): float64 for float64
        scores, else float32.

        NumPy, not Numba: loading a parallel kernel costs ~0.5 s, NumPy does 10k rows in 1 ms.
        """
        S = np.asarray(S)
        S = S if S.dtype == np.float64 else S.astype(np.float32)
        if self.kind == "logistic":
            # σ(s) = 1/(1+e^−s), from e^−|s| so it never overflows
            e = np.exp(-np.abs(S))
            P = np.where(S >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(S.dtype)
            if P.shape[1] == 1:
                # binary: p(class 1) = σ(s), p(class 0) = 1 − σ(s) = σ(−s), not rounded to 0 where σ(s) is ~1
                return np.hstack([np.where(S >= 0, e / (1.0 + e), 1.0 / (1.0 + e)).astype(S.dtype), P])
            # one-vs-rest: p_k = σ(s_k) / Σ_j σ(s_j)
            total = P.sum(axis=1, keepdims=True)
            return P / np.maximum(total, np.finfo(P.dtype).tiny)
        # softmax (and ridge, uncalibrated): p_k = e^{s_k − max s} / Σ_j e^{s_j − max s}
        E = np.exp(S - S.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def log_proba_from_scores(self, S: np.ndarray) -> np.ndarray:
        """log of `proba_from_scores` (n, n_classes), computed without taking the log of a rounded
        probability (finite where a probability underflows to 0)."""
        S = np.asarray(S)
        S = S if S.dtype == np.float64 else S.astype(np.float32)
        if self.kind == "logistic":
            # log σ(s) = −log(1 + e^−s)
            L = -np.logaddexp(0.0, -S).astype(S.dtype)
            if L.shape[1] == 1:
                # log(1 − σ(s)) = log σ(−s)
                return np.hstack([-np.logaddexp(0.0, S).astype(S.dtype), L])
            # log p_k = log σ(s_k) − log Σ_j σ(s_j)
            top = L.max(axis=1, keepdims=True)
            return L - (top + np.log(np.exp(L - top).sum(axis=1, keepdims=True)))
        # log p_k = s_k − max s − log Σ_j e^{s_j − max s}
        shifted = S - S.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) float32, rows summing to 1."""
        return self.proba_from_scores(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels (n,) int64 (values from `classes`)."""
        return self.labels_from_scores(self.decision_function(X))

    def labels_from_scores(self, S: np.ndarray) -> np.ndarray:
        """Predicted labels (n,) from scores S (n, n_outputs): the arg-max, or s > 0 for binary."""
        if S.shape[1] == 1:
            return self.classes[(S[:, 0] > 0).astype(np.int64)]
        return self.classes[np.argmax(S, axis=1)]
