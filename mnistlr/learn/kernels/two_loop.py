"""The L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4) over pairs kept in two 2-D arrays.

NumPy's form (one BLAS dot and one temporary axpy per pair and loop) read the 50 pairs of a
22,699 × 5,000 feature model's 50,010 weights (40 MB) twice per iteration and wrote 100
temporaries; here each pair is read once per loop, q stays in cache, and each dot is one
vectorised loop (fixed order: the same bits on every run and thread count).
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit

_DOT_MATH = {"reassoc", "contract", "nsz"}   # the dots' sums in 4 × 4 lanes, a fixed order


@njit(cache=True, fastmath=_DOT_MATH)
def _dot(u, v):
    """Σ_j u_j·v_j accumulated in float64."""
    total = 0.0
    for j in range(v.size):
        total += np.float64(u[j]) * np.float64(v[j])
    return total


@njit(cache=True, fastmath={"contract"})
def _axpy(a, u, q):
    """q ← q + a·u (u in its own dtype, q float64)."""
    for j in range(q.size):
        q[j] += a * np.float64(u[j])


@njit(cache=True)
def _h_times(g, S, Y, rho, order):
    """H·g (n,) float64 for H the L-BFGS inverse-Hessian of pairs order[0] (oldest) … order[-1] (newest)."""
    q = g.copy()
    k = order.size
    alphas = np.empty(k)
    for t in range(k - 1, -1, -1):
        i = order[t]
        # α_i = ρ_i s_iᵀq;  q ← q − α_i y_i
        alphas[t] = rho[i] * _dot(S[i], q)
        _axpy(-alphas[t], Y[i], q)
    if k:
        newest = order[k - 1]
        # γ = sᵀy / yᵀy of the newest pair
        gamma = 1.0 / (rho[newest] * _dot(Y[newest], Y[newest]))
        for j in range(q.size):
            q[j] *= gamma
    for t in range(k):
        i = order[t]
        # β = ρ_i y_iᵀr;  r ← r + (α_i − β) s_i
        _axpy(alphas[t] - rho[i] * _dot(Y[i], q), S[i], q)
    return q


def h_times(g: np.ndarray, S: np.ndarray, Y: np.ndarray, rho: np.ndarray, order: np.ndarray) -> np.ndarray:
    """H·g (n,) float64: g (n,) float64; S, Y (memory, n) float32/float64, rows the pairs s_i, y_i;
    rho (memory,) float64, ρ_i = 1/(s_iᵀy_i); order (k,) the rows in use, oldest first (k may be 0)."""
    g = np.ascontiguousarray(g, dtype=np.float64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if S.shape != Y.shape or S.ndim != 2 or S.shape[1] != g.size or rho.shape != (S.shape[0],):
        raise ValueError(f"h_times: pairs {S.shape}/{Y.shape}, rho {rho.shape} do not fit g {g.shape}")
    if S.dtype != Y.dtype or S.dtype not in (np.float32, np.float64) or not (S.flags.c_contiguous and
                                                                           Y.flags.c_contiguous):
        raise ValueError("h_times: S and Y must be C-contiguous float32/float64 arrays of one dtype")
    if order.size and (order.min() < 0 or order.max() >= S.shape[0]):
        raise ValueError("h_times: order must index rows of S")
    return _h_times(g, S, Y, np.ascontiguousarray(rho, dtype=np.float64), order)
