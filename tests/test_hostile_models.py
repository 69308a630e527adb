"""Hostile model files: crafted pickle streams, impossible contents behind a valid hash,
bombs, devices, FIFOs and links where a model belongs.

Every case must end in one 'mnistlr: error:' line, exit 1, no traceback, nothing run from
the file and nothing written; the crash-prone ones run in a real process, the bombs under
an address-space limit.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import CliResult  # noqa: E402
from test_reliability import assert_one_line_error, snapshot

from mnistlr.errors import ModelFileError
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.persistence import content_hash, load_model, model_to_dict, save_model
from mnistlr.learn.unpickle import MAX_MODEL_BYTES

RETRAIN = r"retrain the model|written by 'mnistlr train'|damaged or tampered|tampered with"


def small_model(n_classes: int = 3, kind: str = "softmax") -> LinearModel:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(30, 16)).astype(np.uint8)
    n_outputs = 1 if kind == "logistic" and n_classes == 2 else n_classes
    return LinearModel(kind, np.arange(n_classes), (4, 4), Preprocessor.fit("standardize", X),
                       rng.normal(size=(16, n_outputs)).astype(np.float32),
                       np.zeros(n_outputs, np.float32), params={"l2": 1e-3, "solver": "lbfgs"},
                       meta={"history": [{"epoch": 1, "train_loss": 0.5}], "dataset": None})


def rehashed(payload: dict) -> dict:
    """*payload* with a content hash that matches whatever it now holds (the hash has no key)."""
    payload["sha256"] = content_hash(payload)
    return payload


def _set(path: str, value):
    def change(p: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            p = p[key]
        p[last] = value(p[last]) if callable(value) else value
    return change


# (id, change to a valid payload, what the error line must name)
IMPOSSIBLE = [
    ("no-classes", _set("classes", np.array([], np.int64)), r"0 classes"),
    ("one-class", _set("classes", np.array([7])), r"1 class,"),
    ("duplicate-classes", _set("classes", np.array([1, 1, 2])), r"same label twice"),
    ("float-classes", _set("classes", np.array([0.0, 1.0, 2.0])), r"integer labels"),
    ("classes-list", _set("classes", [0, 1, 2]), r"integer labels"),
    ("W-too-few-columns", _set("W", lambda W: W[:, :2].copy()), r"W has 2 column\(s\) for 3 classes"),
    ("W-one-column-softmax", _set("W", lambda W: W[:, :1].copy()), r"W has 1 column\(s\) for 3"),
    ("W-wrong-rows", _set("W", lambda W: W[:9].copy()), r"W has shape \(9, 3\)"),
    ("W-one-dimensional", _set("W", lambda W: W.ravel().copy()), r"W is not a 2-D array"),
    ("W-nan", _set("W", lambda W: np.where(np.eye(16, 3) > 0, np.nan, W).astype(np.float32)),
     r"W holds NaN or infinite"),
    ("W-inf", _set("W", lambda W: np.full_like(W, np.inf)), r"W holds NaN or infinite"),
    ("W-float64-overflows-float32", _set("W", lambda W: np.full(W.shape, 1e300)),
     r"W holds NaN or infinite"),
    ("W-complex", _set("W", lambda W: W.astype(np.complex64)), r"type 'c8', not plain real numbers"),
    ("W-strings", _set("W", lambda W: W.astype(str)), r"type 'U\d+', not plain real numbers"),
    ("W-object", _set("W", lambda W: W.astype(object)), r"type 'O8', not plain real numbers"),
    ("W-is-a-list", _set("W", lambda W: W.tolist()), r"W is not a 2-D array"),
    ("b-nan", _set("b", lambda b: np.full_like(b, np.nan)), r"b holds NaN"),
    ("b-wrong-length", _set("b", np.zeros(5, np.float32)), r"b has shape \(5,\)"),
    ("mean-inf", _set("preprocessing.mean", lambda m: np.full_like(m, np.inf)), r"mean holds NaN"),
    ("std-zero", _set("preprocessing.std", lambda s: np.zeros_like(s)), r"std holds a value ≤ 0"),
    ("W-huge-but-finite", _set("W", lambda W: np.full_like(W, 3e38)), r"scores beyond float32's range"),
    ("std-subnormal", _set("preprocessing.std", lambda s: np.full_like(s, 1e-45)), r"scores beyond float32's range"),
    ("mean-huge", _set("preprocessing.mean", lambda m: np.full_like(m, 3e38)), r"scores beyond float32's range"),
    ("std-missing", lambda p: p["preprocessing"].pop("std"), r"std is NoneType"),
    ("preprocessing-unknown", _set("preprocessing.kind", "whiten"), r"preprocessing is not one of"),
    ("negative-image-shape", _set("image_shape", [-4, -4]), r"image shape -4×-4"),
    ("image-shape-one-number", _set("image_shape", [16]), r"image_shape is not two"),
    ("image-shape-text", _set("image_shape", ["4", "4"]), r"image_shape is not two"),
    ("image-shape-huge", _set("image_shape", [2**40, 2**40]), r"image shape"),
    ("kind-unknown", _set("kind", "tree"), r"kind 'tree' is not one of"),
    ("history-a-string", _set("meta.history", "fast"), r"meta\.history is not a list"),
    ("history-of-numbers", _set("meta.history", [1, 2, 3]), r"meta\.history is not a list of records"),
    ("history-record-of-text", _set("meta.history", [{"epoch": "one"}]), r"record of non-numbers"),
    ("metrics-a-list", lambda p: p["meta"].update(metrics=[1]), r"meta\.metrics is not a dict"),
    ("best-epoch-negative", lambda p: p["meta"].update(best_epoch=-3), r"best_epoch is not a count"),
    ("meta-a-list", _set("meta", [1, 2]), r"meta is not a dict"),
    ("params-a-string", _set("params", "l2=1"), r"params is not a dict"),
    ("meta-too-deep", lambda p: p["meta"].update(deep=_nested(40)), r"nested more than"),
    ("meta-int-keys", lambda p: p["meta"].update(odd={1: 2}), r"key of type int|do not sort|hash"),
    ("no-weights-or-classes", lambda p: (p.pop("W"), p.pop("classes")), r"it lacks classes, W \("),
]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with a valid model and one file per IMPOSSIBLE case."""
    d = tmp_path_factory.mktemp("hostile-models")
    save_model(small_model(), d / "good.joblib")
    for case_id, change, _ in IMPOSSIBLE:
        payload = model_to_dict(small_model())
        change(payload)
        try:
            rehashed(payload)
        except Exception:  # noqa: BLE001  keys that do not sort: the hash check refuses it
            pass
        joblib.dump(payload, d / f"{case_id}.joblib")
    return d


