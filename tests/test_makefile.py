"""`make pipeline`: real file dependencies, a missing figure redone, and a dry run that changes nothing."""

from __future__ import annotations

import json
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
    for name in ("pyproject.toml", "mnistlr", "scripts"):
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


@pytest.mark.parametrize("unset", [("HOME",), ("HOME", "XDG_CACHE_HOME"), ()], ids=["no HOME", "no HOME or XDG", "all set"])
def test_make_passes_the_data_directory_mnistlr_resolves_even_without_home(tmp_path, unset):
    # `env -u HOME make fetch` once fetched into /.cache/mnistlr, where mnistlr itself looks in the
    # home of the password database (as Python's os.path.expanduser does)
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "mnistlr", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k not in ("MNISTLR_DATA", *unset)}
    env.setdefault("XDG_CACHE_HOME", str(tmp_path / "xdg"))   # (when kept: never the real cache)
    if "XDG_CACHE_HOME" in unset:
        env.pop("XDG_CACHE_HOME")
    venv = Path(sys.prefix)
    dry = subprocess.run(["make", "-n", f"VENV={venv}", f"PYTHON={sys.executable}", "-o", f"{venv}/.installed",
                          "fetch", "DATASET=mnist"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    asked = subprocess.run([sys.executable, "-m", "mnistlr", "fetch", "--list", "--json"], env=env,
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    data_dir = json.loads(asked.stdout)["data_dir"]
    assert f"fetch mnist --data-dir {data_dir}\n" in dry.stdout
    assert not data_dir.startswith("/.cache")
