"""Solvers for linear classifiers: one entry per solver, each returning a `FitResult`.

X is (n_samples, n_features) float32/float64 model inputs, C-contiguous, or raw uint8 pixels
with ``affine=(scale, shift)`` ((n_features,) each; model inputs z = x·scale − shift, folded
into the weights: no float copy of X); y is (n_samples,) int class indices 0..n_classes−1 (0/1
for a one-column ``kind="ovr"`` model). The objective is the one in `mnistlr.learn.objective`: mean
cross-entropy + (l2/2)‖W‖² + l1‖W‖₁, intercept not penalised.

- ``fit_closed_ridge(X, y, n_classes, l2)`` — least squares on one-hot targets, closed form:
  W = (XcᵀXc + l2·I)⁻¹ XcᵀYc by Cholesky on centred data, b = ȳ − x̄W.
- ``fit_lbfgs(X, y, kind, n_outputs, l2, tol, max_iter, ...)`` — L-BFGS (memory 50; `learn.lbfgs`, scipy's L-BFGS-B with l1)
  in the variables (W, b' = b + z̄W); "converged" when the objective fell by less than tol
  (relative) per iteration over the last 5 iterations, "max_iter" after max_iter iterations.
- gd and sgd live in `mnistlr.learn.descent`, on the helpers here (Recorder, check_problem, ...).

Every solver calls ``callback(record)`` after each epoch/iteration with the record it
appends to ``history``: epoch, train_loss (mean cross-entropy without the penalty; ridge:
mean squared error to the one-hot targets, also for val_loss), train_accuracy, val_loss,
val_accuracy (None without a hold-out), grad_norm (‖∇ of the smooth objective‖₂ in (W, b); None for gd
with momentum, which does not compute it there),
lr (None for lbfgs/closed), seconds (since the start of the fit). A loss that becomes inf/nan raises `TrainingError`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from mnistlr.errors import TrainingError
from mnistlr.learn.centred import CentredObjective
from mnistlr.learn.kernels import scoring
from mnistlr.learn.kernels.blas import blas_on_one_thread
from mnistlr.learn.kernels.gram import centered_cross_products
from mnistlr.learn.model import fold_affine
from mnistlr.learn.objective import Objective, check_kind, objective
from mnistlr.learn.whitening import whitening as whitening_of

Callback = Callable[[dict], None] | None


@dataclasses.dataclass
class FitResult:
    W: np.ndarray          # (n_features, n_outputs) float32
    b: np.ndarray          # (n_outputs,) float32
    history: list[dict]    # one record per epoch/iteration (see the module docstring)
    stop_reason: str       # "converged" | "patience" | "max_epochs" | "max_iter"
    best_epoch: int | None  # epoch whose weights were kept (gd/sgd with a hold-out), else None
    n_iter: int            # epochs or iterations run
    # lbfgs's searches on subsamples before the full data: {"rows", "iterations", "evaluations"} each
    phases: list[dict] = dataclasses.field(default_factory=list)


class Recorder:
    """Builds history records (evaluating the hold-out, and the test set when tracked) and hands them
    to the callback. track: (X_test, y_test) scored into test_loss/test_accuracy for the learning
    curves only: no solver reads them."""

    def __init__(self, kind: str, X_val, y_val, callback: Callback, evaluate=None, affine=None, track=None):
        self.kind, self.X_val, self.y_val, self.callback, self.affine = kind, X_val, y_val, callback, affine
        self.track = track
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
            # ‖∇f‖₂ over (W, b); None where the solver did not need the gradient (gd with momentum)
            "grad_norm": None if train.grad_W is None else
            float(np.sqrt(np.vdot(train.grad_W, train.grad_W) + np.vdot(train.grad_b, train.grad_b))),
            "lr": lr,
            "seconds": time.perf_counter() - self.started,
        }
        if self.track is not None:
            rec["test_loss"], rec["test_accuracy"] = self.evaluate(*self.track, W, b)
        self.history.append(rec)
        if self.callback is not None:
            self.callback(rec)
        return rec


def check_problem(X, y, kind: str, n_outputs: int, X_val, y_val):
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


def start_weights(W0, b0, n_features: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 working copies of the initial weights (zeros when not given)."""
    W = np.zeros((n_features, n_outputs)) if W0 is None else np.array(W0, dtype=np.float64)
    b = np.zeros(n_outputs) if b0 is None else np.array(b0, dtype=np.float64).reshape(-1)
    if W.shape != (n_features, n_outputs) or b.shape != (n_outputs,):
        raise ValueError(f"W0/b0 must be ({n_features}, {n_outputs}) and ({n_outputs},), got {W.shape} and {b.shape}")
    return W, b


