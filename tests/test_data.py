"""The dataset registry, the data directory, loading datasets and the real MNIST files."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from mnistlr.cli.base import Split
from mnistlr.data import registry
from mnistlr.data.download import verify_file
from mnistlr.data.registry import (
    DATASETS,
    DatasetSpec,
    FileSpec,
    dataset_status,
    load_dataset,
    load_pair,
    resolve_data_dir,
)
from mnistlr.errors import DataError, UsageError
from mnistlr.io.idx import write_idx

# From ../shared/data/README.md: SHA-256 of the decompressed payloads.
SHARED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "train-head-images-idx3-ubyte.gz": "76ee3694705769494d0067a47983888c0a9cdc14f05e54c1e5d141b927df22f0",
    "train-head-labels-idx1-ubyte.gz": "01aeb06d9e3545ff842d882e6430d982a0e5025a7e925bae739b8002d7131390",
}


def make_dataset(folder, n_train=30, n_test=10, prefix=""):
    """Write four small IDX files into *folder*; returns the arrays by file key."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, 6, 5), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test-images": rng.integers(0, 256, (n_test, 6, 5), dtype=np.uint8),
        "test-labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, f in registry._files(prefix).items():
        write_idx(folder / f.name, arrays[key])
    return arrays


@pytest.fixture
def tiny(monkeypatch):
    """Register a dataset 'tiny' (no checksums) for the duration of a test."""
    spec = DatasetSpec(name="tiny", description="test data", files=registry._files(),
                       mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setitem(DATASETS, "tiny", spec)
    return spec


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLR_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("MNISTLR_DATA")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "mnistlr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "mnistlr"


def test_data_dir_without_home_is_the_password_databases_home_or_one_clear_error(cli, monkeypatch, tmp_path):
    import os
    import pwd

    for name in ("MNISTLR_DATA", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    home = pwd.getpwuid(os.getuid()).pw_dir
    assert resolve_data_dir(None) == Path(home) / ".cache" / "mnistlr"   # as os.path.expanduser

    def no_entry(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)   # HOME unset and no password entry
    with pytest.raises(DataError, match="no home directory") as info:
        resolve_data_dir(None)
    assert "MNISTLR_DATA" in str(info.value) and "data_dir" in str(info.value)
    assert resolve_data_dir("elsewhere") == Path("elsewhere")
    monkeypatch.setenv("MNISTLR_DATA", str(tmp_path / "data"))
    assert cli("fetch", "--list").code == 0
    monkeypatch.delenv("MNISTLR_DATA")
    result = cli("fetch", "--list")
    assert result.code == 1 and result.out == "" and len(result.err.strip().splitlines()) == 1
    assert "no home directory" in result.err and "--data-dir" in result.err


def test_registry_is_complete():
    assert {"mnist", "fashion-mnist", "kmnist", "mnist-sample"} <= set(DATASETS)
    for spec in DATASETS.values():
        assert set(spec.files) == set(registry.FILE_KEYS)
        assert len(spec.classes) == 10
        if spec.bundled:
            continue
        assert spec.mirrors and all(m.endswith("/") for m in spec.mirrors)
        for f in spec.files.values():
            assert re.fullmatch(r"[0-9a-f]{32}", f.md5)
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
    assert DATASETS["fashion-mnist"].local_dirs == ("/usr/share/datasets/fashion-mnist",)


def test_mnist_sample_is_bundled_and_balanced(tmp_path):
    X, y = load_dataset("mnist-sample", Split.train, data_dir=tmp_path)
    Xt, yt = load_dataset("mnist-sample", "test", data_dir=tmp_path)
    assert X.shape == (4000, 28, 28) and X.dtype == np.uint8
    assert Xt.shape == (1000, 28, 28) and yt.dtype == np.uint8
    assert np.bincount(y).tolist() == [400] * 10
    assert np.bincount(yt).tolist() == [100] * 10
    assert X.max() == 255 and X.min() == 0
    train_rows = {row.tobytes() for row in X.reshape(len(X), -1)}
    assert not any(row.tobytes() in train_rows for row in Xt.reshape(len(Xt), -1))
    assert list(tmp_path.iterdir()) == []  # bundled data is read without caching anywhere
    status = dataset_status("mnist-sample", tmp_path)
    assert status["present"] and status["bundled"]


def test_unknown_dataset_and_split():
    with pytest.raises(UsageError, match="unknown dataset 'nope'") as err:
        load_dataset("nope")
    assert "mnist, fashion-mnist, kmnist, mnist-sample" in err.value.hint
    with pytest.raises(UsageError, match="unknown split"):
        load_dataset("mnist-sample", "validation")


def test_not_fetched_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match="dataset 'kmnist' is not fetched") as err:
        load_dataset("kmnist", "test", data_dir=tmp_path)
    assert "run 'mnistlr fetch kmnist'" in err.value.hint
    assert "mnist-sample" in err.value.hint and "mnistlr fetch" in err.value.hint


def test_load_fetched_dataset_caches_in_data_dir(tiny, tmp_path, monkeypatch):
    arrays = make_dataset(tmp_path / "tiny")
    monkeypatch.setenv("MNISTLR_DATA", str(tmp_path))
    X, y = load_dataset("tiny", "test")
    np.testing.assert_array_equal(X, arrays["test-images"])
    np.testing.assert_array_equal(y, arrays["test-labels"])
    assert len(list((tmp_path / "tiny" / ".cache").glob("t10k-*.npy"))) == 2
    X2, y2 = load_dataset("tiny", "test")
    assert isinstance(X2, np.memmap)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_load_pair_count_mismatch(tmp_path):
    write_idx(tmp_path / "img.gz", np.zeros((5, 2, 2), np.uint8))
    write_idx(tmp_path / "lab.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="img.gz holds 5 images but lab.gz holds 4 labels"):
        load_pair(tmp_path / "img.gz", tmp_path / "lab.gz")


def test_dataset_status(tiny, tmp_path):
    status = dataset_status("tiny", tmp_path)
    assert not status["present"] and status["files_present"] == 0
    assert status["where"] == str(tmp_path / "tiny")
    make_dataset(tmp_path / "tiny")
    (tmp_path / "tiny" / "t10k-labels-idx1-ubyte.gz").unlink()
    status = dataset_status("tiny", tmp_path)
    assert not status["present"] and status["files_present"] == 3
    assert status["files"]["test-labels"]["present"] is False
    assert status["files"]["train-images"]["bytes"] > 0


def test_real_mnist_files(shared_mnist):
    for name, sha in SHARED_SHA256.items():
        payload = gzip.decompress((shared_mnist / name).read_bytes())
        assert hashlib.sha256(payload).hexdigest() == sha, name
    X, y = load_pair(shared_mnist / "t10k-images-idx3-ubyte.gz",
                     shared_mnist / "t10k-labels-idx1-ubyte.gz")
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))
    Xh, yh = load_pair(shared_mnist / "train-head-images-idx3-ubyte.gz",
                       shared_mnist / "train-head-labels-idx1-ubyte.gz")
    assert Xh.shape == (22699, 28, 28)
    assert np.bincount(yh).tolist() == [2258, 2581, 2215, 2369, 2222, 2010, 2235, 2356, 2163, 2290]


