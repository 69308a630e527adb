"""The Numba half of `scoring.scores_uint8`: exact integer row sums for large batches on both cores."""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit, prange


@njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _row_sums(x, KT, out):
    """out[c] = Σ_j x_j·KT[c, j] for one uint8 row x (d,); every partial sum an exact float64 integer."""
    for c in range(KT.shape[0]):
        k = KT[c]
        acc = 0.0
        for j in range(k.size):
            # t_c = Σ_j x_j·K_jc (any order: the sums are exact)
            acc += np.float64(x[j]) * k[j]
        out[c] = acc


@njit(cache=True, parallel=True)
def _all_row_sums(X, KT, S):
    for i in prange(X.shape[0]):
        _row_sums(X[i], KT, S[i])


@njit(cache=True)
def _all_row_sums_serial(X, KT, S):
    for i in range(X.shape[0]):
        _row_sums(X[i], KT, S[i])


_PARALLEL_MIN_ROWS = 16384   # below this one thread: no parallel launch for a small batch


def integer_sums(X: np.ndarray, KT: np.ndarray) -> np.ndarray:
    """X (n, d) uint8 times integer-valued KT (k, d) float64, transposed: (n, k) float64, exact."""
    S = np.empty((len(X), KT.shape[0]))
    (_all_row_sums if len(X) >= _PARALLEL_MIN_ROWS else _all_row_sums_serial)(X, KT, S)
    return S
