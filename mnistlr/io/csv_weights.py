"""The `.csv` export of a model's weights, for spreadsheets.

A header row ``feature,<label>,...`` (one column per output: every class, or only the
positive class of a binary logistic model), an ``intercept`` row (b_raw), then one row per
pixel ``pixel_<i>`` (row-major, i = r·cols + c) of W_raw: the score of class k is
intercept_k + Σ_i x_i·W_raw[i, k] on raw pixels 0–255. Numbers carry 9 significant digits,
which give the float32 weights back exactly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mnistlr.io.atomic import atomic_write


def write_weights_csv(path: str | os.PathLike, W_raw: np.ndarray, b_raw: np.ndarray,
                      labels: Sequence) -> None:
    """Write W_raw (n_features, n_outputs), b_raw (n_outputs,) under the column *labels*, atomically."""
    rows = [",".join(["feature"] + [str(c) for c in labels])]
    rows.append(",".join(["intercept"] + [f"{v:.9g}" for v in np.asarray(b_raw).tolist()]))
    rows += [",".join([f"pixel_{i}"] + [f"{v:.9g}" for v in row])
             for i, row in enumerate(np.asarray(W_raw).tolist())]
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(rows) + "\n")
