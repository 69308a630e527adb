"""The objective: value against the reference, gradient against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from mnistlr.learn import objective


def problem(n_samples, n_features, n_outputs, seed=0, binary=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    y = rng.integers(0, 2 if binary else n_outputs, size=n_samples)
    W = rng.normal(scale=0.5, size=(n_features, n_outputs))
    b = rng.normal(size=n_outputs)
    return X, y, W, b


CASES = [("softmax", 2), ("softmax", 3), ("softmax", 10), ("ovr", 1), ("ovr", 3), ("ovr", 10)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,n_outputs", CASES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_objective_matches_reference(kind, n_outputs, l2, dtype):
    X, y, W, b = problem(45, 6, n_outputs, seed=n_outputs, binary=n_outputs == 1, dtype=dtype)
    got = objective.objective(X, y, W, b, kind, l2=l2)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got.value, ref.objective(X, y, W, b, kind, l2), rtol=rtol)
    np.testing.assert_allclose(got.loss, ref.objective(X, y, W, b, kind, 0.0), rtol=rtol)
    S = X.astype(np.float64) @ W + b
    predicted = (S[:, 0] > 0).astype(int) if n_outputs == 1 else S.argmax(axis=1)
    assert got.accuracy == np.mean(predicted == y)


@pytest.mark.parametrize("kind,n_outputs", CASES)
@pytest.mark.parametrize("pixels", [False, True])
def test_objective_at_zero_matches_the_kernels(kind, n_outputs, pixels):
    """The closed form at W = 0, b = 0 from class sums against the fused kernel's pass (uint8 X)."""
    from mnistlr.learn.kernels.class_sums import class_pixel_sums

    rng = np.random.default_rng(40 + n_outputs)
    X = rng.integers(0, 256, size=(2000, 9)).astype(np.uint8)
    n_classes = 2 if n_outputs == 1 else n_outputs
    y = rng.integers(1, n_classes, size=len(X))          # class 0 rare: the accuracy at zero is its share
    y[:7] = 0
    affine = (rng.uniform(0.001, 0.01, 9), rng.uniform(0, 0.5, 9)) if pixels else None
    counts = np.bincount(y, minlength=n_classes)
    got = objective.objective_at_zero(class_pixel_sums(X, y, n_classes), counts, kind, n_outputs, affine)
    W, b = np.zeros((9, n_outputs)), np.zeros(n_outputs)
    kernel = objective.objective(X, y, W, b, kind, l2=0.7, affine=affine)
    # softmax: the kernel's row losses in float64 (the exact start's premise); ovr's in float32
    np.testing.assert_allclose(got.value, kernel.value, rtol=1e-12 if kind == "softmax" else 1e-7)
    assert got.loss == got.value and got.accuracy == kernel.accuracy == 7 / len(X)
    np.testing.assert_allclose(got.grad_W, kernel.grad_W, rtol=1e-5, atol=1e-6 * np.abs(kernel.grad_W).max())
    np.testing.assert_allclose(got.grad_b, kernel.grad_b, rtol=1e-5, atol=1e-7)
    Z = X * affine[0] - affine[1] if pixels else X.astype(np.float64)     # the model's inputs
    loss_sum, _, G, gb = (ref.softmax_cross_entropy if kind == "softmax" else ref.ovr_cross_entropy)(Z, y, W, b)
    np.testing.assert_allclose(got.value, loss_sum / len(X), rtol=1e-12)
    np.testing.assert_allclose(got.grad_W, G / len(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.grad_b, gb / len(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 10), ("softmax", 2)])
