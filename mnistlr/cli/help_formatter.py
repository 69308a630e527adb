"""Typer's help formatter, loaded without the Rich parts that mnistlr's help never shows.

`typer.rich_utils` (Typer's `--help` renderer) imports `rich.markdown` (with markdown-it-py and
Pygments) and `rich.traceback` at its top: about 0.1 s, most of `mnistlr --help`, though
mnistlr's help is Rich markup (`rich_markup_mode="rich"`, no Markdown) and its errors are one
plain line (no tracebacks). `load_help_formatter()` imports `typer.rich_utils` while those two
modules are stand-ins whose every name is a stand-in class: calling it, or reading one of its
attributes, imports the real module and uses the real class, so nothing changes if Typer ever
does use them. Only `typer.rich_utils` keeps the stand-ins: `sys.modules` drops them as soon
as it is loaded, so any later `import rich.markdown` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
import types

# the modules typer.rich_utils imports at its top for Markdown help and rich tracebacks
DEFERRED_MODULES = ("rich.markdown", "rich.traceback")


class _StandInClass(type):
    """The metaclass of a stand-in: an attribute missing on the class is read from the real one."""

    def __getattr__(cls, name: str):
        return getattr(cls.real(), name)


def stand_in_class(module: str, name: str) -> type:
    """A class standing for *module*.*name*: calling it makes the real class's instance."""

    def real() -> type:
        return getattr(importlib.import_module(module), name)

    def new(cls, *args, **kwargs):
        return real()(*args, **kwargs)

    return _StandInClass(name, (), {"real": staticmethod(real), "__new__": new, "__module__": module})


def stand_in_module(module: str) -> types.ModuleType:
    """A module whose every public name is a `stand_in_class` of the real *module*'s."""
    stand_in = types.ModuleType(module, f"stand-in for {module} (see mnistlr.cli.help_formatter)")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = stand_in_class(module, name)
        setattr(stand_in, name, value)
        return value

    stand_in.__getattr__ = __getattr__
    return stand_in


_renderings = [0]   # help texts Typer has rendered in this process


def help_renderings() -> int:
    """How many help texts Typer's formatter has rendered in this process (counted from
    `load_help_formatter`: `mnistlr.cli.help_cache` records a run only when it showed help)."""
    return _renderings[0]


def _count_renderings(rich_utils: types.ModuleType) -> None:
    render, console = rich_utils.rich_format_help, rich_utils._get_rich_console

    def rich_format_help(*args, **kwargs):
        _renderings[0] += 1
        return render(*args, **kwargs)

    def help_console(*args, **kwargs):
        from mnistlr.cli.charset import with_fallback

        made = console(*args, **kwargs)
        made.on_broken_pipe = _reader_went_away   # Rich's own exits 1; `mnistlr --help | head`: 0
        if not made.stderr and not sys.stdout.isatty():   # piped: no spaces padding lines to the width
            from mnistlr.cli.base import TrimmedLines

            made.file = TrimmedLines(sys.stdout)
        return with_fallback(made)   # η, ‖, → laid out as eta, ||, -> where the encoding lacks them

    rich_utils.rich_format_help, rich_utils._get_rich_console = rich_format_help, help_console


def _reader_went_away() -> None:
    """A help text's reader closed the pipe: OutputClosed, which `dispatch.main` ends with 0
    (an OSError would meet Typer's own EPIPE handler, which exits 1)."""
    from mnistlr.cli.base import silence_stdout
    from mnistlr.errors import OutputClosed

    silence_stdout()
    raise OutputClosed("the reader of the help text went away")


def load_help_formatter() -> None:
    """Import `typer.rich_utils` (once) with `DEFERRED_MODULES` as stand-ins, then drop them."""
    if "typer.rich_utils" in sys.modules:
        return
    placed = {m: stand_in_module(m) for m in DEFERRED_MODULES if m not in sys.modules}
    sys.modules.update(placed)
    try:
        import typer.rich_utils
    finally:
        for module, stand_in in placed.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]
    _count_renderings(typer.rich_utils)


def asks_for_help(args: list[str]) -> bool:
    """True when the command line shows help: no arguments at all, or -h/--help among them."""
    return not args or "--help" in args or "-h" in args
