"""`mnistlr import`: own files become a named dataset (IDX files + SHA-256 manifest) that every
command reads with -d NAME; tampering is detected and refused; built-in names are refused."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from mnistlr.io.idx import encode_idx, read_images, read_labels

FIT = ("--max-iter", "5", "-q", "--json")


@pytest.fixture(scope="module")
def keras_npz(shared_mnist, tmp_path_factory):
    """A Keras-style mnist.npz of the first 1,500 training and 400 test images of real MNIST."""
    X = np.array(read_images(shared_mnist / "train-head-images-idx3-ubyte.gz")[:1500])
    y = np.array(read_labels(shared_mnist / "train-head-labels-idx1-ubyte.gz")[:1500])
    X_t = np.array(read_images(shared_mnist / "t10k-images-idx3-ubyte.gz")[:400])
    y_t = np.array(read_labels(shared_mnist / "t10k-labels-idx1-ubyte.gz")[:400])
    path = tmp_path_factory.mktemp("keras") / "mnist.npz"
    np.savez(path, x_train=X, y_train=y, x_test=X_t, y_test=y_t)
    return path, (X, y, X_t, y_t)


def test_keras_npz_imports_both_splits_and_every_command_reads_it(cli, keras_npz, tmp_path):
    path, (X, y, X_t, y_t) = keras_npz
    result = cli("import", "mine", path, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["splits"]["train"]["images"] == 1500 and report["splits"]["test"]["images"] == 400
    folder = tmp_path / "data" / "mine"
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, array in (("train-images", X), ("train-labels", y), ("test-images", X_t), ("test-labels", y_t)):
        entry = manifest["files"][key]
        payload = gzip.decompress((folder / entry["file"]).read_bytes())
        assert payload == encode_idx(array) and entry["sha256"] == hashlib.sha256(payload).hexdigest()
    listing = json.loads(cli("fetch", "--list", "--json").out)
    mine = next(d for d in listing["datasets"] if d["name"] == "mine")
    assert mine["imported"] and mine["present"] and mine["failed"] == []
    assert all(f["bytes"] == (folder / f["file"]).stat().st_size for f in mine["files"].values())
    assert "imported (" in cli("fetch", "--list").out
    by_name, by_file = tmp_path / "a.joblib", tmp_path / "b.joblib"
    assert cli("train", "-d", "mine", *FIT, "-o", by_name).code == 0
    assert cli("train", "--train-images", path, *FIT, "-o", by_file).code == 0
    from mnistlr.learn.persistence import load_model

    assert load_model(by_name).W.tobytes() == load_model(by_file).W.tobytes()
    evaluated = json.loads(cli("evaluate", by_name, "--json").out)
    assert evaluated["data"]["dataset"] == "mine" and sum(map(sum, evaluated["confusion_matrix"])) == 400
    shown = json.loads(cli("show", "mine", "--json").out)
    assert shown["splits"]["train"]["n_images"] == 1500 and shown["splits"]["test"]["n_images"] == 400
    swept = cli("sweep", "-d", "mine", "--max-iter", "3", "--param", "l2=log:1e-4:1e-2", "--n-iter", "2",
                "--cv", "2", "-q", "--json")
    assert swept.code == 0 and json.loads(swept.out)["n_train"] == 1500


def test_a_changed_file_is_bad_checksum_and_refused_until_reimported(cli, keras_npz, tmp_path):
    path = keras_npz[0]
    assert cli("import", "mine", path).code == 0
    labels = tmp_path / "data" / "mine" / "train-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[20] = (payload[20] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(payload)))
    assert "bad checksum (1 of 4)" in cli("fetch", "--list", "mine").out
    result = cli("train", "-d", "mine", "-q", "-o", tmp_path / "m.joblib")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "train-labels-idx1-ubyte.gz has a bad checksum" in result.err
    assert f"mnistlr import mine {path} --force" in result.err
    assert not (tmp_path / "m.joblib").exists()
    fetched = cli("fetch", "mine")          # was "nothing to fetch", exit 0: `make fetch` went on to fail later
    assert fetched.code == 1 and "train-labels-idx1-ubyte.gz has a bad checksum" in fetched.err, fetched.err
    assert f"mnistlr import mine {path} --force" in fetched.err
    assert cli("import", "mine", path).code == 2          # already there: needs --force
    assert cli("import", "mine", path, "--force").code == 0
    assert cli("train", "-d", "mine", *FIT, "-o", tmp_path / "m.joblib").code == 0
    assert cli("fetch", "mine").code == 0


def test_train_only_import_with_separate_labels(cli, keras_npz, tmp_path):
    X, y = keras_npz[1][:2]
    np.save(tmp_path / "x.npy", X[:300])
    np.save(tmp_path / "y.npy", y[:300])
    result = cli("import", "small", tmp_path / "x.npy", "--train-labels", tmp_path / "y.npy")
    assert result.code == 0, result.err
    assert "small: imported into" in result.out and "train 300 images 28×28" in result.out
    model = tmp_path / "m.joblib"
    assert cli("train", "-d", "small", *FIT, "-o", model).code == 0
    result = cli("evaluate", model)
    assert result.code == 1 and "dataset 'small' has no test split" in result.err


def test_test_labels_without_a_test_source_is_a_usage_error(cli, keras_npz, tmp_path):
    X, y = keras_npz[1][:2]
    np.save(tmp_path / "x.npy", X[:30])
    np.save(tmp_path / "y.npy", y[:30])
    for train in (["x.npy", "--train-labels", "y.npy"], [keras_npz[0]]):   # a Keras .npz: its own test split
        args = [tmp_path / a if a.endswith(".npy") else a for a in map(str, train)]
        result = cli("import", "mine", *args, "--test-labels", tmp_path / "y.npy")
        assert result.code == 2 and "--test-labels is given without a test source" in result.err, result.err
        assert not (tmp_path / "data" / "mine").exists()


def test_standard_input_given_twice_is_a_usage_error(cli, tmp_path):
    result = cli("import", "mine", "-", "-")      # it was read as the train split, then found empty
    assert result.code == 2 and "'-' (standard input) is given more than once" in result.err, result.err
    assert not (tmp_path / "data" / "mine").exists()


@pytest.mark.parametrize("name, words", [
    ("mnist", "'mnist' is a built-in dataset"),
    ("mnist-sample", "'mnist-sample' is a built-in dataset"),
    ("../up", "is not a usable dataset name"),
    (".hidden", "is not a usable dataset name"),
])
def test_bad_names_are_refused(cli, keras_npz, name, words):
    result = cli("import", name, keras_npz[0])
    assert result.code == 2 and words in result.err


def test_a_failed_import_leaves_nothing(cli, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 4, 4), np.uint8))
    result = cli("import", "broken", tmp_path / "x.npy")
    assert result.code == 1 and "holds images but no labels (give the labels too, with --train-labels:" in result.err
    np.save(tmp_path / "y.npy", np.zeros(5, np.uint8))
    result = cli("import", "broken", tmp_path / "x.npy", tmp_path / "x.npy", "--train-labels", tmp_path / "y.npy")
    assert result.code == 1 and "give the labels too, with --test-labels:" in result.err
    assert not (tmp_path / "data" / "broken").exists()
    assert "broken" not in cli("fetch", "--list").out


@pytest.mark.parametrize("label", [2**32 + 5, 2**62, -(2**31) - 1])
def test_a_label_beyond_32_bits_is_refused_not_wrapped(cli, tmp_path, label):
    np.save(tmp_path / "x.npy", np.zeros((6, 4, 4), np.uint8))
    np.save(tmp_path / "y.npy", np.array([label, 1, 2, 1, 2, 1], np.int64))
    result = cli("import", "wide", tmp_path / "x.npy", "--train-labels", tmp_path / "y.npy")
    assert result.code == 1 and f"train label {label} is beyond the 32-bit range IDX stores" in result.err
    assert not (tmp_path / "data" / "wide").exists()


def test_a_keras_npz_on_standard_input_imports_both_splits(keras_npz, tmp_path):
    import subprocess
    import sys

    path, (X, y, X_t, y_t) = keras_npz
    with open(path, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "mnistlr", "import", "piped", "-", "--json",
                               "--data-dir", str(tmp_path / "data")], stdin=stdin, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["splits"]["train"]["images"] == 1500 and report["splits"]["test"]["images"] == 400
    manifest = json.loads((tmp_path / "data" / "piped" / "manifest.json").read_text())
    test_file = tmp_path / "data" / "piped" / manifest["files"]["test-labels"]["file"]
    assert gzip.decompress(test_file.read_bytes()) == encode_idx(y_t)