def make_result(W, b, history, stop_reason, best_epoch, n_iter) -> FitResult:
    return FitResult(np.ascontiguousarray(W, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32),
                     history, stop_reason, best_epoch, n_iter)


def check_finite(value: float, where: str, lr: float | None) -> None:
    if not np.isfinite(value):
        hint = f"use a smaller --lr than {lr:g}" if lr is not None else "use a larger --l2 or check the data"
        raise TrainingError(f"training diverged {where}: the loss became {value}", hint)


def check_schedule(l2, l1, lr, anneal, epochs, patience, batch_size=1) -> None:
    """ValueError unless the penalties are finite and ≥ 0, lr (None: auto) and anneal > 0, the counts ≥ 1."""
    for name, value in (("l2", l2), ("l1", l1)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and ≥ 0, got {value}")
    for name, value in (("lr", 1.0 if lr is None else lr), ("anneal", anneal)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    for name, value in (("epochs / max_iter", epochs), ("patience", patience), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")


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
                     X_val=None, y_val=None, callback: Callback = None, affine=None, track=None) -> FitResult:
    """Ridge regression on one-hot targets in closed form; predicts argmax of X @ W + b.

    X (n_samples, n_features); y (n_samples,) int in 0..n_classes−1 (n_classes defaults to
    max(y)+1) or one-hot Y (n_samples, n_classes). l2 = γ ≥ 0 is added to the diagonal of
    the centred Gram matrix (unnormalised: min ½‖XcW − Yc‖² + (γ/2)‖W‖²).
    """
    import scipy.linalg

    check_schedule(l2, 0.0, 1.0, 1.0, 1, 1)
    Y, y = _ridge_targets(y, n_classes)
    X, y, X_val, y_val = check_problem(X, y, "softmax", max(Y.shape[1], 2), X_val, y_val)
    recorder = Recorder("softmax", X_val, y_val, callback,
                         evaluate=lambda *args: _ridge_metrics(*args, affine=affine), track=track)
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
    return make_result(W, b, recorder.history, "converged", None, 1)


# the ridge start: γ of its closed form, and the rows (at most) that choose the scale α of its scores
RIDGE_START_L2 = 1.0
RIDGE_START_ROWS = 4096


def ridge_start(X, y, kind: str, n_outputs: int, affine=None) -> tuple[np.ndarray, np.ndarray]:
    """Initial (W (n_features, n_outputs), b (n_outputs,)) for softmax/ovr from ridge's closed form.

    The scores s of a multiple linear regression on one-hot targets (γ = RIDGE_START_L2) become
    logits α·s (softmax), α·(s − ½) (one-vs-rest) or α·(s₁ − s₀) (binary), with the α > 0 that
    minimises the training loss on up to RIDGE_START_ROWS evenly spaced rows.
    """
    from scipy.optimize import minimize_scalar

    ridge = fit_closed_ridge(X, y, n_classes=max(n_outputs, 2), l2=RIDGE_START_L2, affine=affine)
    W, b = ridge.W.astype(np.float64), ridge.b.astype(np.float64)
    if kind == "ovr":
        # binary: s₁ − s₀; one-vs-rest: s − ½
        W, b = (W[:, 1:] - W[:, :1], b[1:] - b[:1]) if n_outputs == 1 else (W, b - 0.5)
    rows = np.linspace(0, len(y) - 1, min(len(y), RIDGE_START_ROWS)).astype(np.int64)

    def loss(log_alpha: float) -> float:
        alpha = np.exp(log_alpha)
        return objective(X, y, alpha * W, alpha * b, kind, rows=rows, grad=False, affine=affine).loss

    alpha = float(np.exp(minimize_scalar(loss, bounds=(-5.0, 7.0), method="bounded",
                                         options={"xatol": 0.05}).x))
    return alpha * W, alpha * b


# ---------------------------------------------------------------------------- L-BFGS

# L-BFGS-B memory: 50 pairs instead of scipy's 10 cut the evaluations to reach the same
# objective on MNIST softmax by a third (64 → 43, ~11 ms each); the bookkeeping grows from
# 0.5 to 1.6 ms per iteration. (A warm start from 1–2 SGD epochs saved nothing on top.)
LBFGS_MEMORY = 50
# tol is the mean relative decrease of the objective per iteration over this many iterations.
TOL_WINDOW = 5
# With l1 (bounds on W⁺, W⁻) the objective keeps falling slowly while weights settle on the
# bounds, so tol stops it further from the optimum: on MNIST (l1 = 1e-4) 1.0 % above it at
# tol 1e-3 (L2's default fit: 0.3 %), above saga's; tol/10 leaves 0.16 %, below saga's, in 76
# instead of 46 iterations (2.7× the default L2 fit's CPU time against 1.65×).
BOUNDED_TOL_FACTOR = 0.1


# Subsampled phases (zero start, whitened inputs, no l1): before the full data, L-BFGS searches on
# every 4^k-th row, coarsest first, for each such subsample of ≥ COARSE_MIN_ROWS rows, each to
# tol·COARSE_TOL_FACTOR; the curvature pairs carry over (a subsample's Hessian is nearly the
# full one's), so the full-data passes start near the optimum. Only with two phases or more (from
# 240,000 rows): the coarsest then costs little, where a quarter of the data alone costs more than it
# saves. Default options, interleaved (twelfth session): Fashion shifted 300,000 4.01 → 3.66 s
# (7.7 → 6.1 CPU s; 30 → 11 full-data iterations), test log-loss 0.4682 → 0.4652; Fashion 60,000 with
# a quarter alone 0.75 → 0.97 s (log-loss 0.4389 → 0.4357); MNIST 22,699 (a quarter: 5,675 rows) no fewer passes.
COARSE_STRIDE = 4
COARSE_MIN_ROWS = 15_000
COARSE_MIN_PHASES = 2
COARSE_TOL_FACTOR = 0.3


def coarse_strides(n_samples: int) -> list[int]:
    """Row strides of the subsampled phases, coarsest first: [] below 240,000 rows, [16, 4] from there, [64, 16, 4] from 960,000."""
    strides, stride = [], COARSE_STRIDE
    while n_samples // stride >= COARSE_MIN_ROWS:
        strides.insert(0, stride)
        stride *= COARSE_STRIDE
    return strides if len(strides) >= COARSE_MIN_PHASES else []


class WindowStop:
    """Raises StopIteration once (f_{k−m} − f_k) / m ≤ tol·|f_k| over the last m = TOL_WINDOW iterations."""

    def __init__(self, tol: float):
        self.tol, self.values = tol, []

    def __call__(self, value: float) -> None:
        v = self.values
        v.append(value)
        if len(v) > TOL_WINDOW and v[-1 - TOL_WINDOW] - v[-1] <= TOL_WINDOW * self.tol * abs(v[-1]):
            raise StopIteration

    def after(self, iterate) -> None:
        """As an L-BFGS callback: the iterate's objective."""
        self(iterate.fun)


def fit_lbfgs(X, y, kind: str, n_outputs: int, l2: float = 2e-4, tol: float = 1e-3, max_iter: int = 100,
              W0=None, b0=None, X_val=None, y_val=None, callback: Callback = None, affine=None,
              l1: float = 0.0, track=None) -> FitResult:
    """Minimise the objective by L-BFGS (`learn.lbfgs`; scipy's L-BFGS-B with l1); one history record per iteration.

    X (n_samples, n_features); y (n_samples,) int; kind "softmax" | "ovr"; n_outputs columns
    of W. Converged ("converged") when the objective fell by less than tol (relative; tol/10
    with l1) per iteration, on average over the last 5 iterations, or when the line search can make no
    more progress (float32 precision); max_iter caps the iterations ("max_iter").
    W0 (n_features, n_outputs) / b0 (n_outputs,) start the search (zeros by default).
    The hold-out, when given, is only reported. L-BFGS runs in (W, b' = b + z̄W), z̄ the mean
    model input: the same objective and optimum, but centred inputs condition it better
    (MNIST: 91 → 58 iterations at tol 1e-4); without l1, in whitened variables U = LᵀW as well
    (`learn.whitening`: up to 1,024 features), and from zeros on 240,000 rows or more after
    searches on subsamples (`coarse_strides`; history and max_iter count the full-data iterations).
    With l1 > 0 it runs on the split W = W⁺ − W⁻,
    W⁺, W⁻ ≥ 0 (bounds), where l1‖W‖₁ = l1·Σ(W⁺ + W⁻) is smooth; weights whose two parts
    both end on the bound 0 are exactly zero.
    """
    from mnistlr.learn.lbfgs import STATUS_LIMIT, STATUS_LINE_SEARCH

    check_schedule(l2, l1, 1.0, 1.0, max_iter, 1)
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be finite and ≥ 0, got {tol}")
    X, y, X_val, y_val = check_problem(X, y, kind, n_outputs, X_val, y_val)
    W, b = start_weights(W0, b0, X.shape[1], n_outputs)
    zero_start = not (W.any() or b.any())
    recorder = Recorder(kind, X_val, y_val, callback, affine=affine, track=track)
    with blas_on_one_thread():   # the metric's bits do not depend on the thread count
        whitening = None if l1 else whitening_of(X, affine)
        coarse = zero_start and whitening is not None and bool(coarse_strides(len(y)))
        centred = CentredObjective(X, y, kind, n_outputs, l2, affine, l1, whitening,
                                   exact_zero=zero_start and not coarse)
    stop = WindowStop(tol * BOUNDED_TOL_FACTOR if l1 > 0 else tol)

    def on_iteration(intermediate_result):
        obj, W_k, b_k = centred.at(intermediate_result.x)
        recorder.record(len(recorder.history) + 1, obj, W_k, b_k, None)
        # f + l1‖W‖₁
        stop(obj.value + l1 * float(np.abs(W_k).sum()))

    if l1 > 0:
        # scipy's own BLAS (its L-BFGS-B's dot products) loaded before the limit below is set, which
        # covers only libraries already loaded: else the first fit in a process ran them on two
        # threads and the later ones on one, in other sums (MNIST, l1 1e-4: 74 against 75 iterations)
        import scipy.optimize  # noqa: F401
    with blas_on_one_thread():
        res, phases = _minimize(centred, centred.start(W, b), on_iteration, max_iter, tol if coarse else None)
    check_finite(float(res.fun), f"after {len(recorder.history)} L-BFGS iterations", None)
    if res.status == STATUS_LINE_SEARCH and not recorder.history and zero_start and not any(
            p["iterations"] for p in phases):
        raise _no_first_step(X, l2, affine)
    W, b = centred.weights(res.x)
    stop_reason = "max_iter" if res.status == STATUS_LIMIT else "converged"
    return dataclasses.replace(make_result(W, b, recorder.history, stop_reason, None, len(recorder.history)),
                               phases=phases)


def _minimize(centred: CentredObjective, v, on_iteration, max_iter: int, coarse_tol: float | None):
    """(L-BFGS's result from v, the subsampled phases run first): mnistlr's L-BFGS, after the phases at
    coarse_tol unless it is None; scipy's L-BFGS-B with l1 (bounds)."""
    # mnistlr's L-BFGS without bounds (no 0.35 s import of scipy.optimize), scipy's L-BFGS-B with them
    from mnistlr.learn.lbfgs import Pairs, lbfgs, minimize

    limits = dict(memory=LBFGS_MEMORY, max_iter=max_iter, max_fun=2 * max_iter + 20, gtol=1e-10, ftol=1e-15)
    if centred.l1 > 0:
        options = {"maxiter": max_iter, "maxfun": limits["max_fun"], "maxcor": LBFGS_MEMORY,
                   "gtol": limits["gtol"], "ftol": limits["ftol"]}
        return minimize(centred.fun, v, jac=True, method="L-BFGS-B", callback=on_iteration,
                        bounds=centred.bounds(), options=options), []
    pairs, phases = Pairs(LBFGS_MEMORY, v.size), []
    if coarse_tol is not None:
        v, phases = _coarse_phases(centred, v, coarse_tol, limits, pairs)
    return lbfgs(centred.fun, v, callback=on_iteration, pairs=pairs, f0_slack=centred.start_slack(v), **limits), phases


def _coarse_phases(centred: CentredObjective, v, tol: float, limits: dict, pairs) -> tuple[np.ndarray, list[dict]]:
    """v after L-BFGS on each subsample of `coarse_strides` (coarsest first) from v, and what each phase ran;
    *pairs* (the curvature pairs) updated in place for the full-data search."""
    from mnistlr.learn.lbfgs import lbfgs

    phases = []
    for stride in coarse_strides(len(centred.y)):
        centred.rows = np.arange(0, len(centred.y), stride, dtype=np.int64)
        res = lbfgs(centred.fun, v, callback=WindowStop(tol * COARSE_TOL_FACTOR).after, pairs=pairs, **limits)
        if np.isfinite(res.fun):
            v = res.x
        phases.append({"rows": len(centred.rows), "iterations": res.nit, "evaluations": res.nfev})
    centred.rows = None
    return v, phases


# An L2 penalty (mean-loss scale) from which a failed first step is put down to it, not to the inputs:
# the defaults are 1e-4 and 2e-4, and at 1 the weights are already held near 0.
LARGE_L2 = 1.0


def _no_first_step(X, l2: float, affine=None) -> TrainingError:
    """From the all-zero start every problem has a lower point; none found means the scale defeats
    float precision: an L2 penalty so large that any step raises it more than the loss can be seen
    to fall, or inputs so large that the steps are below the precision of the weights."""
    if l2 >= LARGE_L2:
        return TrainingError(f"L-BFGS found no step that lowers the objective from the all-zero start: the L2 "
                             f"penalty {l2:.3g} outweighs any fall of the loss at the solver's precision "
                             "(every weight would stay 0)",
                             "give a smaller `l2` or a larger `C`, e.g. `l2=1e-4`")
    top = float(np.abs(X).max(initial=0))
    if affine is not None:   # the inputs the solver sees: z = x·scale − shift
        scale, shift = affine
        ends = [np.abs(np.asarray(end, np.float64) * scale - shift) for end in (X.min(axis=0), X.max(axis=0))]
        top = float(np.maximum(*ends).max(initial=0))
    return TrainingError(f"L-BFGS found no step that lowers the loss from the all-zero start (the inputs reach "
                         f"|x| = {top:.3g}, too large for the solver's precision)",
                         "scale the inputs: divide them by their largest value, or use a StandardScaler")