def test_real_mnist_files_verify_against_registry(shared_mnist):
    spec = DATASETS["mnist"]
    for key in ("test-images", "test-labels", "train-labels"):
        f = spec.files[key]
        assert verify_file(shared_mnist / f.name, f) is None
    wrong = FileSpec(spec.files["test-labels"].name, md5="0" * 32, sha256="0" * 64)
    assert "checksum mismatch" in verify_file(shared_mnist / wrong.name, wrong)


def test_bundled_sample_files_are_the_reproducible_ones():
    # scripts/make_sample.py writes exactly these bytes (gzip mtime 0, fixed seed).
    pinned = {
        "mnist-sample-train-images-idx3-ubyte.gz": "edd20b054b095b2d9a1b9cf32f81be3924d0af1a198c2bc87ae45465ab67a345",
        "mnist-sample-train-labels-idx1-ubyte.gz": "08a0a97ae62ec2b7d769e61e4fc423345da4ac95a202242f94c60ab8855b28a5",
        "mnist-sample-t10k-images-idx3-ubyte.gz": "3e7ef079df9a1f6c13ce37f9b277cab02a00f7af3bb06a9be66675d5cf4081af",
        "mnist-sample-t10k-labels-idx1-ubyte.gz": "056eee3e5b0895191f5b0ab832f7932bb9663ab48fcb42aea33b0fceabb9c03e",
    }
    folder = Path(registry.__file__).parent / "sample"
    for name, sha in pinned.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
    assert "BSD" in (folder / "NOTICE").read_text() and "LeCun" in (folder / "NOTICE").read_text()


@pytest.mark.parametrize("how", ["variable", "option", "xdg"])
def test_a_data_directory_that_is_a_file_names_where_it_came_from(cli, tmp_path, monkeypatch, how):
    from mnistlr.data.location import resolve_data_dir

    (tmp_path / "mnistlr").write_text("not a folder")
    monkeypatch.delenv("MNISTLR_DATA", raising=False)
    if how == "variable":
        monkeypatch.setenv("MNISTLR_DATA", str(tmp_path / "mnistlr"))
        args, named = (), "from MNISTLR_DATA"
    elif how == "option":
        args, named = ("--data-dir", str(tmp_path / "mnistlr")), "from --data-dir"
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        args, named = (), "from XDG_CACHE_HOME"
    result = cli("fetch", "--list", *args)
    assert result.code == 1 and result.out == "" and result.err.count("\n") == 1
    assert f"the data directory {tmp_path / 'mnistlr'}, {named}" in result.err and "is not a directory" in result.err
    if how == "option":
        with pytest.raises(DataError, match="from data_dir, is not a directory"):
            resolve_data_dir(tmp_path / "mnistlr")