def test_an_exact_zero_start_saves_the_first_pass_and_gives_the_same_fit(kind, n_outputs, monkeypatch):
    from mnistlr.learn import centred as centred_module
    from mnistlr.learn import solvers
    from mnistlr.learn.kernels import setup  # noqa: F401  (numba_ready: the class sums' kernel)

    rng = np.random.default_rng(50)
    X = rng.integers(0, 256, size=(3000, 16)).astype(np.uint8)
    y = X[:, :n_outputs].argmax(axis=1).astype(np.int64)
    affine = (np.full(16, 1 / 255), np.zeros(16))
    calls = []
    real = objective.objective
    monkeypatch.setattr(centred_module, "objective", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = solvers.fit_lbfgs(X, y, kind, n_outputs, l2=1e-3, affine=affine)
    passes = len(calls)
    calls.clear()
    monkeypatch.setattr(centred_module.CentredObjective, "_class_pixel_sums", lambda self: None)
    slow = solvers.fit_lbfgs(X, y, kind, n_outputs, l2=1e-3, affine=affine)
    assert passes == len(calls) - 1                       # one pass fewer ...
    assert fast.n_iter == slow.n_iter                     # ... for the same search
    np.testing.assert_allclose(fast.W, slow.W, rtol=1e-4, atol=1e-6 * np.abs(slow.W).max())


def central_differences(fun, w, h=1e-6):
    """∂f/∂w_i ≈ (f(w + h e_i) − f(w − h e_i)) / 2h for every i."""
    numeric = np.empty_like(w)
    for i in range(w.size):
        step = np.zeros_like(w)
        step[i] = h
        numeric[i] = (fun(w + step)[0] - fun(w - step)[0]) / (2 * h)
    return numeric


@pytest.mark.parametrize("kind,n_outputs", CASES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("pixels", [False, True])
def test_lbfgs_objective_gradient_matches_central_differences(kind, n_outputs, l2, pixels):
    """The function L-BFGS minimises (centred variables; raw uint8 pixels with the affine folded in)."""
    from mnistlr.learn.centred import CentredObjective

    X, y, W, b = problem(30, 4, n_outputs, seed=10 + n_outputs, binary=n_outputs == 1)
    affine = None
    if pixels:
        rng = np.random.default_rng(n_outputs)
        X = rng.integers(0, 256, size=X.shape).astype(np.float64)   # pixel values; float64 for the differences
        affine = (np.full(4, 1 / 255), rng.uniform(0, 0.5, 4))
    centred = CentredObjective(X, y, kind, n_outputs, l2, affine)
    v = objective.pack(W, b)
    value, grad = centred.fun(v)
    np.testing.assert_allclose(grad, central_differences(centred.fun, v), rtol=1e-6, atol=1e-8)
    W_v, b_v = centred.weights(v)
    assert value == objective.objective(X, y, W_v, b_v, kind, l2=l2, affine=affine).value


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 3), ("ovr", 1)])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_split_l1_objective_gradient_matches_central_differences(kind, n_outputs, l2):
    """L-BFGS-B's L1 objective on v = [W⁺, W⁻, b'], W = W⁺ − W⁻: f(W, b) + l1·Σ(W⁺ + W⁻)."""
    from mnistlr.learn.centred import CentredObjective

    X, y, W, b = problem(30, 4, n_outputs, seed=20 + n_outputs, binary=n_outputs == 1)
    rng = np.random.default_rng(n_outputs)
    X = rng.integers(0, 256, size=X.shape).astype(np.float64)
    affine = (np.full(4, 1 / 255), rng.uniform(0, 0.5, 4))
    split = CentredObjective(X, y, kind, n_outputs, l2, affine, l1=0.03)
    v = np.concatenate([rng.uniform(0, 1, 8 * n_outputs), b])          # W⁺, W⁻ ≥ 0, then b'
    value, grad = split.fun(v)
    np.testing.assert_allclose(grad, central_differences(split.fun, v), rtol=1e-6, atol=1e-8)
    W_v, b_v = split.weights(v)
    np.testing.assert_allclose(W_v, (v[:4 * n_outputs] - v[4 * n_outputs:8 * n_outputs]).reshape(4, n_outputs))
    expected = objective.objective(X, y, W_v, b_v, kind, l2=l2, affine=affine).value + 0.03 * v[:8 * n_outputs].sum()
    assert value == pytest.approx(expected, rel=1e-12)
    # start() splits weights into their positive and negative parts, and weights() undoes it
    np.testing.assert_allclose(split.weights(split.start(W, b))[0], W)
    np.testing.assert_allclose(split.weights(split.start(W, b))[1], b)


def test_intercept_is_not_penalised():
    X, y, W, b = problem(20, 3, 4)
    plain = objective.objective(X, y, W, b, "softmax", l2=0.0)
    penalised = objective.objective(X, y, W, b, "softmax", l2=2.0)
    np.testing.assert_allclose(penalised.value - plain.value, float(np.sum(W**2)))
    np.testing.assert_allclose(penalised.grad_b, plain.grad_b)
    np.testing.assert_allclose(penalised.grad_W - plain.grad_W, 2.0 * W)


