"""Gradient descent: full-batch proximal gd (with a line-searched step by default) and mini-batch SGD.

Shapes and the objective as in `mnistlr.learn.solvers`. Both take the annealed step
η(t) = η₀/(1 + t/anneal), t = 0, 1, ... the epoch, and the l1 prox (soft-threshold by η·l1)
after every step, so weights become exactly zero.

- ``fit_gd(..., lr=None)`` ("auto"): a backtracking (Armijo) search in the centred variables
  (W, b' = b + z̄W) finds η₀ at the first epoch — the largest step the proximal
  sufficient-decrease condition accepts there — and epoch t steps η₀/(1 + t/anneal); η₀ halves
  whenever a step fails the condition (so it never grows back against the annealing). A given
  ``lr`` is the fixed η₀ of the same schedule in (W, b). ``accel="nesterov"`` (`TrainOptions`'
  default for gd) takes the same step from an extrapolated point: FISTA with adaptive restart
  (`_Accelerated`).
- ``fit_sgd(..., batch_size, rng)``: mini-batch proximal SGD, rows reshuffled with ``rng`` every
  epoch; ``lr=None`` means `SGD_DEFAULT_LR`.

With a hold-out (X_val, y_val) they keep the best epoch's weights — gd: the lowest hold-out
loss (smooth for full-batch steps; the accuracy moves in steps of 1/n_val and stalls), sgd: the
highest hold-out accuracy, ties to the lower loss — stop after ``patience`` epochs without
improvement, and return the best weights; ``epochs`` caps the run.

Divergence raises `TrainingError` naming the estimated safe step (`safe_step`): a non-finite
loss; a training loss above DIVERGED_RATIO × its starting value for ``patience`` epochs in a
row; or a best epoch that is the first while the training loss only grew after it — each while
the objective (loss + penalty) rose too (a loss that grows while it falls is the penalty pulling
in a warm start that fit the data too closely).
"""

from __future__ import annotations

import numpy as np

from mnistlr.errors import TrainingError
from mnistlr.learn.kernels import prox
from mnistlr.learn.means import input_mean
from mnistlr.learn.objective import objective
from mnistlr.learn.options import ACCELS
from mnistlr.learn.solvers import (
    Callback,
    FitResult,
    Recorder,
    blas_on_one_thread,
    check_problem,
    check_schedule,
    make_result,
    start_weights,
)

SGD_DEFAULT_LR = 0.5
# the training loss above this multiple of its starting value, patience epochs in a row: diverged
DIVERGED_RATIO = 2.0
# line search: η₀ doubles (×GROWTH) from 1 while accepted, then SEARCH_BISECTIONS bisections in log
# scale; a refused step halves it; at most MAX_HALVINGS doublings or halvings
GROWTH = 2.0
MAX_HALVINGS = 30
SEARCH_BISECTIONS = 3
# curvature bound of the loss in the logits: softmax cross-entropy ½, binary cross-entropy ¼
CURVATURE = {"softmax": 0.5, "ovr": 0.25}


def safe_step(X, kind: str, l2: float, affine=None) -> float:
    """1/L for the gradient's Lipschitz constant L = c·λmax(E[z̃z̃ᵀ]) + l2, z̃ = (z, 1) the model inputs.

    X (n_samples, n_features) raw or model inputs, affine (scale, shift) as in `objective`; c is
    ½ (softmax) or ¼ (ovr). Exact λmax of the (n_features+1)² second-moment matrix (Gram + eigh).
    """
    import scipy.linalg

    from mnistlr.learn.kernels.gram import centered_cross_products

    n_samples, n_features = X.shape
    gram, _, x_mean, _ = centered_cross_products(X, np.zeros((n_samples, 1), np.float32))
    scale = np.ones(n_features) if affine is None else affine[0]
    z_mean = x_mean * scale - (0.0 if affine is None else affine[1])
    moment = np.empty((n_features + 1, n_features + 1))
    # E[zzᵀ] = diag(s)·Cov(x)·diag(s) + z̄z̄ᵀ, bordered by E[z] and E[1] = 1
    moment[:n_features, :n_features] = gram * np.outer(scale, scale) / n_samples + np.outer(z_mean, z_mean)
    moment[:n_features, n_features] = moment[n_features, :n_features] = z_mean
    moment[n_features, n_features] = 1.0
    top = scipy.linalg.eigh(moment, eigvals_only=True, subset_by_index=[n_features, n_features])[0]
    return 1.0 / (CURVATURE[kind] * top + l2)


