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
    user's entry in the password database). A DataError when there is no home to find."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    if os.environ.get("MNISTLR_DATA"):
        return Path(os.environ["MNISTLR_DATA"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mnistlr"
    home = os.path.expanduser("~")
    if home.startswith("~"):   # HOME unset, and no password entry for this user
        raise DataError("no home directory to keep the datasets in: HOME is unset and user "
                        f"{os.getuid() if hasattr(os, 'getuid') else '?'} has no password entry",
                        "set MNISTLR_DATA or XDG_CACHE_HOME, or give `data_dir`")
    return Path(home) / ".cache" / "mnistlr"
