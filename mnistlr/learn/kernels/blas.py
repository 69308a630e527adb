"""BLAS on one thread, where NumPy's BLAS calls are small or sit between Numba kernel calls."""

from __future__ import annotations

import contextlib


def blas_on_one_thread():
    """A context in which NumPy's BLAS runs on one thread (when threadpoolctl is installed).

    Idle OpenBLAS threads spin for milliseconds after each call: between two Numba kernel calls
    (L-BFGS) they take a core from the kernel (measured: 2.7 s → 1.7 s per MNIST fit), and on
    skinny products (10,000 × 784 by 10 columns, in blocks) the threads' start and spin cost more
    CPU than the product itself (measured: 0.10 s → 0.02 s of CPU on a busy machine).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
