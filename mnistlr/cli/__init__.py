"""The mnistlr command line.

`main(argv)` (from `mnistlr.cli.dispatch`, where every error becomes one line on stderr)
runs a command and returns its exit status; `app()`, the console script, does the same and
exits with that status. A help text rendered before under the same conditions is replayed
from `mnistlr.cli.help_cache`, without importing Typer or Rich.
"""

from __future__ import annotations

import gc
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


class _App:
    """The console-script entry point `mnistlr.cli:app`."""

    def __call__(self, args: list[str] | None = None, prog_name: str = "mnistlr") -> None:
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
        # Shutdown is otherwise the same: atexit, threads, and every object freed by refcount.
        gc.freeze()
        sys.exit(status)


app = _App()
