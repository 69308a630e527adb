"""Objectives of the linear classifiers, for the solvers.

Logistic and softmax regression minimise

    f(W, b) = (1/n) Σ_i ℓ(x_i W + b, y_i) + (l2/2)·‖W‖²   (+ l1·‖W‖₁, handled by the solvers' prox step)

with the intercept b not penalised, where ℓ is

- ``kind="softmax"``: the multinomial cross-entropy, y in 0..n_classes−1, one column per class;
- ``kind="ovr"``: the sum over output columns of the binary cross-entropy of σ(s);
  one column (binary logistic regression) with y in {0, 1}, or one column per class
  (one-vs-rest) with target [y = c] in column c.

`objective` evaluates f (and its gradient) from (W, b), `objective_at_zero` both at W = 0, b = 0
from per-class input sums alone; `pack`/`unpack` turn (W, b) into one
float64 vector w = [W.ravel() (row-major), b], the form scipy's L-BFGS-B wants (as
scikit-learn's ``_linear_loss.py`` does). The heavy lifting is one fused pass over X in
`mnistlr.learn.kernels.fused`.

``affine=(scale, shift)`` lets X be the raw pixels (uint8, no float copy) of model affine
z = x·scale − shift (per feature): the kernel then sees the folded weights
W_x = scale⊙W, b_x = b − shift·W (`model.fold_affine`), and the chain rule maps its gradient
back to (W, b).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnistlr.learn.kernels import fused
from mnistlr.learn.model import fold_affine

KINDS = ("softmax", "ovr")


@dataclasses.dataclass
class Objective:
    """f and its gradient at (W, b) over the rows used."""

    value: float                 # mean loss + (l2/2)‖W‖²
    loss: float                  # mean loss alone (cross-entropy; comparable with a hold-out's)
    accuracy: float              # share of rows predicted right
    grad_W: np.ndarray | None    # (n_features, n_outputs) float64; None when grad=False
    grad_b: np.ndarray | None    # (n_outputs,) float64


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def objective(X, y, W, b, kind: str, l2: float = 0.0, rows=None, grad: bool = True, affine=None) -> Objective:
    """f(W, b) over X[rows] (all rows by default), and its gradient when grad is true.

    X (n_samples, n_features) uint8/float32/float64; y (n_samples,) int; W (n_features, n_outputs);
    b (n_outputs,); rows: optional (m,) int indices (a mini-batch without copying X);
    affine: optional (scale, shift), each (n_features,): the model sees z = x·scale − shift.
    """
    check_kind(kind)
    loss_fn = fused.softmax_cross_entropy if kind == "softmax" else fused.ovr_cross_entropy
    W64 = np.asarray(W, dtype=np.float64)
    part = loss_fn(X, y, *fold_affine(W64, b, affine), rows=rows, grad=grad)
    n_rows = len(y) if rows is None else len(rows)
    # f = (1/n) Σ ℓ_i + (l2/2)‖W‖²
    loss = part.loss_sum / n_rows
    value = loss + 0.5 * l2 * float(np.vdot(W64, W64))
    if not grad:
        return Objective(value, loss, part.n_correct / n_rows, None, None)
    grad_W = part.grad_W
    if affine is not None:
        scale, shift = affine
        # chain rule: ∂/∂W_j = scale_j·∂/∂W_x,j − shift_j·∂/∂b_x
        grad_W = scale[:, None] * grad_W - np.outer(shift, part.grad_b)
    # ∇_W f = (1/n) Σ z_iᵀ ∂ℓ_i/∂s + l2·W;  ∇_b f = (1/n) Σ ∂ℓ_i/∂s
    grad_W = grad_W / n_rows + l2 * W64
    grad_b = part.grad_b / n_rows
    return Objective(value, loss, part.n_correct / n_rows, grad_W, grad_b)


def objective_at_zero(class_sums, counts, kind: str, n_outputs: int, affine=None) -> Objective:
    """f and its gradient at W = 0, b = 0 in closed form, without a pass over X.

    class_sums (n_classes, n_features): Σ_{i: y_i = c} x_i (exact integers for uint8 pixels);
    counts (n_classes,) rows per class, n_classes ≥ n_outputs (binary ovr: 2 classes, one output).
    Every logit is 0, so the kernels' argmax is class 0 and each row's residual is constant per class.
    """
    check_kind(kind)
    sums, counts = np.asarray(class_sums, np.float64), np.asarray(counts, np.float64)
    n_rows, total = counts.sum(), sums.sum(axis=0)
    if kind == "softmax":
        # p_c = 1/k: ℓ = log k, ∂ℓ/∂s_c = 1/k − [y = c]
        k = n_outputs
        loss, share, target_sums, target_counts = float(np.log(k)), 1.0 / k, sums, counts
    else:
        # σ(0) = 1/2: ℓ = Σ_c log 2, ∂ℓ/∂s_c = 1/2 − t_c (t = y with one output, else [y = c])
        targets = slice(1, 2) if n_outputs == 1 else slice(0, n_outputs)
        loss, share, target_sums, target_counts = n_outputs * float(np.log(2.0)), 0.5, sums[targets], counts[targets]
    # Σ_i x_iᵀ ∂ℓ_i/∂s = share·Σ_i x_i − Σ_{i in c} x_i;  Σ_i ∂ℓ_i/∂s = share·n − n_c
    resid_x = share * total[:, None] - target_sums.T
    resid = share * n_rows - target_counts
    if affine is not None:
        scale, shift = affine
        # z = x·scale − shift: Σ_i z_iᵀ r_i = scale·Σ_i x_iᵀ r_i − shift·Σ_i r_i
        resid_x = scale[:, None] * resid_x - np.outer(shift, resid)
    return Objective(loss, loss, float(counts[0] / n_rows), resid_x / n_rows, resid / n_rows)


def pack(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One float64 vector [W.ravel(), b] of length n_features·n_outputs + n_outputs."""
    return np.concatenate([np.asarray(W, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()])


def unpack(w: np.ndarray, n_features: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Views (W (n_features, n_outputs), b (n_outputs,)) into a packed vector w."""
    if w.shape != (n_features * n_outputs + n_outputs,):
        raise ValueError(f"packed weights must have {n_features * n_outputs + n_outputs} entries, got {w.shape}")
    return w[: n_features * n_outputs].reshape(n_features, n_outputs), w[n_features * n_outputs:]
