"""Shell completion scripts for bash, zsh and fish, generated from the Typer app.

`python -m mnistlr.cli.completions DIR` writes them; they call back `mnistlr` with
`_MNISTLR_COMPLETE` set, so subcommands, options, choices and file arguments are
always completed from the installed version.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROG = "mnistlr"
COMPLETE_VAR = "_MNISTLR_COMPLETE"
FILES = {"bash": "mnistlr.bash", "zsh": "_mnistlr", "fish": "mnistlr.fish"}


def completion_script(shell: str) -> str:
    """The completion script for *shell* (bash, zsh or fish), ending in a newline."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every shell's script into *directory*; returns the paths."""
    from mnistlr.io.atomic import write_text_atomic

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in FILES.items():
        write_text_atomic(directory / name, completion_script(shell))
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(path)