class _BestEpoch:
    """Early stopping on the hold-out: keeps the best epoch's weights; says when patience runs out."""

    def __init__(self, patience: int, rank_by: str):
        self.patience, self.rank_by = patience, rank_by
        self.epoch: int | None = None
        self.key: tuple[float, ...] | None = None
        self.W = self.b = None
        self.waited = 0

    def update(self, epoch: int, rec: dict, W, b) -> bool:
        """Note one epoch's record; True when `patience` epochs passed without improvement."""
        if rec["val_accuracy"] is None:
            return False
        # better = lower hold-out loss (gd); higher hold-out accuracy, ties to the lower loss (sgd)
        key = (-rec["val_loss"],) if self.rank_by == "loss" else (rec["val_accuracy"], -rec["val_loss"])
        if self.key is None or key > self.key:
            self.key, self.epoch, self.W, self.b, self.waited = key, epoch, W.copy(), b.copy(), 0
            return False
        self.waited += 1
        return self.waited >= self.patience


class _Watch:
    """Raises TrainingError when the training loss diverges (see the module docstring)."""

    def __init__(self, start_loss: float, start_value: float, patience: int, lr: float | None, safe):
        self.start, self.patience, self.lr, self.safe = start_loss, patience, lr, safe
        self.above = 0
        # the objective (loss + penalty) at the start and after each epoch: a loss that grows while
        # the objective falls is the penalty at work (a warm start that fits the data too closely,
        # as --init ridge on separable classes), not divergence
        self.values = [start_value]

    def error(self, where: str, loss: float) -> TrainingError:
        safe = None if self.lr is None else self.safe()
        if safe is None:
            hint = "use a larger `l2`, or check the data"
        else:
            hint = f"use `lr` ≤ {safe:.2g}, the estimated safe step, or `lr=auto`"
        error = TrainingError(f"training diverged {where}: loss {self.start:.3g} → {loss:.3g}", hint)
        error.safe_lr = safe      # for a caller that shows --lr in other units (loss_scale=sum)
        return error

    def check(self, epoch: int, loss: float, value: float) -> None:
        """After epoch *epoch* (0: the initial weights): its training loss and objective value."""
        if not (np.isfinite(loss) and np.isfinite(value)):
            where = f"at epoch {epoch}" if epoch else "at the initial weights"
            raise self.error(where, loss if np.isfinite(value) else value)
        if epoch:
            self.values.append(value)
        rose = loss > DIVERGED_RATIO * self.start and value > self.values[0]
        self.above = self.above + 1 if rose else 0
        if self.above >= self.patience:
            raise self.error(f"at epoch {epoch}", loss)

    def check_end(self, best_epoch: int | None, history: list[dict]) -> None:
        losses = [r["train_loss"] for r in history]
        # grew: never fell after epoch 1 and ended above it (a flat loss, as on identical images, did
        # not), the objective too
        grew = (len(losses) > 1 and bool(np.all(np.diff(losses) >= 0))
                and losses[-1] > losses[0] + 1e-12 * abs(losses[0]) and self.values[-1] > self.values[1])
        if best_epoch == 1 and grew:
            raise self.error(f"after epoch 1 (the best epoch was the first, then the loss only grew to "
                             f"epoch {len(losses)})", losses[-1])


def _prox_step(W, b, grad_W, grad_b, eta: float, l1: float):
    """One proximal gradient step: W ← S_{η·l1}(W − η∇_W f), b ← b − η∇_b f (b is not penalised)."""
    W = W - eta * grad_W
    if l1 > 0:
        W = prox.soft_threshold(W, eta * l1)
    return W, b - eta * grad_b


