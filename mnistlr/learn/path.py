"""`--l2 auto` / `--C auto`: the L2 penalty chosen on a warm-started regularisation path.

The path runs over `PATH_L2` — 16 values log-spaced from 1e-1 down to 1e-6, strongest first —
each fit starting from the previous one's solution, each scored by log-loss (lower is better)
or accuracy (higher is better): on the hold-out, or with `--cv K` on K stratified folds, each
fold running its own warm-started path and a penalty scored by the mean over the folds.
Scores rise and fall once along the path, so it stops `PATH_PATIENCE` points after the best one
(the weak end is the slow end). `fit_model` then refits the chosen value on all the training
images, warm-started from the chosen point's weights (the folds' mean with --cv).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mnistlr.learn.options import PATH_METRICS
from mnistlr.learn.splits import derive_seed, stratified_kfold

PATH_L2 = tuple(float(v) for v in np.logspace(-1, -6, 16))
PATH_PATIENCE = 3

# One fold of the path (the hold-out is a single one): fit(l2, W0, b0) -> solvers.FitResult,
# W0, b0 None for the first penalty; score(W, b) -> (accuracy, log_loss) on the fold's held-out part.
Fold = tuple[Callable, Callable]


def run_path(folds: Sequence[Fold], penalties: Sequence[float] = PATH_L2, metric: str = "log_loss",
             patience: int = PATH_PATIENCE, callback: Callable[[dict], None] | None = None):
    """Fit every penalty from the first (strongest) on in every fold, each fold warm-started from
    its own last solution; a penalty's score is the mean of its fold scores.

    Returns (points, best index, the best penalty's FitResults, one per fold): one point per
    fitted penalty {l2, val_log_loss, val_accuracy, n_iter (all folds)}, with several folds also
    the standard errors of the means (val_log_loss_se, val_accuracy_se); callback(point) after each.
    """
    if metric not in PATH_METRICS:
        raise ValueError(f"metric must be one of {PATH_METRICS}, got {metric!r}")
    if not folds:
        raise ValueError("the path needs at least one fold")
    points: list[dict] = []
    best, best_fits = None, None
    fits: list = [None] * len(folds)
    for l2 in penalties:
        fits = [fit(float(l2), *((None, None) if last is None else (last.W, last.b)))
                for (fit, _), last in zip(folds, fits, strict=True)]
        scores = np.array([score(r.W, r.b) for (_, score), r in zip(folds, fits, strict=True)], dtype=np.float64)
        points.append(_point(float(l2), scores, sum(int(r.n_iter) for r in fits)))
        if callback is not None:
            callback(points[-1])
        accuracy, log_loss = points[-1]["val_accuracy"], points[-1]["val_log_loss"]
        # lower log-loss, or higher accuracy (ties to the lower log-loss)
        key = (-log_loss,) if metric == "log_loss" else (accuracy, -log_loss)
        if best is None or key > best[0]:
            best, best_fits = (key, len(points) - 1), fits
        elif len(points) - 1 - best[1] >= patience:
            break
    return points, best[1], best_fits


def fold_splits(y, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """--cv K's folds of the training labels y (n,): [(fit rows, scored rows)], stratified, seeded by --seed."""
    return stratified_kfold(y, n_folds, derive_seed(seed, 5), option="`path_cv`")


def _point(l2: float, scores: np.ndarray, n_iter: int) -> dict:
    """A path point from the fold scores (n_folds, 2): columns accuracy, log-loss."""
    accuracy, log_loss = scores.mean(axis=0)
    point = {"l2": l2, "val_log_loss": float(log_loss), "val_accuracy": float(accuracy), "n_iter": n_iter}
    if len(scores) > 1:
        # standard error of a fold mean: s / √K, s the sample standard deviation over the K folds
        se = scores.std(axis=0, ddof=1) / np.sqrt(len(scores))
        point |= {"val_log_loss_se": float(se[1]), "val_accuracy_se": float(se[0])}
    return point
