"""Blocks of rows shared out among up to two threads (NumPy's loops and BLAS release the GIL).

Results do not depend on the number of threads: each block is computed alone. A call made
from inside a worker runs its blocks serially, so nested calls never multiply the threads.
`in_background` runs one call on a thread beside the caller; `read_ahead` makes the next item of an
iterator on a reader thread while the caller works on the one before.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

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


def numba_ready() -> bool:
    """Whether `kernels.setup` (Numba's import) has finished in this process: kernels can then be
    loaded from any thread without importing Numba there. A module is in sys.modules while it
    is still importing, so the test is for the flag its last line sets."""
    return getattr(sys.modules.get("mnistlr.learn.kernels.setup"), "IMPORTED", False)


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


def read_ahead(items: Iterator, close: Callable[[], None] | None = None) -> Iterator:
    """The items of *items*, the next one made on a reader thread while the caller works on the one
    before (reading and inflating files leave the GIL, so the two overlap). Only the reader thread
    touches *items*; when the caller stops (the end, an error, a signal's exception at any point),
    the reader finishes the item under way, then calls close() (when given) and ends, before this
    generator's own end: nothing is left reading a source that is being closed.
    """
    import queue

    end = object()
    requests: queue.Queue = queue.Queue()    # True: make the next item; False: stop
    results: queue.Queue = queue.Queue()     # (item, None) or (None, error)

    def reader() -> None:
        try:
            while requests.get():
                try:
                    results.put((next(items, end), None))
                except BaseException as error:   # handed to the caller
                    results.put((None, error))
                    return
        finally:
            if close is not None:
                try:
                    close()
                except Exception:   # noqa: BLE001  the caller has its own outcome by now
                    pass

    thread = threading.Thread(target=reader, daemon=True)
    requests.put(True)
    thread.start()
    try:
        while True:
            item, error = results.get()
            if error is not None:
                raise error
            if item is end:
                return
            requests.put(True)       # the next one is read while the caller works on this one
            yield item
    finally:
        requests.put(False)
        thread.join()
