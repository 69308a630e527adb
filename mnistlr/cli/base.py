"""What every command shares: the Typer app, consoles, common options and the error line."""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mnistlr import __version__

app = typer.Typer(
    name="mnistlr",
    help="Train, evaluate, tune and serve linear classifiers on MNIST-format image data.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnistlr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train, evaluate, tune and serve linear classifiers on MNIST-format image data."""


def no_color() -> bool:
    """True when colour must be off (NO_COLOR set, or stderr not a terminal)."""
    return "NO_COLOR" in os.environ or not sys.stderr.isatty()


def print_error(message: str) -> None:
    """Write one error line to stderr (red on a colour terminal)."""
    line = f"mnistlr: error: {message}"
    if not no_color():
        line = f"\x1b[31m{line}\x1b[0m"
    sys.stderr.write(line.replace("\n", " ") + "\n")
    sys.stderr.flush()


def stdout_console():
    """A Rich console on stdout (results); plain when piped or NO_COLOR is set."""
    from rich.console import Console

    # piped output: $COLUMNS if set, else 100 columns (Rich would pick 80)
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 100
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def stderr_console():
    """A Rich console on stderr (progress, logs, warnings)."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def show_progress(quiet: bool) -> bool:
    """Progress displays only go to a terminal, and never with -q."""
    return not quiet and sys.stderr.isatty()


class Split(str, enum.Enum):
    train = "train"
    test = "test"


class OutputFormat(str, enum.Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="MNISTLR_DATA", show_envvar=True,
    help="Where datasets live (default: $XDG_CACHE_HOME/mnistlr or ~/.cache/mnistlr).")]
DatasetOpt = Annotated[str | None, typer.Option(
    "--dataset", "-d", help="A dataset name (see 'mnistlr fetch --list').")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed for splits, shuffles and initialisation.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
