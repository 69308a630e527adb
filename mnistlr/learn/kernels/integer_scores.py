"""The Numba half of `scoring.scores_uint8`: exact integer row sums for large batches on both cores.

Rows go four at a time: each row is converted to float64 once (not once per class), then four
rows × five classes per register block where the CPU has AVX-512's 32 vector registers
(`kernels.dots`: 9 loads per 20 multiply-adds, twice the speed of four rows × one class:
Fashion's 60,000 rows 29 → 14 ms on two Zen 4 cores), two blocks of two rows × five with AVX2's 16
(the 4-row block spills there: 22 → 18 ms on two Zen 3 cores). Every
partial sum is an exact float64 integer (see `scoring`), so the order of the additions cannot
change a bit of the result.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.dots import block_rows, dot2x1, dot2x5, dot4x5
from mnistlr.learn.kernels.residuals import FASTMATH
from mnistlr.learn.kernels.setup import njit, prange

_CHUNK_ROWS = 256   # rows per parallel task (each with its own float64 copy of four rows)


@njit(cache=True, fastmath=FASTMATH)
def _rows_sums(X, KT, S, start, stop, rows_per_block):
    """S[i] = KT·X[i] for the rows start ≤ i < stop of uint8 X (n, d); rows_per_block 2 or 4 (`block_rows`)."""
    k = KT.shape[0]
    xf = np.zeros((4, X.shape[1]))
    out = np.empty((4, k))
    for first in range(start, stop, 4):
        rows = min(4, stop - first)
        for r in range(rows):
            src, dst = X[first + r], xf[r]
            for j in range(src.size):
                dst[j] = src[j]
        if rows < 4:
            xf[rows:, :] = 0.0
        out[:, :] = 0.0
        # t_rc = Σ_j x_rj·K_jc, four rows × five classes at a time (any order: the sums are exact)
        blocked = k - k % 5
        for c0 in range(0, blocked, 5):
            if rows_per_block == 4:
                dot4x5(xf, 0, KT, c0, out)
            else:
                dot2x5(xf[0], xf[1], KT, c0, out, 0)
                dot2x5(xf[2], xf[3], KT, c0, out, 2)
        for c in range(blocked, k):
            dot2x1(xf[0], xf[1], KT, c, out, 0)
            dot2x1(xf[2], xf[3], KT, c, out, 2)
        S[first:first + rows] = out[:rows]


@njit(cache=True, parallel=True)
def _all_row_sums(X, KT, S, rows_per_block):
    n_chunks = (X.shape[0] + _CHUNK_ROWS - 1) // _CHUNK_ROWS
    for chunk in prange(n_chunks):
        _rows_sums(X, KT, S, chunk * _CHUNK_ROWS, min(X.shape[0], (chunk + 1) * _CHUNK_ROWS), rows_per_block)


@njit(cache=True)
def _all_row_sums_serial(X, KT, S, rows_per_block):
    _rows_sums(X, KT, S, 0, X.shape[0], rows_per_block)


_PARALLEL_MIN_ROWS = 16384   # below this one thread: no parallel launch for a small batch
_BLOCK_ROWS = block_rows()


def loaded() -> bool:
    """Whether either kernel has been loaded (or compiled) in this process."""
    return bool(_all_row_sums.signatures or _all_row_sums_serial.signatures)


def integer_sums(X: np.ndarray, KT: np.ndarray) -> np.ndarray:
    """X (n, d) uint8 times integer-valued KT (k, d) float64, transposed: (n, k) float64, exact."""
    S = np.empty((len(X), KT.shape[0]))
    (_all_row_sums if len(X) >= _PARALLEL_MIN_ROWS else _all_row_sums_serial)(X, KT, S, _BLOCK_ROWS)
    return S
