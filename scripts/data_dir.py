#!/usr/bin/env python3
"""Print mnistlr's data directory (mnistlr.data.location), for the Makefile's DATA_DIR.

    python3 scripts/data_dir.py

Runs from the source tree with the standard library only, so `make` can ask before the venv
exists; on failure one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnistlr.data.location import resolve_data_dir  # noqa: E402
from mnistlr.errors import MnistlrError  # noqa: E402

try:
    print(resolve_data_dir())
except MnistlrError as exc:
    sys.exit(f"mnistlr: error: {exc.message} (set MNISTLR_DATA or XDG_CACHE_HOME, or give make DATA_DIR=PATH)")
