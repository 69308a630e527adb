"""Solvers for linear classifiers: one entry per solver, each returning a `FitResult`.

X is (n_samples, n_features) float32/float64 model inputs, C-contiguous, or raw uint8 pixels
with ``affine=(scale, shift)`` ((n_features,) each; model inputs z = x·scale − shift, folded
into the weights: no float copy of X); y is (n_samples,) int class indices 0..n_classes−1 (0/1
for a one-column ``kind="ovr"`` model). The objective is the one in `mnistlr.learn.objective`: mean
cross-entropy + (l2/2)‖W‖² + l1‖W‖₁, intercept not penalised.

- ``fit_closed_ridge(X, y, n_classes, l2)`` — least squares on one-hot targets, closed form:
  W = (XcᵀXc + l2·I)⁻¹ XcᵀYc by Cholesky on centred data, b = ȳ − x̄W.
- ``fit_lbfgs(X, y, kind, n_outputs, l2, tol, max_iter, ...)`` — scipy's L-BFGS-B (memory 50)
  in the variables (W, b' = b + z̄W); "converged" when the objective fell by less than tol
  (relative) per iteration over the last 5 iterations, "max_iter" after max_iter iterations.
- ``fit_gd(X, y, kind, n_outputs, l2, l1, lr, anneal, epochs, patience, ...)`` — full-batch
  proximal gradient descent.
- ``fit_sgd(..., batch_size, rng)`` — mini-batch proximal SGD, rows reshuffled every epoch
  with ``rng``.

gd/sgd use the step η(t) = lr/(1 + t/anneal), t = 0, 1, ... the epoch, and the l1 prox
(soft-threshold by η·l1) after every step, so weights become exactly zero. With a hold-out
(X_val, y_val) they keep the weights of the best epoch (highest hold-out accuracy, ties to
the lower hold-out loss), stop after ``patience`` epochs without improvement and return the
best weights; ``epochs`` caps the run. Without a hold-out they run all ``epochs``
("max_epochs", best_epoch None).

Every solver calls ``callback(record)`` after each epoch/iteration with the record it
appends to ``history``: epoch, train_loss (mean cross-entropy without the penalty; ridge:
mean squared error to the one-hot targets, also for val_loss), train_accuracy, val_loss,
val_accuracy (None without a hold-out), grad_norm (‖∇ of the smooth objective‖₂ in (W, b)),
lr (None for lbfgs/closed), seconds (since the start of the fit). A loss that becomes inf/nan raises `TrainingError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

import numpy as np

from mnistlr.errors import TrainingError
from mnistlr.learn.kernels import prox, scoring
from mnistlr.learn.kernels.gram import centered_cross_products
from mnistlr.learn.model import fold_affine
from mnistlr.learn.objective import Objective, check_kind, objective, pack, unpack

Callback = Callable[[dict], None] | None


@dataclasses.dataclass
class FitResult:
    W: np.ndarray          # (n_features, n_outputs) float32
    b: np.ndarray          # (n_outputs,) float32
    history: list[dict]    # one record per epoch/iteration (see the module docstring)
    stop_reason: str       # "converged" | "patience" | "max_epochs" | "max_iter"
    best_epoch: int | None  # epoch whose weights were kept (gd/sgd with a hold-out), else None
    n_iter: int            # epochs or iterations run


class _Recorder:
    """Builds history records (evaluating the hold-out) and hands them to the callback."""

    def __init__(self, kind: str, X_val, y_val, callback: Callback, evaluate=None, affine=None):
        self.kind, self.X_val, self.y_val, self.callback, self.affine = kind, X_val, y_val, callback, affine
        # evaluate(X, y, W, b) -> (loss, accuracy) on the hold-out
        self.evaluate = evaluate or self._evaluate
        self.started = time.perf_counter()
        self.history: list[dict] = []

    def _evaluate(self, X, y, W, b) -> tuple[float, float]:
        val = objective(X, y, W, b, self.kind, grad=False, affine=self.affine)
        return val.loss, val.accuracy

    def record(self, epoch: int, train: Objective, W, b, lr: float | None) -> dict:
        val_loss = val_accuracy = None
        if self.X_val is not None:
            val_loss, val_accuracy = self.evaluate(self.X_val, self.y_val, W, b)
        rec = {
            "epoch": epoch,
            "train_loss": train.loss,
            "train_accuracy": train.accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            # ‖∇f‖₂ over (W, b)
            "grad_norm": float(np.sqrt(np.vdot(train.grad_W, train.grad_W) + np.vdot(train.grad_b, train.grad_b))),
            "lr": lr,
            "seconds": time.perf_counter() - self.started,
        }
        self.history.append(rec)
        if self.callback is not None:
            self.callback(rec)
        return rec


def _check_problem(X, y, kind: str, n_outputs: int, X_val, y_val):
    """Coerce X to C order (no copy when it already is) and y to int64; check shapes and labels."""
    check_kind(kind)
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype not in (np.uint8, np.float32, np.float64) or len(X) == 0:
        raise ValueError(f"X must be a non-empty 2-D uint8/float32/float64 array, got {X.dtype} {X.shape}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.shape != (len(X),):
        raise ValueError(f"y must be ({len(X)},), got {y.shape}")
    if n_outputs < 1 or (kind == "softmax" and n_outputs < 2):
        raise ValueError(f"{kind} needs {'≥ 2' if kind == 'softmax' else '≥ 1'} outputs, got {n_outputs}")
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither")
    if X_val is not None:
        X_val = np.ascontiguousarray(X_val, dtype=X.dtype)
        y_val = np.ascontiguousarray(y_val, dtype=np.int64)
        if X_val.ndim != 2 or X_val.shape[1] != X.shape[1] or y_val.shape != (len(X_val),) or not len(X_val):
            raise ValueError(f"hold-out X_val {X_val.shape} / y_val {y_val.shape} do not match X {X.shape}")
    return X, y, X_val, y_val


def _start(W0, b0, n_features: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 working copies of the initial weights (zeros when not given)."""
    W = np.zeros((n_features, n_outputs)) if W0 is None else np.array(W0, dtype=np.float64)
    b = np.zeros(n_outputs) if b0 is None else np.array(b0, dtype=np.float64).reshape(-1)
    if W.shape != (n_features, n_outputs) or b.shape != (n_outputs,):
        raise ValueError(f"W0/b0 must be ({n_features}, {n_outputs}) and ({n_outputs},), got {W.shape} and {b.shape}")
    return W, b