class _LineSearch:
    """The gd epoch of ``lr=None``: a backtracking proximal step in (W, b' = b + z̄W).

    The first epoch finds η₀, the largest step the sufficient-decrease condition accepts there
    (doubling from 1, then SEARCH_BISECTIONS bisections in log scale; ``probe`` evaluates the
    objective's value only). Epoch t then steps η₀·factor, factor = 1/(1 + t/T), so the schedule
    η(t) = η₀/(1 + t/T) applies as written; η₀ halves whenever a step fails the condition.
    """

    def __init__(self, landed, probe, z_mean, l1: float):
        self.landed, self.probe, self.z_mean, self.l1 = landed, probe, z_mean, l1
        self.base: float | None = None

    def _move(self, W, b, grad_W, grad_b, eta: float):
        """(W, b) after the proximal step η in the centred variables, and the step ΔW."""
        W_new, _ = _prox_step(W, b, grad_W, grad_b, eta, self.l1)
        step_W = W_new - W
        # b' ← b' − η∇_b f, so b = b' − z̄W moves by −η∇_b f − z̄·ΔW
        return W_new, b - eta * grad_b - self.z_mean @ step_W, step_W

    def _decreases(self, state, grad_W, grad_b, step_W, eta: float, value: float) -> bool:
        """The sufficient decrease f(v + Δ) ≤ f(v) + ⟨∇f, Δ⟩ + ‖Δ‖²/(2η), Δ = (ΔW, −η∇_b f)."""
        bound = (state.value + float(np.vdot(grad_W, step_W)) - eta * float(np.vdot(grad_b, grad_b))
                 + (float(np.vdot(step_W, step_W)) + eta ** 2 * float(np.vdot(grad_b, grad_b))) / (2 * eta))
        return bool(np.isfinite(value) and value <= bound + 1e-12 * abs(state.value))

    def _accepts(self, W, b, state, grad_W, grad_b, eta: float, evaluate):
        """(W, b, Objective) after the step η, and whether it meets the sufficient decrease."""
        W_new, b_new, step_W = self._move(W, b, grad_W, grad_b, eta)
        new = evaluate(W_new, b_new)
        return W_new, b_new, new, self._decreases(state, grad_W, grad_b, step_W, eta, new.value)

    def _first_step(self, W, b, state, grad_W, grad_b) -> float:
        """η₀: from 1, doubling while the condition holds (halving while it fails), then
        bisections between the last accepted and the first refused step."""
        accepted = refused = None
        eta = 1.0
        for _ in range(MAX_HALVINGS):
            if self._accepts(W, b, state, grad_W, grad_b, eta, self.probe)[3]:
                accepted, eta = eta, eta * GROWTH
            else:
                refused, eta = eta, eta / GROWTH
            if accepted is not None and refused is not None:
                break
        if accepted is None or refused is None:
            return eta if accepted is None else accepted
        for _ in range(SEARCH_BISECTIONS):
            middle = float(np.sqrt(accepted * refused))
            if self._accepts(W, b, state, grad_W, grad_b, middle, self.probe)[3]:
                accepted = middle
            else:
                refused = middle
        return accepted

    def __call__(self, W, b, state, factor: float):
        """(W, b, Objective, η) after one accepted step; Objective None when no step decreases f."""
        # ∂f/∂W at fixed b' = ∇_W f − z̄ᵀ∇_b f;  ∂f/∂b' = ∇_b f
        grad_W = state.grad_W - np.outer(self.z_mean, state.grad_b)
        grad_b = state.grad_b
        if self.base is None:
            self.base = self._first_step(W, b, state, grad_W, grad_b)
        for _ in range(MAX_HALVINGS):
            eta = self.base * factor
            W_new, b_new, new, accepted = self._accepts(W, b, state, grad_W, grad_b, eta, self.landed)
            if accepted:
                return W_new, b_new, new, eta
            self.base /= GROWTH
        return W, b, None, 0.0


class _Accelerated:
    """The gd epoch of accel="nesterov": FISTA (Beck & Teboulle 2009) with adaptive restart.

    Each epoch takes gd's step (line-searched, or the fixed annealed η) from the extrapolated
    point y = x_k + β(x_k − x_{k−1}), β = (t_k − 1)/t_{k+1}, t_{k+1} = (1 + √(1 + 4t_k²))/2, t_0 = 1,
    and restarts the momentum (t ← 1) when the step turns back against the last move,
    ⟨y − x_{k+1}, x_{k+1} − x_k⟩ > 0 (O'Donoghue & Candès 2015, the gradient scheme).
    step(W, b, state, factor) -> (W, b, Objective or None, η), state at (W, b) with its gradient.
    """

    def __init__(self, evaluate, step):
        self.evaluate, self.step = evaluate, step
        self.t, self.previous = 1.0, None

    def __call__(self, W, b, state, factor: float):
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * self.t ** 2)) / 2.0
        beta = 0.0 if self.previous is None else (self.t - 1.0) / t_next
        W_y, b_y = W, b
        if beta > 0:
            # y = x_k + β(x_k − x_{k−1})
            W_y, b_y = W + beta * (W - self.previous[0]), b + beta * (b - self.previous[1])
        at_y = state if beta == 0 and state.grad_W is not None else self.evaluate(W_y, b_y)
        W_new, b_new, new, eta = self.step(W_y, b_y, at_y, factor)
        if new is None and beta > 0:      # no decrease from y: restart, step from x_k itself
            self.t, self.previous = 1.0, None
            return self(W, b, state, factor)
        # restart when ⟨y − x_{k+1}, x_{k+1} − x_k⟩ > 0
        turned = float(np.vdot(W_y - W_new, W_new - W) + np.vdot(b_y - b_new, b_new - b)) > 0
        self.t, self.previous = (1.0 if turned else t_next), (W, b)
        return W_new, b_new, new, eta


