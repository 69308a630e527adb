"""Nothing lost: atomic writes, failed and interrupted runs, resumable fetches, determinism.

- Every file the tool writes goes to a temporary file in the same folder and is renamed
  into place (checked with an audit hook that sees every open and rename).
- A run that fails while writing never truncates or changes an existing file.
- Ctrl-C (SIGINT to the process group, as a terminal sends it) during fetch, train, sweep
  and predict -o ends with exit status 130, one line on stderr, no partial file; fetch
  resumes afterwards. These run real subprocesses (`python -m mnistlr`).
- Two runs with the same data, options and seed give identical weights, whatever the
  solver and the number of Numba threads.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import mnistlr.io.atomic
from mnistlr.io.idx import encode_idx, write_idx

INTERRUPTED = ("mnistlr: error: interrupted; nothing partial was left behind "
               "(run the same command again to finish)")
PRECIOUS = b"precious: a failed run must leave this file alone\n"


# ---------------------------------------------------------------- shared material

@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A small model trained on the bundled digits, 8×8 IDX files and their model."""
    from mnistlr.data.registry import load_dataset
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions
    from mnistlr.learn.persistence import save_model

    d = tmp_path_factory.mktemp("material")
    X, y = load_dataset("mnist-sample", "train")
    save_model(fit_model(X, y, TrainOptions(per_class=20, max_iter=20), dataset="mnist-sample"),
               d / "m28.joblib")
    rng = np.random.default_rng(3)
    write_idx(d / "img8.gz", rng.integers(0, 256, size=(40, 8, 8)).astype(np.uint8))
    write_idx(d / "lab8.gz", np.tile(np.array([0, 1], np.uint8), 20))
    save_model(fit_model(*_read8(d), TrainOptions(model="logistic", max_iter=20)), d / "m8.joblib")
    return d


def _read8(d: Path):
    from mnistlr.data.registry import load_pair

    return load_pair(d / "img8.gz", d / "lab8.gz")


def _tiny_dataset(folder: Path, n_train: int = 200, n_test: int = 50, seed: int = 0) -> dict:
    """Four gzip IDX files of random digits in *folder*; returns {file name: payload SHA-256}."""
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
              "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
              "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, array in arrays.items():
        raw = encode_idx(array)
        (folder / name).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        sums[name] = hashlib.sha256(raw).hexdigest()
    return sums


def _register_tiny(sums: dict) -> None:
    """Add the 'tiny' dataset (checked by payload SHA-256) to this process's registry."""
    from mnistlr.data import registry

    keys = {"train-images": "train-images-idx3-ubyte.gz", "train-labels": "train-labels-idx1-ubyte.gz",
            "test-images": "t10k-images-idx3-ubyte.gz", "test-labels": "t10k-labels-idx1-ubyte.gz"}
    registry.DATASETS["tiny"] = registry.DatasetSpec(
        name="tiny", description="random test digits",
        files={k: registry.FileSpec(name, None, sums[name]) for k, name in keys.items()})


@pytest.fixture
def tiny(tmp_path):
    """The 'tiny' dataset registered in-process, its source folder, and its checksums."""
    from mnistlr.data import registry

    sums = _tiny_dataset(tmp_path / "source")
    _register_tiny(sums)
    yield tmp_path / "source", sums
    registry.DATASETS.pop("tiny", None)


# ---------------------------------------------------------------- every write is atomic

_SPY: list | None = None


def _audit(event: str, args: tuple) -> None:
    if _SPY is None:
        return
    if event == "open":
        path, _, flags = args
        if isinstance(path, (str, bytes, os.PathLike)) and flags & (os.O_WRONLY | os.O_RDWR):
            _SPY.append(("write", os.path.abspath(os.fsdecode(path))))
    elif event == "os.rename":
        _SPY.append(("rename", os.path.abspath(os.fsdecode(args[0])), os.path.abspath(os.fsdecode(args[1]))))


sys.addaudithook(_audit)


def spied(run, *args) -> tuple:
    """Run the CLI with every file opened for writing and every rename recorded."""
    global _SPY
    _SPY = []
    try:
        result = run(*args)
    finally:
        events, _SPY = _SPY, None
    return result, events


