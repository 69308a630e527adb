"""mnistlr.io.atomic: a write lands whole under its name or not at all, and never harms what was there."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mnistlr.errors import MnistlrError
from mnistlr.io.atomic import atomic_write, describe_os_error, write_text_atomic


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_finished_write_has_the_final_name_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "λ = 1\n")
    assert target.read_text(encoding="utf-8") == "λ = 1\n"
    assert leftovers(tmp_path) == []
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.joblib"
    target.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as handle:
        handle.write(b"half a new mod")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old model"
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "predictions.csv"
    with pytest.raises(KeyboardInterrupt), atomic_write(target, "w") as handle:
        handle.write("index,label\n")
        raise KeyboardInterrupt
    assert not target.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing" / "out.csv", "does not exist"),
    (lambda tmp: tmp, "is a directory"),
])
def test_impossible_targets_are_one_clear_error(tmp_path, make, message):
    with pytest.raises(MnistlrError, match=message), atomic_write(make(tmp_path)) as handle:
        handle.write(b"x")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOENT, "does not exist"), (errno.ENOTDIR, "not a directory"), (errno.EISDIR, "is a directory"),
    (errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
    (errno.ENOSPC, "no space left on device"), (errno.EIO, os.strerror(errno.EIO)),
])
def test_os_errors_become_one_line_naming_the_path(code, fragment):
    error = describe_os_error(Path("/data/out.csv"), OSError(code, os.strerror(code)))
    text = str(error)
    assert "/data/out.csv" in text and fragment in text and "\n" not in text


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
