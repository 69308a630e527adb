"""Solvers on small synthetic problems: agreement with scikit-learn / direct solves, l1 zeros,
early stopping, reproducibility, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from mnistlr.errors import TrainingError
from mnistlr.learn import descent, means, objective, solvers

RECORD_KEYS = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm", "lr", "seconds"}


def sampled_problem(n_samples, n_features, n_classes, seed=0, dtype=np.float64, scale=1.5):
    """Labels drawn from a softmax model, so the classes overlap (a finite optimum even with l2 = 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    S = X @ rng.normal(scale=scale, size=(n_features, n_classes))
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(n_classes, p=p) for p in P])
    return X.astype(dtype), y


def noisy_problem(seed=2, n_train=80, n_val=300, n_features=200, flip=0.3):
    """One informative feature, many useless ones, 30% of training labels flipped: the hold-out
    accuracy peaks early and falls as the model fits the noise."""
    rng = np.random.default_rng(seed)
    X, X_val = rng.normal(size=(n_train, n_features)), rng.normal(size=(n_val, n_features))
    y, y_val = (X[:, 0] > 0).astype(int), (X_val[:, 0] > 0).astype(int)
    flipped = rng.random(n_train) < flip
    y[flipped] = 1 - y[flipped]
    return X, y, X_val, y_val


def sklearn_lr(C):
    linear_model = pytest.importorskip("sklearn.linear_model")
    return linear_model.LogisticRegression(C=C, tol=1e-12, max_iter=10_000)


