"""mnistlr's own L-BFGS (learn.lbfgs) against scipy's L-BFGS-B on the same problems."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize
from scipy.optimize import rosen, rosen_der

from mnistlr.learn import lbfgs
from mnistlr.learn.objective import objective, pack, unpack


def rosenbrock(x):
    return rosen(x), rosen_der(x)


@pytest.mark.parametrize("x0", [np.zeros(6), np.full(20, -1.2), np.linspace(-2, 2, 9)])
def test_reaches_scipys_minimum_of_rosenbrock(x0):
    options = {"maxcor": 10, "maxiter": 2000}
    ours = lbfgs.minimize(rosenbrock, x0, options=options)
    theirs = scipy_minimize(rosenbrock, x0, jac=True, method="L-BFGS-B", options=options)
    assert ours.success and ours.status == lbfgs.STATUS_CONVERGED
    np.testing.assert_allclose(ours.x, np.ones_like(x0), atol=2e-4)
    assert ours.fun < 1e-7 and theirs.fun < 1e-7
    assert ours.nfev <= 2 * theirs.nfev   # about as many evaluations


def _softmax_problem(seed=0, n=300, d=12, k=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    X[np.arange(n), y % d] += 2.0          # learnable

    def fun(v):
        W, b = unpack(v, d, k)
        obj = objective(X, y, W, b, "softmax", l2=1e-3)
        return obj.value, pack(obj.grad_W, obj.grad_b)

    return fun, np.zeros(d * k + k)


def test_softmax_objective_matches_scipy_and_the_gradient_vanishes():
    fun, v0 = _softmax_problem()
    options = {"maxcor": 50, "maxiter": 500, "gtol": 1e-9, "ftol": 1e-14}
    ours = lbfgs.minimize(fun, v0, options=options)
    theirs = scipy_minimize(fun, v0, jac=True, method="L-BFGS-B", options=options)
    np.testing.assert_allclose(ours.fun, theirs.fun, rtol=1e-9)
    np.testing.assert_allclose(ours.x, theirs.x, atol=1e-4)
    assert np.abs(fun(ours.x)[1]).max() < 1e-6
    # every accepted point was the last one evaluated: the callback sees f at x
    np.testing.assert_allclose(fun(ours.x)[0], ours.fun, rtol=1e-15)


def test_callback_sees_each_iterate_and_may_stop_the_run():
    fun, v0 = _softmax_problem(1)
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.fun)
        np.testing.assert_allclose(fun(intermediate_result.x)[0], intermediate_result.fun, rtol=1e-15)
        if len(seen) == 4:
            raise StopIteration

    result = lbfgs.minimize(fun, v0, callback=callback, options={"maxcor": 50})
    assert result.status == lbfgs.STATUS_STOPPED and result.nit == 4 and len(seen) == 4
    assert all(a > b for a, b in zip(seen, seen[1:], strict=False))   # every step goes down


def test_maxiter_and_maxfun_end_the_run_with_status_1():
    fun, v0 = _softmax_problem(2)
    assert lbfgs.minimize(fun, v0, options={"maxiter": 3}).status == lbfgs.STATUS_LIMIT
    result = lbfgs.minimize(fun, v0, options={"maxfun": 5})
    assert result.status == lbfgs.STATUS_LIMIT and result.nfev <= 5


def test_bounds_go_to_scipy(monkeypatch):
    import scipy.optimize

    calls = []
    real = scipy.optimize.minimize
    monkeypatch.setattr(scipy.optimize, "minimize", lambda *a, **k: calls.append(k) or real(*a, **k))
    fun, v0 = _softmax_problem(3)
    bounded = lbfgs.minimize(fun, v0, bounds=[(0.0, None)] * len(v0), options={"maxiter": 50})
    assert len(calls) == 1 and bounded.x.min() >= 0.0
    lbfgs.minimize(fun, v0, bounds=[(None, None)] * len(v0), options={"maxiter": 5})
    assert len(calls) == 1        # no finite bound: mnistlr's own


def test_a_direction_that_goes_up_restarts_from_steepest_descent():
    # f(x) = ½‖x‖², ∇f = x: the first step 1/‖g‖ is short; afterwards the minimum is found
    result = lbfgs.minimize(lambda x: (0.5 * float(x @ x), x.copy()), np.full(5, 3.0))
    assert result.success and np.abs(result.x).max() < 1e-5


def test_a_non_finite_trial_point_is_stepped_back_from():
    # f = +inf beyond x = 2 along the path: the line search must shrink the step
    def fun(x):
        if x[0] > 2.0:
            return np.inf, np.full_like(x, np.nan)
        return float((x[0] - 1.9) ** 2), np.array([2 * (x[0] - 1.9)])

    result = lbfgs.minimize(fun, np.array([-50.0]))
    assert result.success
    np.testing.assert_allclose(result.x, [1.9], atol=1e-4)


def test_carried_pairs_start_the_next_search_with_their_curvature():
    # an ill-conditioned quadratic f = ½xᵀAx − cᵀx: a second search from another start that keeps the
    # first one's pairs knows A's spread from its first step, and needs fewer iterations than a fresh one
    rng = np.random.default_rng(3)
    Q = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    A, c = Q @ np.diag(np.logspace(0, 3, 30)) @ Q.T, rng.normal(size=30)

    def quadratic(x):
        return 0.5 * x @ A @ x - c @ x, A @ x - c

    pairs = lbfgs.Pairs(50, 30)
    first = lbfgs.lbfgs(quadratic, np.zeros(30), memory=50, gtol=1e-8, pairs=pairs)
    assert first.success and len(pairs) > 0
    start = rng.normal(size=30)
    fresh = lbfgs.lbfgs(quadratic, start, memory=50, gtol=1e-8)
    carried = lbfgs.lbfgs(quadratic, start, memory=50, gtol=1e-8, pairs=pairs)
    solution = np.linalg.solve(A, c)
    # (the pairs are float32: the search ends where their rounding shows)
    np.testing.assert_allclose(carried.x, solution, atol=1e-3 * np.abs(solution).max())
    assert carried.nit < fresh.nit