def _descend(X, y, kind, n_outputs, l2, lr, anneal, epochs, patience, W0, b0, X_val, y_val,
             callback, run_epoch, affine, rank_by, track=None) -> FitResult:
    """The epoch loop shared by gd and sgd: schedule, records, divergence checks, early stopping.

    run_epoch(W, b, state, factor) -> (W, b, state, η) takes one epoch at the annealing factor
    1/(1 + t/T); state None means no step could decrease the objective ("converged").
    """
    W, b = start_weights(W0, b0, X.shape[1], n_outputs)
    recorder = Recorder(kind, X_val, y_val, callback, affine=affine, track=track)
    best = _BestEpoch(patience, rank_by)
    state = objective(X, y, W, b, kind, l2=l2, affine=affine)
    watch = _Watch(state.loss, state.value, patience, lr, lambda: safe_step(X, kind, l2, affine))
    watch.check(0, state.loss, state.value)
    stop_reason, epoch = "max_epochs", 0
    with blas_on_one_thread():
        for epoch in range(1, epochs + 1):
            # factor of η(t) = η₀ / (1 + t/T), t = epoch − 1
            W, b, new, eta = run_epoch(W, b, state, 1.0 / (1.0 + (epoch - 1) / anneal))
            if new is None:
                stop_reason, epoch = "converged", epoch - 1
                break
            state = new
            watch.check(epoch, state.loss, state.value)
            if best.update(epoch, recorder.record(epoch, state, W, b, eta), W, b):
                stop_reason = "patience"
                break
    watch.check_end(best.epoch, recorder.history)
    if best.epoch is not None:
        W, b = best.W, best.b
    return make_result(W, b, recorder.history, stop_reason, best.epoch, epoch)


def fit_gd(X, y, kind: str, n_outputs: int, l2: float = 2e-4, l1: float = 0.0, lr: float | None = None,
           anneal: float = 10.0, epochs: int = 100, patience: int = 3, X_val=None, y_val=None,
           W0=None, b0=None, callback: Callback = None, affine=None, track=None,
           accel: str = "none") -> FitResult:
    """Full-batch proximal gradient descent, one step per epoch; lr None: the line-searched step.

    accel "nesterov": FISTA with adaptive restart (`_Accelerated`), the same step rule at the
    extrapolated point; its records carry no gradient norm (grad_norm None).
    """
    check_schedule(l2, l1, lr, anneal, epochs, patience)
    if accel not in ACCELS:
        raise ValueError(f"accel must be one of {ACCELS}, got {accel!r}")
    X, y, X_val, y_val = check_problem(X, y, kind, n_outputs, X_val, y_val)

    def evaluate(W, b, grad=True):
        return objective(X, y, W, b, kind, l2=l2, grad=grad, affine=affine)

    accelerated = accel == "nesterov"
    # the point a step lands on: its gradient is the next step's, except under momentum
    def landed(W, b):
        return evaluate(W, b, grad=not accelerated)

    if lr is None:
        step = _LineSearch(landed, lambda W, b: evaluate(W, b, grad=False), input_mean(X, affine), l1)
    else:
        def step(W, b, state, factor):
            W, b = _prox_step(W, b, state.grad_W, state.grad_b, lr * factor, l1)
            return W, b, landed(W, b), lr * factor

    run_epoch = _Accelerated(evaluate, step) if accelerated else step
    return _descend(X, y, kind, n_outputs, l2, lr, anneal, epochs, patience, W0, b0,
                    X_val, y_val, callback, run_epoch, affine, "loss", track)


def fit_sgd(X, y, kind: str, n_outputs: int, l2: float = 2e-4, l1: float = 0.0, lr: float | None = None,
            anneal: float = 10.0, epochs: int = 100, patience: int = 3, batch_size: int = 256,
            rng: np.random.Generator | None = None, X_val=None, y_val=None, W0=None, b0=None,
            callback: Callback = None, affine=None, track=None) -> FitResult:
    """Mini-batch proximal SGD: rows reshuffled with ``rng`` every epoch, one step per batch.

    rng defaults to numpy.random.default_rng(0); lr None means SGD_DEFAULT_LR. Batches index X
    in place (no copies); the records' train metrics are those of the full training set at the
    end of the epoch.
    """
    check_schedule(l2, l1, lr, anneal, epochs, patience, batch_size)
    X, y, X_val, y_val = check_problem(X, y, kind, n_outputs, X_val, y_val)
    rng = np.random.default_rng(0) if rng is None else rng
    eta0 = SGD_DEFAULT_LR if lr is None else lr

    def run_epoch(W, b, state, factor):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = objective(X, y, W, b, kind, l2=l2, rows=order[start:start + batch_size], affine=affine)
            if not np.isfinite(batch.value):
                break     # the epoch's objective below is not finite either: the watch reports it
            W, b = _prox_step(W, b, batch.grad_W, batch.grad_b, eta0 * factor, l1)
        return W, b, objective(X, y, W, b, kind, l2=l2, affine=affine), eta0 * factor

    return _descend(X, y, kind, n_outputs, l2, eta0, anneal, epochs, patience, W0, b0,
                    X_val, y_val, callback, run_epoch, affine, "accuracy", track)