@pytest.mark.parametrize("n_classes,l2", [(3, 0.0), (3, 0.01), (10, 0.01)])
def test_lbfgs_softmax_matches_sklearn(n_classes, l2):
    X, y = sampled_problem(400, 4, n_classes, seed=n_classes)
    result = solvers.fit_lbfgs(X, y, "softmax", n_classes, l2=l2, tol=0.0, max_iter=1000)
    # sklearn: C·Σ CE + ½‖W‖²  ≡  mean CE + (l2/2)‖W‖² with C = 1/(l2·n)
    model = sklearn_lr(np.inf if l2 == 0 else 1.0 / (l2 * len(y))).fit(X, y)
    assert result.stop_reason == "converged"
    # softmax is invariant to adding a constant to every class: compare centred columns
    W, b = result.W - result.W.mean(axis=1, keepdims=True), result.b - result.b.mean()
    coef, intercept = model.coef_.T, model.intercept_
    coef, intercept = coef - coef.mean(axis=1, keepdims=True), intercept - intercept.mean()
    np.testing.assert_allclose(W, coef, atol=2e-4 * max(1.0, np.abs(coef).max()))
    np.testing.assert_allclose(b, intercept, atol=2e-4 * max(1.0, np.abs(intercept).max()))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_lbfgs_ovr_matches_one_sklearn_binary_model_per_column(n_classes, l2):
    X, y = sampled_problem(300, 3, n_classes, seed=20 + n_classes)
    n_outputs = 1 if n_classes == 2 else n_classes
    result = solvers.fit_lbfgs(X, y, "ovr", n_outputs, l2=l2, tol=0.0, max_iter=1000)
    C = np.inf if l2 == 0 else 1.0 / (l2 * len(y))
    targets = [y] if n_outputs == 1 else [(y == c).astype(int) for c in range(n_classes)]
    for column, target in enumerate(targets):
        model = sklearn_lr(C).fit(X, target)
        np.testing.assert_allclose(result.W[:, column], model.coef_[0], atol=2e-4 * max(1.0, np.abs(model.coef_).max()))
        np.testing.assert_allclose(result.b[column], model.intercept_[0], atol=2e-4 * max(1.0, abs(model.intercept_[0])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lbfgs_records_every_iteration_and_stops_at_max_iter(dtype):
    X, y = sampled_problem(200, 5, 3, dtype=dtype)
    seen = []
    result = solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01, max_iter=3, X_val=X[:50], y_val=y[:50],
                               callback=seen.append)
    assert result.stop_reason == "max_iter" and result.n_iter == 3
    assert seen == result.history and [r["epoch"] for r in seen] == [1, 2, 3]
    assert all(set(r) == RECORD_KEYS and r["val_accuracy"] is not None and r["lr"] is None for r in seen)
    assert result.W.dtype == np.float32 and result.W.shape == (5, 3) and result.b.shape == (3,)
    assert result.best_epoch is None


def test_lbfgs_warm_start_from_the_optimum_converges_at_once():
    X, y = sampled_problem(300, 4, 3)
    first = solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01, tol=1e-8, max_iter=500)
    again = solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01, tol=1e-8, max_iter=500, W0=first.W, b0=first.b)
    assert again.stop_reason == "converged" and again.n_iter < first.n_iter
    assert again.history[0]["train_loss"] == pytest.approx(first.history[-1]["train_loss"], rel=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("l2", [0.0, 5.0])
def test_closed_ridge_matches_a_direct_solve(n_classes, l2):
    X, y = sampled_problem(250, 6, n_classes, seed=30 + n_classes)
    X += 3.0                                            # off-centre features: the intercept matters
    result = solvers.fit_closed_ridge(X, y, n_classes=n_classes, l2=l2)
    W, b = ref.ridge(X, np.eye(n_classes)[y], l2)
    np.testing.assert_allclose(result.W, W, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.b, b, rtol=1e-4, atol=1e-6)
    assert result.stop_reason == "converged" and result.n_iter == 1
    (record,) = result.history
    assert record["train_accuracy"] == np.mean(np.argmax(X @ W + b, axis=1) == y)
    onehot = solvers.fit_closed_ridge(X, np.eye(n_classes)[y], l2=l2)
    np.testing.assert_allclose(onehot.W, result.W, rtol=1e-6, atol=1e-7)


def test_closed_ridge_without_penalty_on_a_constant_pixel_is_a_training_error():
    X, y = sampled_problem(50, 4, 3)
    X[:, 2] = 0.0
    with pytest.raises(TrainingError) as caught:
        solvers.fit_closed_ridge(X, y, n_classes=3, l2=0.0)
    assert "--l2" in caught.value.hint
    assert np.all(np.isfinite(solvers.fit_closed_ridge(X, y, n_classes=3, l2=1.0).W))


def sparse_problem(seed=4):
    """Ten features of which only the first three matter."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 10))
    y = np.argmax(X[:, :3] * 2 + rng.normal(scale=0.5, size=(300, 3)), axis=1)
    return X.astype(np.float32), y


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_l1_gives_exact_zeros(solver):
    X, y = sparse_problem()
    extra = {"batch_size": 32, "rng": np.random.default_rng(0)} if solver == "sgd" else {}
    fit = getattr(descent, f"fit_{solver}")
    sparse = fit(X, y, "softmax", 3, l2=0.0, l1=0.05, lr=0.5, epochs=60, **extra)
    extra = {"batch_size": 32, "rng": np.random.default_rng(0)} if solver == "sgd" else {}
    dense = fit(X, y, "softmax", 3, l2=0.0, l1=0.0, lr=0.5, epochs=60, **extra)
    assert np.count_nonzero(sparse.W[3:] == 0) >= 7            # many useless weights are exactly 0
    assert np.count_nonzero(sparse.W[:3] == 0) < 9             # the informative ones survive (some)
    assert np.count_nonzero(dense.W == 0) == 0
    assert np.all(sparse.b != 0)                               # the intercept is not thresholded
    assert sparse.history[-1]["train_accuracy"] > 0.8


def test_gd_reaches_the_lbfgs_optimum():
    X, y = sampled_problem(200, 4, 3, seed=8)
    best = solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.05, tol=0.0, max_iter=500)
    gd = descent.fit_gd(X, y, "softmax", 3, l2=0.05, lr=1.0, anneal=1e9, epochs=1500)
    f = [objective.objective(X, y, r.W, r.b, "softmax", l2=0.05).value for r in (best, gd)]
    assert f[1] == pytest.approx(f[0], rel=1e-5)
    assert gd.stop_reason == "max_epochs" and gd.n_iter == 1500 and gd.best_epoch is None


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_early_stopping_restores_the_best_epoch(solver):
    X, y, X_val, y_val = noisy_problem()

    def run(epochs):
        extra = {"batch_size": 16, "rng": np.random.default_rng(5)} if solver == "sgd" else {}
        return getattr(descent, f"fit_{solver}")(X, y, "softmax", 2, l2=0.0, lr=0.5, anneal=1000.0, epochs=epochs,
                                                  patience=6, X_val=X_val, y_val=y_val, **extra)

    result = run(200)
    accuracies = [r["val_accuracy"] for r in result.history]
    assert result.stop_reason == "patience"
    assert result.n_iter == result.best_epoch + 6 == len(result.history)
    assert accuracies[result.best_epoch - 1] == max(accuracies) > accuracies[-1]
    # the same run cut at the best epoch ends with exactly those weights
    cut = run(result.best_epoch)
    assert cut.best_epoch == result.best_epoch and cut.stop_reason == "max_epochs"
    np.testing.assert_array_equal(result.W, cut.W)
    np.testing.assert_array_equal(result.b, cut.b)


def test_sgd_same_seed_same_weights():
    X, y = sampled_problem(300, 5, 3, dtype=np.float32)

    def run(seed):
        return descent.fit_sgd(X, y, "softmax", 3, l2=1e-3, l1=1e-3, lr=0.3, epochs=5, batch_size=20,
                               rng=np.random.default_rng(seed))

    first, second, other = run(11), run(11), run(12)
    np.testing.assert_array_equal(first.W, second.W)
    np.testing.assert_array_equal(first.b, second.b)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert not np.array_equal(first.W, other.W)


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_divergence_is_a_training_error_naming_lr(solver):
    X, y = sampled_problem(100, 4, 3, dtype=np.float32)
    with pytest.raises(TrainingError) as caught:
        # W ← (1 − η·l2)W − η∇: |1 − η·l2| = 99 grows W geometrically until the loss overflows
        getattr(descent, f"fit_{solver}")(X, y, "softmax", 3, l2=1.0, lr=100.0, anneal=1e9, epochs=500)
    assert "--lr" in caught.value.for_command_line() and "diverged" in caught.value.message


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_records_and_schedule(solver):
    X, y = sampled_problem(120, 3, 3, dtype=np.float32)
    seen = []
    result = getattr(descent, f"fit_{solver}")(X, y, "ovr", 3, lr=0.2, anneal=2.0, epochs=4,
                                               X_val=X[:30], y_val=y[:30], patience=100, callback=seen.append)
    assert seen == result.history and len(seen) == 4 and result.stop_reason == "max_epochs"
    assert all(set(r) == RECORD_KEYS for r in seen)
    # η(t) = η₀/(1 + t/T), t = epoch − 1
    np.testing.assert_allclose([r["lr"] for r in seen], [0.2 / (1 + t / 2.0) for t in range(4)])
    assert all(r["seconds"] >= 0 for r in seen) and seen[-1]["seconds"] >= seen[0]["seconds"]


@pytest.mark.parametrize("bad", [dict(kind="hinge"), dict(n_outputs=1), dict(y_val=None)])
def test_bad_arguments_are_rejected(bad):
    X, y = sampled_problem(30, 3, 3)
    args = dict(kind="softmax", n_outputs=3, X_val=X[:5], y_val=y[:5]) | bad
    with pytest.raises(ValueError):
        descent.fit_gd(X, y, epochs=2, **args)


@pytest.mark.slow
def test_lbfgs_defaults_reach_the_bar_on_real_digits(shared_mnist):
    """Softmax with the solver's defaults on the 22,699 head images (x/255): the issue's bar on t10k."""
    from mnistlr.io.idx import read_images, read_labels

    def load(prefix):
        images = read_images(shared_mnist / f"{prefix}-images-idx3-ubyte.gz")
        return images.reshape(len(images), -1).astype(np.float32) / 255, read_labels(
            shared_mnist / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)

    X, y = load("train-head")
    X_test, y_test = load("t10k")
    result = solvers.fit_lbfgs(X, y, "softmax", 10)
    test = objective.objective(X_test, y_test, result.W, result.b, "softmax", grad=False)
    assert result.stop_reason == "converged"
    assert test.accuracy >= 0.920 and test.loss <= 0.300


def raw_pixels(n_samples, n_features, n_classes, seed):
    """uint8 pixels whose class shifts their mean, labels, and the affine map of 'center' preprocessing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_samples)
    means = rng.uniform(40, 200, size=(n_classes, n_features))
    X = np.clip(means[y] + rng.normal(scale=40, size=(n_samples, n_features)), 0, 255).astype(np.uint8)
    mean = X.mean(axis=0) / 255.0
    return X, y, (np.full(n_features, 1 / 255.0), mean)


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 3), ("ovr", 1)])
def test_lbfgs_on_raw_pixels_finds_the_optimum_of_the_transformed_inputs(kind, n_outputs):
    X, y, affine = raw_pixels(300, 8, 3 if n_outputs == 3 else 2, seed=50)
    Z = X * affine[0] - affine[1]
    raw = solvers.fit_lbfgs(X, y, kind, n_outputs, l2=1e-2, tol=0.0, max_iter=300, affine=affine)
    plain = solvers.fit_lbfgs(Z, y, kind, n_outputs, l2=1e-2, tol=0.0, max_iter=300)
    # same objective value at both solutions (float32 logits on the raw path), and nearly the same weights
    value = [objective.objective(Z, y, r.W, r.b, kind, l2=1e-2).value for r in (raw, plain)]
    assert value[0] == pytest.approx(value[1], rel=1e-6)
    np.testing.assert_allclose(raw.W, plain.W, atol=1e-3)
    np.testing.assert_allclose(raw.b, plain.b, atol=1e-3)
    # the records report the objective's own gradient (W, b), not that of the centred variables
    final = objective.objective(Z, y, raw.W, raw.b, kind, l2=1e-2)
    assert raw.history[-1]["train_loss"] == pytest.approx(final.loss, rel=1e-5)


