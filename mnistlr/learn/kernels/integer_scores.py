"""The Numba half of `scoring.scores_uint8`: exact integer row sums for large batches on both cores.

Rows go four at a time: each row is converted to float64 once (not once per class), and each
weight is loaded once for the four rows. Every partial sum is an exact float64 integer (see
`scoring`), so the order of the additions cannot change a bit of the result.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit, prange

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_CHUNK_ROWS = 256   # rows per parallel task (each with its own float64 copy of four rows)


@njit(cache=True, fastmath=_FASTMATH)
def _four_row_sums(xf, KT, out):
    """out[r, c] = Σ_j xf[r, j]·KT[c, j] for the four float64 rows xf (4, d)."""
    for c in range(KT.shape[0]):
        k = KT[c]
        a0 = a1 = a2 = a3 = 0.0
        for j in range(k.size):
            # t_rc = Σ_j x_rj·K_jc (any order: the sums are exact)
            a0 += xf[0, j] * k[j]
            a1 += xf[1, j] * k[j]
            a2 += xf[2, j] * k[j]
            a3 += xf[3, j] * k[j]
        out[0, c], out[1, c], out[2, c], out[3, c] = a0, a1, a2, a3


@njit(cache=True, fastmath=_FASTMATH)
def _rows_sums(X, KT, S, start, stop):
    """S[i] = KT·X[i] for the rows start ≤ i < stop of uint8 X (n, d)."""
    xf = np.zeros((4, X.shape[1]))
    out = np.empty((4, KT.shape[0]))
    for first in range(start, stop, 4):
        rows = min(4, stop - first)
        for r in range(rows):
            xf[r, :] = X[first + r]
        if rows < 4:
            xf[rows:, :] = 0.0
        _four_row_sums(xf, KT, out)
        S[first:first + rows] = out[:rows]


@njit(cache=True, parallel=True)
def _all_row_sums(X, KT, S):
    n_chunks = (X.shape[0] + _CHUNK_ROWS - 1) // _CHUNK_ROWS
    for chunk in prange(n_chunks):
        _rows_sums(X, KT, S, chunk * _CHUNK_ROWS, min(X.shape[0], (chunk + 1) * _CHUNK_ROWS))


@njit(cache=True)
def _all_row_sums_serial(X, KT, S):
    _rows_sums(X, KT, S, 0, X.shape[0])


_PARALLEL_MIN_ROWS = 16384   # below this one thread: no parallel launch for a small batch


def loaded() -> bool:
    """Whether either kernel has been loaded (or compiled) in this process."""
    return bool(_all_row_sums.signatures or _all_row_sums_serial.signatures)


def integer_sums(X: np.ndarray, KT: np.ndarray) -> np.ndarray:
    """X (n, d) uint8 times integer-valued KT (k, d) float64, transposed: (n, k) float64, exact."""
    S = np.empty((len(X), KT.shape[0]))
    (_all_row_sums if len(X) >= _PARALLEL_MIN_ROWS else _all_row_sums_serial)(X, KT, S)
    return S
