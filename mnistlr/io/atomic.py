"""Atomic file writing: a temporary file in the target's directory, renamed into place.

A failed or interrupted write never leaves a truncated file under the final name,
and never touches an existing file of that name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mnistlr.errors import MnistlrError


def describe_os_error(path: Path, exc: OSError) -> MnistlrError:
    """Turn an OSError on *path* into a one-line MnistlrError naming the fix."""
    code = exc.errno
    if code == errno.ENOENT:
        return MnistlrError(f"{path}: directory {path.parent} does not exist",
                            "create it first or choose another output path")
    if code == errno.ENOTDIR:
        return MnistlrError(f"{path}: a parent of this path is a file, not a directory",
                            "choose an output path inside a directory")
    if code == errno.EISDIR:
        return MnistlrError(f"{path}: is a directory", "give a file name")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return MnistlrError(f"{path}: permission denied", "choose a writable location")
    if code == errno.ENOSPC:
        return MnistlrError(f"{path}: no space left on device; nothing was written",
                            "free some disk space and run again")
    return MnistlrError(f"{path}: {exc.strerror or exc}", "check the path and try again")


def _temp_in(directory: Path, name: str) -> tuple[int, str]:
    """Open a fresh temporary file beside the target (so rename is atomic)."""
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb",
                 encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing; on success rename it to *path*.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    the exception re-raised; OSErrors become MnistlrErrors naming the path.
    """
    path = Path(path)
    if path.is_dir():
        raise MnistlrError(f"{path}: is a directory", "give a file name")
    try:
        fd, tmp = _temp_in(path.parent if str(path.parent) else Path("."), path.name)
    except OSError as exc:
        raise describe_os_error(path, exc) from None
    try:
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise describe_os_error(path, exc) from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write *text* (UTF-8) to *path* atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