def assert_written_atomically(events: list, root: Path, finals: list[Path]) -> None:
    """Every final file under *root* came from a rename of a temporary file beside it, and
    was never itself opened for writing; no temporary file is left over."""
    root = str(root.resolve())
    written = {e[1] for e in events if e[0] == "write" and e[1].startswith(root)}
    renamed = {e[2]: e[1] for e in events if e[0] == "rename" and e[2].startswith(root)}
    for final in map(lambda p: str(p.resolve()), finals):
        assert final not in written, f"{final} was opened for writing in place"
        assert final in renamed, f"{final} was not renamed into place"
        temp = renamed[final]
        assert os.path.dirname(temp) == os.path.dirname(final), f"{temp} is not beside {final}"
        assert temp in written and not os.path.exists(temp)
    leftovers = [p for p in Path(root).rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert not leftovers, leftovers


def test_train_sweep_predict_evaluate_and_fetch_write_atomically(material, tmp_path, cli, tiny):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.joblib").write_bytes(PRECIOUS)   # replaced, never truncated in place
    runs = {
        "train": (["train", "--train-images", material / "img8.gz", "--train-labels", material / "lab8.gz",
                   "--model", "logistic", "-o", out / "model.joblib", "-q"], [out / "model.joblib"]),
        "sweep": (["sweep", "--train-images", material / "img8.gz", "--train-labels", material / "lab8.gz",
                   "--model", "logistic", "--param", "l2=1e-3,1e-2", "--cv", "2", "-j", "1", "-q",
                   "--results", out / "trials.csv", "-o", out / "best.joblib"],
                  [out / "trials.csv", out / "best.joblib"]),
        "predict": (["predict", material / "m8.joblib", material / "img8.gz", "-o", out / "pred.csv"],
                    [out / "pred.csv"]),
        "evaluate": (["evaluate", material / "m8.joblib", "--images", material / "img8.gz", "--labels",
                      material / "lab8.gz", "--plot", out / "figs", "-q"],
                     [out / "figs" / f"{name}.png" for name in ("confusion", "roc", "learning_curves",
                                                                "weights")]),
        "fetch": (["fetch", "tiny", "--source", tiny[0], "--data-dir", out / "data", "-q"],
                  [out / "data" / "tiny" / name for name in tiny[1]]),
    }
    for name, (args, finals) in runs.items():
        result, events = spied(cli, *args)
        assert result.code == 0, (name, result.err)
        assert_written_atomically(events, out, finals)
        assert all(f.stat().st_size > 0 for f in finals), name


# ---------------------------------------------------------------- failed runs change nothing

def _fail_while_writing(monkeypatch, after_bytes: int = 100) -> None:
    """Writes through atomic_write fail (EIO) once *after_bytes* have gone into a temp file."""
    real = mnistlr.io.atomic.os.fdopen

    class Failing:
        def __init__(self, handle):
            self._handle, self._n = handle, 0

        def write(self, data):
            self._n += len(data)
            if self._n > after_bytes:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return self._handle.write(data)

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._handle.__exit__(*exc)

    class Os:  # the os module as mnistlr.io.atomic sees it, with a failing fdopen
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fdopen(*args, **kwargs):
            return Failing(real(*args, **kwargs))

    monkeypatch.setattr(mnistlr.io.atomic, "os", Os())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("command", ["train", "sweep", "predict", "evaluate"])
def test_a_write_failing_midway_leaves_existing_files_alone(command, material, tmp_path, cli, monkeypatch):
    out = tmp_path / "out"
    for name in ("model.joblib", "trials.csv", "pred.csv", "figs/confusion.png"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(PRECIOUS)
    data = ["--train-images", material / "img8.gz", "--train-labels", material / "lab8.gz", "--model", "logistic"]
    args = {"train": ["train", *data, "-o", out / "model.joblib"],
            "sweep": ["sweep", *data, "--param", "l2=1e-3,1e-2", "--cv", "2", "-j", "1", "--results",
                      out / "trials.csv"],
            "predict": ["predict", material / "m8.joblib", material / "img8.gz", "-o", out / "pred.csv"],
            "evaluate": ["evaluate", material / "m8.joblib", "--images", material / "img8.gz", "--labels",
                         material / "lab8.gz", "--plot", out / "figs"]}[command]
    before = _snapshot(out)
    _fail_while_writing(monkeypatch)
    result = cli(*args)
    monkeypatch.undo()
    assert result.code == 1, result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "Input/output error" in result.err
    assert _snapshot(out) == before


def test_predict_input_failing_after_rows_were_written_leaves_no_output(material, tmp_path, cli):
    """The input turns bad in a later batch, after earlier rows went to the temporary file."""
    good = ",".join(["0"] * 784)
    lines = [good] * 300 + [",".join(["0"] * 783 + ["999"])]
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "pred.csv"
    out.write_bytes(PRECIOUS)
    result = cli("predict", material / "m28.joblib", tmp_path / "late.csv", "--batch-size", 50, "-o", out)
    assert result.code == 1 and "line 301" in result.err and "above 255" in result.err
    assert out.read_bytes() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.csv", "pred.csv"]


def test_failed_forced_fetch_keeps_the_verified_files(tiny, tmp_path, cli):
    source, _ = tiny
    data = tmp_path / "data"
    assert cli("fetch", "tiny", "--source", source, "--data-dir", data, "-q").code == 0
    before = _snapshot(data)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in source.iterdir():
        (bad / f.name).write_bytes(f.read_bytes()[:-10])     # cut short: fails verification
    result = cli("fetch", "tiny", "--force", "--source", bad, "--data-dir", data, "-q")
    assert result.code == 1 and "checksum mismatch" in result.err and result.err.count("\n") == 1
    assert _snapshot(data) == before


def test_fetch_failure_without_quiet_ends_with_the_error_line(tiny, tmp_path, cli):
    """Per-source notes are progress on stderr; the error is the last line, and nothing is left."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("fetch", "tiny", "--source", empty, "--data-dir", tmp_path / "data")
    assert result.code == 1 and "Traceback" not in result.err
    lines = result.err.splitlines()
    assert lines[-1].startswith("mnistlr: error: could not fetch tiny/train-images")
    assert not any(line.startswith("mnistlr: error:") for line in lines[:-1])
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- Ctrl-C in real processes

def _env(tmp_path: Path) -> dict:
    return dict(os.environ, NO_COLOR="1", MNISTLR_DATA=str(tmp_path / "data"), PYTHONUNBUFFERED="1")


def _start(args: list, tmp_path: Path, stdin=None, script: Path | None = None) -> subprocess.Popen:
    """`python -m mnistlr ARGS` (or *script* ARGS) in a session of its own, like a job in a shell."""
    head = [sys.executable, str(script)] if script else [sys.executable, "-m", "mnistlr"]
    return subprocess.Popen([*head, *map(str, args)], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(tmp_path), start_new_session=True)


def _live_in_group(pgid: int) -> list[int]:
    """Processes of group *pgid* that are still running (zombies excluded)."""
    live = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                live.append(int(entry.name))
    return live


def _wait_until(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (status {proc.returncode}) before {what}: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _ctrl_c(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """SIGINT to the whole process group (what Ctrl-C does); returns (status, stderr)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the command hung after Ctrl-C")
    deadline = time.monotonic() + 20
    while _live_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _live_in_group(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"worker processes {left} outlived the interrupted command")
    return proc.returncode, err.decode()


def assert_interrupted(status: int, err: str, progress: bool = False, expected: str | None = None) -> None:
    """Status 130 and the one-line message last; before it only progress notes (with *progress*).

    expected: a pattern for the last line (default: the INTERRUPTED line)."""
    assert status == 130, err
    assert "Traceback" not in err
    lines = err.splitlines()
    if expected is None:
        assert lines[-1] == INTERRUPTED, err
    else:
        assert re.fullmatch(expected, lines[-1]), err
    if progress:
        assert not any(line.startswith("mnistlr:") for line in lines[:-1]), err
    else:
        assert len(lines) == 1, err


def test_ctrl_c_during_train(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(["train", "--dataset", "mnist-sample", "--solver", "sgd", "--epochs", 1000, "--batch-size", 1,
                   "--patience", 1000, "-o", out / "model.joblib"], tmp_path)
    time.sleep(4)   # imports, data, and well into the epochs
    assert proc.poll() is None, proc.communicate()[1].decode()
    assert_interrupted(*_ctrl_c(proc))
    assert list(out.iterdir()) == []


def test_ctrl_c_during_sweep_stops_the_workers(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(["sweep", "--dataset", "mnist-sample", "--solver", "sgd", "--batch-size", 1, "--epochs", 30,
                   "--patience", 30, "--param", "l2=log:1e-5:1e-2", "--n-iter", 20, "--cv", 3, "-j", 2,
                   "--results", out / "trials.csv", "-o", out / "best.joblib"], tmp_path)
    # wait until the loky workers run
    _wait_until(lambda: len(_live_in_group(proc.pid)) >= 3, proc, 60, "the sweep's workers started")
    time.sleep(2)
    assert_interrupted(*_ctrl_c(proc))
    assert list(out.iterdir()) == []


def test_ctrl_c_during_predict_to_a_file(material, tmp_path):
    """Images arrive on a pipe that promises a million; Ctrl-C lands while rows are being written."""
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(["predict", material / "m28.joblib", "-", "--batch-size", 100, "-o", out / "pred.csv"],
                  tmp_path, stdin=subprocess.PIPE)
    header = bytes([0, 0, 8, 3]) + np.asarray([1_000_000, 28, 28], ">u4").tobytes()
    images = np.random.default_rng(0).integers(0, 256, (500, 28, 28)).astype(np.uint8).tobytes()
    proc.stdin.write(header + images)
    proc.stdin.flush()

    def writing():
        parts = [p for p in out.iterdir() if p.name.endswith(".part")]
        return bool(parts) and parts[0].stat().st_size > 1000

    _wait_until(writing, proc, 60, "rows were written to the temporary file")
    status, err = _ctrl_c(proc)
    proc.stdin.close()
    assert_interrupted(status, err)
    assert list(out.iterdir()) == []


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Serves files from server.root, honouring Range; slowly while server.slow is set."""

    def do_GET(self):  # noqa: N802
        srv = self.server
        path = srv.root / self.path.lstrip("/")
        srv.requests.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        step = 8192 if srv.slow else len(data)
        try:
            for i in range(start, len(data), step):
                self.wfile.write(data[i:i + step])
                if srv.slow:
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def trickle_server(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    server.root, server.slow, server.requests = tmp_path / "www", True, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_ctrl_c_during_fetch_then_fetch_resumes(tmp_path, trickle_server):
    sums = _tiny_dataset(trickle_server.root, n_train=3000)
    script = tmp_path / "fetch_tiny.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_interrupts import _register_tiny
        _register_tiny({json.dumps(sums)})
        from mnistlr.cli import main
        sys.exit(main(sys.argv[1:]))
    """))
    url = f"http://127.0.0.1:{trickle_server.server_port}/"
    folder = tmp_path / "data" / "tiny"
    part = folder / ".train-images-idx3-ubyte.gz.part"
    args = ["fetch", "tiny", "--mirror", url, "--retries", 0, "--timeout", 20]
    proc = _start(args, tmp_path, script=script)
    _wait_until(lambda: part.is_file() and part.stat().st_size > 100_000, proc, 60, "the download was under way")
    # the message tells the truth: the partial file is kept, for the next fetch to resume
    assert_interrupted(*_ctrl_c(proc), progress=True,
                       expected=r"mnistlr: error: interrupted; the partial download "
                                r"\.train-images-idx3-ubyte\.gz\.part is kept in .*/data/tiny "
                                r"\(run the same command again to resume it\)")
    # no file under its final name; the hidden partial file is what a rerun resumes from
    assert [p.name for p in folder.iterdir()] == [part.name]
    kept = part.stat().st_size
    trickle_server.slow = False
    done = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(sums)
    assert ("/train-images-idx3-ubyte.gz", f"bytes={kept}-") in trickle_server.requests
    for name, digest in sums.items():
        assert hashlib.sha256(gzip.decompress((folder / name).read_bytes())).hexdigest() == digest


# ---------------------------------------------------------------- determinism

SOLVERS = [("softmax", "lbfgs"), ("softmax", "gd"), ("softmax", "sgd"), ("logistic", "lbfgs"),
           ("logistic", "sgd"), ("ridge", "closed")]


@pytest.fixture(scope="module")
def digits():
    from mnistlr.data.registry import load_dataset

    return load_dataset("mnist-sample", "train")


@pytest.mark.parametrize("model,solver", SOLVERS, ids=[f"{m}-{s}" for m, s in SOLVERS])
def test_same_seed_same_weights(model, solver, digits):
    """Twice, and with 1 or 2 Numba threads (1,500 rows: the parallel kernels run)."""
    import numba

    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    # each solver's own caps, and a seeded start where there is one (ridge's closed form has neither)
    extra = {"lbfgs": {"max_iter": 15, "init": "normal"}, "closed": {}}.get(solver, {"epochs": 4, "init": "normal"})
    options = TrainOptions(model=model, solver=solver, per_class=150, seed=7, **extra)
    threads = numba.get_num_threads()
    fits = []
    try:
        for n in (threads, threads, 1):
            numba.set_num_threads(n)
            fits.append(fit_model(*digits, options))
    finally:
        numba.set_num_threads(threads)
    first = fits[0]
    for other in fits[1:]:
        np.testing.assert_array_equal(other.W, first.W)
        np.testing.assert_array_equal(other.b, first.b)
        assert [r["train_loss"] for r in other.meta["history"]] == [r["train_loss"] for r in first.meta["history"]]
        assert other.meta["data_sha256"] == first.meta["data_sha256"]


class _SignalInFinaliser:
    def __del__(self):
        signal.raise_signal(signal.SIGTERM)   # its Interrupted is raised inside __del__


def _swallowed_by_except_exception():
    try:
        signal.raise_signal(signal.SIGTERM)
    except Exception:   # as matplotlib's optional imports do
        pass


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="needs signal.raise_signal")
@pytest.mark.parametrize("swallow", [_swallowed_by_except_exception, lambda: _SignalInFinaliser()])
def test_a_signal_whose_exception_is_swallowed_still_ends_the_run(cli, monkeypatch, tmp_path, swallow):
    """SIGTERM during a library's `except Exception`, or inside a finaliser ("Exception ignored in"
    and a traceback), is not lost: one line and status 143 once the command returns."""
    model = tmp_path / "m.joblib"
    assert cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    from mnistlr.api import inspect as api_inspect

    real = api_inspect.inspect

    def inspect(*args, **kwargs):
        swallow()
        return real(*args, **kwargs)

    monkeypatch.setattr(api_inspect, "inspect", inspect)
    result = cli("inspect", model)
    assert result.code == 128 + signal.SIGTERM
    assert result.err.strip().splitlines() == ["mnistlr: error: terminated (SIGTERM); nothing partial was left "
                                               "behind (run the same command again to finish)"]


def test_ctrl_c_while_the_command_line_still_imports_is_one_line(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text("import sys\nfrom mnistlr.cli import app\nsys.stderr.write('ready\\n')\nsys.stderr.flush()\n"
                      "app()\n")
    # `from mnistlr.cli import app` imports no Typer, NumPy or Rich: they load inside app(), after its
    # first statement installs the early handler
    proc = _start(["train", "--dataset", "mnist-sample", "-o", tmp_path / "model.joblib"], tmp_path, script=script)
    assert proc.stderr.readline() == b"ready\n"
    # past the script's own write (a signal inside it is the script's, not mnistlr's), well inside the
    # imports of app() (~0.2 s): on a loaded machine the signal once landed before app() had started
    time.sleep(0.03)
    status, err = _ctrl_c(proc)
    assert status == 130 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and re.fullmatch(r"mnistlr: error: (stopped by SIGINT before the command "
                                                       r"started; nothing was written|interrupted.*)", err.strip()), err
    assert not (tmp_path / "model.joblib").exists()
