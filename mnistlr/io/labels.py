"""Label values: whole numbers that fit in int64, however a file or an array spells them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnistlr.errors import DataError

LABEL_VALUES_HINT = "labels must be whole numbers, e.g. 0–9"
_INT64_TOP = 2.0 ** 63   # |label| must be below this to be an int64


def integer_labels(y: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    """Labels y (n,) of an integer or float dtype as int64, refusing what no int64 holds exactly.

    where(i): label i named in an error, with its value ("f.csv: line 3: label 3.5"); the error
    adds "is not an integer" (a fraction, NaN, ±inf) or "is out of range" (|y| ≥ 2⁶³, which a
    cast would wrap or saturate without a word).
    """
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y)))
        if len(bad):
            raise DataError(f"{where(int(bad[0]))} is not an integer", LABEL_VALUES_HINT)
        bad = np.flatnonzero(np.abs(y) >= _INT64_TOP)
    elif y.dtype.kind == "u" and y.dtype.itemsize == 8:
        bad = np.flatnonzero(y >= np.uint64(_INT64_TOP))
    else:
        bad = ()
    if len(bad):
        raise DataError(f"{where(int(bad[0]))} is out of range", LABEL_VALUES_HINT)
    return y.astype(np.int64)
