"""`--l2 auto` / `--C auto`: the L2 penalty chosen on a warm-started regularisation path.

The path runs over `PATH_L2` — 16 values log-spaced from 1e-1 down to 1e-6, strongest first —
each fit starting from the previous one's solution, each scored on the hold-out by log-loss
(lower is better) or accuracy (higher is better). Scores rise and fall once along the path, so
it stops `PATH_PATIENCE` points after the best one (the weak end is the slow end). `fit_model`
then refits the chosen value on the training part and the hold-out together, warm-started from
the chosen point's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mnistlr.learn.options import PATH_METRICS

PATH_L2 = tuple(float(v) for v in np.logspace(-1, -6, 16))
PATH_PATIENCE = 3


def run_path(fit: Callable, score: Callable, penalties: Sequence[float] = PATH_L2, metric: str = "log_loss",
             patience: int = PATH_PATIENCE, callback: Callable[[dict], None] | None = None):
    """Fit every penalty from the first (strongest) on, each warm-started from the last solution.

    fit(l2, W0, b0) -> solvers.FitResult (W0, b0 None for the first); score(W, b) ->
    (accuracy, log_loss) on the hold-out. Returns (points, best index, best FitResult): one
    point per fitted penalty {l2, val_log_loss, val_accuracy, n_iter}; callback(point) after each.
    """
    if metric not in PATH_METRICS:
        raise ValueError(f"metric must be one of {PATH_METRICS}, got {metric!r}")
    points: list[dict] = []
    best, best_fit, W, b = None, None, None, None
    for l2 in penalties:
        result = fit(float(l2), W, b)
        W, b = result.W, result.b
        accuracy, log_loss = score(W, b)
        points.append({"l2": float(l2), "val_log_loss": float(log_loss), "val_accuracy": float(accuracy),
                       "n_iter": int(result.n_iter)})
        if callback is not None:
            callback(points[-1])
        # lower log-loss, or higher accuracy (ties to the lower log-loss)
        key = (-log_loss,) if metric == "log_loss" else (accuracy, -log_loss)
        if best is None or key > best[0]:
            best, best_fit = (key, len(points) - 1), result
        elif len(points) - 1 - best[1] >= patience:
            break
    return points, best[1], best_fit
