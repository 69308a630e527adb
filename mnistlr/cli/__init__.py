"""The mnistlr command line: a Typer app whose errors are mapped in one place.

`main(argv)` runs a command and returns its exit status (tests call it in-process);
`app()` (the console script) does the same and exits with that status.
"""

from __future__ import annotations

import signal
import sys

import typer

from mnistlr.cli import evaluate, export, fetch, imports, inspect, predict, show, sweep, train
from mnistlr.cli.base import app as _typer_app
from mnistlr.cli.base import print_error, register, silence_stdout
from mnistlr.errors import Interrupted, MnistlrError

# The commands, in the order --help lists them.
COMMANDS = (fetch.fetch_command, imports.import_command, train.train_command,
            evaluate.evaluate_command, predict.predict_command, sweep.sweep_command,
            inspect.inspect_command, show.show_command, export.export_command)
for _command in COMMANDS:
    register(_command)


# Typer may vendor its own click: find the exception classes through its public names.
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _on_sigint(signum, frame):
    raise Interrupted("interrupted; nothing partial was left behind",
                      "run the same command again to finish")


def main(argv: list[str] | None = None, prog_name: str = "mnistlr") -> int:
    """Run the CLI on *argv* and return the exit status; never raises for expected errors."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not in the main thread
        previous = None
    try:
        command = typer.main.get_command(_typer_app)
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not an error
        silence_stdout()
        return 0
    except MnistlrError as exc:
        if exc.exit_code == 0:
            return 0
        print_error(exc.for_command_line())
        return exc.exit_code
    except _ClickUsageError as exc:
        where = f"mnistlr {exc.ctx.info_name}" if exc.ctx and exc.ctx.parent else "mnistlr"
        # Typer's choice errors read "Value error, 'x' is not one of ...": keep the message only
        message = exc.format_message().replace("Value error, ", "")
        print_error(f"{message} (see '{where} --help')")
        return 2
    except _ClickException as exc:
        print_error(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        print_error("interrupted")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class _App:
    """The console-script entry point `mnistlr.cli:app`."""

    def __call__(self, args: list[str] | None = None, prog_name: str = "mnistlr") -> None:
        sys.exit(main(args, prog_name=prog_name))


app = _App()
