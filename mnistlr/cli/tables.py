"""Small Rich building blocks every command uses: key/value tables and stdout printing."""

from __future__ import annotations

import os
import sys
from typing import Any

from mnistlr.cli.base import PIPE_WIDTH, silence_stdout, stdout_console
from mnistlr.errors import OutputClosed


def format_value(value: Any) -> str:
    """Numbers to 4 significant decimals, lists joined, None as '—'."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def format_param(value: Any) -> str:
    """A setting (a searched parameter's value): floats to 4 significant digits without trailing
    zeros (C=0.1, l2=1.333e-05), anything else as `format_value`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return format_value(value)


def key_value_table(data: dict[str, Any], title: str | None = None):
    """A two-column Rich table of *data* (keys with underscores shown as words)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key.replace("_", " "), format_value(value))
    return table


# what makes Rich print a pipe differently from its plain layout (colours, another width)
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


def _plain_cell(text: str) -> bool:
    """Text Rich prints as it is, one column per character: printable ASCII or '—', no markup '[', no emoji ':'."""
    return all((c.isascii() and c.isprintable()) or c == "—" for c in text) and not any(m in text for m in "[:")


def plain_key_value_text(data: dict[str, Any], title: str | None = None) -> str | None:
    """The text `print_stdout(key_value_table(data, title))` writes to a pipe, or None where only Rich can tell
    (a terminal, colour or width settings, text Rich would change, a table wider than the pipe's 100 columns)."""
    rows = [(key.replace("_", " "), format_value(value)) for key, value in data.items()]
    cells = [cell for row in rows for cell in row] + ([title] if title else [])
    if not rows or sys.stdout.isatty() or any(name in os.environ for name in _RICH_ENV) or not all(
            _plain_cell(cell) for cell in cells):
        return None
    key_width, value_width = (max(len(row[i]) for row in rows) for i in (0, 1))
    # SIMPLE_HEAD without a header: blank top and bottom edges, cells padded by one space, edges of one space
    table_width = key_width + value_width + 7
    if table_width > PIPE_WIDTH or (title and len(title) > table_width):
        return None
    lines = ([title] if title else []) + [""] + [f"  {k.ljust(key_width)}   {v}" for k, v in rows] + [""]
    return "".join(line.rstrip(" ") + "\n" for line in lines)


def print_key_values(data: dict[str, Any], title: str | None = None) -> None:
    """Print `key_value_table(data, title)` on stdout; to a pipe, without importing Rich when it can."""
    text = plain_key_value_text(data, title)
    if text is None:
        print_stdout(key_value_table(data, title))
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:   # as stdout_console's on_broken_pipe
        silence_stdout()
        raise OutputClosed("the reader of the output went away") from None


def print_stdout(*renderables) -> None:
    """Print Rich renderables to stdout (plain text when piped or NO_COLOR)."""
    console = stdout_console()
    for renderable in renderables:
        console.print(renderable)