@pytest.mark.parametrize("case_id,pattern", [(c[0], c[2]) for c in IMPOSSIBLE],
                         ids=[c[0] for c in IMPOSSIBLE])
def test_impossible_contents_behind_a_valid_hash_are_refused(models, case_id, pattern, cli):
    given = snapshot(models)
    assert_one_line_error(cli("inspect", models / f"{case_id}.joblib"), 1, pattern, RETRAIN)
    assert snapshot(models) == given


def test_valid_model_loads_and_predicts(models, tmp_path):
    """The control case: the unmodified model passes the same checks."""
    model = load_model(models / "good.joblib")
    assert model.W.shape == (16, 3) and model.W.dtype == np.float32
    proba = model.predict_proba(np.zeros((2, 4, 4), np.uint8))
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)


def test_binary_logistic_with_one_column_is_valid(tmp_path):
    save_model(small_model(2, "logistic"), tmp_path / "m.joblib")
    assert load_model(tmp_path / "m.joblib").W.shape == (16, 1)


@pytest.mark.parametrize("command", ["evaluate", "inspect", "predict"])
def test_nan_weights_refused_by_every_command(models, command, cli, tmp_path):
    args = [command, models / "W-nan.joblib"] + (["-"] if command == "predict" else [])
    assert_one_line_error(cli(*args), 1, r"W holds NaN", RETRAIN)


# ---------------------------------------------------------------- crafted pickle streams

def _stream(*ops: bytes) -> bytes:
    return b"\x80\x04" + b"".join(ops) + b"."


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _good_bytes(protocol: int | None = None) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model_to_dict(small_model()), buffer, protocol=protocol)
    return buffer.getvalue()


def _dtype_state_lost_fields() -> bytes:
    """The segfault of issue 13: a dtype whose BUILD state lost two fields."""
    data = _good_bytes()
    state = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    assert state in data
    return data.replace(state, state[2:], 1)


def _object_array_with_code(mark: str) -> bytes:
    """An object-dtype array: joblib would read its items with a plain nested unpickler."""
    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (mark,))

    payload = model_to_dict(small_model())
    payload["W"] = np.array([RunsCode(), 1], dtype=object)
    buffer = io.BytesIO()
    joblib.dump(payload, buffer)
    return buffer.getvalue()


def _huge_array_header() -> bytes:
    """A wrapper declaring 2**40 float64 values, followed by almost nothing."""
    data = _good_bytes(protocol=2)  # no frames, so bytes can be inserted
    # the first array (classes, 3 int64) declares shape (3,): make it (2**40,)
    at = data.index(b"shape")
    i = data.index(b"K\x03", at)
    return data[:i] + b"\x8a\x06" + (2**40).to_bytes(6, "little") + data[i + 2:]


