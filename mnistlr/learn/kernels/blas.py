"""BLAS on one thread, where NumPy's BLAS calls are small or sit between Numba kernel calls."""

from __future__ import annotations

import contextlib
import threading

_held = 0                    # contexts open now, in any thread (BLAS's thread count is process-wide)
_lock = threading.Lock()


@contextlib.contextmanager
def blas_on_one_thread():
    """A context in which NumPy's BLAS runs on one thread (when threadpoolctl is installed).

    Idle OpenBLAS threads spin for milliseconds after each call: between two Numba kernel calls
    (L-BFGS) they take a core from the kernel (measured: 2.7 s → 1.7 s per MNIST fit), and on
    skinny products (10,000 × 784 by 10 columns, in blocks) the threads' start and spin cost more
    CPU than the product itself (measured: 0.10 s → 0.02 s of CPU on a busy machine).
    Inside an open context (from any thread: blocks of rows on worker threads) it does nothing, as
    setting the limit costs ~1 ms (threadpoolctl scans the loaded libraries each time).
    """
    global _held
    with _lock:
        _held += 1
        outermost = _held == 1
    try:
        if not outermost:
            yield
            return
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
            return
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        with _lock:
            _held -= 1
