"""`make pipeline`: real file dependencies, a missing figure redone, and a dry run that changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = Path("out") / "mnist-sample-softmax"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A folder with the Makefile (also as pipeline.mk), the package and its pyproject, one pipeline run made."""
    folder = tmp_path_factory.mktemp("checkout")
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    shutil.copy(ROOT / "Makefile", folder / "pipeline.mk")
    for name in ("pyproject.toml", "mnistlr"):
        (folder / name).symlink_to(ROOT / name)
    assert make(folder, "pipeline").returncode == 0
    return folder


def make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    # this interpreter's venv, its install stamp taken as up to date (-o): nothing is installed
    venv = Path(sys.prefix)
    done = subprocess.run(["make", f"VENV={venv}", "-o", f"{venv}/.installed", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MNISTLR_DATA=str(folder / "data"), NO_COLOR="1"))
    assert done.returncode == 0 or args[:1] == ("-q",), done.stdout + done.stderr
    return done


def test_the_pipeline_makes_every_file_then_has_nothing_to_do(checkout):
    for name in ("model.joblib", "metrics.json", "confusion.png", "roc.png", "learning_curves.png",
                 "weights.png", "predictions.csv"):
        assert (checkout / RUN / name).stat().st_size > 0, name
    assert make(checkout, "-q", "pipeline").returncode == 0   # up to date


@pytest.mark.parametrize("makefile", [[], ["-f", "pipeline.mk"]], ids=["Makefile", "-f pipeline.mk"])
def test_a_missing_figure_is_redone_and_a_dry_run_changes_nothing(checkout, makefile):
    figure, metrics = checkout / RUN / "roc.png", checkout / RUN / "metrics.json"
    figure.unlink()
    before = sorted(p.name for p in (checkout / RUN).iterdir())
    dry = make(checkout, *makefile, "-n", "pipeline")
    assert "mnistlr evaluate" in dry.stdout
    assert sorted(p.name for p in (checkout / RUN).iterdir()) == before and metrics.exists()
    make(checkout, *makefile, "pipeline")
    assert figure.stat().st_size > 0
    assert make(checkout, *makefile, "-q", "pipeline").returncode == 0
