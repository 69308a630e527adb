"""Model files: round trip, refusal of code-running, tampered, foreign and future files."""

from __future__ import annotations

import os
import pickle

import joblib
import numpy as np
import pytest

from mnistlr.errors import ModelFileError
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.persistence import (
    FORMAT_VERSION,
    content_hash,
    load_model,
    model_to_dict,
    save_model,
)


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(30, 36)).astype(np.uint8)
    return LinearModel(
        "softmax", np.arange(3), (6, 6), Preprocessor.fit("standardize", X),
        rng.normal(size=(36, 3)).astype(np.float32), np.zeros(3, np.float32),
        params={"l2": 1e-3, "solver": "lbfgs"},
        meta={"history": [{"epoch": 1, "train_loss": np.float64(0.7)}], "seed": 3,
              "class_means": rng.random((3, 36)).astype(np.float32)})


def test_round_trip_keeps_weights_params_and_meta(model, tmp_path):
    path = tmp_path / "m.joblib"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.W, model.W)
    np.testing.assert_array_equal(loaded.preprocessor.std, model.preprocessor.std)
    assert loaded.params == model.params
    assert loaded.meta["history"] == [{"epoch": 1, "train_loss": 0.7}]
    assert loaded.meta["format_version"] == FORMAT_VERSION
    assert loaded.meta["versions"]["numpy"] == np.__version__
    np.testing.assert_array_equal(loaded.meta["class_means"], model.meta["class_means"])


def test_a_saved_model_is_the_file_joblib_writes_and_joblib_loads_it(model, tmp_path):
    import io

    from mnistlr.learn import joblib_format

    path = tmp_path / "m.joblib"
    payload = save_model(model, path)
    by_joblib = io.BytesIO()
    joblib.dump(payload, by_joblib)
    assert path.read_bytes() == by_joblib.getvalue()
    loaded = joblib.load(path)
    assert loaded["sha256"] == payload["sha256"] == content_hash(loaded)
    np.testing.assert_array_equal(loaded["W"], model.W)
    # arrays in Fortran order and of every numeric type are joblib's bytes too
    arrays = {"f": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "u": np.arange(7, dtype=np.uint8),
              "e": np.zeros((0, 3), np.int32), "nested": [{"b": np.array([True, False])}]}
    ours, theirs = io.BytesIO(), io.BytesIO()
    joblib_format.dump(arrays, ours)
    joblib.dump(arrays, theirs)
    assert ours.getvalue() == theirs.getvalue()
    with pytest.raises(TypeError):
        joblib_format.dump({"o": np.array([object()])}, io.BytesIO())


@pytest.mark.parametrize("compress", [3, ("zlib", 1), ("gzip", 9)])
def test_a_model_resaved_by_joblib_with_zlib_or_gzip_loads_the_same(model, tmp_path, compress):
    save_model(model, tmp_path / "m.joblib")
    joblib.dump(joblib.load(tmp_path / "m.joblib"), tmp_path / "c.joblib", compress=compress)
    assert (tmp_path / "c.joblib").read_bytes()[:1] in (b"\x78", b"\x1f")
    loaded = load_model(tmp_path / "c.joblib")
    np.testing.assert_array_equal(loaded.W, model.W)
    X = np.random.default_rng(1).integers(0, 256, size=(5, 6, 6)).astype(np.uint8)
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))


@pytest.mark.parametrize("compress, name", [(("bz2", 3), "bz2"), (("xz", 3), "xz"), (("lzma", 3), "lzma")])
def test_other_joblib_compressors_are_named(model, tmp_path, compress, name):
    save_model(model, tmp_path / "m.joblib")
    joblib.dump(joblib.load(tmp_path / "m.joblib"), tmp_path / "c.joblib", compress=compress)
    with pytest.raises(ModelFileError, match=f"compressed with {name}, which mnistlr does not read"):
        load_model(tmp_path / "c.joblib")


def test_saving_does_not_import_joblib(model, tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom mnistlr.learn.persistence import load_model, save_model\n"
            f"save_model(load_model({str(tmp_path / 'a.joblib')!r}), {str(tmp_path / 'b.joblib')!r})\n"
            "assert 'joblib' not in sys.modules\n")
    save_model(model, tmp_path / "a.joblib")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.joblib").read_bytes()[:2] == b"\x80\x04"


def test_save_leaves_no_temporary_files(model, tmp_path):
    save_model(model, tmp_path / "m.joblib")
    assert sorted(os.listdir(tmp_path)) == ["m.joblib"]


class _RunsCode:
    def __reduce__(self):
        return (os.mkdir, (os.environ["MNISTLR_EVIL_MARK"],))


def test_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    mark = tmp_path / "ran"
    monkeypatch.setenv("MNISTLR_EVIL_MARK", str(mark))
    path = tmp_path / "evil.joblib"
    joblib.dump({"magic": "mnistlr-model", "payload": _RunsCode()}, path)
    # the same file run through plain pickle really would execute code:
    with open(path, "rb") as handle:
        pickle.load(handle)
    assert mark.exists()
    mark.rmdir()
    with pytest.raises(ModelFileError, match="posix.mkdir|os.mkdir|nothing in it was run"):
        load_model(path)
    assert not mark.exists()


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.joblib"
    joblib.dump({"magic": "mnistlr-model", "W": np.array([object()], dtype=object)}, path)
    with pytest.raises(ModelFileError):
        load_model(path)


def test_tampered_weights_are_refused(model, tmp_path):
    path = tmp_path / "m.joblib"
    save_model(model, path)
    data = bytearray(path.read_bytes())
    needle = model.W.tobytes()[:16]
    at = bytes(data).find(needle)
    assert at > 0
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="content hash does not match"):
        load_model(path)


def test_other_format_version_is_refused(model, tmp_path):
    payload = model_to_dict(model)
    payload["format_version"] = FORMAT_VERSION + 1
    payload["sha256"] = content_hash(payload)
    joblib.dump(payload, tmp_path / "future.joblib")
    with pytest.raises(ModelFileError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_model(tmp_path / "future.joblib")


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", b"\x80\x05\x95garbage", b"\x1f\x8b\x08\x00broken"])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.joblib"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.joblib"):
        load_model(path)


def test_foreign_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "foreign.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelFileError, match="not a mnistlr model"):
        load_model(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.joblib")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("version", [True, 1.0, float(FORMAT_VERSION), str(FORMAT_VERSION), None, [FORMAT_VERSION]])
def test_a_format_version_must_be_an_int_exactly(model, tmp_path, version):
    """True == 1 and 2.0 == 2 in Python, but neither is what save_model writes."""
    payload = model_to_dict(model)
    payload["format_version"] = version
    payload["sha256"] = content_hash(payload)
    joblib.dump(payload, tmp_path / "odd.joblib")
    with pytest.raises(ModelFileError, match=r"format version .* is not supported"):
        load_model(tmp_path / "odd.joblib")


def test_installed_versions_are_importlib_metadata_s():
    from importlib import metadata

    from mnistlr.learn.persistence import installed_version, library_versions

    names = sorted({d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"]})
    assert len(names) > 20 and "numpy" in names
    for name in names:
        assert installed_version(name) == metadata.version(name), name
    assert installed_version("no-such-distribution-xyz") == "unknown"
    assert library_versions()["numpy"] == metadata.version("numpy")
