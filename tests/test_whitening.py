"""L-BFGS's whitened variables: the metric against NumPy's eigendecomposition, the gradient against
central differences, the same optimum as the plain variables, and fewer passes on real digits."""

from __future__ import annotations

import numpy as np
import pytest
from test_objective import central_differences

from mnistlr.learn import centred as centred_objective
from mnistlr.learn import objective, solvers, whitening


def correlated(n_samples=600, n_features=30, seed=0):
    """Rows with a few strong principal directions, as neighbouring pixels have."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_features, n_features)) * np.geomspace(10, 0.1, n_features)[:, None]
    return rng.normal(size=(n_samples, n_features)) @ mixing


def test_top_eigenpairs_match_numpys_eigendecomposition():
    X = correlated()
    C = np.cov(X.T, bias=True)
    values, V = whitening.top_eigenpairs(X - X.mean(axis=0), 8, n_iter=8)
    expected_values, expected_V = np.linalg.eigh(C)
    np.testing.assert_allclose(V.T @ V, np.eye(8), atol=1e-12)
    # the leading pairs of the subspace (its last ones converge more slowly)
    np.testing.assert_allclose(values[-4:], expected_values[-4:], rtol=1e-6)
    # each direction up to its sign
    np.testing.assert_allclose(np.abs(np.sum(V[:, -4:] * expected_V[:, -4:], axis=0)), 1.0, atol=1e-5)


def test_the_metric_whitens_the_top_directions_and_inverts_exactly():
    X = correlated()
    white = whitening.whitening(X, rank=30, sample_rows=len(X))
    C = np.cov(X.T, bias=True)
    ridge = whitening.RIDGE_SCALE * np.trace(C) / len(C)
    # with every direction kept, P is (C + εI)^(-1/2) up to the factor √ε
    P = white.weights(np.eye(30))
    values, V = np.linalg.eigh(C)
    # (the sample in float32)
    np.testing.assert_allclose(P, V @ np.diag(np.sqrt(ridge / (values + ridge))) @ V.T, atol=1e-6)
    W = np.random.default_rng(1).normal(size=(30, 4))
    np.testing.assert_allclose(white.weights(white.variables(W)), W, atol=1e-12)
    np.testing.assert_allclose(white.gradient(W), P.T @ W, atol=1e-12)


def test_the_metric_is_made_from_a_sample_of_the_model_inputs():
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, size=(5000, 12)).astype(np.uint8)
    affine = (np.full(12, 1 / 255), rng.uniform(0, 0.5, 12))
    white = whitening.whitening(X, affine, rank=12, sample_rows=1000)
    sample = X[::5][:1000] / 255.0
    C = np.cov(sample.T, bias=True)
    values = np.linalg.eigvalsh(C)
    ridge = whitening.RIDGE_SCALE * values.mean()
    np.testing.assert_allclose(np.sort(white.shrink), np.sort(np.sqrt(ridge / (values + ridge)) - 1), rtol=1e-5)


def test_no_metric_for_wide_or_constant_inputs():
    assert whitening.whitening(np.zeros((50, 8), dtype=np.uint8)) is None
    assert whitening.whitening(np.ones((4, whitening.MAX_FEATURES + 1), dtype=np.float32)) is None


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 3), ("ovr", 1), ("ovr", 3)])
def test_whitened_gradient_matches_central_differences(kind, n_outputs):
    X = correlated(80, 6, seed=n_outputs)
    y = np.random.default_rng(n_outputs).integers(0, 2 if n_outputs == 1 else n_outputs, size=80)
    white = whitening.whitening(X, rank=4, sample_rows=80)
    centred = centred_objective.CentredObjective(X, y, kind, n_outputs, 0.3, None, whitening=white)
    W, b = np.random.default_rng(5).normal(size=(6, n_outputs)), np.zeros(n_outputs)
    v = centred.start(W, b)
    np.testing.assert_allclose(centred.weights(v)[0], W, atol=1e-12)
    value, grad = centred.fun(v)
    np.testing.assert_allclose(grad, central_differences(centred.fun, v), rtol=1e-6, atol=1e-8)
    assert value == objective.objective(X, y, *centred.weights(v), kind, l2=0.3).value


def test_whitened_lbfgs_reaches_the_plain_optimum(monkeypatch):
    X = correlated(400, 20, seed=3)
    y = (X @ np.random.default_rng(4).normal(size=(20, 3))).argmax(axis=1)
    whitened = solvers.fit_lbfgs(X, y, "softmax", 3, l2=1e-2, tol=1e-10, max_iter=500)
    monkeypatch.setattr(solvers, "whitening_of", lambda X, affine: None)
    plain = solvers.fit_lbfgs(X, y, "softmax", 3, l2=1e-2, tol=1e-10, max_iter=500)
    np.testing.assert_allclose(whitened.W, plain.W, atol=2e-3 * np.abs(plain.W).max())
    np.testing.assert_allclose(whitened.b, plain.b, atol=2e-3 * np.abs(plain.b).max())


def test_whitening_takes_fewer_passes_to_the_same_objective_on_real_digits(shared_mnist, monkeypatch):
    from mnistlr.io.idx import read_images, read_labels

    X = np.ascontiguousarray(read_images(shared_mnist / "train-head-images-idx3-ubyte.gz")[:6000]).reshape(6000, -1)
    y = np.asarray(read_labels(shared_mnist / "train-head-labels-idx1-ubyte.gz")[:6000]).astype(np.int64)
    affine = (np.full(784, 1 / 255), np.zeros(784))

    def objective_per_iteration():
        values = []
        solvers.fit_lbfgs(X, y, "softmax", 10, l2=2e-4, tol=0.0, max_iter=40, affine=affine,
                          callback=lambda record: values.append(record["train_loss"]))
        return np.array(values)

    whitened = objective_per_iteration()
    monkeypatch.setattr(solvers, "whitening_of", lambda X, affine: None)
    plain = objective_per_iteration()
    # the loss the plain variables reach in 40 iterations, the whitened ones reach in under 30
    assert (whitened[:30] <= plain[-1]).any(), (whitened[:30].min(), plain[-1])


def test_the_metric_is_made_once_for_the_same_array(monkeypatch):
    X = correlated(200, 10, seed=6)
    first = whitening.whitening(X)
    made = []
    monkeypatch.setattr(whitening, "top_eigenpairs", lambda *a, **k: made.append(1) or (np.ones(4), np.eye(10)[:, :4]))
    assert whitening.whitening(X) is first and not made
    other = whitening.whitening(X.copy())
    assert made and other is not first
    whitening.whitening(X, rank=4)
    assert len(made) == 2