def test_closed_ridge_on_raw_pixels_matches_the_transformed_inputs():
    X, y, affine = raw_pixels(400, 7, 4, seed=51)
    Z = X * affine[0] - affine[1]
    raw = solvers.fit_closed_ridge(X, y, n_classes=4, l2=0.5, affine=affine)
    plain = solvers.fit_closed_ridge(Z, y, n_classes=4, l2=0.5)
    np.testing.assert_allclose(raw.W, plain.W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw.b, plain.b, rtol=1e-5, atol=1e-6)
    assert raw.history[0]["train_accuracy"] == plain.history[0]["train_accuracy"]


@pytest.mark.parametrize("solver", ["gd", "sgd"])
def test_gd_and_sgd_on_raw_pixels_follow_the_transformed_inputs(solver):
    X, y, affine = raw_pixels(300, 6, 3, seed=52)
    Z = X * affine[0] - affine[1]
    fit = descent.fit_gd if solver == "gd" else descent.fit_sgd
    args = dict(kind="softmax", n_outputs=3, l2=1e-3, lr=0.5, epochs=5)
    extra = {} if solver == "gd" else dict(batch_size=64)
    raw = fit(X, y, affine=affine, **args, **extra, **({} if solver == "gd" else dict(rng=np.random.default_rng(1))))
    plain = fit(Z, y, **args, **extra, **({} if solver == "gd" else dict(rng=np.random.default_rng(1))))
    np.testing.assert_allclose(raw.W, plain.W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(raw.b, plain.b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_lbfgs_l1_reaches_the_proximal_gradient_optimum_with_exact_zeros(l2):
    X, y = sparse_problem()
    X = X.astype(np.float64)
    lbfgs = solvers.fit_lbfgs(X, y, "softmax", 3, l2=l2, l1=0.05, tol=0.0, max_iter=2000)
    prox_gd = descent.fit_gd(X, y, "softmax", 3, l2=l2, l1=0.05, lr=0.5, anneal=1e9, epochs=3000)

    def f(r):     # f + l1‖W‖₁
        return objective.objective(X, y, r.W, r.b, "softmax", l2=l2).value + 0.05 * np.abs(r.W.astype(np.float64)).sum()

    assert f(lbfgs) == pytest.approx(f(prox_gd), rel=1e-5)
    assert np.count_nonzero(lbfgs.W[3:] == 0) >= 7 and np.count_nonzero(lbfgs.W == 0) < lbfgs.W.size
    np.testing.assert_array_equal(lbfgs.W == 0, prox_gd.W == 0)
    np.testing.assert_allclose(lbfgs.W, prox_gd.W, atol=1e-3)


@pytest.mark.parametrize("l1", [0.0, 0.01])
def test_lbfgs_stops_with_l1_at_a_tenth_of_tol(monkeypatch, l1):
    """With bounds (l1 > 0) the relative-decrease rule runs at tol/10; without, at tol."""
    X, y = sampled_problem(400, 8, 3, seed=31)
    default = solvers.fit_lbfgs(X, y, "softmax", 3, l2=1e-3, l1=l1, tol=1e-3)
    monkeypatch.setattr(solvers, "BOUNDED_TOL_FACTOR", 1.0)
    given = solvers.fit_lbfgs(X, y, "softmax", 3, l2=1e-3, l1=l1, tol=1e-3 * (0.1 if l1 else 1.0))
    np.testing.assert_array_equal(default.W, given.W)
    assert default.n_iter == given.n_iter
    if l1:       # and it is a later stop than tol itself gives
        assert default.n_iter > solvers.fit_lbfgs(X, y, "softmax", 3, l2=1e-3, l1=l1, tol=1e-3).n_iter


@pytest.mark.parametrize("kind,n_classes", [("softmax", 3), ("ovr", 3), ("ovr", 2)])
def test_ridge_start_turns_the_ridge_scores_into_the_best_scaled_logits(kind, n_classes):
    X, y = sampled_problem(300, 5, n_classes, seed=60 + n_classes)
    n_outputs = 1 if n_classes == 2 else n_classes
    W, b = solvers.ridge_start(X, y, kind, n_outputs)
    ridge = solvers.fit_closed_ridge(X, y, n_classes=n_classes, l2=solvers.RIDGE_START_L2)
    scores = X @ ridge.W.astype(np.float64) + ridge.b
    logits = X @ W + b
    # the logits are a positive multiple of the (centred / differenced) ridge scores
    base = {"softmax": scores, "ovr": scores[:, 1:] - scores[:, :1] if n_outputs == 1 else scores - 0.5}[kind]
    alpha = float(np.sum(logits * base) / np.sum(base * base))
    assert alpha > 0
    np.testing.assert_allclose(logits, alpha * base, rtol=1e-4, atol=1e-4)
    # α is the best scale: scaling it up or down raises the training loss
    f = [objective.objective(X, y, s * W, s * b, kind).loss for s in (0.8, 1.0, 1.25)]
    assert f[1] < f[0] and f[1] < f[2]


def test_column_means_of_float_rows_are_the_mean_in_any_thread_count(monkeypatch):
    from mnistlr.learn.kernels import threads

    X = np.random.default_rng(5).normal(3.0, 2.0, size=(2 * means.MEAN_SPAN_ROWS + 77, 13)).astype(np.float32)
    two = means.column_means(X)
    np.testing.assert_allclose(two, X.astype(np.float64).mean(axis=0), rtol=1e-13)
    monkeypatch.setattr(threads, "n_threads", lambda: 1)
    assert np.array_equal(two, means.column_means(X))
    pixels = np.random.default_rng(6).integers(0, 256, size=(3000, 9), dtype=np.uint8)
    pixels[:, 4] = 255                                # the largest sums
    import sys

    import mnistlr.learn.kernels.setup  # noqa: F401  (Numba imported: the class-sum kernel)
    from mnistlr.learn.kernels import class_sums

    calls, real = [], class_sums.class_pixel_sums
    monkeypatch.setattr(class_sums, "class_pixel_sums", lambda *a: calls.append(1) or real(*a))
    assert np.array_equal(means.column_means(pixels), pixels.mean(axis=0, dtype=np.float64)) and calls == [1]
    monkeypatch.delitem(sys.modules, "mnistlr.learn.kernels.setup")   # NumPy's sums
    assert np.array_equal(means.column_means(pixels), pixels.mean(axis=0, dtype=np.float64)) and calls == [1]


def test_subsampled_phases_from_two_hundred_and_forty_thousand_rows():
    # two phases at least: every 16th row (≥ 15,000 of them), then every 4th
    assert solvers.coarse_strides(60_000) == [] and solvers.coarse_strides(239_999) == []
    assert solvers.coarse_strides(240_000) == [16, 4] and solvers.coarse_strides(1_200_000) == [64, 16, 4]


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 3), ("ovr", 3), ("ovr", 1)])
def test_subsampled_phases_lead_to_the_same_optimum_in_fewer_full_iterations(monkeypatch, kind, n_outputs):
    X, y = sampled_problem(1600, 6, 3 if n_outputs > 1 else 2, seed=7)
    plain = solvers.fit_lbfgs(X, y, kind, n_outputs, l2=0.01, tol=1e-9, max_iter=500)
    assert plain.phases == []     # 1,600 rows: no subsample of COARSE_MIN_ROWS
    monkeypatch.setattr(solvers, "COARSE_MIN_ROWS", 100)
    seen = []
    coarse = solvers.fit_lbfgs(X, y, kind, n_outputs, l2=0.01, tol=1e-9, max_iter=500, callback=seen.append)
    # every 16th row, then every 4th, then all of them
    assert [p["rows"] for p in coarse.phases] == [100, 400]
    assert all(p["iterations"] > 0 and p["evaluations"] >= p["iterations"] for p in coarse.phases)
    np.testing.assert_allclose(coarse.W, plain.W, atol=1e-4 * np.abs(plain.W).max())
    np.testing.assert_allclose(coarse.b, plain.b, atol=1e-4 * max(1.0, np.abs(plain.b).max()))
    # the history holds the full-data iterations, numbered from 1, fewer of them than from zeros
    assert seen == coarse.history and [r["epoch"] for r in seen] == list(range(1, coarse.n_iter + 1))
    assert coarse.n_iter < plain.n_iter


def test_no_subsampled_phases_from_a_given_start_or_with_l1(monkeypatch):
    X, y = sampled_problem(1600, 6, 3, seed=8)
    monkeypatch.setattr(solvers, "COARSE_MIN_ROWS", 100)
    W0 = np.full((6, 3), 0.01)
    assert solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01, W0=W0).phases == []
    assert solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01, l1=0.001).phases == []
    assert solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.01).phases != []
