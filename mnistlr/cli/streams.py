"""The process's streams and environment, made safe before a command runs.

- `prepare_streams` (the console script only): standard streams closed at start (`>&-`) get
  /dev/null on their descriptor, so no file the command opens can take descriptor 1; a
  closed stdout then fails on its first write (one error line, as `ls >&-` does), never
  silently. Characters the terminal's encoding lacks (PYTHONIOENCODING=ascii, LC_ALL=C with
  PYTHONUTF8=0) are written as ASCII look-alikes (× as x, – as -, `mnistlr.cli.charset`)
  instead of ending in UnicodeEncodeError; consoles put them in before laying out.
- `check_environment`: environment variables numba reads at import (where an odd value is
  a warning on stderr, a traceback or a crash) are checked first, naming the fix.
"""

from __future__ import annotations

import errno
import os
import sys

from mnistlr.cli.charset import ERRORS  # (registers the fallback error handler)
from mnistlr.errors import UsageError

NUMBA_LAYERS = ("default", "safe", "forksafe", "threadsafe", "workqueue", "omp", "tbb")


class ClosedStream:
    """What sys.stdout is when descriptor 1 was closed at start: every write fails (EBADF)."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        if not text:
            return 0
        raise OSError(errno.EBADF, "Bad file descriptor (standard output is closed)")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1


def _reserve(fd: int) -> None:
    """Put /dev/null on descriptor *fd* (closed), so later files cannot take its number."""
    devnull = os.open(os.devnull, os.O_RDWR)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


def prepare_streams() -> None:
    """Give closed standard streams a safe stand-in; make output never fail on encoding."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            _reserve(fd)
            setattr(sys, name, ClosedStream() if name == "stdout" else open(fd, "r" if fd == 0 else "w",
                                                                            closefd=False))
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=ERRORS)
            except (ValueError, OSError):
                pass


def check_environment() -> None:
    """UsageError for environment values numba would choke on (checked before it is imported)."""
    cores = os.cpu_count() or 1
    limit = max(64, 4 * cores)
    threads = os.environ.get("NUMBA_NUM_THREADS")
    if threads is not None and not (threads.strip().isdigit() and 1 <= int(threads) <= limit):
        raise UsageError(f"NUMBA_NUM_THREADS={threads!r} is not a whole number from 1 to {limit}",
                         f"unset it, or give e.g. NUMBA_NUM_THREADS={cores}, the number of cores")
    layer = os.environ.get("NUMBA_THREADING_LAYER")
    if layer is not None and layer.strip().lower() not in NUMBA_LAYERS:
        raise UsageError(f"NUMBA_THREADING_LAYER={layer!r} is not a numba threading layer",
                         f"unset it, or give one of {', '.join(NUMBA_LAYERS)}")
