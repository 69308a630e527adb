"""Small Rich building blocks every command uses: key/value tables, stdout printing, and
tables fitted to a narrow console without cutting a figure."""

from __future__ import annotations

import copy
import dataclasses
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
    table.add_column("value", overflow="fold")   # a long path folds in a narrow console, not cut to '…'
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


FOLD_KEEPS = 16   # in a column that may fold, words up to this long (figures, dates) stay whole
_WIDE = 10_000    # measuring width: a table's natural size, unclamped by the console


def fit_width(renderable):
    """*renderable* as `FitWidth` prints it when it is a table or a group, else as it is (text keeps
    Rich's own handling of its line ends)."""
    from rich.console import Group
    from rich.table import Table

    return FitWidth(renderable) if isinstance(renderable, (Table, Group)) else renderable


class FitWidth:
    """*renderable* printed so that no figure is cut to '…' in a narrow console.

    A boxed table wider than the console is split into column groups, each repeating the first
    (key) column, with column widths that keep every word whole (a column that may fold, such as
    a path, folds its longer words); a group that cannot fit even then is printed wider than the
    console (print with crop=False). Groups (`rich.console.Group`) are fitted part by part; any
    other renderable, and a table that fits, is printed as it is.
    """

    def __init__(self, renderable):
        self.renderable = renderable

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self.renderable)

    def __rich_console__(self, console, options):
        from rich.console import Group
        from rich.measure import Measurement
        from rich.table import Table

        table = self.renderable
        if isinstance(table, Group):
            yield from (fit_width(part) for part in table.renderables)
        elif not isinstance(table, Table) or table.box is None or (
                Measurement.get(console, options.update_width(_WIDE), table).maximum <= options.max_width):
            yield table   # a grid (no box) lays out pictures to a width of its own
        else:
            yield from _fitted_parts(console, options, table)


def _fitted_parts(console, options, table):
    """The segments of *table* split into column groups that fit options.max_width."""
    from rich.measure import Measurement

    wide = options.update_width(_WIDE)
    ranges = [_column_range(console, wide, table, column) for column in table.columns]
    least = [low for low, _ in ranges]
    groups = _column_groups(console, wide, table, least, options.max_width)
    for k, group in enumerate(groups):
        ends = {"title": k == 0, "caption": k == len(groups) - 1}
        need = Measurement.get(console, wide, _part(table, group, [least[i] for i in group], **ends)).maximum
        widths = _level_widths([ranges[i] for i in group], options.max_width - need)
        yield from console.render(_part(table, group, widths, **ends), options.update_width(max(need, options.max_width)))


def _column_range(console, options, table, column) -> tuple[int, int]:
    """The narrowest and widest a column's text can be without cutting a word (padding excluded):
    a no-wrap column is as wide as its widest cell, a folding one may fold words over FOLD_KEEPS."""
    from rich.measure import Measurement

    cells = ([column.header] if table.show_header else []) + list(column.cells)
    sizes = [Measurement.get(console, options, cell) for cell in cells]
    low, high = max(s.minimum for s in sizes), max(s.maximum for s in sizes)
    if column.no_wrap:
        low = high
    elif column.overflow == "fold":
        low = min(low, FOLD_KEEPS)
    return low, max(low, high)


def _column_groups(console, options, table, least: list[int], width: int) -> list[list[int]]:
    """Column indices in groups that fit *width* at their *least* widths, each starting with column 0."""
    from rich.measure import Measurement

    groups = [[0]]
    for index in range(1, len(table.columns)):
        wider = groups[-1] + [index]
        part = _part(table, wider, [least[i] for i in wider])
        if len(wider) > 2 and Measurement.get(console, options, part).maximum > width:
            groups.append([0, index])
        else:
            groups[-1] = wider
    return groups


def _level_widths(ranges: list[tuple[int, int]], spare: int) -> list[int]:
    """Column widths from their least, *spare* columns shared out to the narrowest first, none past its widest."""
    widths = [low for low, _ in ranges]
    for _ in range(max(spare, 0)):
        growing = [k for k, (_, high) in enumerate(ranges) if widths[k] < high]
        if not growing:
            break
        widths[min(growing, key=lambda k: widths[k])] += 1
    return widths


def _part(table, indices: list[int], widths: list[int], title: bool = True, caption: bool = True):
    """A copy of *table* with only the columns *indices*, fixed to *widths*, with or without its title and caption."""
    part = copy.copy(table)
    part.columns = [dataclasses.replace(table.columns[i], _index=k, width=w)
                    for k, (i, w) in enumerate(zip(indices, widths, strict=True))]
    part.title, part.caption = table.title if title else None, table.caption if caption else None
    return part
