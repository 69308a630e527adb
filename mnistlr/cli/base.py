"""What every command shares: the Typer app, consoles, common options and the error line."""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mnistlr import __version__
from mnistlr.cli.charset import with_fallback
from mnistlr.errors import OutputClosed, printable


def reflow(text: str) -> str:
    """Help text with each paragraph's lines joined, so Rich wraps it to the terminal."""
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def examples(*pairs: tuple[str, str]) -> str:
    """An epilog of (what it does, command line) pairs, shown at the end of --help."""
    lines = ["Examples:"]
    for what, line in pairs:
        lines += ["", f"{what[0].upper()}{what[1:]}:", f"  {line}"]
    return "\n".join(lines)


app = typer.Typer(
    name="mnistlr",
    help="Train, evaluate, tune and serve linear classifiers on MNIST-format image data.",
    epilog=examples(
        ("train softmax regression on the bundled sample (no download needed)",
         "mnistlr train --dataset mnist-sample -o sample.joblib"),
        ("score it on the sample's test split",
         "mnistlr evaluate sample.joblib"),
        ("tune the L2 penalty by 3-fold cross-validation",
         "mnistlr sweep --dataset mnist-sample --param l2=log:1e-6:1e-1 --n-iter 6 --cv 3"),
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(name: str, *example_pairs: tuple[str, str]):
    """Mark *func* as the command *name*: its docstring (reflowed) is the help, *example_pairs* end it.

    Nothing is registered here; `mnistlr.cli` adds each marked command to `app` with `register`.
    """

    def mark(func):
        func.command_name, func.command_epilog = name, examples(*example_pairs)
        return func

    return mark


def register(func) -> None:
    """Add a function marked by `command` to the Typer app."""
    app.command(func.command_name, help=reflow(func.__doc__ or ""), epilog=func.command_epilog)(func)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnistlr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.", metavar="")] = False,
) -> None:
    """Train, evaluate, tune and serve linear classifiers on MNIST-format image data."""


def no_color_env() -> bool:
    """True when NO_COLOR is set to a non-empty value (https://no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def no_color() -> bool:
    """True when colour must be off (NO_COLOR set, or stderr not a terminal)."""
    return no_color_env() or not sys.stderr.isatty()


def print_error(message: str) -> None:
    """Write one error line to stderr (red on a colour terminal); nothing in it is a control code."""
    _print_line("error", "31", message)


def print_warning(message: str) -> None:
    """Write one warning line to stderr (yellow on a colour terminal), as `print_error` writes errors."""
    _print_line("warning", "33", message)


def _print_line(kind: str, colour: str, message: str) -> None:
    line = f"mnistlr: {kind}: {printable(message)}"
    if not no_color():
        line = f"\x1b[{colour}m{line}\x1b[0m"
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # stderr closed or full: the status still tells
        pass


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit cannot fail on a closed pipe."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stdout (tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class TrimmedLines:
    """A text stream that drops the spaces Rich pads table lines with, for files and pipes."""

    def __init__(self, stream):
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        if lines:
            self.stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return self.stream.fileno()


PIPE_WIDTH = 100      # stdout's columns when piped without $COLUMNS
NATURAL_MOST = 1000   # the widest a piped table grows to keep its rows on one line


def stdout_console():
    """A Rich console on stdout (results); plain when piped or NO_COLOR is set."""
    from rich.console import Console

    class ResultConsole(Console):
        natural = False   # piped without $COLUMNS: tables keep their natural width

        def on_broken_pipe(self) -> None:
            # the reader went away (`| head`): not an error, exit 0 (Rich's default exits 1)
            self.quiet = True
            silence_stdout()
            raise OutputClosed("the reader of the output went away")

        def print(self, *objects: Any, **kwargs: Any) -> None:
            # a table wider than the pipe keeps its rows on one line (for grep, sed and awk: wrapped,
            # a long path or five fold scores took two); print(width=) could only narrow it
            renderables = bool(objects) and not any(isinstance(o, str) for o in objects)
            if self.natural and renderables:
                from rich.measure import Measurement

                wide = self.options.update(width=NATURAL_MOST)
                needed = max(Measurement.get(self, wide, o).maximum for o in objects)
                self.width = max(PIPE_WIDTH, min(needed, NATURAL_MOST))
            if renderables:   # a table too wide for a narrow console is split, never cut to '…'
                from mnistlr.cli.tables import fit_width

                objects, kwargs = tuple(fit_width(o) for o in objects), {"crop": False} | kwargs
            try:
                super().print(*objects, **kwargs)
            finally:
                if self.natural:
                    self.width = PIPE_WIDTH

    # piped output: $COLUMNS if set, else 100 columns (Rich would pick 80)
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    # NO_COLOR: no escape sequences at all (bold and italic too), not just no colour
    plain = {"color_system": None} if no_color_env() else {}
    out = sys.stdout if sys.stdout.isatty() else TrimmedLines(sys.stdout)
    console = ResultConsole(file=out, highlight=False, soft_wrap=False, width=width, **plain)
    console.natural = width is not None
    return with_fallback(console)


def report_stream(*outputs: Path | None):
    """Where a command prints its report: stdout, or stderr when a file it writes (*outputs*) is
    standard output itself (-o /dev/stdout), so that stdout carries that file's bytes alone."""
    from mnistlr.io.atomic import writes_stdout

    if any(path is not None and writes_stdout(path) for path in outputs):
        return contextlib.redirect_stdout(sys.stderr)
    return contextlib.nullcontext()


def echo(text: str, err: bool = False) -> None:
    """`typer.echo` of a line of text, with what the stream's encoding lacks as ASCII look-alikes
    (Click writes UTF-8 to a stream it finds declared ASCII, which shows as mojibake)."""
    from mnistlr.cli.charset import fallback

    stream = sys.stderr if err else sys.stdout
    typer.echo(fallback(text, getattr(stream, "encoding", None) or "utf-8"), err=err)


def stderr_console():
    """A Rich console on stderr (progress, logs, warnings)."""
    from rich.console import Console

    plain = {"color_system": None} if no_color_env() else {}
    return with_fallback(Console(file=sys.stderr, highlight=False, **plain))


def print_note(message: str) -> None:
    """Print *message* on stderr as `stderr_console().print(message, soft_wrap=True)` does: when
    stderr is not a terminal and the message is plain printable ASCII with nothing Rich would
    change (no markup '[', no emoji code ':'), the same line is written without importing Rich."""
    if sys.stderr.isatty() or not (message.isascii() and message.isprintable()) or any(
            mark in message for mark in "[:"):
        stderr_console().print(message, highlight=False, soft_wrap=True)
        return
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except BrokenPipeError:  # as Rich's Console.on_broken_pipe
        silence_stdout()
        raise SystemExit(1) from None


def show_progress(quiet: bool) -> bool:
    """Progress displays only go to a terminal, and never with -q."""
    return not quiet and sys.stderr.isatty()


def choices(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A str Enum of *values* (Typer's choice type), named *name*: choices come from their one home."""
    return enum.Enum(name, {v: v for v in values}, type=str)


Split = choices("Split", ("train", "test"))
# predict's formats: mnistlr.api.predict.FORMATS, spelt out here so --help needs no NumPy (a test holds them equal)
OutputFormat = choices("OutputFormat", ("csv", "tsv", "jsonl", "json", "kaggle"))


def complete_dataset(incomplete: str) -> list[str]:
    """Shell completion of dataset names (the registry is imported only when completing)."""
    from mnistlr.data.registry import dataset_names

    return [name for name in dataset_names() if name.startswith(incomplete)]


DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="MNISTLR_DATA", show_envvar=True,
    help="Where datasets live (default: $XDG_CACHE_HOME/mnistlr or ~/.cache/mnistlr).")]
DatasetOpt = Annotated[str | None, typer.Option(
    "--dataset", "-d", help="A dataset name (see 'mnistlr fetch --list').",
    autocompletion=complete_dataset)]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1,
                                      help="Seed for splits, shuffles and initialisation (32 bits).")]
ModelArg = Annotated[Path, typer.Argument(
    help="A model file written by 'mnistlr train'.", metavar="MODEL", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.", metavar="")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.", metavar="")]
