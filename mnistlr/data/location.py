"""Where datasets live: the data directory, resolved one way for mnistlr and for `make`.

Standard library only (no NumPy), so the Makefile can ask it with the interpreter that builds
the venv, before anything is installed (scripts/data_dir.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from mnistlr.errors import DataError


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $MNISTLR_DATA, else $XDG_CACHE_HOME/mnistlr,
    else ~/.cache/mnistlr, the home as Python's os.path.expanduser finds it ($HOME, else the
    user's entry in the password database). A DataError when there is no home to find, or when
    what the argument or a variable names exists but is not a directory (naming which one)."""
    if data_dir is not None and str(data_dir) != "":
        # (the command line's --data-dir defaults to $MNISTLR_DATA: name the variable when it is the one)
        from_variable = os.environ.get("MNISTLR_DATA") == str(data_dir)
        return _directory(Path(data_dir).expanduser(), "MNISTLR_DATA" if from_variable else "`data_dir`")
    if os.environ.get("MNISTLR_DATA"):
        return _directory(Path(os.environ["MNISTLR_DATA"]).expanduser(), "MNISTLR_DATA")
    if os.environ.get("XDG_CACHE_HOME"):
        return _directory(Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mnistlr", "XDG_CACHE_HOME")
    home = os.path.expanduser("~")
    if home.startswith("~"):   # HOME unset, and no password entry for this user
        raise DataError("no home directory to keep the datasets in: HOME is unset and user "
                        f"{os.getuid() if hasattr(os, 'getuid') else '?'} has no password entry",
                        "set MNISTLR_DATA or XDG_CACHE_HOME, or give `data_dir`")
    return Path(home) / ".cache" / "mnistlr"


def _directory(path: Path, source: str) -> Path:
    """*path* unless it exists as something other than a directory (a file, a device: a DataError naming *source*)."""
    if path.exists() and not path.is_dir():
        given = source if source.startswith("`") else f"{source} ({os.environ[source]})"
        raise DataError(f"the data directory {path}, from {given}, is not a directory",
                        f"point {source} at a directory, or at a path where one can be made")
    return path
