"""Blocks of rows shared out among up to two threads (NumPy's loops and BLAS release the GIL).

Results do not depend on the number of threads: each block is computed alone. A call made
from inside a worker runs its blocks serially, so nested calls never multiply the threads.
`in_background` runs one call on a thread beside the caller.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable

_MAX_THREADS = 2
_state = threading.local()


def n_threads() -> int:
    """Threads for blocks: Numba's setting when Numba is loaded (sweep workers lower it), else the cores (≤ 2)."""
    if "numba" in sys.modules:
        import numba

        cores = numba.get_num_threads()
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


def run_blocks(starts: Iterable[int], work: Callable[[int], None]) -> None:
    """work(start) for every start, thread t taking starts t, t + T, …; a worker's exception is re-raised."""
    starts = list(starts)
    count = 1 if getattr(_state, "inside", False) else min(n_threads(), len(starts))
    errors: list[BaseException] = []

    def worker(first: int) -> None:
        _state.inside = True
        try:
            for start in starts[first::count]:
                if errors:
                    return
                work(start)
        except BaseException as error:   # handed to the calling thread below
            errors.append(error)
        finally:
            _state.inside = False

    if count <= 1:
        for start in starts:
            work(start)
        return
    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(1, count)]
    for thread in threads:
        thread.start()
    worker(0)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def in_background(function: Callable, *args) -> Callable:
    """Start function(*args) on a thread of its own; returns a function that waits for it and returns
    its result (or raises what it raised). For work that leaves the GIL (hashing, NumPy's loops)
    beside work that holds it on the other core."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(function(*args))
        except BaseException as error:   # handed to the caller below
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result():
        thread.join()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    return result
