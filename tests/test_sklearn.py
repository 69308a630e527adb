"""mnistlr.sklearn: scikit-learn's own estimator checks, Pipeline / GridSearchCV /
cross_val_score, and fits identical to the command line's."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mnistlr
from mnistlr.learn.persistence import load_model
from mnistlr.sklearn import (
    LogisticRegression,
    NotFittedError,
    RidgeClassifier,
    SoftmaxRegression,
    from_model,
)

ESTIMATORS = [SoftmaxRegression(), LogisticRegression(), RidgeClassifier()]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # scikit-learn runs its array-API check (NumPy arrays under array-API dispatch) only with this set
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def features():
    """General (not pixel) features: 300 samples, 12 features, 3 classes."""
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6, n_classes=3,
                               random_state=0)
    return X, y


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_pipeline_grid_search_and_cross_validation(estimator, features):
    X, y = features
    assert is_classifier(estimator)
    pipeline = make_pipeline(StandardScaler(), clone(estimator))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6
    name = type(estimator).__name__.lower()
    grid = GridSearchCV(pipeline, {f"{name}__l2": [1e-4, 1e-1, 10.0]}, cv=3).fit(X, y)
    assert grid.best_params_[f"{name}__l2"] in (1e-4, 1e-1, 10.0)
    assert grid.score(X, y) > 0.6


@pytest.mark.parametrize("estimator, args", [
    (SoftmaxRegression(preprocess="scale", l2=1e-3), ["--model", "softmax", "--l2", "1e-3"]),
    (LogisticRegression(preprocess="standardize", solver="sgd", epochs=5),
     ["--model", "logistic", "--preprocess", "standardize", "--solver", "sgd", "--epochs", "5"]),
    (RidgeClassifier(preprocess="scale", l2=10.0), ["--model", "ridge", "--l2", "10"]),
    (SoftmaxRegression(preprocess="scale", features="deskew,pca:20,rff:300"),
     ["--model", "softmax", "--features", "deskew,pca:20,rff:300"]),
    (RidgeClassifier(preprocess="scale", features="hog"), ["--model", "ridge", "--features", "hog"]),
], ids=["softmax", "logistic-sgd", "ridge", "softmax-features", "ridge-features"])
def test_fits_are_the_command_lines(estimator, args, cli, tmp_path):
    X, y = mnistlr.load_dataset("mnist-sample")
    X, y = X[:1500], y[:1500]
    path = tmp_path / "m.joblib"
    result = cli("train", "--dataset", "mnist-sample", "--train-limit", "1500", *args, "-o", path, "-q")
    assert result.code == 0, result.err
    reference = load_model(path)
    fitted = clone(estimator).fit(X.reshape(len(X), -1), y)
    assert np.array_equal(fitted.model_.W, reference.W) and np.array_equal(fitted.model_.b, reference.b)
    Xt, _ = mnistlr.load_dataset("mnist-sample", "test")
    flat = Xt.reshape(len(Xt), -1)
    assert np.array_equal(fitted.predict(flat), reference.predict(Xt))
    assert np.allclose(fitted.predict_proba(flat), reference.predict_proba(Xt), atol=1e-5)
    # the pixel rule: [0, 1] floats give the same predictions
    assert np.array_equal(fitted.predict(flat / 255.0), reference.predict(Xt))


def test_binary_and_one_vs_rest_logistic(features):
    X, y = features
    binary = LogisticRegression().fit(X[y < 2], np.where(y[y < 2] == 1, "yes", "no"))
    assert binary.coef_.shape == (1, 12) and binary.intercept_.shape == (1,)
    assert binary.classes_.tolist() == ["no", "yes"]
    decision = binary.decision_function(X)
    assert np.allclose(decision, X @ binary.coef_[0] + binary.intercept_[0])
    assert np.array_equal(binary.predict(X), np.where(decision > 0, "yes", "no"))
    ovr = LogisticRegression().fit(X, y)
    assert ovr.coef_.shape == (3, 12) and ovr.decision_function(X).shape == (300, 3)
    assert np.allclose(ovr.decision_function(X), X @ ovr.coef_.T + ovr.intercept_)
    assert ovr.score(X, y) > 0.6


@pytest.mark.parametrize("make, classes", [(SoftmaxRegression, 3), (LogisticRegression, 3), (LogisticRegression, 2)])
def test_log_probabilities_are_the_log_of_the_probabilities_and_stay_finite(features, make, classes):
    X, y = features
    fitted = make().fit(X[y < classes], y[y < classes])
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X)), fitted.predict_proba(X), rtol=1e-12, atol=1e-15)
    far = X * 1e4                                   # scores of ~1e4: probabilities round to 0 and 1
    assert (fitted.predict_proba(far) == 0).any()
    log_p = fitted.predict_log_proba(far)
    assert np.isfinite(log_p).all() and log_p.min() < -700
    np.testing.assert_array_equal(log_p.argmax(axis=1), fitted.predict_proba(far).argmax(axis=1))


def test_the_iteration_cap_is_a_convergence_warning(features):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = features
    with pytest.warns(ConvergenceWarning, match="reached max_iter=3 before tol"):
        capped = SoftmaxRegression(max_iter=3).fit(X, y)
    assert capped.n_iter_ == 3 and capped.model_.meta["stop_reason"] == "max_iter"
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # converged: no warning
        SoftmaxRegression().fit(X, y)


def test_numpy_integer_options_do_not_overflow():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 3))
    y = (X[:, 0] > 0).astype(int)
    # 32,512 + 256 overflows int16: the options are Python ints by the time they index rows
    fitted = SoftmaxRegression(solver="sgd", batch_size=np.int16(256), epochs=1).fit(X, y)
    assert fitted.score(X, y) > 0.95 and isinstance(fitted.batch_size, np.int16)   # the parameter as given


def test_pickle_round_trip(features):
    X, y = features
    fitted = SoftmaxRegression().fit(X, y)
    back = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(back.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize("make, error, words", [
    (lambda X, y: SoftmaxRegression().predict(X), NotFittedError, "not fitted yet"),
    (lambda X, y: SoftmaxRegression(solver="newton").fit(X, y), mnistlr.UsageError, "solver 'newton' is not one of"),
    (lambda X, y: SoftmaxRegression(preprocess="scale").fit(X, y), mnistlr.DataError, "negative pixel"),
    (lambda X, y: RidgeClassifier(l2=-1.0).fit(X, y), ValueError, "l2 must be"),
    (lambda X, y: RidgeClassifier(l2="auto").fit(X, y), mnistlr.UsageError, "ridge is solved in closed form"),
    (lambda X, y: SoftmaxRegression().fit(X, np.zeros(len(y))), mnistlr.TrainingError, r"1 class \(0.0\)"),
    (lambda X, y: SoftmaxRegression().fit(X, y).predict(X[:, :5]), mnistlr.DataError, "has 5 features"),
    (lambda X, y: SoftmaxRegression().fit(np.where(X > 1, np.nan, X), y), mnistlr.DataError, "NaN"),
    (lambda X, y: SoftmaxRegression().fit(X.astype(str), y), ValueError, "numeric"),
    (lambda X, y: SoftmaxRegression().fit(X * 1e39, y), mnistlr.DataError, "beyond float32's range"),
    (lambda X, y: SoftmaxRegression().fit(X * 1e20, y), mnistlr.TrainingError, r"reach \|x\| = .*scale the inputs"),
])
def test_bad_input(features, make, error, words):
    X, y = features
    with pytest.raises(error, match=words) as info:
        make(X, y)
    assert isinstance(info.value, mnistlr.MnistlrError)


@pytest.mark.parametrize("scale", [1e4, 1e8])
def test_badly_scaled_features_train_as_well(features, scale):
    # steps ~1/‖g‖ far below 1e-12: the line search shrinks its bracket relative to its own scale
    X, y = features
    fitted = SoftmaxRegression().fit(X * scale, y)
    assert fitted.n_iter_ > 5 and fitted.score(X * scale, y) >= SoftmaxRegression().fit(X, y).score(X, y) - 0.02


def test_a_model_trained_with_c_is_an_estimator_that_refits():
    # it carried both the C and the l2 it became, and fit refused them ("l2 and C both set")
    X, y = mnistlr.load_dataset("mnist-sample")
    estimator = from_model(mnistlr.train(X[:200], y[:200], C=0.5, max_iter=5))
    assert estimator.get_params()["C"] == 0.5 and estimator.get_params()["l2"] is None
    flat = X[:300].reshape(300, -1)
    assert clone(estimator).fit(flat, y[:300]).model_.params["l2"] == pytest.approx(1 / (0.5 * 300))


def test_a_trained_model_as_an_estimator():
    X, y = mnistlr.load_dataset("mnist-sample")
    Xt, yt = mnistlr.load_dataset("mnist-sample", "test")
    model = mnistlr.train(X, y, model="logistic", classes=[3, 8])
    estimator = from_model(model)
    assert isinstance(estimator, LogisticRegression) and is_classifier(estimator)
    assert estimator.get_params()["preprocess"] == "scale" and estimator.n_features_in_ == 784
    keep = np.isin(yt, [3, 8])
    flat = Xt[keep].reshape(keep.sum(), -1)
    assert np.array_equal(estimator.predict(flat), model.predict(Xt[keep]))
    assert estimator.classes_.tolist() == [3, 8]
    assert np.allclose(estimator.predict_proba(flat), model.predict_proba(Xt[keep]), atol=1e-5)
    with pytest.raises(mnistlr.UsageError, match="not a SoftmaxRegression"):
        SoftmaxRegression.from_model(model)


def test_a_feature_model_as_an_estimator_and_features_on_images_only():
    X, y = mnistlr.load_dataset("mnist-sample")
    Xt, _ = mnistlr.load_dataset("mnist-sample", "test")
    model = mnistlr.train(X[:1000], y[:1000], features="deskew,pca:30")
    estimator = from_model(model)
    assert estimator.get_params()["features"] == "deskew,pca:30" and estimator.n_features_in_ == 784
    flat = Xt[:300].reshape(300, -1)
    assert np.array_equal(estimator.predict(flat), model.predict(Xt[:300]))
    assert np.allclose(estimator.predict_proba(flat), model.predict_proba(Xt[:300]), atol=1e-5)
    refit = clone(estimator).fit(X[:1000].reshape(1000, -1), y[:1000])
    assert np.array_equal(refit.model_.W, model.linear.W)       # the same options give the same fit
    with pytest.raises(mnistlr.UsageError, match="needs square images"):
        SoftmaxRegression(features="deskew").fit(X[:100].reshape(100, -1)[:, :780], y[:100])
    # pca (no image rows needed) takes any flat pixel rows
    wide = SoftmaxRegression(features="pca:5").fit(X[:100].reshape(100, -1)[:, :780], y[:100])
    assert wide.predict(Xt[:10].reshape(10, -1)[:, :780]).shape == (10,)
