"""The mnistlr command line.

`main(argv)` (from `mnistlr.cli.dispatch`, where every error becomes one line on stderr)
runs a command and returns its exit status; `app()`, the console script, does the same and
exits with that status. A help text rendered before under the same conditions is replayed
from `mnistlr.cli.help_cache`, without importing Typer or Rich. Called with no arguments
(the console script), `app()` ends the process itself once the run is over (`_end_process`).
"""

from __future__ import annotations

import gc
import os
import signal
import sys

# what `mnistlr.cli` offers from `mnistlr.cli.dispatch` (imported on first use: Typer is in it)
_DISPATCH_NAMES = ("main", "COMMANDS", "_click_group")


def __getattr__(name: str):
    if name not in _DISPATCH_NAMES:
        raise AttributeError(f"module 'mnistlr.cli' has no attribute {name!r}")
    from mnistlr.cli import dispatch

    return getattr(dispatch, name)


def _run(args: list[str] | None, prog_name: str) -> int:
    """The exit status of the command line: replayed help, or `main` (its help recorded)."""
    from mnistlr.cli import help_cache

    argv = sys.argv[1:] if args is None else list(args)
    status = help_cache.replay(argv, prog_name)
    if status is not None:
        return status
    from mnistlr.cli.dispatch import main

    return help_cache.run_recorded(argv, prog_name, lambda: main(args, prog_name=prog_name))


def _end_process(status: int) -> None:
    """End the process with *status* as the interpreter's shutdown would, without its teardown.

    atexit handlers run, then the standard streams (and C's stdio) are flushed, then os._exit:
    what is skipped is freeing every module and object one by one, 25–30 ms of each
    `mnistlr train` once numba is loaded. Every file mnistlr writes is closed (and renamed
    into place) before this. With another non-daemon thread still running, or a stream that
    cannot be flushed, it is the ordinary sys.exit (which waits for the thread, or reports).
    """
    import atexit
    import threading

    main = threading.main_thread()
    others = [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]
    if threading.current_thread() is not main or others:
        sys.exit(status)
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(status)
    if "ctypes" in sys.modules:   # anything a native library left in C's stdio buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    os._exit(status)


def _stop_early(signum, frame) -> None:
    """A signal before `dispatch.main` installs its handlers (while Typer and NumPy import): nothing
    has been read or written yet, so the process ends at once, in one line, as a signal's status."""
    os.write(2, f"mnistlr: error: stopped by {signal.Signals(signum).name} before the command "
                "started; nothing was written\n".encode())
    os._exit(128 + signum)


def _catch_early_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        try:
            signal.signal(getattr(signal, name), _stop_early)
        except (AttributeError, ValueError, OSError):   # no such signal here, or not the main thread
            pass


class _App:
    """The console-script entry point `mnistlr.cli:app`."""

    def __call__(self, args: list[str] | None = None, prog_name: str = "mnistlr") -> None:
        _catch_early_signals()
        from mnistlr.cli.streams import prepare_streams

        prepare_streams()
        status = _run(args, prog_name)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError as exc:
            from mnistlr.cli.dispatch import os_error_line, print_error

            print_error(os_error_line(exc))
            status = status or 1
        # The run is over: the interpreter's shutdown need not collect garbage among every object
        # still alive (with numba loaded, its collections took 0.2–0.4 s of each `mnistlr train`).
        gc.freeze()
        if args is None:   # the console script: nothing runs after this call but the shutdown
            _end_process(status)
        sys.exit(status)


app = _App()
