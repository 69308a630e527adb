"""gd's line-searched step, its momentum (FISTA), the safe-step estimate and divergence detection (small
synthetic problems)."""

from __future__ import annotations

import numpy as np
import pytest
from test_solvers import raw_pixels, sampled_problem

from mnistlr.errors import TrainingError
from mnistlr.learn import descent, means, objective, solvers


def test_auto_step_reaches_the_lbfgs_optimum():
    X, y = sampled_problem(200, 4, 3, seed=8)
    X += 2.0                                            # off-centre: the centred step matters
    best = solvers.fit_lbfgs(X, y, "softmax", 3, l2=0.05, tol=0.0, max_iter=500)
    gd = descent.fit_gd(X, y, "softmax", 3, l2=0.05, anneal=1e9, epochs=300)
    f = [objective.objective(X, y, r.W, r.b, "softmax", l2=0.05).value for r in (best, gd)]
    assert f[1] == pytest.approx(f[0], rel=1e-6)
    assert all(r["lr"] > 0 for r in gd.history)


def test_auto_step_never_raises_the_objective():
    X, y = sampled_problem(200, 4, 3, seed=10)
    gd = descent.fit_gd(X, y, "softmax", 3, l2=0.0, epochs=60)      # l2 = 0: train_loss is f
    losses = [r["train_loss"] for r in gd.history]
    assert len(losses) > 10 and bool(np.all(np.diff(losses) <= 0))
    assert losses[-1] < 0.5 * np.log(3)


def test_auto_step_with_l1_gives_zeros_and_the_same_optimum_as_a_small_fixed_step():
    X, y = sampled_problem(200, 6, 3, seed=9)
    auto = descent.fit_gd(X, y, "softmax", 3, l2=0.0, l1=0.05, anneal=1e9, epochs=400)
    fixed = descent.fit_gd(X, y, "softmax", 3, l2=0.0, l1=0.05, lr=0.2, anneal=1e9, epochs=3000)

    def f(r):     # smooth part + l1‖W‖₁
        return objective.objective(X, y, r.W, r.b, "softmax").value + 0.05 * np.abs(r.W.astype(np.float64)).sum()

    assert f(auto) == pytest.approx(f(fixed), rel=1e-4)
    assert np.count_nonzero(auto.W == 0) >= 1
    np.testing.assert_array_equal(auto.W == 0, fixed.W == 0)


@pytest.mark.parametrize("kind,c", [("softmax", 0.5), ("ovr", 0.25)])
def test_safe_step_is_one_over_the_lipschitz_bound(kind, c):
    X, y, affine = raw_pixels(300, 6, 3, seed=53)
    Z = X * affine[0] - affine[1]
    Z1 = np.hstack([Z, np.ones((len(Z), 1))])
    # L = c·λmax((1/n) Z̃ᵀZ̃) + l2, computed directly
    expected = 1.0 / (c * np.linalg.eigvalsh(Z1.T @ Z1 / len(Z))[-1] + 0.1)
    assert descent.safe_step(X, kind, 0.1, affine) == pytest.approx(expected, rel=1e-9)
    # and it bounds the gradient's change: ‖∇f(v) − ∇f(u)‖ ≤ L‖v − u‖ for random pairs
    rng = np.random.default_rng(0)
    L = 1.0 / descent.safe_step(Z, kind, 0.1)
    for _ in range(5):
        (W1, b1), (W2, b2) = [(rng.normal(size=(6, 3)), rng.normal(size=3)) for _ in range(2)]
        g1, g2 = (objective.objective(Z, y, W, b, kind, l2=0.1) for W, b in ((W1, b1), (W2, b2)))
        change = np.sqrt(np.sum((g1.grad_W - g2.grad_W) ** 2) + np.sum((g1.grad_b - g2.grad_b) ** 2))
        assert change <= L * np.sqrt(np.sum((W1 - W2) ** 2) + np.sum((b1 - b2) ** 2)) * (1 + 1e-9)


def test_a_loss_that_stays_far_above_its_start_is_divergence():
    watch = descent._Watch(start_loss=1.0, start_value=1.0, patience=3, lr=4.0, safe=lambda: 0.25)
    for epoch, loss in enumerate([2.5, 2.5, 0.9, 2.5, 2.5], start=1):   # recovers once: no error
        watch.check(epoch, loss, loss)
    with pytest.raises(TrainingError) as caught:
        watch.check(6, 2.5, 2.5)
    assert caught.value.message == "training diverged at epoch 6: loss 1 → 2.5"
    assert caught.value.for_command_line().endswith("(use --lr ≤ 0.25, the estimated safe step, or --lr auto)")
    assert str(caught.value).endswith("(use lr ≤ 0.25, the estimated safe step, or lr=auto)")
    with pytest.raises(TrainingError, match="at epoch 2: loss 1 → nan"):
        descent._Watch(1.0, 1.0, 3, 4.0, lambda: 0.25).check(2, float("nan"), float("nan"))


