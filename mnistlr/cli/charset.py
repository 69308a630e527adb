"""Output whose encoding lacks some characters (PYTHONIOENCODING=ascii or latin-1, LC_ALL=C with
PYTHONUTF8=0): ASCII look-alikes (≤ as <=, ‖ as ||, η as eta, → as ->), put in *before* Rich lays
a table out, so its columns and boxes keep their widths, and a table's rules drawn in ASCII.

`streams` registers `ASCII` as the error handler of the standard streams (the last resort for
text written without a console); `with_fallback(console)` makes a Rich console's `print` replace
what its encoding lacks first, in the strings, Text, tables, panels and groups it is given.
"""

from __future__ import annotations

import codecs
from typing import Any

ERRORS = "mnistlr-ascii"
ASCII = {"×": "x", "–": "-", "—": "-", "−": "-", "…": "...", "≤": "<=", "≥": ">=", "·": "*", "±": "+/-",
         "→": "->", "←": "<-", "²": "^2", "√": "sqrt", "Σ": "sum", "μ": "mu", "σ": "sigma",
         "γ": "gamma", "η": "eta", "λ": "lambda", "‖": "||", "“": '"', "”": '"', "‘": "'", "’": "'",
         "è": "e", "é": "e", "₀": "0", "₁": "1", "₂": "2", "₊": "+", "₋": "-", "⁺": "+", "⁻": "-",
         # a sparkline's eight heights, low to high, and the picture's half block
         "▁": "_", "▂": ".", "▃": ",", "▄": "-", "▅": "~", "▆": "=", "▇": "*", "█": "#", "▀": "^",
         # box drawing (a Rich box without an ASCII form of its own)
         "─": "-", "━": "=", "═": "=", "│": "|", "┃": "|", "║": "|"}
_CORNERS = "┌┐└┘├┤┬┴┼╭╮╰╯┏┓┗┛┣┫┳┻╋╔╗╚╝╠╣╦╩╬╞╡╤╧╪╟╢╥╨╫┡┩┢┪╇╈"


def _look_alike(c: str) -> str:
    return ASCII.get(c, "+" if c in _CORNERS else "?")


def _transliterate(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(_look_alike(c) for c in exc.object[exc.start:exc.end]), exc.end


codecs.register_error(ERRORS, _transliterate)


def is_utf(encoding: str | None) -> bool:
    return (encoding or "utf-8").lower().replace("_", "-").startswith("utf")


def fits(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    except LookupError:   # an encoding Python does not know: Rich would fail first
        return True
    return True


def fallback(text: str, encoding: str) -> str:
    """*text* with each character *encoding* lacks as its ASCII look-alike."""
    return text if fits(text, encoding) else text.encode(encoding, ERRORS).decode(encoding)


def _text(text, encoding: str):
    """A Rich Text with what *encoding* lacks replaced, its styles moved along."""
    from rich.text import Span

    plain = text.plain
    if fits(plain, encoding):
        return text
    ends, position = [0], 0
    pieces = []
    for c in plain:
        piece = fallback(c, encoding)
        pieces.append(piece)
        position += len(piece)
        ends.append(position)
    safe = text.copy()
    safe.plain = "".join(pieces)
    safe.spans = [Span(ends[min(s.start, len(plain))], ends[min(s.end, len(plain))], s.style) for s in text.spans]
    return safe


def _box(box, encoding: str):
    """An ASCII twin of a Rich box (SIMPLE_HEAD's rule as '-'), so the layout stays as in UTF-8."""
    from rich.box import Box

    drawn = str(box)
    if fits(drawn, encoding):
        return box
    return Box("".join(_look_alike(c) if ord(c) > 127 else c for c in drawn), ascii=True)


def renderable(obj: Any, encoding: str) -> Any:
    """*obj* (a str, Text, Table, Panel, Padding, Align, Group or Columns, nested) with what
    *encoding* lacks replaced; anything else as it is (written through the streams' fallback)."""
    import copy
    import dataclasses

    from rich.align import Align
    from rich.columns import Columns
    from rich.console import Group
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    def safe(value: Any) -> Any:
        return renderable(value, encoding)

    if isinstance(obj, str):
        return fallback(obj, encoding)
    if isinstance(obj, Text):
        return _text(obj, encoding)
    if isinstance(obj, Group):
        return Group(*(safe(r) for r in obj.renderables), fit=obj.fit)
    if not isinstance(obj, (Table, Panel, Padding, Align, Columns)):
        return obj
    obj = copy.copy(obj)
    if isinstance(obj, Table):
        obj.title, obj.caption = safe(obj.title), safe(obj.caption)
        obj.columns = [dataclasses.replace(c, header=safe(c.header), footer=safe(c.footer),
                                           _cells=[safe(cell) for cell in c._cells]) for c in obj.columns]
        if obj.box is not None:
            obj.box = _box(obj.box, encoding)
    elif isinstance(obj, Panel):
        obj.renderable, obj.title, obj.subtitle = safe(obj.renderable), safe(obj.title), safe(obj.subtitle)
        obj.box = _box(obj.box, encoding)
    elif isinstance(obj, Columns):
        obj.renderables, obj.title = [safe(r) for r in obj.renderables], safe(obj.title)
    else:
        obj.renderable = safe(obj.renderable)
    return obj


def with_fallback(console):
    """*console*, its `print` laying out the ASCII look-alikes of what its encoding lacks (as it is
    for a UTF-8 console)."""
    encoding = console.encoding
    if is_utf(encoding):
        return console
    plain_print = console.print

    def print_(*objects: Any, **kwargs: Any) -> None:
        plain_print(*(renderable(o, encoding) for o in objects), **kwargs)

    console.print = print_
    return console
