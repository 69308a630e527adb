"""Small Rich building blocks every command uses: key/value tables and stdout printing."""

from __future__ import annotations

from typing import Any

from mnistlr.cli.base import stdout_console


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


def print_stdout(*renderables) -> None:
    """Print Rich renderables to stdout (plain text when piped or NO_COLOR)."""
    console = stdout_console()
    for renderable in renderables:
        console.print(renderable)
