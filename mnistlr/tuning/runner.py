"""The trial runner: cross-validation folds run with joblib, on local processes or a Dask cluster."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mnistlr.errors import MnistlrError

if TYPE_CHECKING:
    import numpy as np

BACKENDS = ("local", "dask")


def connect(scheduler: str):
    """A Dask client for *scheduler* (tcp://HOST:PORT); MissingExtraError without distributed."""
    try:
        from distributed import Client
    except ImportError:
        from mnistlr.errors import MissingExtraError

        raise MissingExtraError("distributed", "cluster", "--backend dask") from None
    try:
        return Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise MnistlrError(f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                           "check --scheduler (e.g. tcp://10.0.0.5:8786) and that the scheduler is running"
                           ) from None


@contextlib.contextmanager
def _spawning_ignores_ctrl_c() -> Iterator[None]:
    """Worker processes started in this block inherit SIGINT ignored (Python then keeps it so).

    Ctrl-C reaches the whole process group; a worker still importing would print a
    KeyboardInterrupt traceback. Ignoring it there leaves the interrupt to this process, which
    stops the workers when it unwinds.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Runner:
    """Runs FoldTasks with joblib: local processes (loky) or a Dask cluster.

    The images and labels are shipped to the workers once (loky memory-maps them;
    Dask scatters them to every worker) and only task descriptions travel per fit.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, n_jobs: int | None = None,
                 backend: str = "local", scheduler: str | None = None, n_tasks: int | None = None):
        self.images, self.labels = images, labels
        self.n_jobs, self.backend, self.scheduler = n_jobs, backend, scheduler
        self.n_tasks = n_tasks
        self.n_slots = 1
        self.n_threads: int | None = 1
        self.note: str | None = None   # set when -j was more than could run at once
        self._client = self._config = self._parallel = None

    def _slots(self, available: int, what: str) -> int:
        """Workers to start: -j (default *available*), at most *available* and the task count."""
        most = min(available, self.n_tasks) if self.n_tasks else available
        if self.n_jobs is None:
            return max(1, most)
        if self.n_jobs > most:
            fits = f"{self.n_tasks:,} fold fits" if self.n_tasks and self.n_tasks < available else what
            self.note = f"-j {self.n_jobs:,} is more than the {fits}; running {most} at a time"
            return max(1, most)
        return self.n_jobs

    def __enter__(self) -> Runner:
        import joblib

        if self.backend == "dask":
            self._client = connect(self.scheduler)
            workers = max(1, sum(self._client.nthreads().values()))
            self.n_slots = self._slots(workers, f"{workers} worker thread(s) of the cluster")
            self.n_threads = None  # each Dask worker divides its machine's cores itself
            self._config = joblib.parallel_config(backend="dask", client=self._client,
                                                  scatter=[self.images, self.labels])
            self._config.__enter__()
        else:
            cores = joblib.cpu_count()
            self.n_slots = self._slots(cores, f"{cores} core(s) of this machine")
            # workers × Numba threads ≤ cores
            self.n_threads = max(1, cores // self.n_slots)
        self._parallel = joblib.Parallel(n_jobs=self.n_slots, return_as="generator")
        with _spawning_ignores_ctrl_c():
            self._parallel.__enter__()
        return self

    def run(self, tasks: list):
        """Results of *tasks*, yielded in task order as they finish."""
        from joblib import delayed

        from mnistlr.tuning.cv import run_fold

        with _spawning_ignores_ctrl_c():   # the first tasks are dispatched (workers spawned) here
            return self._parallel(delayed(run_fold)(self.images, self.labels, task, self.n_threads)
                                  for task in tasks)

    def __exit__(self, *exc: Any) -> None:
        if self._parallel is not None:
            self._parallel.__exit__(*exc)
        if self._config is not None:
            self._config.__exit__(*exc)
        if self._client is not None:
            self._client.close()
