"""Per-class pixel sums of uint8 images in one pass over the rows (no copy of each class's rows)."""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit


@njit(cache=True)
def _add_rows(X, y_index, sums):
    for i in range(X.shape[0]):
        row, total = X[i], sums[y_index[i]]
        for j in range(row.size):
            # S_cj = Σ_{i: y_i = c} x_ij
            total[j] += row[j]


def class_pixel_sums(X: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Exact sums (n_classes, d) uint32 of the uint8 rows X (n, d) per class index y_index (n,) in
    [0, n_classes); n < 2^24, so that no sum can reach 2^32."""
    X, y_index = np.ascontiguousarray(X), np.ascontiguousarray(y_index, dtype=np.int64)
    if X.ndim != 2 or X.dtype != np.uint8 or len(X) >= 2 ** 24 or y_index.shape != (len(X),):
        raise ValueError(f"class_pixel_sums needs fewer than 2^24 uint8 rows and one label each, got "
                         f"{X.dtype} {X.shape} and {y_index.shape} labels")
    if len(y_index) and not (0 <= y_index.min() and y_index.max() < n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    sums = np.zeros((n_classes, X.shape[1]), np.uint32)
    _add_rows(X, y_index, sums)
    return sums
