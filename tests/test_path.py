"""--l2 auto's regularisation path: warm starts, the choice, the stop rule, and the path in the model."""

from __future__ import annotations

import numpy as np
import pytest
from test_solvers import sampled_problem

from mnistlr.cli.render import l2_path_text
from mnistlr.learn import objective, solvers
from mnistlr.learn.fit import fit_model
from mnistlr.learn.fit_metrics import accuracy_and_log_loss
from mnistlr.learn.options import TrainOptions
from mnistlr.learn.path import PATH_L2, PATH_PATIENCE, fold_splits, run_path

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

    points, best, (best_fit,) = run_path([(fit, hold_out_score(X_val, y_val))], PENALTIES, patience=len(PENALTIES))
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

    full, best, _ = run_path([(fit, hold_out_score(X_val, y_val))], PENALTIES, metric="accuracy",
                             patience=len(PENALTIES))
    key = [(p["val_accuracy"], -p["val_log_loss"]) for p in full]
    assert best == key.index(max(key))
    short, best_short, _ = run_path([(fit, hold_out_score(X_val, y_val))], PENALTIES, metric="accuracy", patience=1)
    # stopped one point after its best, which is the best of the points it fitted
    short_key = key[:len(short)]
    assert best_short == short_key.index(max(short_key)) and len(short) == min(best_short + 2, len(PENALTIES))
    assert short == full[:len(short)]
    with pytest.raises(ValueError):
        run_path([(fit, hold_out_score(X_val, y_val))], PENALTIES, metric="f1")


# --cv K: the path scored on K stratified folds

TIGHT = dict(tol=1e-7, max_iter=1000)


def images_problem(n=240, seed=3):
    """4×4 uint8 images whose labels (0, 1, 2) follow a softmax model of the pixels."""
    X, y = sampled_problem(n, 16, 3, seed=seed, scale=0.7)
    return np.clip(X * 40 + 128, 0, 255).astype(np.uint8).reshape(n, 4, 4), y


def test_cv_folds_are_stratified_disjoint_and_seeded():
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [40, 25, 10]))
    folds = fold_splits(labels, 5, seed=0)
    for rows, held in folds:
        assert np.bincount(labels[held]).tolist() == [8, 5, 2]       # every class split evenly
        assert np.intersect1d(rows, held).size == 0 and len(rows) + len(held) == len(labels)
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(len(labels)))
    again, other = fold_splits(labels, 5, seed=0), fold_splits(labels, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_cv_path_choice_equals_the_mean_of_cold_fits_per_fold():
    images, labels = images_problem()
    model = fit_model(images, labels, TrainOptions(l2="auto", path_cv=3, seed=4, **TIGHT))
    path = model.meta["l2_path"]
    assert path["cv"] == 3 and model.meta["n_train"] == len(labels) and model.meta["n_val"] == 0
    hand = []
    for point in path["points"]:
        scores = []
        for rows, held in fold_splits(labels, 3, seed=4):
            cold = fit_model(images[rows], labels[rows], TrainOptions(l2=point["l2"], **TIGHT))
            scores.append(accuracy_and_log_loss(cold, images[held].reshape(len(held), -1), labels[held]))
        hand.append(np.mean(scores, axis=0))
    hand = np.array(hand)
    np.testing.assert_allclose([p["val_log_loss"] for p in path["points"]], hand[:, 1], rtol=1e-4)
    np.testing.assert_allclose([p["val_accuracy"] for p in path["points"]], hand[:, 0], atol=1e-9)
    chosen = int(np.argmin(hand[:, 1]))
    assert path["chosen"] == chosen and model.params["l2"] == path["points"][chosen]["l2"]
    assert [p["l2"] for p in path["points"]] == list(PATH_L2[:min(chosen + 1 + PATH_PATIENCE, len(PATH_L2))])
    # then refitted on all the training images at the chosen penalty
    cold = fit_model(images, labels, TrainOptions(l2=model.params["l2"], **TIGHT))
    np.testing.assert_allclose(model.predict_proba(images), cold.predict_proba(images), atol=1e-3)


def test_cv_path_is_seeded_and_the_same_on_any_number_of_threads():
    import numba

    images, labels = images_problem()
    options = TrainOptions(l2="auto", path_cv=4, seed=2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fit_model(images, labels, options)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = fit_model(images, labels, options)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.W, many.W)
    assert one.meta["l2_path"] == many.meta["l2_path"]
    other = fit_model(images, labels, TrainOptions(l2="auto", path_cv=4, seed=3))
    assert other.meta["l2_path"]["points"][0] != one.meta["l2_path"]["points"][0]   # other folds


def test_the_cv_path_text_shows_the_fold_means_and_their_spread():
    images, labels = images_problem()
    path = fit_model(images, labels, TrainOptions(l2="auto", path_cv=3)).meta["l2_path"]
    text = l2_path_text(path).splitlines()
    assert text[0].startswith(f"{len(path['points'])} penalties × 3 folds of 240 images")
    first = path["points"][0]
    assert f"log-loss {first['val_log_loss']:.4f} ± {first['val_log_loss_se']:.4f}" in text[1]
    assert first["val_log_loss_se"] > 0 and "← chosen" in text[1 + path["chosen"]]


@pytest.mark.parametrize(("args", "expected"), [
    (["--l2", "auto", "--cv", "1"], "--path-cv must be a whole number of folds ≥ 2, got 1 (e.g. --path-cv 5)"),
    (["--l2", "auto", "--per-class", "3", "--cv", "4"],
     "--path-cv 4 is more than the 3 image(s) of class 0 (use --path-cv 3 or fewer, or more training data)"),
    (["--cv", "3"], "--path-cv scores the path of --l2 auto (or --C auto) on folds"),
])
def test_bad_fold_counts_are_one_line_usage_errors(cli, tmp_path, args, expected):
    result = cli("train", "-d", "mnist-sample", *args, "-o", tmp_path / "model.joblib")
    assert result.code == 2 and result.err.count("\n") == 1 and expected in result.err, result.err
    assert not (tmp_path / "model.joblib").exists()