def watched(losses, values=None, start=2.3):
    """A _Watch that saw these epochs (objective values = the losses unless given), and their records."""
    watch = descent._Watch(start_loss=start, start_value=start, patience=3, lr=2.0, safe=lambda: 0.05)
    for epoch, (loss, value) in enumerate(zip(losses, values or losses, strict=True), start=1):
        watch.check(epoch, loss, value)
    return watch, [{"train_loss": v} for v in losses]


def test_a_first_best_epoch_followed_by_growing_loss_is_divergence():
    watch, history = watched((1.9, 2.0, 2.2, 2.4))
    with pytest.raises(TrainingError, match="best epoch was the first"):
        watch.check_end(1, history)
    watch.check_end(2, history)                                   # a later best epoch: a model
    watch.check_end(None, history)                                # no hold-out: no early stopping
    watch, history = watched((1.9, 2.0, 1.8))                     # the loss came down again
    watch.check_end(1, history)
    watch, history = watched((0.6931471805599453,) * 4)            # a flat loss did not grow
    watch.check_end(1, history)


def test_a_loss_that_grows_while_the_objective_falls_is_no_divergence():
    # a warm start that fits the data exactly (--init ridge on separable classes): the penalty pulls
    # the weights in, the loss rises from ~0, the objective falls. It was "training diverged at
    # epoch 2: loss 0 → 0.131 (use a larger --l2)" (the start counted too: its objective against its loss)
    watch = descent._Watch(start_loss=0.0, start_value=5.0, patience=3, lr=None, safe=lambda: None)
    watch.check(0, 0.0, 5.0)
    losses, values = (0.13, 0.2, 0.3, 0.4), [4.0, 3.0, 2.0, 1.0]
    for epoch, (loss, value) in enumerate(zip(losses, values, strict=True), start=1):
        watch.check(epoch, loss, value)
    watch.check_end(1, [{"train_loss": v} for v in losses])
    X, y = sampled_problem(100, 4, 2, scale=8.0)
    exact = solvers.fit_lbfgs(X, y, "softmax", 2, l2=0.0, tol=0.0, max_iter=200)
    result = descent.fit_gd(X, y, "softmax", 2, l2=1.0, W0=10 * exact.W, b0=10 * exact.b, epochs=10,
                            X_val=X[:20], y_val=y[:20])
    assert result.history[0]["train_loss"] > 0


def test_identical_images_train_without_a_divergence_error():
    """Every image the same, classes balanced: the loss stays at log 2, which is no divergence."""
    X = np.full((60, 5), 7.0, np.float32)
    y = np.tile([0, 1], 30)
    for accel in ("none", "nesterov"):
        result = descent.fit_gd(X, y, "softmax", 2, l2=1e-3, epochs=10, X_val=X[:10], y_val=y[:10], accel=accel)
        losses = [r["train_loss"] for r in result.history]
        assert np.allclose(losses, np.log(2.0), rtol=1e-12)


@pytest.mark.parametrize("solver,momentum", [("gd", {}), ("gd", {"accel": "nesterov"}), ("sgd", {})])
def test_an_oversized_step_is_a_training_error_naming_the_safe_step(solver, momentum):
    X, y = sampled_problem(100, 4, 3, dtype=np.float32)
    with pytest.raises(TrainingError) as caught:
        getattr(descent, f"fit_{solver}")(X, y, "softmax", 3, l2=1e-3, lr=1e6, epochs=50, **momentum)
    safe = descent.safe_step(X, "softmax", 1e-3)
    assert "diverged" in caught.value.message
    assert caught.value.for_command_line().endswith(f"(use --lr ≤ {safe:.2g}, the estimated safe step, or --lr auto)")


def test_auto_step_is_deterministic():
    X, y, affine = raw_pixels(300, 6, 3, seed=54)
    first, second = (descent.fit_gd(X, y, "softmax", 3, l2=1e-3, epochs=20, affine=affine,
                                    X_val=X[:50], y_val=y[:50]) for _ in range(2))
    np.testing.assert_array_equal(first.W, second.W)
    assert [r["lr"] for r in first.history] == [r["lr"] for r in second.history]


