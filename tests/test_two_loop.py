"""The L-BFGS two-loop kernel and the pair store of learn.lbfgs against NumPy's recursion."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from mnistlr.learn import lbfgs
from mnistlr.learn.kernels.two_loop import h_times


def _pairs(n, m, seed, dtype):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(m, n))
    # y = A s with A symmetric positive definite: sᵀy > 0, as L-BFGS keeps them
    Y = S * rng.uniform(0.5, 2.0, n) + 0.01 * rng.normal(size=(m, n))
    return S.astype(dtype), Y.astype(dtype), rng.normal(size=n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, m", [(1, 1), (37, 5), (1000, 12)])
def test_h_times_matches_the_numpy_recursion(dtype, n, m):
    S, Y, g = _pairs(n, m, n + m, dtype)
    # the rows in a ring order (oldest first), as the store keeps them after wrapping around
    order = np.roll(np.arange(m), 2)
    rho = np.array([1.0 / float(S[i].astype(np.float64) @ Y[i].astype(np.float64)) for i in range(m)])
    got = h_times(g, S, Y, rho, order)
    want = ref.lbfgs_h_times(g, S[order], Y[order])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(h_times(g, S, Y, rho, order[:0]), g)   # no pairs: H = I
    assert np.array_equal(h_times(g, S, Y, rho, order), got)              # the same bits again


def test_h_times_rejects_what_does_not_fit():
    S, Y, g = _pairs(10, 3, 0, np.float64)
    rho = np.ones(3)
    with pytest.raises(ValueError, match="do not fit"):
        h_times(g[:9], S, Y, rho, np.arange(3))
    with pytest.raises(ValueError, match="one dtype"):
        h_times(g, S, Y.astype(np.float32), rho, np.arange(3))
    with pytest.raises(ValueError, match="index rows"):
        h_times(g, S, Y, rho, np.array([0, 3]))


def test_the_store_keeps_the_newest_pairs_in_order_and_skips_non_curvature():
    n, memory = 50, 4
    store = lbfgs.Pairs(memory, n)
    S, Y, g = _pairs(n, 7, 1, np.float64)
    store.add(S[0], -S[0])                  # sᵀy < 0: not kept
    assert len(store) == 0
    for i in range(7):
        store.add(S[i], Y[i])
    assert len(store) == memory
    want = ref.lbfgs_h_times(g, S[3:].astype(lbfgs.PAIR_DTYPE), Y[3:].astype(lbfgs.PAIR_DTYPE))
    np.testing.assert_allclose(-store.direction(g), want, rtol=1e-10)
    store.clear()
    np.testing.assert_array_equal(store.direction(g), -g)
