"""Running a command line: the Typer app, whose errors are mapped here and only here.

`main(argv)` runs a command and returns its exit status (tests call it in-process;
`mnistlr.cli.app`, the console script, calls it). Everything that can go wrong ends in one
line on stderr: mnistlr's own errors, usage errors, signals
(SIGINT, SIGTERM, SIGHUP: the atomic writers clean up on the way out), an environment
numba cannot use, running out of memory, and any OSError (standard output on a full disk
or closed, say).
"""

from __future__ import annotations

import errno
import importlib
import signal
import sys

import typer

from mnistlr.cli.base import app as _typer_app
from mnistlr.cli.base import print_error, register, silence_stdout
from mnistlr.cli.help_formatter import asks_for_help, load_help_formatter
from mnistlr.cli.streams import check_environment
from mnistlr.errors import Interrupted, MnistlrError

# The commands, in the order --help lists them: (name, its module in mnistlr.cli); the module's
# function NAME_command is the command. A module is imported only when its command is needed.
COMMANDS = (("fetch", "fetch"), ("import", "imports"), ("train", "train"), ("evaluate", "evaluate"),
            ("predict", "predict"), ("sweep", "sweep"), ("inspect", "inspect"), ("show", "show"),
            ("export", "export"))
_command_infos: dict[str, typer.models.CommandInfo] = {}


# Typer may vendor its own click: find the exception classes through its public names.
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# The signals that end a run cleanly (the exception unwinds, so temporary files are removed).
_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}
if hasattr(signal, "SIGHUP"):
    _SIGNALS[signal.SIGHUP] = "hung up (SIGHUP)"
# errno values of a failed write that names no file: standard output (or stderr) failed
_STREAM_ERRNOS = (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EPIPE)


# Signals received in this run. The Interrupted a handler raises is an Exception, so a library's
# `except Exception` (matplotlib's optional imports) or a finaliser can swallow it; `main` then
# ends the run with it all the same, once the command returns.
_received: list[int] = []


def _interrupted(signum: int) -> Interrupted:
    return Interrupted(f"{_SIGNALS.get(signum, 'stopped')}; nothing partial was left behind",
                       "run the same command again to finish", exit_code=128 + signum)


def _on_signal(signum, frame):
    _received.append(signum)
    raise _interrupted(signum)


def _quiet_unraisable(unraisable) -> None:
    """An Interrupted raised inside a finaliser is recorded in _received, not printed as a traceback."""
    if not isinstance(unraisable.exc_value, Interrupted):
        sys.__unraisablehook__(unraisable)


def _install_handlers() -> dict:
    previous = {}
    for signum in _SIGNALS:
        try:
            previous[signum] = signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # not in the main thread
            pass
    _received.clear()
    return previous


def flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def os_error_line(exc: OSError) -> str:
    """One line for an OSError that no layer turned into a MnistlrError."""
    reason = exc.strerror or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {reason} (check the path and the disk)"
    if exc.errno in _STREAM_ERRNOS:
        silence_stdout()  # so the interpreter's last flush cannot fail again
        return f"cannot write to standard output: {reason} (check where it is redirected)"
    return f"input/output error: {reason} (check the files and the disk)"


def _command_info(name: str, module: str) -> typer.models.CommandInfo:
    """Typer's record of the command *name*, made (its module imported) on first use."""
    if name not in _command_infos:
        function = getattr(importlib.import_module(f"mnistlr.cli.{module}"), f"{name}_command")
        every = _typer_app.registered_commands
        _typer_app.registered_commands = []
        try:
            register(function)
            _command_infos[name] = _typer_app.registered_commands[0]
        finally:
            _typer_app.registered_commands = every
    return _command_infos[name]


def _click_group(args: list[str]):
    """The Click group Typer makes of the app. For `mnistlr NAME ...` naming a command, only that
    command's module is imported and only it is converted (Typer reads every command's signature
    and annotations to build its parameters: tens of milliseconds for all of them); anything
    else gets the whole group."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    chosen = [command for command in COMMANDS if command[0] == name] or COMMANDS
    every = _typer_app.registered_commands
    _typer_app.registered_commands = [_command_info(*command) for command in chosen]
    try:
        return typer.main.get_command(_typer_app)
    finally:
        _typer_app.registered_commands = every


def _run_command(command, argv: list[str] | None, prog_name: str):
    """Click's run of *command*; a signal whose Interrupted was swallowed on the way is raised again."""
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable
    try:
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except SystemExit:
        # Click ends a write to a closed stdout (`typer.echo` into `| head`) with exit 1 even when
        # not standalone, after wrapping the streams; here that is the broken pipe it was
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            raise BrokenPipeError(errno.EPIPE, "stdout closed") from None
        raise
    finally:
        sys.unraisablehook = hook
    if _received:   # the run still ends as the signal asked
        raise _interrupted(_received[-1])
    return result


def _help_of(args: list[str]) -> str:
    """`mnistlr NAME` when *args* name a command (Click words an option missing its value at the end of
    the line as the group's error), else `mnistlr`."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    return f"mnistlr {name}" if any(command[0] == name for command in COMMANDS) else "mnistlr"


def main(argv: list[str] | None = None, prog_name: str = "mnistlr") -> int:
    """Run the CLI on *argv* and return the exit status; never raises for expected errors."""
    previous = _install_handlers()
    args = sys.argv[1:] if argv is None else argv
    try:
        check_environment()
        if asks_for_help(args):
            load_help_formatter()
        command = _click_group(args)
        result = _run_command(command, argv, prog_name)
        flush_stdout()
        return result if isinstance(result, int) else 0
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not an error
        silence_stdout()
        return 0
    except MnistlrError as exc:
        if _received and not isinstance(exc, Interrupted):   # what failed after a swallowed signal
            exc = _interrupted(_received[-1])
        if exc.exit_code == 0:
            return 0
        print_error(exc.for_command_line())
        return exc.exit_code
    except _ClickUsageError as exc:
        where = f"mnistlr {exc.ctx.info_name}" if exc.ctx and exc.ctx.parent else _help_of(args)
        # Typer's choice errors read "Value error, 'x' is not one of ...": keep the message only
        message = exc.format_message().replace("Value error, ", "")
        if message.strip():    # empty when Click has just shown the help (no arguments)
            print_error(f"{message} (see '{where} --help')")
        return 2
    except _ClickException as exc:
        print_error(exc.format_message())
        return exc.exit_code
    except typer.Abort as exc:
        if isinstance(exc.__cause__, EOFError):   # Click's Abort for an EOFError a reader let escape
            print_error("an input ended early (a file cut short?) (check the input files, or copy them again)")
            return 1
        print_error("interrupted")
        return 130
    except MemoryError:
        print_error("out of memory (use a smaller input, e.g. --train-limit N or a smaller --batch-size, "
                    "or free memory)")
        return 1
    except OSError as exc:
        print_error(os_error_line(exc))
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
