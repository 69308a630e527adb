"""Completion scripts: committed copies match the generator, and bash really completes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlr.cli.completions import FILES, completion_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_script_matches_generated(shell):
    committed = (ROOT / "completions" / FILES[shell]).read_text()
    assert committed == completion_script(shell), f"run 'make completions' to refresh {FILES[shell]}"


def bash_complete(words: list[str]) -> list[str]:
    """Source the committed bash script and ask it to complete *words* (last one partial)."""
    script = ROOT / "completions" / FILES["bash"]
    bin_dir = Path(sys.executable).parent
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
               "_mnistlr_completion mnistlr; printf '%s\\n' \"${COMPREPLY[@]}\"")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_subcommands_options_and_choices():
    if shutil.which("mnistlr", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the mnistlr console script is not installed beside this Python")
    assert "train" in bash_complete(["mnistlr", "tr"])
    assert {"evaluate", "predict", "sweep", "fetch"} <= set(bash_complete(["mnistlr", ""]))
    assert "--model" in bash_complete(["mnistlr", "train", "--mo"])
    assert set(bash_complete(["mnistlr", "train", "--model", ""])) == {"softmax", "logistic", "ridge"}
