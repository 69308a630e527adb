"""Shared fixtures: the in-process CLI runner and the real MNIST files in ../shared."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session", autouse=True)
def _help_cache_of_the_session(tmp_path_factory):
    """The console scripts the tests start keep replayed help in a folder of this session's, not
    in the user's cache."""
    import os

    previous = os.environ.get("MNISTLR_HELP_CACHE")
    os.environ["MNISTLR_HELP_CACHE"] = str(tmp_path_factory.mktemp("help-cache"))
    yield
    if previous is None:
        os.environ.pop("MNISTLR_HELP_CACHE", None)
    else:
        os.environ["MNISTLR_HELP_CACHE"] = previous


@dataclasses.dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `mnistlr ARGS...` in-process; returns CliResult(code, out, err).

    The data directory defaults to an empty per-test folder (MNISTLR_DATA) so
    tests never touch the user's cache; pass --data-dir to override.
    """
    from mnistlr.cli import main

    monkeypatch.setenv("MNISTLR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    """The folder of real MNIST files; skips when ../shared is absent (a user's clone)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST files not found at {SHARED_MNIST} (../shared is only beside CI and dev checkouts)")
    return SHARED_MNIST
