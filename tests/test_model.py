"""LinearModel: folded preprocessing equals the explicit pipeline; shapes are checked."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlr.errors import DataError, UsageError
from mnistlr.learn.model import LinearModel, Preprocessor


def make_model(kind: str, n_outputs: int, preprocess: str, rng) -> tuple[LinearModel, np.ndarray]:
    X = rng.integers(0, 256, size=(40, 4, 5)).astype(np.uint8)
    X[:, 0, 0] = 7  # a constant pixel: standardisation must not divide by zero
    pre = Preprocessor.fit(preprocess, X.reshape(40, -1))
    W = rng.normal(size=(20, n_outputs)).astype(np.float32)
    b = rng.normal(size=n_outputs).astype(np.float32)
    classes = np.array([3, 8]) if n_outputs == 1 else np.arange(n_outputs)
    return LinearModel(kind, classes, (4, 5), pre, W, b), X


@pytest.mark.parametrize("preprocess", ["scale", "center", "standardize"])
def test_folded_weights_match_explicit_preprocessing(preprocess):
    model, X = make_model("softmax", 3, preprocess, np.random.default_rng(1))
    Z = model.preprocessor.transform(X.reshape(len(X), -1))
    expected = Z.astype(np.float64) @ model.W + model.b
    np.testing.assert_allclose(model.decision_function(X), expected, rtol=1e-4, atol=1e-4)


def test_standardize_handles_constant_pixels():
    model, X = make_model("softmax", 3, "standardize", np.random.default_rng(2))
    assert model.preprocessor.std[0] == 1.0
    assert np.isfinite(model.preprocessor.transform(X.reshape(len(X), -1))).all()


@pytest.mark.parametrize(("kind", "n_outputs"), [("softmax", 4), ("ridge", 4), ("logistic", 4), ("logistic", 1)])
def test_probabilities_sum_to_one_and_agree_with_predict(kind, n_outputs):
    model, X = make_model(kind, n_outputs, "scale", np.random.default_rng(3))
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    assert (P >= 0).all()
    np.testing.assert_array_equal(model.classes[P.argmax(axis=1)], model.predict(X))


def test_binary_logistic_probability_is_sigmoid_of_score():
    model, X = make_model("logistic", 1, "scale", np.random.default_rng(4))
    s = model.decision_function(X)[:, 0].astype(np.float64)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], 1 / (1 + np.exp(-s)), rtol=1e-5)
    assert set(model.predict(X)) <= {3, 8}


def test_binary_logistic_keeps_both_tails_of_the_sigmoid():
    model, _ = make_model("logistic", 1, "scale", np.random.default_rng(4))
    s = np.array([[30.0], [-30.0], [0.0]], np.float32)
    P = model.proba_from_scores(s)
    # σ(±30) rounds to 1 in float32; its complement σ(∓30) = 9.4e-14 must not round to 0
    np.testing.assert_allclose(P[:2], [[1 / (1 + np.exp(30.0)), 1.0], [1.0, 1 / (1 + np.exp(30.0))]], rtol=1e-6)
    np.testing.assert_array_equal(P[2], [0.5, 0.5])


def test_flat_and_image_inputs_agree():
    model, X = make_model("softmax", 3, "center", np.random.default_rng(5))
    np.testing.assert_array_equal(model.predict(X), model.predict(X.reshape(len(X), -1)))


def test_wrong_image_shape_names_both_shapes():
    model, _ = make_model("softmax", 3, "scale", np.random.default_rng(6))
    with pytest.raises(DataError, match=r"8×8 .* expects 4×5"):
        model.predict(np.zeros((2, 8, 8), np.uint8))


def test_unknown_preprocessing_is_a_usage_error():
    with pytest.raises(UsageError):
        Preprocessor.fit("whiten", np.zeros((3, 4), np.uint8))


@pytest.mark.parametrize(("kind", "n_outputs"), [("softmax", 4), ("logistic", 4), ("logistic", 1)])
def test_numpy_probabilities_match_the_reference(kind, n_outputs):
    import reference as ref

    model, _ = make_model(kind, n_outputs, "scale", np.random.default_rng(7))
    S = np.random.default_rng(8).normal(scale=30, size=(50, n_outputs)).astype(np.float32)
    P = model.proba_from_scores(S)
    assert P.dtype == np.float32 and np.isfinite(P).all()
    if kind == "softmax":
        want = ref.softmax_rows(S)
    elif n_outputs == 1:
        want = np.hstack([1 - ref.sigmoid(S), ref.sigmoid(S)])
    else:
        want = ref.sigmoid(S) / ref.sigmoid(S).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(P, want, rtol=1e-5, atol=1e-6)


def test_uint8_and_float_pixels_score_alike_and_rows_do_not_depend_on_the_batch():
    model, X = make_model("softmax", 3, "standardize", np.random.default_rng(9))
    S = model.decision_function(X)
    np.testing.assert_allclose(S, model.decision_function(X.astype(np.float32)), rtol=1e-5, atol=1e-5)
    one_by_one = np.concatenate([model.decision_function(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_array_equal(one_by_one, S)


def test_float_inputs_score_on_two_threads_as_each_span_alone(monkeypatch):
    from mnistlr.learn import model as model_module
    from mnistlr.learn.kernels import threads

    rng = np.random.default_rng(8)
    X = rng.normal(0, 0.02, size=(2 * model_module.SCORE_SPAN_ROWS + 300, 40)).astype(np.float32)
    model = LinearModel("softmax", np.arange(3), (5, 8), Preprocessor.fit("none", X),
                        rng.normal(size=(40, 3)).astype(np.float32), np.array([0.1, 0.0, -0.2], np.float32))
    S = model.scores_of_inputs(X)
    span = model_module.SCORE_SPAN_ROWS
    alone = np.concatenate([model.scores_of_inputs(X[i:i + span]) for i in range(0, len(X), span)])
    assert np.array_equal(S, alone)
    monkeypatch.setattr(threads, "n_threads", lambda: 1)
    assert np.array_equal(S, model.scores_of_inputs(X))
    # s = x·W + b in float64, rounded once
    np.testing.assert_allclose(S, X.astype(np.float64) @ model.W.astype(np.float64) + model.b, rtol=1e-6, atol=1e-6)


def test_wide_float32_features_score_row_by_row_the_same_in_any_batch():
    # 5,000 features (an rff model's width): each row's float32 scores are one matrix-vector
    # product, so a row alone, in another place or in a batch of another size gets the same bits
    rng = np.random.default_rng(18)
    F = (np.cos(rng.uniform(0, 2 * np.pi, size=(300, 5000))) * np.sqrt(2 / 5000)).astype(np.float32)
    model = LinearModel("softmax", np.arange(10), (50, 100), Preprocessor.fit("none", F),
                        rng.normal(size=(5000, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32))
    S = model.scores_of_inputs(F)
    assert S.dtype == np.float32
    order = rng.permutation(len(F))
    assert np.array_equal(model.scores_of_inputs(F[order]), S[order])
    assert np.array_equal(np.concatenate([model.scores_of_inputs(F[i:i + 7]) for i in range(0, 300, 7)]), S)
    assert np.array_equal(model.scores_of_inputs(F[123:124]), S[123:124])
    # float32 sums of 5,000 terms: within 5,000·2^−24 of Σ|f_j·W_jc| of the float64 sums
    exact = F.astype(np.float64) @ model.W.astype(np.float64) + model.b
    bound = 5000 * 2.0 ** -24 * (np.abs(F.astype(np.float64)) @ np.abs(model.W.astype(np.float64)) + np.abs(model.b))
    assert np.all(np.abs(S - exact) <= bound)