def _result(W, b, history, stop_reason, best_epoch, n_iter) -> FitResult:
    return FitResult(np.ascontiguousarray(W, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32),
                     history, stop_reason, best_epoch, n_iter)


def _check_finite(value: float, where: str, lr: float | None) -> None:
    if not np.isfinite(value):
        hint = f"use a smaller --lr than {lr:g}" if lr is not None else "use a larger --l2 or check the data"
        raise TrainingError(f"training diverged {where}: the loss became {value}", hint)


# ---------------------------------------------------------------------------- ridge


def _ridge_metrics(X, y, W, b, affine=None) -> tuple[float, float]:
    """(mean squared error against one-hot targets, accuracy of argmax) of scores z @ W + b."""
    W, b = fold_affine(np.asarray(W, np.float64), np.asarray(b, np.float64), affine)
    S = scoring.scores_uint8(X, W, b) if X.dtype == np.uint8 else X @ W.astype(X.dtype) + b.astype(X.dtype)
    rows = np.arange(len(y))
    # (1/n) Σ_i ‖s_i − e_{y_i}‖² = (1/n) Σ_i (‖s_i‖² − 2 s_{i,y_i} + 1)
    mse = float(np.einsum("ij,ij->", S, S, dtype=np.float64) - 2.0 * S[rows, y].sum(dtype=np.float64)) / len(y) + 1.0
    return mse, float(np.mean(np.argmax(S, axis=1) == y))


