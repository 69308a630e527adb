"""Row scores X @ W + b of raw uint8 pixels, exact, so a row gets the same numbers in any batch.

Each weight column is rounded to integers on a power-of-two grid, K = rint(W·2^e) (e per
column, chosen so that d·255·max|K| < 2^53). The sums Σ_j x_j·K_jc are then integers below
2^53, exact in float64 whatever the order of summation: BLAS's gemv for one row, its gemm for
a block, the Numba kernel, any thread count all give the same bits. The scores are
S = (XK)·2^−e + b, rounded once to float32. The grid's error is below 2^−34·max|W_c| per
weight (for 784 pixels), far under float32's rounding of the result.

Since every path gives the same bits, the cheapest is taken: NumPy's BLAS on small blocks of
rows on two threads, unless the Numba kernel is already loaded in the process (a sweep scoring
many models), there are NUMBA_MIN_ROWS rows or more, or Numba's kernels are set up already
(training) and there are NUMBA_READY_MIN_ROWS rows or more. Importing Numba and loading the
kernel costs more than scoring 10,000 images; loading it alone, once Numba is imported, costs
~15 ms, which the kernel wins back within a few such blocks (it scores 60,000 images in 14 ms,
BLAS in 30–50 ms).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from mnistlr.learn.kernels.blas import blas_on_one_thread
from mnistlr.learn.kernels.threads import numba_ready, run_blocks

NUMBA_MIN_ROWS = 65536   # from here the Numba kernel (its import is paid back)
NUMBA_READY_MIN_ROWS = 16384   # from here the Numba kernel once Numba's kernels are set up (its load is paid back)
_BLOCK_ROWS = 256        # rows converted to float64 at a time (0.8 MB for 784 pixels: in L2)


def integer_weights(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K (d, k) float64 integers, 2^−e (k,)) with W ≈ K·2^−e and d·255·max|K_c| < 2^53 per column.

    W (d, k) finite float32/float64 weights acting on raw uint8 pixels.
    """
    W = np.asarray(W, dtype=np.float64)
    d = W.shape[0]
    # bits B with d·255·2^B < 2^53: every partial sum of x_j·K_jc stays an exact float64 integer
    bits = 52 - int(np.ceil(np.log2(max(d, 1) * 255.0)))
    top = np.abs(W).max(axis=0, initial=0.0)
    # e_c = B − ⌈log2 max|W_c|⌉, so max|K_c| ≤ 2^B
    exponent = np.where(top > 0, bits - np.ceil(np.log2(np.where(top > 0, top, 1.0))), 0).astype(np.int64)
    return np.rint(np.ldexp(W, exponent[None, :])), np.ldexp(1.0, -exponent)


def _integer_sums_blas(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Σ_j x_ij·K_jc (n, k) float64 by BLAS on float64 blocks of rows (two threads, one BLAS thread each)."""
    out = np.empty((len(X), K.shape[1]))
    buffers = threading.local()   # each thread converts its blocks into its own float64 buffer

    def sum_block(start: int) -> None:
        rows = X[start:start + _BLOCK_ROWS]
        if not hasattr(buffers, "block"):
            buffers.block = np.empty((min(_BLOCK_ROWS, len(X)), X.shape[1]))
        block = buffers.block[:len(rows)]
        np.copyto(block, rows)
        np.matmul(block, K, out=out[start:start + len(rows)])

    with blas_on_one_thread():
        run_blocks(range(0, len(X), _BLOCK_ROWS), sum_block)
    return out


def _numba_kernel(n_rows: int) -> bool:
    """Whether to score n_rows rows with the Numba kernel of `integer_scores` (see above)."""
    if n_rows >= NUMBA_MIN_ROWS or _numba_kernel_loaded():
        return True
    return n_rows >= NUMBA_READY_MIN_ROWS and numba_ready()


def _numba_kernel_loaded() -> bool:
    """Whether the Numba kernel of `integer_scores` is loaded in this process already (no load to pay)."""
    module = sys.modules.get("mnistlr.learn.kernels.integer_scores")
    return module is not None and module.loaded()


def scores_uint8(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Scores X @ W + b (n, k) float32 of uint8 rows X (n, d) for finite weights W (d, k), b (k,).

    Each row's scores do not depend on the other rows given (exact integer sums, see above).
    """
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype != np.uint8:
        raise ValueError(f"scores_uint8 needs a 2-D uint8 array, got {X.dtype} {X.shape}")
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != X.shape[1] or np.shape(b) != (W.shape[1],):
        raise ValueError(f"scores_uint8: W {W.shape} and b {np.shape(b)} do not fit X {X.shape}")
    K, unit = integer_weights(W)
    if _numba_kernel(len(X)):
        from mnistlr.learn.kernels.integer_scores import integer_sums

        sums = integer_sums(X, np.ascontiguousarray(K.T))
    else:
        sums = _integer_sums_blas(X, K)
    # s_c = (Σ_j x_j K_jc)·2^−e_c + b_c, one rounding to float32
    return (sums * unit + np.asarray(b, dtype=np.float64)).astype(np.float32)