def test_rows_give_the_objective_of_the_batch():
    X, y, W, b = problem(40, 5, 3)
    rows = np.arange(0, 40, 3)
    got = objective.objective(X, y, W, b, "softmax", l2=0.1, rows=rows)
    want = objective.objective(X[rows], y[rows], W, b, "softmax", l2=0.1)
    np.testing.assert_allclose(got.value, want.value, rtol=1e-12)
    np.testing.assert_allclose(got.grad_W, want.grad_W, rtol=1e-12, atol=1e-14)


def test_pack_unpack_round_trip():
    W = np.arange(12.0).reshape(4, 3)
    b = np.array([-1.0, -2.0, -3.0])
    w = objective.pack(W, b)
    assert w.shape == (15,) and w.dtype == np.float64
    W2, b2 = objective.unpack(w, 4, 3)
    np.testing.assert_array_equal(W2, W)
    np.testing.assert_array_equal(b2, b)
    with pytest.raises(ValueError):
        objective.unpack(w, 5, 3)


def test_unknown_kind_is_rejected():
    X, y, W, b = problem(5, 2, 2)
    with pytest.raises(ValueError):
        objective.objective(X, y, W, b, "hinge")


def raw_problem(n_samples, n_features, n_outputs, seed, binary=False):
    """uint8 pixels X, labels, weights and an affine map (scale, shift) to model inputs z = x·scale − shift."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n_samples, n_features)).astype(np.uint8)
    y = rng.integers(0, 2 if binary else n_outputs, size=n_samples)
    W = rng.normal(scale=0.5, size=(n_features, n_outputs))
    b = rng.normal(size=n_outputs)
    scale = 1.0 / (255.0 * rng.uniform(0.2, 1.0, n_features))
    shift = rng.uniform(0.0, 1.0, n_features)
    return X, y, W, b, (scale, shift)


@pytest.mark.parametrize("kind,n_outputs", CASES)
def test_raw_pixel_inputs_give_the_objective_of_the_transformed_inputs(kind, n_outputs):
    X, y, W, b, affine = raw_problem(45, 6, n_outputs, seed=20 + n_outputs, binary=n_outputs == 1)
    got = objective.objective(X, y, W, b, kind, l2=0.3, affine=affine)
    Z = X * affine[0] - affine[1]
    np.testing.assert_allclose(got.value, ref.objective(Z, y, W, b, kind, 0.3), rtol=1e-5)
    want = objective.objective(Z, y, W, b, kind, l2=0.3)
    np.testing.assert_allclose(got.grad_W, want.grad_W, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.grad_b, want.grad_b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,n_outputs", [("softmax", 3), ("ovr", 1)])
def test_raw_pixel_gradient_matches_central_differences(kind, n_outputs):
    X, y, W, b, affine = raw_problem(30, 4, n_outputs, seed=40 + n_outputs, binary=n_outputs == 1)
    X = X.astype(np.float64)                      # float64 accumulation: differences need the precision

    def f(W_, b_):
        return objective.objective(X, y, W_, b_, kind, l2=0.3, affine=affine).value

    got = objective.objective(X, y, W, b, kind, l2=0.3, affine=affine)
    h = 1e-6
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        # ∂f/∂W_jc ≈ (f(W + h e_jc) − f(W − h e_jc)) / 2h
        np.testing.assert_allclose(got.grad_W[index], (f(W + step, b) - f(W - step, b)) / (2 * h), rtol=1e-6, atol=1e-8)
    for c in range(n_outputs):
        step = np.zeros_like(b)
        step[c] = h
        np.testing.assert_allclose(got.grad_b[c], (f(W, b + step) - f(W, b - step)) / (2 * h), rtol=1e-6, atol=1e-8)


def test_the_exact_starts_slack_covers_the_kernels_summation_rounding():
    from mnistlr.learn.centred import KERNEL_F_ROUNDING, kernel_f_rounding
    from mnistlr.learn.kernels.fused import rows_per_chunk

    assert kernel_f_rounding(60_000) == KERNEL_F_ROUNDING          # 16 chunks of 3,750 rows: 4e-13
    assert rows_per_chunk(60_000) == 3750 and rows_per_chunk(100) == 50
    # a chunk of a million rows may be 1.1e-10 off: the slack grows with it
    assert kernel_f_rounding(16_000_000) >= 1_000_000 * 2.0 ** -53
