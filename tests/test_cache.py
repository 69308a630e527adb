"""The one content-keyed cache (`mnistlr.io.cache`) and its two users: gzip IDX arrays (`read_idx`)
and parsed CSV tables (`read_labelled`). Never stale, damaged entries rebuilt, an unwritable or
full cache folder is no cache (no error), one eviction policy for both."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from mnistlr.io import cache, idx, tables
from mnistlr.io.idx import read_idx, write_idx
from mnistlr.io.labelled import read_labelled

RNG = np.random.default_rng(16)


def csv_file(path, n=12, side=4, first_label=0):
    """A headerless CSV of *n* random side×side images; returns (path, images, labels)."""
    X = RNG.integers(0, 256, (n, side, side), dtype=np.uint8)
    y = (np.arange(n) + first_label) % 10
    np.savetxt(path, np.column_stack([y, X.reshape(n, -1)]), fmt="%d", delimiter=",")
    return path, X, y.astype(np.uint8)


def idx_file(path, values):
    write_idx(path, np.asarray(values, np.uint8))
    return path


class Calls:
    """Counts the real parses of CSV tables and of gzip IDX files."""

    def __init__(self, monkeypatch):
        self.csv = self.idx = 0
        read_csv, read_gzip = tables.read_csv, idx._read_gzip

        def counted_csv(*args):
            self.csv += 1
            return read_csv(*args)

        def counted_gzip(*args):
            self.idx += 1
            return read_gzip(*args)

        monkeypatch.setattr(tables, "read_csv", counted_csv)
        monkeypatch.setattr(idx, "_read_gzip", counted_gzip)


def entries(folder):
    return sorted(p.name for p in folder.glob("*.npy"))


def test_both_users_share_one_folder_and_one_key_function(tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    store = tmp_path / "store"
    csv, X, y = csv_file(tmp_path / "t.csv")
    gz = idx_file(tmp_path / "i.gz", X)
    for _ in range(2):
        X_r, y_r = read_labelled(csv, cache_dir=store)
        np.testing.assert_array_equal(X_r, X)
        np.testing.assert_array_equal(y_r, y)
        np.testing.assert_array_equal(read_idx(gz, cache=True, cache_dir=store), X)
    assert (calls.csv, calls.idx) == (1, 1)   # each parsed once, whichever reader asked
    csv_key, idx_key = cache.content_key(csv, "csv"), cache.content_key(gz, "idx")
    assert entries(store) == sorted([f"t.csv.{csv_key}.images.npy", f"t.csv.{csv_key}.labels.npy",
                                     f"i.gz.{idx_key}.array.npy"])


def test_key_is_the_content_with_the_reader(tmp_path):
    path = idx_file(tmp_path / "a.gz", range(4))
    key = cache.content_key(path, "idx")
    assert key != cache.content_key(path, "csv")
    os.utime(path, ns=(1, 1))
    assert cache.content_key(path, "idx") == key       # time is not part of it
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    assert cache.content_key(path, "idx") != key       # one bit of content is


@pytest.mark.parametrize("damage", ["truncate", "garbage", "drop-part", "wrong-shape"])
def test_damaged_csv_entry_is_ignored_and_rebuilt(tmp_path, monkeypatch, damage):
    calls = Calls(monkeypatch)
    store = tmp_path / "store"
    csv, X, y = csv_file(tmp_path / "t.csv", n=50)
    read_labelled(csv, cache_dir=store)
    images = next(store.glob("*.images.npy"))
    labels = next(store.glob("*.labels.npy"))
    size = images.stat().st_size
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[:size - 100])
    elif damage == "garbage":
        images.write_bytes(b"\x93NUMPY garbage")
    elif damage == "drop-part":
        labels.unlink()
    else:   # a readable entry that is not a pair: labels of another length
        np.save(labels, np.zeros(3, np.uint8))
    X_r, y_r = read_labelled(csv, cache_dir=store)
    np.testing.assert_array_equal(X_r, X)
    np.testing.assert_array_equal(y_r, y)
    assert calls.csv == 2
    assert images.stat().st_size == size and np.load(labels).shape == (50,)   # rebuilt in place
    read_labelled(csv, cache_dir=store)
    assert calls.csv == 2                                                    # and a hit again


def test_truncated_idx_entry_is_rebuilt(tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    path = idx_file(tmp_path / "a.gz", np.arange(4000) % 251)
    read_idx(path, cache=True)
    (entry,) = (tmp_path / ".cache").glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:500])
    for _ in range(2):
        np.testing.assert_array_equal(read_idx(path, cache=True), np.arange(4000) % 251)
    assert calls.idx == 2 and entry.stat().st_size > 4000


def test_never_stale_same_size_and_mtime(tmp_path, monkeypatch):
    store = tmp_path / "store"
    csv, X, y = csv_file(tmp_path / "t.csv")
    read_labelled(csv, cache_dir=store)
    stamp = csv.stat()
    text = csv.read_bytes()
    swapped = text.replace(b"\n1,", b"\n2,", 1)
    assert swapped != text and len(swapped) == len(text)
    csv.write_bytes(swapped)
    os.utime(csv, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    _, y_r = read_labelled(csv, cache_dir=store)
    assert y_r[1] == 2
    assert len(list(store.glob("*.images.npy"))) == 1   # the superseded entry is dropped


def _fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_unwritable_cache_folder_is_no_cache(tmp_path, monkeypatch, code):
    """A full disk (the second array's write fails), a read-only or a forbidden folder: the
    result is right, nothing raises, no half entry or temporary file is left."""
    store = tmp_path / "store"
    store.mkdir()
    csv, X, y = csv_file(tmp_path / "t.csv")
    save = np.save
    saved = []

    def save_then_fail(handle, array, **kwargs):
        if saved:
            raise OSError(code, os.strerror(code))
        saved.append(True)
        save(handle, array, **kwargs)

    monkeypatch.setattr(np, "save", save_then_fail)
    X_r, y_r = read_labelled(csv, cache_dir=store)
    np.testing.assert_array_equal(X_r, X)
    np.testing.assert_array_equal(y_r, y)
    assert sorted(os.listdir(store)) == []
    gz = idx_file(tmp_path / "l.gz", range(5))
    monkeypatch.setattr(type(store), "mkdir", _fail_with(code))
    np.testing.assert_array_equal(read_idx(gz, cache=True), np.arange(5))
    assert not (tmp_path / ".cache").exists()


def test_read_only_cache_still_serves_its_entries(tmp_path, monkeypatch):
    calls = Calls(monkeypatch)
    store = tmp_path / "store"
    csv, X, y = csv_file(tmp_path / "t.csv")
    read_labelled(csv, cache_dir=store)
    monkeypatch.setattr(os, "utime", _fail_with(errno.EROFS))
    X_r, _ = read_labelled(csv, cache_dir=store)
    np.testing.assert_array_equal(X_r, X)
    assert calls.csv == 1


def test_unreadable_cache_folder_is_no_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    csv, X, _ = csv_file(tmp_path / "t.csv")
    np.testing.assert_array_equal(read_labelled(csv, cache_dir=blocker / "store")[0], X)
    gz = idx_file(tmp_path / "l.gz", range(5))
    np.testing.assert_array_equal(read_idx(gz, cache=True, cache_dir=blocker), np.arange(5))
    assert blocker.read_text() == "not a folder"


def test_one_eviction_policy_for_both_users(tmp_path, monkeypatch):
    """At most MAX_ENTRIES entries (of either user) in a folder, least recently used dropped;
    files that are not the cache's are left alone."""
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    store = tmp_path / "store"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    (store / "other.npy").write_bytes(b"not an entry")
    sources = []
    for i in range(3):
        sources.append(idx_file(tmp_path / f"f{i}.gz", [i] * 4))
        read_idx(sources[-1], cache=True, cache_dir=store)
        os.utime(next(store.glob(f"f{i}.gz.*.npy")), ns=(i * 10**9, i * 10**9))
    read_idx(sources[0], cache=True, cache_dir=store)     # f0 used again: now the most recent
    csv, _, _ = csv_file(tmp_path / "t.csv")
    read_labelled(csv, cache_dir=store)
    names = entries(store)
    assert [n for n in names if n.startswith("f")] == [n for n in names if n.startswith(("f0", "f2"))]
    assert len({n.split(".")[0] for n in names if n != "other.npy"}) == 3
    assert sum(n.startswith("t.csv.") for n in names) == 2
    assert (store / "notes.txt").read_text() == "mine" and (store / "other.npy").exists()
