"""Child-process measurements for the benchmark: wall time, peak memory, imports, compilations.

Every figure here is taken from outside a fresh `python`/`mnistlr` process, the way a
user meets the tool: a process's wall time from spawn to exit, its peak resident set
(``ru_maxrss`` from ``os.wait4``), which top-level packages `mnistlr --help` imports
(``-X importtime``), and how many functions Numba compiled (``numba:compile`` events).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs the CLI in-process and writes how many functions Numba compiled (not loaded from
# its on-disk cache) to the file named by $BENCH_COMPILES; the CLI's exit status is kept.
COMPILE_PROBE = """
import json, os, sys
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(str(ev.data["dispatcher"].py_func.__qualname__))
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
from mnistlr.cli import main
code = main(sys.argv[1:])
with open(os.environ["BENCH_COMPILES"], "w") as handle:
    json.dump(compiled, handle)
sys.exit(code)
"""


@dataclasses.dataclass
class ProcResult:
    """One finished child: wall seconds, peak RSS in MiB, exit status, captured stderr and the
    CPU seconds (user + system, all its threads and children)."""

    seconds: float
    max_rss_mib: float
    returncode: int
    stderr: str
    cpu_seconds: float = float("nan")


def bin_dir() -> Path:
    """The folder of the running interpreter (the venv's bin, where `mnistlr` lives)."""
    return Path(sys.executable).parent


def mnistlr_command() -> list[str]:
    """The `mnistlr` console script beside this interpreter, else `python -m mnistlr`."""
    script = bin_dir() / "mnistlr"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mnistlr"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for children: no colour, plus *extra*."""
    env = dict(os.environ, NO_COLOR="1")
    env.update(extra)
    return env


# Starts the command from a small process and reports its wall time and peak RSS. (A child
# forked straight from the benchmark would report the benchmark's own, much larger, peak:
# Linux carries the parent's high-water mark over the fork into ru_maxrss.)
LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as handle:
    json.dump({"seconds": seconds, "max_rss_kib": usage.ru_maxrss, "code": code,
               "cpu": usage.ru_utime + usage.ru_stime}, handle)
"""


def run_child(cmd: list[str], env: dict[str, str] | None = None, stdout: Path | None = None) -> ProcResult:
    """Run *cmd* (stdout discarded, or written to *stdout*) and return its wall time (spawn to exit)
    and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmp, tempfile.TemporaryFile() as err, \
            open(stdout if stdout is not None else os.devnull, "wb") as out:
        record = Path(tmp) / "usage.json"
        subprocess.run([sys.executable, "-c", LAUNCHER, str(record), *cmd], stdout=out,
                       stderr=err, env=env if env is not None else child_env(), check=False)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        if not record.exists():
            return ProcResult(float("nan"), float("nan"), -1, text)
        usage = json.loads(record.read_text())
    # Linux reports ru_maxrss in KiB
    return ProcResult(usage["seconds"], usage["max_rss_kib"] / 1024.0, usage["code"], text, usage["cpu"])


def run_checked(cmd: list[str], env: dict[str, str] | None = None, stdout: Path | None = None) -> ProcResult:
    """`run_child`, raising RuntimeError with the child's stderr when it fails."""
    result = run_child(cmd, env, stdout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def best_of(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> list[ProcResult]:
    """*repeat* runs of *cmd*, in order (the first may be the cold one)."""
    return [run_checked(cmd, env) for _ in range(repeat)]


def top_level_imports(importtime_stderr: str) -> set[str]:
    """Top-level package names from `python -X importtime` output ("import time: … | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if not line.startswith("import time:") or line.rstrip().endswith("imported package"):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name:
            names.add(name.split(".")[0])
    return names


def help_imports() -> set[str]:
    """The top-level packages `python -m mnistlr --help` imports when it renders the help (no help cache)."""
    result = run_checked([sys.executable, "-X", "importtime", "-m", "mnistlr", "--help"],
                         child_env(MNISTLR_HELP_CACHE=""))
    return top_level_imports(result.stderr)


def count_compiles(args: list[str], workdir: Path) -> tuple[list[str], ProcResult]:
    """Run `mnistlr ARGS` in a child that counts Numba compilations; (compiled names, result)."""
    record = workdir / f"compiles-{os.getpid()}-{time.monotonic_ns()}.json"
    result = run_checked([sys.executable, "-c", COMPILE_PROBE, *args],
                         child_env(BENCH_COMPILES=str(record)))
    compiled = json.loads(record.read_text())
    record.unlink()
    return compiled, result


def compile_package() -> None:
    """Byte-compile mnistlr's modules, as installing a wheel does: an editable install under
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source in every process
    (tens of milliseconds of each `mnistlr` run), which no installed mnistlr pays."""
    import compileall

    import mnistlr

    compileall.compile_dir(str(Path(mnistlr.__file__).parent), quiet=1)


def numba_cache_dirs() -> list[str]:
    """Where Numba keeps mnistlr's compiled kernels: __pycache__ folders in the package, or NUMBA_CACHE_DIR."""
    import mnistlr

    package = Path(mnistlr.__file__).parent
    places = sorted({str(p.parent) for p in package.rglob("__pycache__/*.nbi")})
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom and Path(custom).is_dir() and any(Path(custom).rglob("*.nbi")):
        places.insert(0, custom)
    return places