CRAFTED = [
    ("dtype-state-lost-fields", _dtype_state_lost_fields, r"malformed array type"),
    ("object-array-with-code", None, r"type 'O8', not plain real numbers"),
    ("reduce-ndarray", lambda: _stream(_global("numpy", "ndarray"), b"K\x05\x85R"),
     r"pickle instructions a mnistlr model never holds"),
    ("reduce-wrapper", lambda: _stream(_global("joblib.numpy_pickle", "NumpyArrayWrapper"), b")R"),
     r"pickle instructions"),
    ("newobj-dtype", lambda: _stream(_global("numpy", "dtype"), b")\x81"), r"pickle instructions"),
    ("build-on-a-list", lambda: _stream(b"]}b"), r"pickle instructions"),
    ("persistent-id", lambda: _stream(b"K\x01Q"), r"pickle instructions"),
    ("extension-code", lambda: _stream(b"\x82\x01"), r"pickle instructions"),
    ("inst-opcode", lambda: _stream(b"(ios\nsystem\n"), r"pickle instructions|refusing to load"),
    ("os-system", lambda: _stream(_global("os", "system"), b"\x8c\x04true\x85R"), r"'os\.system'"),
    ("builtins-eval", lambda: _stream(b"\x8c\x08builtins\x8c\x04eval\x93"), r"'builtins\.eval'"),
    ("dtype-of-void", lambda: _stream(_global("numpy", "dtype"), b"\x8c\x03V16\x89\x88\x87R"),
     r"type 'V16', not plain real"),
    ("dtype-of-datetime", lambda: _stream(_global("numpy", "dtype"), b"\x8c\x02M8\x89\x88\x87R"),
     r"type 'M8', not plain real"),
    ("huge-array-header", _huge_array_header, r"needs 8,796,093,022,208 bytes|more than the file"),
    ("empty-file", lambda: b"", r"empty file, not a mnistlr model file"),
    ("text-file", lambda: b"label,pixel0\n3,0\n", r"not a mnistlr model file \(no joblib pickle in it\)"),
    ("cut-after-ten-bytes", lambda: _good_bytes()[:10], r"damaged or truncated model file \(its pickle stream"),
    ("no-content-hash", lambda: pickle.dumps({"magic": "mnistlr-model", "format_version": 2, "kind": "softmax"},
                                             protocol=4), r"holds no content hash"),
    ("pickle-of-a-list", lambda: pickle.dumps([1, 2, 3]), r"not a mnistlr model file"),
    ("stop-only", lambda: b".", r"not a mnistlr model|damaged"),
    ("gzip-garbage", lambda: b"\x1f\x8b" + bytes(100), r"corrupt compressed model file"),
    ("gzip-cut", lambda: zlib.compress(_good_bytes(), wbits=31)[:200], r"cut off|damaged"),
]


_RUNNER = """
import contextlib, io, json, sys
from mnistlr.cli import main
results = {}
for path in sys.argv[1:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["inspect", path])
    results[path] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def crafted_results(tmp_path_factory):
    """Every CRAFTED file loaded by `inspect` in one real process (a crash shows as its status)."""
    d = tmp_path_factory.mktemp("crafted")
    paths = {}
    for case_id, make, _ in CRAFTED:
        data = _object_array_with_code(str(d / "ran")) if make is None else make()
        paths[case_id] = d / f"{case_id}.joblib"
        paths[case_id].write_bytes(data)
    given = snapshot(d)
    done = subprocess.run([sys.executable, "-c", _RUNNER, *map(str, paths.values())], capture_output=True,
                          text=True, env=dict(os.environ, NO_COLOR="1"), timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stderr == ""
    results = json.loads(done.stdout)
    assert not (d / "ran").exists(), "code inside a model file ran"
    assert snapshot(d) == given
    return {case_id: CliResult(*results[str(path)]) for case_id, path in paths.items()}


@pytest.mark.parametrize("case_id,pattern", [(c[0], c[2]) for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_streams_are_refused(crafted_results, case_id, pattern):
    assert_one_line_error(crafted_results[case_id], 1, pattern, RETRAIN + r"|train the model again")


# ---------------------------------------------------------------- not a file, or too big

def test_fifo_as_model_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match=r"not a regular file"):
        load_model(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_device_as_model_is_refused(device, cli):
    assert_one_line_error(cli("inspect", device), 1, r"not a regular file", r"\.joblib file")


def test_symlink_loop_as_model(tmp_path, cli):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert_one_line_error(cli("evaluate", tmp_path / "a"), 1, r"loop of symbolic links", r"point the link")


def test_oversized_model_is_refused_before_reading(tmp_path, cli):
    """A sparse file larger than any model: refused by its size, nothing read."""
    path = tmp_path / "big.joblib"
    with open(path, "wb") as handle:
        handle.truncate(MAX_MODEL_BYTES + 1)
    assert_one_line_error(cli("inspect", path), 1, r"larger than any mnistlr model", r"mnistlr train")


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory) -> Path:
    """A ~1.4 MB gzip file that expands to 300 MiB of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.joblib"
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(path, "wb") as handle:
        handle.write(deflate.compress(b"\x80\x04\x95" + struct.pack("<Q", 300 << 20)))
        for _ in range(300):
            handle.write(deflate.compress(zeros))
        handle.write(deflate.flush())
    return path


def test_gzip_model_bomb_is_refused_within_a_memory_limit(gzip_bomb):
    """Under a 1.5 GiB address-space limit (numba and numpy need ~1 GiB of it mapped)."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
            "from mnistlr.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "inspect", str(gzip_bomb)], capture_output=True,
                          text=True, env=dict(os.environ, NO_COLOR="1"), timeout=120)
    assert_one_line_error(CliResult(done.returncode, done.stdout, done.stderr), 1, r"expands to more than 256 MiB", r"mnistlr train")
