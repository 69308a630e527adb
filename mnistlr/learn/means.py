"""Column means of the training inputs, on two threads with the same bits on any thread count."""

from __future__ import annotations

import numpy as np

# float rows summed per thread at a time by `column_means` (5,000 features: 40 MB of float32)
MEAN_SPAN_ROWS = 2048


def column_means(X) -> np.ndarray:
    """x̄ (n_features,) float64 of X (n, n_features): uint8 rows from exact uint32 sums (n < 2^24; the
    bits of a float64 mean, in half its time), float rows in spans of MEAN_SPAN_ROWS summed on two
    threads and added in span order (the same bits on any thread count)."""
    if X.dtype == np.uint8 and len(X) < 2 ** 24:
        # x̄ = (1/n) Σ_i x_i, the sums exact integers
        return _pixel_sums(X) / len(X)
    if X.dtype == np.uint8 or len(X) <= MEAN_SPAN_ROWS:
        return X.mean(axis=0, dtype=np.float64)
    from mnistlr.learn.kernels.threads import run_blocks

    starts = range(0, len(X), MEAN_SPAN_ROWS)
    sums = np.empty((len(starts), X.shape[1]))

    def span_sum(start: int) -> None:
        # Σ_{i in span} x_i, accumulated in float64
        X[start:start + MEAN_SPAN_ROWS].sum(axis=0, dtype=np.float64, out=sums[start // MEAN_SPAN_ROWS])

    run_blocks(starts, span_sum)
    # x̄ = (1/n) Σ_spans Σ_{i in span} x_i
    return sums.sum(axis=0) / len(X)


def _pixel_sums(X) -> np.ndarray:
    """Σ_i x_i (d,) uint32 of uint8 X (n, d), n < 2^24: by the class-sum kernel (one class) once Numba
    is imported (Fashion's 60,000 rows: 6 ms), else by NumPy (10–18 ms, a cast per element)."""
    from mnistlr.learn.kernels.threads import numba_ready

    if not numba_ready():
        return X.sum(axis=0, dtype=np.uint32)
    from mnistlr.learn.kernels.class_sums import class_pixel_sums

    return class_pixel_sums(X, np.zeros(len(X), np.int64), 1)[0]


def input_mean(X, affine=None) -> np.ndarray:
    """z̄ (n_features,) float64, the mean model input: x̄, or x̄·scale − shift for raw pixels."""
    return model_input_mean(column_means(X), affine)


def model_input_mean(x_mean: np.ndarray, affine=None) -> np.ndarray:
    """z̄ from the column means x̄ (n_features,) of X: x̄, or x̄·scale − shift for raw pixels."""
    # z̄ = x̄·scale − shift
    return x_mean if affine is None else x_mean * affine[0] - affine[1]
