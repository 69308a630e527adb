"""--l2 auto's regularisation path: warm starts, the choice, the stop rule, and the path in the model."""

from __future__ import annotations

import numpy as np
import pytest
from test_solvers import sampled_problem

from mnistlr.learn import objective, solvers
from mnistlr.learn.path import run_path

PENALTIES = tuple(np.logspace(0, -4, 7))


def problem():
    X, y = sampled_problem(300, 6, 3, seed=12, scale=0.7)
    return X[:200], y[:200], X[200:], y[200:]


def hold_out_score(X_val, y_val):
    def score(W, b):
        val = objective.objective(X_val, y_val, W, b, "softmax", grad=False)
        return val.accuracy, val.loss
    return score


def test_each_warm_started_point_equals_a_cold_fit():
    X, y, X_val, y_val = problem()
    fits, starts = [], []

    def fit(l2, W0, b0):
        starts.append(W0)
        fits.append(solvers.fit_lbfgs(X, y, "softmax", 3, l2=l2, tol=1e-9, max_iter=2000, W0=W0, b0=b0))
        return fits[-1]

    points, best, best_fit = run_path(fit, hold_out_score(X_val, y_val), PENALTIES, patience=len(PENALTIES))
    assert [p["l2"] for p in points] == list(PENALTIES) and starts[0] is None
    for k, (point, warm) in enumerate(zip(points, fits, strict=True)):
        if k:
            assert starts[k] is fits[k - 1].W                   # started from the previous solution
        cold = solvers.fit_lbfgs(X, y, "softmax", 3, l2=point["l2"], tol=1e-9, max_iter=2000)
        f = [objective.objective(X, y, r.W, r.b, "softmax", l2=point["l2"]).value for r in (warm, cold)]
        assert f[0] == pytest.approx(f[1], rel=1e-4)
    # the warm starts save work where the path is smooth
    assert sum(p["n_iter"] for p in points[1:]) < sum(
        solvers.fit_lbfgs(X, y, "softmax", 3, l2=p["l2"], tol=1e-9, max_iter=2000).n_iter for p in points[1:])
    losses = [p["val_log_loss"] for p in points]
    assert best == int(np.argmin(losses)) and best_fit is fits[best]


def test_accuracy_ranks_by_accuracy_and_the_path_stops_after_patience_points():
    X, y, X_val, y_val = problem()

    def fit(l2, W0, b0):
        return solvers.fit_lbfgs(X, y, "softmax", 3, l2=l2, tol=1e-6, max_iter=500, W0=W0, b0=b0)

    full, best, _ = run_path(fit, hold_out_score(X_val, y_val), PENALTIES, metric="accuracy",
                             patience=len(PENALTIES))
    key = [(p["val_accuracy"], -p["val_log_loss"]) for p in full]
    assert best == key.index(max(key))
    short, best_short, _ = run_path(fit, hold_out_score(X_val, y_val), PENALTIES, metric="accuracy", patience=1)
    # stopped one point after its best, which is the best of the points it fitted
    short_key = key[:len(short)]
    assert best_short == short_key.index(max(short_key)) and len(short) == min(best_short + 2, len(PENALTIES))
    assert short == full[:len(short)]
    with pytest.raises(ValueError):
        run_path(fit, hold_out_score(X_val, y_val), PENALTIES, metric="f1")