def test_auto_step_follows_the_annealing_schedule():
    """lr=auto: η(t) = η₀/(1 + t/T), η₀ the largest step accepted at the start (to 2^⅛), only
    ever halved after that — never grown back against the annealing."""
    X, y, affine = raw_pixels(300, 6, 3, seed=54)
    for accel in ("none", "nesterov"):
        result = descent.fit_gd(X, y, "softmax", 3, l2=1e-3, epochs=25, anneal=2.0, affine=affine, accel=accel)
        steps = np.array([r["lr"] for r in result.history])
        base = steps * (1.0 + np.arange(len(steps)) / 2.0)
        halvings = np.log2(base[0] / base)
        np.testing.assert_allclose(halvings, np.round(halvings), atol=1e-9)
        assert np.all(np.diff(np.round(halvings)) >= 0) and halvings[-1] < 5
    search = descent._LineSearch(None, lambda W, b: objective.objective(X, y, W, b, "softmax", l2=1e-3,
                                                                      grad=False, affine=affine),
                                 means.input_mean(X, affine), 0.0)
    W, b = np.zeros((X.shape[1], 3), np.float32), np.zeros(3)
    state = objective.objective(X, y, W, b, "softmax", l2=1e-3, affine=affine)
    grad_W = state.grad_W - np.outer(search.z_mean, state.grad_b)
    first = search._first_step(W, b, state, grad_W, state.grad_b)
    assert first == steps[0]
    assert search._accepts(W, b, state, grad_W, state.grad_b, first, search.probe)[3]
    assert not search._accepts(W, b, state, grad_W, state.grad_b, first * 2 ** 0.125, search.probe)[3]


def ill_conditioned_problem():
    X, y = sampled_problem(300, 8, 3, seed=11)
    X[:, :4] *= 5.0                       # feature scales 5 and 1, off-centre: plain gd crawls
    return X + 1.0, y


@pytest.mark.parametrize("l2,l1", [(1e-3, 0.0), (0.0, 0.02)])
def test_nesterov_reaches_the_lbfgs_optimum_sooner_than_plain_gd(l2, l1):
    X, y = ill_conditioned_problem()

    def f(r):     # smooth part + l1‖W‖₁
        return objective.objective(X, y, r.W, r.b, "softmax", l2=l2).value + l1 * np.abs(r.W.astype(np.float64)).sum()

    best = solvers.fit_lbfgs(X, y, "softmax", 3, l2=l2, l1=l1, tol=0.0, max_iter=2000)
    fista = descent.fit_gd(X, y, "softmax", 3, l2=l2, l1=l1, anneal=1e9, epochs=1000, accel="nesterov")
    assert f(fista) == pytest.approx(f(best), rel=1e-9)
    # the l1 prox leaves exact zeros, the optimum's (L-BFGS-B's on the split W⁺ − W⁻)
    np.testing.assert_array_equal(fista.W == 0, best.W == 0)
    assert np.count_nonzero(best.W == 0) >= (4 if l1 else 0)
    gap = {accel: f(descent.fit_gd(X, y, "softmax", 3, l2=l2, l1=l1, anneal=1e9, epochs=80, accel=accel)) - f(best)
           for accel in ("none", "nesterov")}
    assert gap["nesterov"] < gap["none"] / 10


def test_nesterov_restarts_its_momentum_when_a_step_turns_back():
    """f = ½‖W‖², fixed step 0.9: the second, extrapolated step overshoots 0 and turns back."""
    def evaluate(W, b):
        return objective.Objective(0.5 * float(np.vdot(W, W)), 0.0, 0.0, W.copy(), np.zeros_like(b))

    def step(W, b, state, factor):
        W_new = W - 0.9 * state.grad_W
        return W_new, b, evaluate(W_new, b), 0.9

    accelerated = descent._Accelerated(evaluate, step)
    W, b = np.ones((1, 1)), np.zeros(1)
    points = []
    for _ in range(3):
        W, b, state, _ = accelerated(W, b, evaluate(W, b), 1.0)
        points.append((float(W[0, 0]), accelerated.t))
    # x₁ = 0.1 (no momentum yet); y₂ = x₁ + β(x₁ − x₀), β = (t₁ − 1)/t₂ with t₁ = (1 + √5)/2
    t1 = (1 + np.sqrt(5)) / 2
    beta = (t1 - 1) / ((1 + np.sqrt(1 + 4 * t1 ** 2)) / 2)
    y2 = 0.1 + beta * (0.1 - 1.0)
    assert points[0] == pytest.approx((0.1, t1))
    assert points[1] == pytest.approx((0.1 * y2, 1.0))       # ⟨y₂ − x₂, x₂ − x₁⟩ > 0: t back to 1
    assert points[2][0] == pytest.approx(0.01 * y2)            # so x₃ is a plain step from x₂


def test_nesterov_is_the_gd_default_and_deterministic_for_a_seed():
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(90, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 30)
    runs = [fit_model(images, labels, TrainOptions(solver="gd", init="normal", epochs=15, seed=seed))
            for seed in (1, 1, 2)]
    assert runs[0].params["accel"] == "nesterov"
    assert all(r["grad_norm"] is None for r in runs[0].meta["history"])
    np.testing.assert_array_equal(runs[0].W, runs[1].W)
    assert [r["lr"] for r in runs[0].meta["history"]] == [r["lr"] for r in runs[1].meta["history"]]
    assert not np.array_equal(runs[0].W, runs[2].W)      # another seed: another split and start
    plain = fit_model(images, labels, TrainOptions(solver="gd", init="normal", epochs=15, seed=1, accel="none"))
    assert plain.params["accel"] == "none" and not np.array_equal(plain.W, runs[0].W)