def _ridge_targets(y, n_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(one-hot targets Y (n, n_classes) float32, labels y (n,)) from labels or from one-hot Y."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y, np.argmax(y, axis=1)
    y = np.asarray(y, dtype=np.int64)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return np.eye(n_classes, dtype=np.float32)[y], y


def fit_closed_ridge(X, y, n_classes: int | None = None, l2: float = 1.0,
                     X_val=None, y_val=None, callback: Callback = None, affine=None) -> FitResult:
    """Ridge regression on one-hot targets in closed form; predicts argmax of X @ W + b.

    X (n_samples, n_features); y (n_samples,) int in 0..n_classes−1 (n_classes defaults to
    max(y)+1) or one-hot Y (n_samples, n_classes). l2 = γ ≥ 0 is added to the diagonal of
    the centred Gram matrix (unnormalised: min ½‖XcW − Yc‖² + (γ/2)‖W‖²).
    """
    import scipy.linalg

    _check_schedule(l2, 0.0, 1.0, 1.0, 1, 1)
    Y, y = _ridge_targets(y, n_classes)
    X, y, X_val, y_val = _check_problem(X, y, "softmax", max(Y.shape[1], 2), X_val, y_val)
    recorder = _Recorder("softmax", X_val, y_val, callback,
                         evaluate=lambda *args: _ridge_metrics(*args, affine=affine))
    gram, cross, x_mean, y_mean = centered_cross_products(X, Y)
    if affine is not None:
        # z = x·scale − shift: Gram_z = D Gram_x D, cross_z = D cross_x (D = diag(scale)), z̄ = x̄·scale − shift
        scale, shift = affine
        gram, cross, x_mean = gram * np.outer(scale, scale), cross * scale[:, None], x_mean * scale - shift
    gram[np.diag_indices_from(gram)] += l2
    try:
        # W = (XcᵀXc + γI)⁻¹ XcᵀYc via the Cholesky factor L Lᵀ = XcᵀXc + γI
        factor = scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
        W = scipy.linalg.cho_solve(factor, cross, check_finite=False)
    except np.linalg.LinAlgError:
        raise TrainingError("the Gram matrix XᵀX is singular (constant pixels and no penalty)",
                            "use --l2 > 0") from None
    if not np.all(np.isfinite(W)):
        raise TrainingError("the ridge solution is not finite", "use a larger --l2")
    # b = ȳ − x̄W
    b = y_mean - x_mean @ W
    mse, accuracy = _ridge_metrics(X, y, W, b, affine)
    # ∇ of ½‖XcW − Yc‖² + (γ/2)‖W‖² = (XcᵀXc + γI)W − XcᵀYc
    grad_W = gram @ W - cross
    recorder.record(1, Objective(mse, mse, accuracy, grad_W, np.zeros_like(b)), W, b, None)
    return _result(W, b, recorder.history, "converged", None, 1)


# ---------------------------------------------------------------------------- L-BFGS

# L-BFGS-B memory: 50 pairs instead of scipy's 10 cut the evaluations to reach the same
# objective on MNIST softmax by a third (64 → 43, ~11 ms each); the bookkeeping grows from
# 0.5 to 1.6 ms per iteration. (A warm start from 1–2 SGD epochs saved nothing on top.)
LBFGS_MEMORY = 50
# tol is the mean relative decrease of the objective per iteration over this many iterations.
TOL_WINDOW = 5


def _blas_on_one_thread():
    """L-BFGS-B calls BLAS between two kernel calls; idle OpenBLAS threads then spin for
    milliseconds and take a core from the Numba kernel (measured: 2.7 s → 1.7 s per MNIST fit).
    BLAS runs on one thread during the fit when threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_lbfgs(X, y, kind: str, n_outputs: int, l2: float = 2e-4, tol: float = 1e-3, max_iter: int = 100,
              W0=None, b0=None, X_val=None, y_val=None, callback: Callback = None, affine=None) -> FitResult:
    """Minimise the smooth objective (no l1) with scipy's L-BFGS-B; one history record per iteration.

    X (n_samples, n_features); y (n_samples,) int; kind "softmax" | "ovr"; n_outputs columns
    of W. Converged ("converged") when the objective fell by less than tol (relative) per
    iteration, on average over the last 5 iterations, or when the line search can make no
    more progress (float32 precision); max_iter caps the iterations ("max_iter").
    W0 (n_features, n_outputs) / b0 (n_outputs,) start the search (zeros by default).
    The hold-out, when given, is only reported. L-BFGS runs in (W, b' = b + z̄W), z̄ the mean
    model input: the same objective and optimum, but centred inputs condition it better
    (MNIST: 91 → 58 iterations at tol 1e-4).
    """
    from scipy.optimize import minimize

    _check_schedule(l2, 0.0, 1.0, 1.0, max_iter, 1)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be finite and ≥ 0, got {tol}")
    X, y, X_val, y_val = _check_problem(X, y, kind, n_outputs, X_val, y_val)
    W, b = _start(W0, b0, X.shape[1], n_outputs)
    recorder = _Recorder(kind, X_val, y_val, callback, affine=affine)
    centred = CentredObjective(X, y, kind, n_outputs, l2, affine)
    values: list[float] = []

    def on_iteration(intermediate_result):
        obj, W_k, b_k = centred.at(intermediate_result.x)
        recorder.record(len(recorder.history) + 1, obj, W_k, b_k, None)
        values.append(obj.value)
        # converged when (f_{k−m} − f_k) / m ≤ tol·|f_k|
        if len(values) > TOL_WINDOW and values[-1 - TOL_WINDOW] - values[-1] <= TOL_WINDOW * tol * abs(values[-1]):
            raise StopIteration

    with _blas_on_one_thread():
        res = minimize(centred.fun, pack(W, b + centred.z_mean @ W), jac=True, method="L-BFGS-B", callback=on_iteration,
                       options={"maxiter": max_iter, "maxfun": 2 * max_iter + 20, "maxcor": LBFGS_MEMORY,
                                "gtol": 1e-10, "ftol": 1e-15})
    _check_finite(float(res.fun), f"after {len(recorder.history)} L-BFGS iterations", None)
    W, b = centred.weights(res.x)
    stop_reason = "max_iter" if res.status == 1 else "converged"
    return _result(W, b, recorder.history, stop_reason, None, len(recorder.history))


class CentredObjective:
    """The objective in the variables v = pack(W, b' = b + z̄W), for scipy; remembers the last evaluation."""

    def __init__(self, X, y, kind: str, n_outputs: int, l2: float, affine):
        self.X, self.y, self.kind, self.n_outputs, self.l2, self.affine = X, y, kind, n_outputs, l2, affine
        # z̄ = x̄ (·scale − shift for raw pixels)
        x_mean = X.mean(axis=0, dtype=np.float64)
        self.z_mean = x_mean if affine is None else x_mean * affine[0] - affine[1]
        self.last_v, self.last = None, None

    def weights(self, v) -> tuple[np.ndarray, np.ndarray]:
        W, b_centred = unpack(v, self.X.shape[1], self.n_outputs)
        # b = b' − z̄W
        return W, b_centred - self.z_mean @ W

    def fun(self, v) -> tuple[float, np.ndarray]:
        obj = objective(self.X, self.y, *self.weights(v), self.kind, l2=self.l2, affine=self.affine)
        self.last_v, self.last = v.copy(), obj
        # chain rule: ∂f/∂W|_{b'} = ∇_W f − z̄ᵀ∇_b f;  ∂f/∂b' = ∇_b f
        return obj.value, pack(obj.grad_W - np.outer(self.z_mean, obj.grad_b), obj.grad_b)

    def at(self, v):
        """(Objective in (W, b), W, b) at v, reusing the last evaluation when it was at v."""
        W, b = self.weights(v)
        if self.last_v is not None and np.array_equal(self.last_v, v):
            return self.last, W, b
        return objective(self.X, self.y, W, b, self.kind, l2=self.l2, affine=self.affine), W, b


# ---------------------------------------------------------------------------- gd / sgd


class _BestEpoch:
    """Early stopping on the hold-out: keeps the best epoch's weights; says when patience runs out."""

    def __init__(self, patience: int):
        self.patience = patience
        self.epoch: int | None = None
        self.key: tuple[float, float] | None = None
        self.W = self.b = None
        self.waited = 0

    def update(self, epoch: int, rec: dict, W, b) -> bool:
        """Note one epoch's record; True when `patience` epochs passed without improvement."""
        if rec["val_accuracy"] is None:
            return False
        # better = higher hold-out accuracy, ties broken by lower hold-out loss
        key = (rec["val_accuracy"], -rec["val_loss"])
        if self.key is None or key > self.key:
            self.key, self.epoch, self.W, self.b, self.waited = key, epoch, W.copy(), b.copy(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience


def _prox_step(W, b, grad_W, grad_b, eta: float, l1: float):
    """One proximal gradient step: W ← S_{η·l1}(W − η∇_W f), b ← b − η∇_b f (b is not penalised)."""
    W = W - eta * grad_W
    if l1 > 0:
        W = prox.soft_threshold(W, eta * l1)
    return W, b - eta * grad_b


def _check_schedule(l2, l1, lr, anneal, epochs, patience, batch_size=1) -> None:
    for name, value in (("l2", l2), ("l1", l1)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and ≥ 0, got {value}")
    for name, value in (("lr", lr), ("anneal", anneal)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    for name, value in (("epochs / max_iter", epochs), ("patience", patience), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")


def _descend(X, y, kind, n_outputs, l2, l1, lr, anneal, epochs, patience, W0, b0, X_val, y_val,
             callback, run_epoch, affine=None) -> FitResult:
    """The epoch loop shared by gd and sgd: schedule, records, divergence check, early stopping."""
    X, y, X_val, y_val = _check_problem(X, y, kind, n_outputs, X_val, y_val)
    W, b = _start(W0, b0, X.shape[1], n_outputs)
    recorder = _Recorder(kind, X_val, y_val, callback, affine=affine)
    best = _BestEpoch(patience)
    state = objective(X, y, W, b, kind, l2=l2, affine=affine)
    _check_finite(state.value, "at the initial weights", lr)
    stop_reason, epoch = "max_epochs", 0
    with _blas_on_one_thread():
        for epoch in range(1, epochs + 1):
            # η(t) = η₀ / (1 + t/T), t = epoch − 1
            eta = lr / (1.0 + (epoch - 1) / anneal)
            W, b, state = run_epoch(X, y, W, b, state, eta)
            _check_finite(state.value, f"in epoch {epoch}", lr)
            if best.update(epoch, recorder.record(epoch, state, W, b, eta), W, b):
                stop_reason = "patience"
                break
    if best.epoch is not None:
        W, b = best.W, best.b
    return _result(W, b, recorder.history, stop_reason, best.epoch, epoch)


def fit_gd(X, y, kind: str, n_outputs: int, l2: float = 2e-4, l1: float = 0.0, lr: float = 0.5,
           anneal: float = 10.0, epochs: int = 100, patience: int = 3, X_val=None, y_val=None,
           W0=None, b0=None, callback: Callback = None, affine=None) -> FitResult:
    """Full-batch proximal gradient descent: one step per epoch (see the module docstring)."""
    _check_schedule(l2, l1, lr, anneal, epochs, patience)

    def run_epoch(X, y, W, b, state, eta):
        W, b = _prox_step(W, b, state.grad_W, state.grad_b, eta, l1)
        return W, b, objective(X, y, W, b, kind, l2=l2, affine=affine)

    return _descend(X, y, kind, n_outputs, l2, l1, lr, anneal, epochs, patience, W0, b0,
                    X_val, y_val, callback, run_epoch, affine)


def fit_sgd(X, y, kind: str, n_outputs: int, l2: float = 2e-4, l1: float = 0.0, lr: float = 0.5,
            anneal: float = 10.0, epochs: int = 100, patience: int = 3, batch_size: int = 256,
            rng: np.random.Generator | None = None, X_val=None, y_val=None, W0=None, b0=None,
            callback: Callback = None, affine=None) -> FitResult:
    """Mini-batch proximal SGD: rows reshuffled with ``rng`` every epoch, one step per batch.

    rng defaults to numpy.random.default_rng(0). Batches index X in place (no copies);
    the records' train metrics are those of the full training set at the end of the epoch.
    """
    _check_schedule(l2, l1, lr, anneal, epochs, patience, batch_size)
    rng = np.random.default_rng(0) if rng is None else rng

    def run_epoch(X, y, W, b, state, eta):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = objective(X, y, W, b, kind, l2=l2, rows=order[start:start + batch_size], affine=affine)
            _check_finite(batch.value, "in a mini-batch", lr)
            W, b = _prox_step(W, b, batch.grad_W, batch.grad_b, eta, l1)
        return W, b, objective(X, y, W, b, kind, l2=l2, affine=affine)

    return _descend(X, y, kind, n_outputs, l2, l1, lr, anneal, epochs, patience, W0, b0,
                    X_val, y_val, callback, run_epoch, affine)
