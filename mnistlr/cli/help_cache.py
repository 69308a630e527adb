"""Help texts replayed from the user's cache, so a repeated `mnistlr ... --help` skips Typer and Rich.

A help text depends only on what this module puts in its key: the command line, every
environment variable (NO_COLOR, COLUMNS, TERM, LANG, ...), the working directory, whether each
standard stream is a terminal and its size, standard output's encoding, the interpreter and
its module path, and the size and modification time of every file of mnistlr, Typer, Click
and Rich. The first run renders the help as usual and, when it showed help (Typer's formatter
ran) and wrote nothing to standard error, records what it wrote to standard output and its
exit status; a later run with the same key writes the same text and returns the same status. An entry holds the SHA-256 of its key, which must
match (so no environment variable's value is written to disk; the file name is a prefix of it). Entries are written atomically into
``$MNISTLR_HELP_CACHE`` (empty: no cache), else ``$XDG_CACHE_HOME/mnistlr/help`` or
``~/.cache/mnistlr/help``; at most MAX_ENTRIES are kept. Any problem (no home, a read-only
or damaged cache, an odd stream) means the help is rendered as usual: the cache can only
save time, never change what is printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

FORMAT = 1           # part of every key: bump when what an entry holds changes
MAX_ENTRIES = 64     # entries kept (the oldest dropped)
PACKAGES = ("mnistlr", "typer", "click", "rich")   # whose files can change a help text


def cache_dir() -> str | None:
    """Where entries live, or None for no cache."""
    chosen = os.environ.get("MNISTLR_HELP_CACHE")
    if chosen is not None:
        return chosen or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return None if base.startswith("~") else os.path.join(base, "mnistlr", "help")


def cacheable(args: list[str]) -> bool:
    """Whether this command line shows help (and no shell completion is under way)."""
    from mnistlr.cli.help_formatter import asks_for_help

    return asks_for_help(args) and not any(name.endswith("_COMPLETE") for name in os.environ)


def package_files(roots: list[str]) -> list[list[Any]]:
    """[path, size, mtime_ns] of every file under *roots* (folders or files), but compiled
    bytecode and hidden folders, sorted."""
    found = []
    for root in roots:
        if os.path.isfile(root):
            info = os.stat(root)
            found.append([root, info.st_size, info.st_mtime_ns])
            continue
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [d for d in subfolders if d != "__pycache__" and not d.startswith(".")]
            for name in files:
                info = os.stat(os.path.join(folder, name))
                found.append([os.path.join(folder, name), info.st_size, info.st_mtime_ns])
    return sorted(found)


def package_roots() -> list[str]:
    """The folders (or single files) the PACKAGES would be imported from, unimported."""
    from importlib.util import find_spec

    roots = []
    for name in PACKAGES:
        spec = find_spec(name)
        if spec is None:
            roots.append(f"<no {name}>")
        else:
            roots += list(spec.submodule_search_locations or [spec.origin])
    return roots


def _stream_state(fd: int) -> list[Any]:
    if not os.isatty(fd):
        return [fd, False]
    size = os.get_terminal_size(fd)
    return [fd, True, size.columns, size.lines]


def entry_key(args: list[str], prog_name: str) -> str:
    """Everything a help text depends on, as one string (see the module's docstring)."""
    from mnistlr import __version__

    roots = package_roots()
    key = {"format": FORMAT, "version": __version__, "args": args, "prog": prog_name,
           "env": sorted(os.environ.items()), "cwd": os.getcwd(), "python": [sys.version, sys.executable],
           "path": sys.path, "streams": [_stream_state(fd) for fd in (0, 1, 2)],
           "stdout": [sys.stdout.encoding, sys.stdout.errors], "files": [roots, package_files(roots)]}
    return json.dumps(key, sort_keys=True)


def key_digest(key: str) -> str:
    """SHA-256 of the key: what an entry stores, so no environment variable's value is written to disk."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def entry_path(folder: str, key: str) -> str:
    return os.path.join(folder, f"{key_digest(key)[:32]}.json")


def replay(args: list[str], prog_name: str) -> int | None:
    """Write the recorded help of this command line and return its exit status; None when
    there is none for the present key (or anything at all goes wrong before writing)."""
    folder = cache_dir()
    if folder is None or not cacheable(args):
        return None
    try:
        from mnistlr.cli.streams import check_environment

        check_environment()
        key = entry_key(args, prog_name)
        with open(entry_path(folder, key), encoding="utf-8") as handle:
            entry = json.load(handle)
        if entry["key_sha256"] != key_digest(key) or not isinstance(entry["text"], str) or type(entry["status"]) is not int:
            return None
    except Exception:   # no entry, a damaged one, an odd stream or environment: render as usual
        return None
    try:
        sys.stdout.write(entry["text"])
        sys.stdout.flush()
    except BrokenPipeError:   # the reader went away (`| head`): status 0, as for a rendered help
        from mnistlr.cli.base import silence_stdout

        silence_stdout()
        return 0
    except OSError as exc:    # as `dispatch.main`
        from mnistlr.cli.dispatch import os_error_line, print_error

        print_error(os_error_line(exc))
        return 1
    return entry["status"]


class _Recorder:
    """A text stream that passes everything on to *stream* and keeps what was written."""

    def __init__(self, stream: Any):
        self.stream, self.parts, self.failed = stream, [], False

    def write(self, text: str) -> int:
        if not isinstance(text, str):   # Click probes a stream's kind by writing b""
            return self.stream.write(text)
        try:
            written = self.stream.write(text)
        except BaseException:
            self.failed = True
            raise
        self.parts.append(text)
        return written

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BaseException:
            self.failed = True
            raise

    @property
    def buffer(self) -> Any:
        """The binary stream beneath: bytes written there would not be kept, so nothing is."""
        self.failed = True
        return self.stream.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def run_recorded(args: list[str], prog_name: str, run: Callable[[], int]) -> int:
    """`run()`'s exit status; for a help command line, what it wrote is stored for `replay`."""
    folder = cache_dir()
    if folder is None or not cacheable(args) or sys.stdout is None or sys.stderr is None:
        return run()
    try:
        key = entry_key(args, prog_name)
    except Exception:
        return run()
    from mnistlr.cli.help_formatter import help_renderings

    out, err = _Recorder(sys.stdout), _Recorder(sys.stderr)
    shown = help_renderings()
    sys.stdout, sys.stderr = out, err
    try:
        status = run()
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
    # only a run that showed help and nothing else ("-o -h" names a file: that run is a command)
    showed_help = help_renderings() > shown
    if showed_help and not (out.failed or err.failed or err.parts) and type(status) is int:
        store(folder, key, status, "".join(out.parts))
    return status


def store(folder: str, key: str, status: int, text: str) -> None:
    """Write the entry atomically (a temporary file renamed into place); drop the oldest beyond
    MAX_ENTRIES. Failing to store is not an error."""
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({"key_sha256": key_digest(key), "status": status, "text": text}, stream)
            os.replace(temporary, entry_path(folder, key))
        except BaseException:
            os.unlink(temporary)
            raise
        entries = sorted((e for e in os.scandir(folder) if e.name.endswith(".json")),
                         key=lambda e: e.stat().st_mtime_ns)
        for stale in entries[:-MAX_ENTRIES]:
            os.unlink(stale.path)
    except OSError:
        pass
