"""The bad-input catalogue: every bad input to fetch, train, evaluate, predict and sweep
gets one line on stderr naming the problem and the fix, exit status 1 (2 for usage
errors), no traceback, nothing on stdout, and no file created or changed.

Each case runs in-process (the `cli` fixture) in a work folder that holds output
files with known content; the whole folder (and the data directory) is compared
byte for byte before and after the run.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import os
import re
import shlex
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

import mnistlr.io.atomic
from mnistlr.io.idx import encode_idx, write_idx
from mnistlr.learn.persistence import FORMAT_VERSION, content_hash, model_to_dict, save_model

PRECIOUS = b"precious: a failed run must leave this file alone\n"
# output files every case finds in its work folder, and must find unchanged
OUTPUTS = ("model.joblib", "pred.csv", "results.csv", "figs/confusion.png", "file")


def header(code: int, dims: tuple[int, ...]) -> bytes:
    """An IDX header: 00 00 TYPE NDIM, then one big-endian uint32 per dimension."""
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes()


class _RunsCode:
    """Unpickling this would create the folder *mark*: proof that code ran."""

    def __init__(self, mark: str):
        self.mark = mark

    def __reduce__(self):
        return (os.mkdir, (self.mark,))


def _write_models(d: Path, X, y) -> None:
    """m28 (softmax, 10 digits, 28×28), m8 (logistic 0/1 on 8×8 files) and broken variants."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    m28 = fit_model(X, y, TrainOptions(per_class=20, max_iter=20), dataset="mnist-sample")
    save_model(m28, d / "m28.joblib")
    X8, y8 = _images8(), np.tile(np.array([0, 1], np.uint8), 10)
    save_model(fit_model(X8, y8, TrainOptions(model="logistic", max_iter=20)), d / "m8.joblib")
    (d / "notjoblib.joblib").write_text("these are not the weights you are looking for\n")
    data = bytearray((d / "m28.joblib").read_bytes())
    at = bytes(data).find(m28.W.tobytes()[4000:4016])
    data[at] ^= 0x40
    (d / "tampered.joblib").write_bytes(bytes(data))
    (d / "truncated.joblib").write_bytes(bytes(data[: len(data) // 2]))
    joblib.dump({"magic": "mnistlr-model", "W": _RunsCode(str(d / "ran"))}, d / "evil.joblib")
    payload = model_to_dict(m28)
    payload["format_version"] = FORMAT_VERSION + 1
    payload["sha256"] = content_hash(payload)
    joblib.dump(payload, d / "future.joblib")


def _images8() -> np.ndarray:
    return np.random.default_rng(8).integers(0, 256, size=(20, 8, 8)).astype(np.uint8)


def _write_idx_files(d: Path) -> None:
    images = _images8()
    raw = encode_idx(images)
    labels = np.tile(np.array([0, 1], np.uint8), 10)
    write_idx(d / "img8.gz", images)
    write_idx(d / "lab8.gz", labels)
    write_idx(d / "lab8_15.gz", labels[:15])
    write_idx(d / "lab8_one.gz", np.ones(20, np.uint8))
    write_idx(d / "lab8_7.gz", np.where(np.arange(20) % 5 == 0, 7, labels).astype(np.uint8))
    write_idx(d / "zeros.gz", np.zeros((20, 8, 8), np.uint8))
    files = {
        "empty.idx": b"",
        "magic.idx": b"\x01\x02" + raw[2:],
        "type.idx": header(0x07, (20, 8, 8)) + raw[16:],
        "ndim0.idx": header(0x08, ()) + raw[16:],
        "dim0.idx": header(0x08, (0, 8, 8)),
        "negdim.idx": header(0x08, (2**32 - 1, 8, 8)) + raw[16:],   # −1 read as signed
        "trunc.idx": raw[:-100],
        "trail.idx": raw + b"\x00\x00\x00",
        "gzcut.gz": gzip.compress(raw, mtime=0)[:300],
    }
    for name, content in files.items():
        (d / name).write_bytes(content)


def _write_predict_inputs(d: Path) -> None:
    def pixels(dtype, where, value):
        X = np.zeros((3, 28, 28), dtype)
        X[where] = value
        np.save(d / f"{dtype.__name__}-{value}.npy", X)
        return X

    pixels(np.float32, (1, 3, 3), np.nan)
    pixels(np.float32, (2, 3, 3), np.inf)
    pixels(np.float32, (1, 5, 5), 1.5)
    pixels(np.int16, (2, 0, 0), -3)
    pixels(np.int16, (0, 9, 9), 300)
    row = ",".join(["0"] * 784)
    bad = row.split(",")
    bad[4] = "abc"
    (d / "cell.csv").write_text(f"{row}\n{row}\n{','.join(bad)}\n")
    (d / "ragged.csv").write_text(f"{row}\n{row}\n{','.join(['0'] * 783)}\n")
    (d / "huge.gz").write_bytes(gzip.compress(header(0x08, (1, 2**32 - 1, 2**32 - 1)), mtime=0))
    npy = io.BytesIO()
    np.save(npy, np.zeros((3, 28, 28), np.uint8))
    (d / "badheader.npy").write_bytes(npy.getvalue().replace(b"(3, 28, 28)", b"(3, 28, 28(", 1))
    (d / "noimages").mkdir()
    (d / "noimages" / "notes.txt").write_text("no digits here\n")
    (d / "sourcejunk").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (d / "sourcejunk" / name).write_bytes(b"\x1f\x8b not really mnist")
    (d / "emptysource").mkdir()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of good and bad inputs and model files, made once for the module."""
    from mnistlr.data.registry import load_dataset

    d = tmp_path_factory.mktemp("inputs")
    X, y = load_dataset("mnist-sample", "train")
    _write_idx_files(d)
    _write_predict_inputs(d)
    _write_models(d, X, y)
    return d


@pytest.fixture
def work(tmp_path) -> Path:
    """The work folder, with output files of known content."""
    w = tmp_path / "work"
    for name in OUTPUTS:
        (w / name).parent.mkdir(parents=True, exist_ok=True)
        (w / name).write_bytes(PRECIOUS)
    return w


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under *root*: relative path → bytes (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def assert_one_line_error(result, code: int, problem: str, fix: str) -> str:
    """Exit *code*, nothing on stdout, one 'mnistlr: error:' line matching *problem* and *fix*."""
    assert result.code == code, f"exit {result.code}, expected {code}; stderr: {result.err!r}"
    assert "Traceback" not in result.err
    assert result.out == "", f"stdout should be empty on failure: {result.out!r}"
    lines = result.err.splitlines()
    assert len(lines) == 1 and result.err.endswith("\n"), f"not one line: {result.err!r}"
    line = lines[0]
    assert line.startswith("mnistlr: error: "), line
    assert re.search(problem, line, re.I), f"problem /{problem}/ not named in: {line}"
    assert re.search(fix, line, re.I), f"fix /{fix}/ not named in: {line}"
    return line


# ---------------------------------------------------------------- simulated failures

def _enospc(monkeypatch) -> None:
    """The disk is full: syncing any file fails with ENOSPC (nothing reaches a device)."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mnistlr.io.atomic.os, "fsync", full)


def _unreadable(monkeypatch) -> None:
    """Reading any file named unreadable* fails with EACCES (root ignores chmod)."""
    real_open = open

    def guarded(file, *args, **kwargs):
        if Path(str(file)).name.startswith("unreadable"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    import mnistlr.io.idx
    import mnistlr.io.inputs

    monkeypatch.setattr(mnistlr.io.idx, "open", guarded, raising=False)
    monkeypatch.setattr(mnistlr.io.inputs, "open", guarded, raising=False)
    real_os_open = os.open

    def guarded_os_open(file, *args, **kwargs):
        if Path(str(file)).name.startswith("unreadable"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_os_open)


def _empty_stdin(monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))


PATCHES = {"enospc": _enospc, "unreadable": _unreadable, "stdin": _empty_stdin}


@dataclasses.dataclass
class Case:
    """`mnistlr ARGS` ({i}: the inputs folder, {w}: the work folder) and what it must answer."""

    id: str
    args: str
    code: int
    problem: str
    fix: str
    patch: str | None = None


USAGE_HINT = r"see 'mnistlr \w+ --help'"
TRAIN8 = "train --train-images {i}/img8.gz --train-labels {i}/lab8.gz -o {w}/model.joblib"
SAMPLE = "--dataset mnist-sample --per-class 5"
FETCH_FIX = r"--mirror URL or --source DIR"
# Typer refuses NaN with its range message; TrainOptions.validate would name the value
NAN_FIX = USAGE_HINT + r"|give a (non-negative|positive) value"

IDX_CASES = [
    Case("idx-empty", "train --train-images {i}/empty.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"empty\.idx: empty (file|input)", r"(fetch or copy it again|give a non-empty)"),
    Case("idx-magic", "train --train-images {i}/magic.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"magic\.idx: not an IDX file", r"give an IDX file"),
    Case("idx-type-code", "train --train-images {i}/type.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"type\.idx: unknown IDX element type 0x07", r"give an IDX file"),
    Case("idx-zero-ndim", "train --train-images {i}/ndim0.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"ndim0\.idx: .*zero dimensions", r"give an IDX file"),
    Case("idx-zero-dim", "train --train-images {i}/dim0.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"dim0\.idx: .*dimension of size 0", r"give an IDX file"),
    Case("idx-negative-dim", "train --train-images {i}/negdim.idx --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"negdim\.idx: truncated", r"copy it again"),
    Case("idx-truncated", "train --train-images {i}/trunc.idx --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"trunc\.idx: truncated", r"copy it again"),
    Case("idx-trailing-bytes", "train --train-images {i}/trail.idx --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"trail\.idx: over-long: 3 bytes", r"copy it again"),
    Case("idx-gzip-cut", "train --train-images {i}/gzcut.gz --train-labels {i}/lab8.gz -o {w}/model.joblib",
         1, r"gzcut\.gz: gzip stream is cut off", r"copy it again"),
    Case("idx-labels-as-images", "train --train-images {i}/lab8.gz --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"lab8\.gz: holds 20 labels", r"pass it as the labels file"),
    Case("idx-images-as-labels", "train --train-images {i}/img8.gz --train-labels {i}/img8.gz "
         "-o {w}/model.joblib", 1, r"img8\.gz: holds images, not labels", r"pass it as the images file"),
    Case("idx-counts-differ", "train --train-images {i}/img8.gz --train-labels {i}/lab8_15.gz "
         "-o {w}/model.joblib", 1, r"20 images but lab8_15\.gz holds 15 labels", r"labels file that belongs"),
    Case("evaluate-idx-magic", "evaluate {i}/m8.joblib --images {i}/magic.idx --labels {i}/lab8.gz",
         1, r"not an IDX file", r"give an IDX file"),
    Case("evaluate-counts-differ", "evaluate {i}/m8.joblib --images {i}/img8.gz --labels {i}/lab8_15.gz",
         1, r"holds 20 images but .* 15 labels", r"labels file that belongs"),
    Case("evaluate-labels-outside-classes", "evaluate {i}/m8.joblib --images {i}/img8.gz "
         "--labels {i}/lab8_7.gz", 1, r"labels \(7\) the model does not know", r"--only-model-classes"),
    Case("sweep-idx-truncated", "sweep --train-images {i}/trunc.idx --train-labels {i}/lab8.gz "
         "--param l2=1e-3,1e-2 --cv 2 --results {w}/results.csv", 1, r"trunc\.idx: truncated",
         r"copy it again"),
]

FILE_CASES = [
    Case("train-images-missing", "train --train-images {i}/absent.gz --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"absent\.gz: no such file", r"check the path"),
    Case("train-images-directory", "train --train-images {i}/noimages --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"noimages: is a directory", r"give the IDX file"),
    Case("train-images-unreadable", "train --train-images {i}/unreadable.gz --train-labels {i}/lab8.gz "
         "-o {w}/model.joblib", 1, r"unreadable\.gz: permission denied", r"permissions", "unreadable"),
    Case("train-output-missing-dir", TRAIN8.replace("{w}/model", "{w}/nodir/model"),
         1, r"directory .*nodir does not exist", r"create it first"),
    Case("train-output-parent-is-file", TRAIN8.replace("{w}/model", "{w}/file/model"),
         1, r"parent of this path is a file", r"inside a directory"),
    Case("train-output-is-directory", TRAIN8.replace("{w}/model.joblib", "{w}/figs"),
         1, r"figs: is a directory", r"give a file name"),
    Case("train-disk-full", TRAIN8, 1, r"no space left on device", r"free some disk space", "enospc"),
    Case("evaluate-model-missing", "evaluate {i}/absent.joblib", 1, r"no such model file",
         r"train one with"),
    Case("evaluate-model-directory", "evaluate {i}/noimages", 1, r"is a directory, not a model file",
         r"give the \.joblib file"),
    Case("evaluate-model-unreadable", "evaluate {i}/unreadable.joblib", 1, r"permission denied",
         r"permissions", "unreadable"),
    Case("evaluate-plot-is-file", "evaluate {i}/m8.joblib --images {i}/img8.gz --labels {i}/lab8.gz "
         "--plot {w}/file", 1, r"file: is a file, not a folder", r"give a folder name"),
    Case("evaluate-plot-parent-is-file", "evaluate {i}/m8.joblib --images {i}/img8.gz "
         "--labels {i}/lab8.gz --plot {w}/file/figs", 1, r"parent of this path is a file",
         r"inside a directory"),
    Case("evaluate-plot-disk-full", "evaluate {i}/m8.joblib --images {i}/img8.gz --labels {i}/lab8.gz "
         "--plot {w}/figs", 1, r"no space left on device", r"free some disk space", "enospc"),
    Case("predict-input-missing", "predict {i}/m28.joblib {i}/absent.idx -o {w}/pred.csv", 1,
         r"absent\.idx: no such file", r"check the path"),
    Case("predict-input-unreadable", "predict {i}/m28.joblib {i}/unreadable.idx -o {w}/pred.csv", 1,
         r"permission denied", r"permissions", "unreadable"),
    Case("predict-output-missing-dir", "predict {i}/m28.joblib {i}/float32-1.5.npy --format csv "
         "-o {w}/nodir/pred.csv", 1, r"nodir does not exist", r"create it first"),
    Case("predict-output-parent-is-file", "predict {i}/m8.joblib {i}/img8.gz -o {w}/file/pred.csv", 1,
         r"parent of this path is a file", r"inside a directory"),
    Case("predict-disk-full-on-write", "predict {i}/m8.joblib {i}/img8.gz -o {w}/pred.csv", 1,
         r"no space left on device", r"free some disk space", "enospc"),
    Case("sweep-results-missing-dir", "sweep --train-images {i}/img8.gz --train-labels {i}/lab8.gz "
         "--param l2=1e-3,1e-2 --cv 2 --results {w}/nodir/results.csv", 1, r"nodir does not exist",
         r"create it first"),
    Case("sweep-results-disk-full", "sweep --train-images {i}/img8.gz --train-labels {i}/lab8.gz "
         "--model logistic --param l2=1e-3,1e-2 --cv 2 -j 1 --results {w}/results.csv", 1,
         r"no space left on device", r"free some disk space", "enospc"),
    Case("fetch-data-dir-under-file", "fetch mnist --data-dir {w}/file/data", 1,
         r"cannot create the dataset folder", r"writable --data-dir"),
    Case("fetch-disk-full", "fetch mnist -q --source {i}/sourcejunk", 1, r"no space left on device",
         r"free some disk space", "enospc"),
]

OPTION_CASES = [
    Case("train-negative-l2", f"train {SAMPLE} --l2 -1 -o {{w}}/model.joblib", 2,
         r"--l2.*(greater than or equal to 0|not in the range (x>=0|0<=x))", USAGE_HINT),
    Case("train-nan-l2", f"train {SAMPLE} --l2 nan -o {{w}}/model.joblib", 2,
         r"--l2.*(greater than or equal to 0|not in the range|must be a finite number)", NAN_FIX),
    Case("train-nan-l1", f"train {SAMPLE} --solver gd --l1 nan -o {{w}}/model.joblib", 2,
         r"--l1.*(greater than or equal to 0|not in the range|must be a finite number)", NAN_FIX),
    Case("train-inf-C", f"train {SAMPLE} -C inf -o {{w}}/model.joblib", 2,
         r"--C must be a finite number > 0", r"positive value"),
    Case("train-negative-lr", f"train {SAMPLE} --solver sgd --lr -0.1 -o {{w}}/model.joblib", 2,
         r"--lr.*(greater than or equal to 0|not in the range (x>=0|0<=x))", USAGE_HINT),
    Case("train-zero-lr", f"train {SAMPLE} --solver sgd --lr 0 -o {{w}}/model.joblib", 2,
         r"--lr must be > 0", r"positive value"),
    Case("train-nan-lr", f"train {SAMPLE} --solver gd --lr nan -o {{w}}/model.joblib", 2,
         r"--lr.*(greater than or equal to 0|not in the range|must be a finite number)", NAN_FIX),
    Case("train-zero-epochs", f"train {SAMPLE} --solver gd --epochs 0 -o {{w}}/model.joblib", 2,
         r"--epochs.*(greater than or equal to 1|not in the range (x>=1|1<=x))", USAGE_HINT),
    Case("train-zero-batch", f"train {SAMPLE} --solver sgd --batch-size 0 -o {{w}}/model.joblib", 2,
         r"--batch-size.*(greater than or equal to 1|not in the range (x>=1|1<=x))", USAGE_HINT),
    Case("train-one-class", f"train {SAMPLE} --classes 3 -o {{w}}/model.joblib", 2,
         r"--classes.*fewer than two distinct labels", r"e\.g\. 3,8"),
    Case("train-classes-not-numbers", f"train {SAMPLE} --classes three,eight -o {{w}}/model.joblib", 2,
         r"not a comma-separated list of labels", r"e\.g\. 3,8"),
    Case("train-unknown-classes", f"train {SAMPLE} --classes 3,42 -o {{w}}/model.joblib", 2,
         r"label\(s\) 42 do not occur", r"choose among 0, 1"),
    Case("train-val-size-too-large", f"train {SAMPLE} --val-size 500 -o {{w}}/model.joblib", 2,
         r"--val-size 500 leaves no training data \(50 images", r"smaller than 50"),
    Case("train-l1-with-ridge", f"train {SAMPLE} -m ridge --l1 1e-4 -o {{w}}/model.joblib", 2,
         r"--l1 does not apply to ridge", r"--model softmax or logistic"),
    Case("train-l2-auto-with-gd", f"train {SAMPLE} --solver gd --l2 auto -o {{w}}/model.joblib", 2,
         r"--l2 auto runs a path of L-BFGS fits", r"drop --solver"),
    Case("train-l2-word", f"train {SAMPLE} --l2 strong -o {{w}}/model.joblib", 2,
         r"--l2.*'strong' is neither a number nor auto", USAGE_HINT),
    Case("train-closed-for-softmax", f"train {SAMPLE} --solver closed -o {{w}}/model.joblib", 2,
         r"closed is for ridge only", r"use --solver lbfgs"),
    Case("train-unknown-model", f"train {SAMPLE} --model tree -o {{w}}/model.joblib", 2,
         r"--model.*'tree' is not one of", USAGE_HINT),
    Case("train-images-without-labels", "train --train-images {i}/img8.gz -o {w}/model.joblib", 1,
         r"img8.gz: holds images but no labels", r"give the labels too, with --train-labels:"),
    Case("train-labels-without-images", "train --train-labels {i}/img8.gz -o {w}/model.joblib", 2,
         r"--train-labels goes with --train-images", r"give the images too"),
    Case("train-unknown-dataset", "train --dataset emnist -o {w}/model.joblib", 2,
         r"unknown dataset 'emnist'", r"known datasets: mnist"),
    Case("train-dataset-not-fetched", "train --dataset kmnist -o {w}/model.joblib", 1,
         r"dataset 'kmnist' is not fetched", r"mnistlr fetch kmnist"),
    Case("sweep-param-no-equals", f"sweep {SAMPLE} --param l2 --cv 2", 2,
         r"--param 'l2': expected NAME=SPEC", r"accepted forms"),
    Case("sweep-param-not-a-number", f"sweep {SAMPLE} --param l2=log:abc:1 --cv 2", 2,
         r"'abc' is not a number", r"accepted forms"),
    Case("sweep-param-bad-range", f"sweep {SAMPLE} --param l2=log:1:1e-3 --cv 2", 2,
         r"LOW \(1\) must be below HIGH", r"accepted forms"),
    Case("sweep-param-unknown-name", f"sweep {SAMPLE} --param depth=1,2 --cv 2", 2,
         r"'depth' is not a searchable", r"accepted forms"),
    Case("sweep-param-fixed-name", f"sweep {SAMPLE} --param seed=1,2 --cv 2", 2,
         r"'seed' .* is fixed", r"pass it as --seed"),
    Case("sweep-param-nan", f"sweep {SAMPLE} --param lr=nan,1 --solver gd --cv 2", 2,
         r"'nan' is not a finite number", r"accepted forms"),
    Case("sweep-cv-larger-than-class", f"sweep {SAMPLE} --param l2=1e-3,1e-2 --cv 6", 2,
         r"--cv 6 is more than the 5 image\(s\) of class", r"use --cv 5 or fewer"),
    Case("sweep-l1-with-ridge", f"sweep {SAMPLE} -m ridge --param l1=1e-4,1e-3 --cv 2", 2,
         r"--l1 does not apply to ridge", r"--model softmax or logistic"),
    Case("sweep-refit-without-output", f"sweep {SAMPLE} --param l2=1e-3,1e-2 --cv 2 --refit", 2,
         r"--refit needs -o PATH", r"--refit -o best\.joblib"),
    Case("sweep-dask-without-scheduler", f"sweep {SAMPLE} --param l2=1e-3,1e-2 --cv 2 --backend dask", 2,
         r"--backend dask needs --scheduler", r"--scheduler tcp://"),
    Case("sweep-zero-budget", f"sweep {SAMPLE} --param l2=1e-3,1e-2 --cv 2 --budget 0", 2,
         r"--budget must be a positive number", r"--budget 600"),
    Case("fetch-unknown-dataset", "fetch emnist", 2, r"unknown dataset 'emnist'", r"known datasets"),
    Case("fetch-mirror-not-url", "fetch mnist --mirror ftp.example.org/mnist", 2,
         r"--mirror ftp\.example\.org/mnist: not an http", r"base URL"),
    Case("fetch-source-missing", "fetch mnist --source {i}/absent", 2, r"--source .*absent: not a directory",
         r"folder that holds the four"),
    Case("fetch-zero-timeout", "fetch mnist --timeout 0", 2, r"--timeout.*(greater than or equal to 0\.1|not in the range (x>=0\.1|0\.1<=x))", USAGE_HINT),
    Case("fetch-negative-retries", "fetch mnist --retries -1", 2, r"--retries.*(greater than or equal to 0|not in the range (x>=0|0<=x))",
         USAGE_HINT),
    Case("fetch-source-fails-checksum", "fetch mnist -q --source {i}/sourcejunk", 1,
         r"could not fetch mnist/train-images.*not the published mnist files.*checksum mismatch",
         r"import them: mnistlr import NAME .*sourcejunk/train-images-idx3-ubyte.gz"),
    Case("fetch-mirror-is-a-file-url", "fetch mnist -q --retries 0 --mirror file://{i}/emptysource/", 2,
         r"--mirror file://.*emptysource/: not an http:// or https:// URL", r"--source DIR"),
    Case("fetch-source-lacks-files", "fetch mnist -q --source {i}/emptysource/", 1,
         r"could not fetch mnist/train-images.*emptysource holds no train-images", r"import them"),
    Case("predict-zero-batch", "predict {i}/m28.joblib {i}/float32-1.5.npy --batch-size 0", 2,
         r"--batch-size.*(greater than or equal to 1|not in the range (x>=1|1<=x))", USAGE_HINT),
    Case("predict-top-k-too-large", "predict {i}/m28.joblib {i}/img8.gz --top-k 11", 2,
         r"--top-k 11 is not between 1 and the model's 10 classes", r"give 1 to 10"),
    Case("evaluate-images-without-labels", "evaluate {i}/m8.joblib --images {i}/img8.gz", 1,
         r"img8.gz: holds images but no labels", r"give the labels too, with --labels:"),
    Case("evaluate-model-without-dataset", "evaluate {i}/m8.joblib", 2,
         r"does not record a dataset name \(it was trained on files or arrays, not a named dataset\)",
         r"give --dataset NAME"),
    Case("evaluate-bad-split", "evaluate {i}/m28.joblib --split validation", 2,
         r"--split.*'validation' is not one of", USAGE_HINT),
]

MODEL_CASES = [
    Case(f"{command}-model-{kind}", f"{command} {{i}}/{kind}.joblib" + (
        " {i}/img8.gz -o {w}/pred.csv" if command == "predict" else ""), 1, problem, fix)
    for command in ("evaluate", "predict")
    for kind, problem, fix in [
        ("notjoblib", r"not a mnistlr model file", r"written by 'mnistlr train'"),
        ("tampered", r"content hash does not match", r"retrain the model or restore"),
        ("truncated", r"damaged or truncated model file", r"retrain the model or restore"),
        ("evil", r"refusing to load: the file asks for '(posix|os)\.mkdir'", r"nothing in it was run"),
        ("future", rf"format version {FORMAT_VERSION + 1} is not supported", r"retrain the model"),
    ]
] + [
    Case("evaluate-28x28-model-on-8x8", "evaluate {i}/m28.joblib --images {i}/img8.gz --labels {i}/lab8.gz",
         1, r"img8.gz: input images are 8×8 but the model expects 28×28", r"images of the shape the model"),
    Case("predict-28x28-model-on-8x8", "predict {i}/m28.joblib {i}/img8.gz -o {w}/pred.csv",
         1, r"images are 8×8 but the model expects 28×28", r"images of the shape the model"),
]

PREDICT_INPUT_CASES = [
    Case("predict-nan-pixels", "predict {i}/m28.joblib {i}/float32-nan.npy -o {w}/pred.csv", 1,
         r"image 1 holds NaN", r"pixels must be integers 0–255"),
    Case("predict-inf-pixels", "predict {i}/m28.joblib {i}/float32-inf.npy -o {w}/pred.csv", 1,
         r"image 2 holds an infinite value", r"pixels must be integers 0–255"),
    Case("predict-float-above-1", "predict {i}/m28.joblib {i}/float32-1.5.npy -o {w}/pred.csv", 1,
         r"image 1 holds 1\.5: float pixels are either in \[0, 1\] or on the 0–255 scale", r"np\.clip"),
    Case("predict-negative-pixel", "predict {i}/m28.joblib {i}/int16--3.npy -o {w}/pred.csv", 1,
         r"image 2 holds a negative pixel value \(-3\)", r"pixels must be integers 0–255"),
    Case("predict-pixel-above-255", "predict {i}/m28.joblib {i}/int16-300.npy -o {w}/pred.csv", 1,
         r"image 0 holds 300, above 255", r"pixels must be integers 0–255"),
    Case("predict-csv-non-numeric", "predict {i}/m28.joblib {i}/cell.csv -o {w}/pred.csv", 1,
         r"cell\.csv: line 3, column 5: 'abc' is not a number", r"give one image per row"),
    Case("predict-csv-ragged", "predict {i}/m28.joblib {i}/ragged.csv -o {w}/pred.csv", 1,
         r"ragged\.csv: line 3 holds 783 values, expected 784", r"same length"),
    Case("predict-empty-stdin", "predict {i}/m28.joblib - -o {w}/pred.csv", 1, r"<stdin>: empty input",
         r"give a non-empty", "stdin"),
    Case("predict-labels-as-input", "predict {i}/m8.joblib {i}/lab8.gz -o {w}/pred.csv", 1,
         r"holds 20 labels", r"give the images file"),
    Case("predict-trailing-bytes", "predict {i}/m8.joblib {i}/trail.idx -o {w}/pred.csv", 1,
         r"trail\.idx: over-long", r"copy the file again"),
    Case("predict-truncated", "predict {i}/m8.joblib {i}/trunc.idx -o {w}/pred.csv", 1,
         r"trunc\.idx: truncated", r"copy the file again"),
    Case("predict-gzip-cut", "predict {i}/m8.joblib {i}/gzcut.gz -o {w}/pred.csv", 1,
         r"gzcut\.gz: gzip stream is cut off", r"copy it again"),
    Case("predict-gigantic-dimensions", "predict {i}/m28.joblib {i}/huge.gz -o {w}/pred.csv", 1,
         r"4294967295×4294967295 but the model expects 28×28", r"images of the shape the model"),
    Case("predict-npy-header-unparsable", "predict {i}/m28.joblib {i}/badheader.npy -o {w}/pred.csv", 1,
         r"badheader\.npy: damaged \.npy header", r"copy the file again"),
    Case("predict-folder-without-images", "predict {i}/m28.joblib {i}/noimages -o {w}/pred.csv", 1,
         r"noimages.*no image files", r"give|png"),
]

TRAINING_DATA_CASES = [
    Case("train-single-class", "train --train-images {i}/img8.gz --train-labels {i}/lab8_one.gz "
         "-o {w}/model.joblib", 1, r"single class \(\[1\]\)", r"at least two classes"),
    Case("sweep-single-class", "sweep --train-images {i}/img8.gz --train-labels {i}/lab8_one.gz "
         "--param l2=1e-3,1e-2 --cv 2 --results {w}/results.csv", 1, r"single class",
         r"check --classes and the labels file"),
    Case("train-lr-diverges", f"train {SAMPLE} --solver gd --lr 1e30 -o {{w}}/model.joblib", 1,
         r"training diverged at epoch \d+: loss [\d.]+ → (nan|inf)", r"use --lr ≤ \S+, the estimated safe step"),
    Case("train-sgd-lr-diverges", f"train {SAMPLE} --solver sgd --batch-size 8 --lr 1e30 "
         "-o {w}/model.joblib", 1, r"training diverged", r"use --lr ≤ \S+, the estimated safe step"),
]

CATALOGUE = IDX_CASES + FILE_CASES + OPTION_CASES + MODEL_CASES + PREDICT_INPUT_CASES + TRAINING_DATA_CASES


def test_the_catalogue_is_large_and_covers_every_command():
    assert len(CATALOGUE) >= 40
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)
    commands = {c.args.split()[0] for c in CATALOGUE}
    assert commands == {"fetch", "train", "evaluate", "predict", "sweep"}


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input(case: Case, inputs, work, tmp_path, cli, monkeypatch):
    before = snapshot(tmp_path)
    given = snapshot(inputs)
    if case.patch:
        PATCHES[case.patch](monkeypatch)
    result = cli(*shlex.split(case.args.format(i=inputs, w=work)))
    monkeypatch.undo()
    assert_one_line_error(result, case.code, case.problem, case.fix)
    assert snapshot(tmp_path) == before, "a failed run created or changed a file"
    assert snapshot(inputs) == given, "a failed run changed an input"
    assert not (inputs / "ran").exists(), "code inside a model file ran"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; "
                    "the simulated *-unreadable cases cover this")
def test_unreadable_file_by_permissions(inputs, work, tmp_path, cli):
    locked = tmp_path / "locked.gz"
    locked.write_bytes((inputs / "img8.gz").read_bytes())
    locked.chmod(0)
    result = cli("train", "--train-images", locked, "--train-labels", inputs / "lab8.gz",
                 "-o", work / "model.joblib")
    assert_one_line_error(result, 1, r"locked\.gz: permission denied", r"permissions")
    assert (work / "model.joblib").read_bytes() == PRECIOUS


def test_errors_are_one_line_in_a_real_process(inputs, tmp_path):
    """No warning, log line or traceback slips onto stderr outside the in-process runner."""
    import subprocess

    env = dict(os.environ, NO_COLOR="1", MNISTLR_DATA=str(tmp_path / "data"))
    for args in (["train", "--dataset", "mnist-sample", "--per-class", "5", "--solver", "gd",
                  "--lr", "1e30", "-o", tmp_path / "m.joblib"],
                 ["predict", inputs / "evil.joblib", inputs / "img8.gz"]):
        done = subprocess.run([sys.executable, "-m", "mnistlr", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["data"] or sorted(os.listdir(tmp_path)) == []
    assert not (inputs / "ran").exists()


# ---------------------------------------------------------------- degenerate but valid data

@pytest.mark.parametrize("model", ["softmax", "logistic", "ridge"])
def test_all_zero_images_with_two_classes_train(model, inputs, work, cli):
    """Blank images carry no signal: training must still finish, with the weights at zero and
    the intercept alone deciding (chance accuracy on balanced labels)."""
    from mnistlr.learn.persistence import load_model

    out = work / "model.joblib"
    result = cli("train", "--train-images", inputs / "zeros.gz", "--train-labels", inputs / "lab8.gz",
                 "--model", model, "-o", out, "--json", "-q")
    assert result.code == 0, result.err
    model_ = load_model(out)
    assert np.isfinite(model_.W).all() and np.isfinite(model_.b).all()
    np.testing.assert_array_equal(model_.W, 0)
    assert model_.meta["metrics"]["train_accuracy"] == pytest.approx(0.5)


def test_all_zero_images_unpenalised_ridge_fails_clearly(inputs, work, cli):
    result = cli("train", "--train-images", inputs / "zeros.gz", "--train-labels", inputs / "lab8.gz",
                 "--model", "ridge", "--l2", "0", "-o", work / "model.joblib")
    assert_one_line_error(result, 1, r"singular", r"--l2")
    assert (work / "model.joblib").read_bytes() == PRECIOUS


def test_crafted_array_type_cannot_crash_the_loader(inputs, tmp_path):
    """A dtype whose pickled state lost two fields made numpy's dtype.__setstate__ crash the
    interpreter (SIGSEGV); the loader must refuse it with one line instead."""
    import subprocess

    data = (inputs / "m28.joblib").read_bytes()
    state = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"   # (3, '<', None, None, None, -1, -1, 0)
    assert state in data
    crafted = tmp_path / "crafted.joblib"
    crafted.write_bytes(data.replace(state, state[2:], 1))
    env = dict(os.environ, NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "mnistlr", "evaluate", str(crafted)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert done.stderr.startswith("mnistlr: error: ") and len(done.stderr.splitlines()) == 1
    assert "malformed array type" in done.stderr
