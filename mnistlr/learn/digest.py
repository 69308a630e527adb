"""The SHA-256 a model records of the training data it was fitted on (`meta["data_sha256"]`)."""

from __future__ import annotations

from collections.abc import Callable


def data_sha256(X, y) -> str:
    """SHA-256 of the training images and labels actually used (shapes, dtypes and bytes)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for array in (X, y):
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array)   # the buffer itself: no copy of the images
    return h.hexdigest()


def data_sha256_in_background(X, y) -> Callable[[], str]:
    """data_sha256(X, y) on a thread of its own; returns a function that waits for it and returns it
    (or raises what the thread raised).

    hashlib releases the GIL, so the hash runs beside the fit: in a fresh process the solver
    first imports Numba on one core for about 0.3 s, while the other core is idle.
    """
    import threading

    outcome: list = []

    def run() -> None:
        try:
            outcome.append(data_sha256(X, y))
        except BaseException as error:   # handed to the caller below
            outcome.append(error)

    thread = threading.Thread(target=run, name="mnistlr-data-sha256", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return result
