"""Atomic file writing: a temporary file in the target's directory, renamed into place.

A failed or interrupted write never leaves a truncated file under the final name,
and never touches an existing file of that name. Only regular files are replaced:
a symbolic link's target is replaced and the link kept, character devices and FIFOs
(/dev/null, a pipe) are written through, and block devices, sockets, standard output
and the command's own input files are refused (`check_output`, which commands also
call before they start work, so a refusal comes before the work is done).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from mnistlr.errors import OutputError, UsageError


def describe_os_error(path: Path, exc: OSError) -> OutputError:
    """Turn an OSError on *path* into a one-line OutputError naming the fix."""
    code = exc.errno
    if code == errno.ENOENT:
        return OutputError(f"{path}: directory {path.parent} does not exist",
                            "create it first or choose another output path")
    if code == errno.ENOTDIR:
        return OutputError(f"{path}: a parent of this path is a file, not a directory",
                            "choose an output path inside a directory")
    if code == errno.EISDIR:
        return OutputError(f"{path}: is a directory", "give a file name")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: permission denied", "choose a writable location")
    if code == errno.ENOSPC:
        return OutputError(f"{path}: no space left on device; nothing was written",
                            "free some disk space and run again")
    return OutputError(f"{path}: {exc.strerror or exc}", "check the path and try again")


def _temp_in(directory: Path, name: str) -> tuple[int, str]:
    """Open a fresh temporary file beside the target (so rename is atomic)."""
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, str]:
    """Where writing *path* goes and how: (target, "file" | "stream"); refuses what must not be written.

    Symbolic links are followed (the target is replaced, the link stays a link); a
    character device or a FIFO is written through ("stream"); a block device, a socket,
    standard output ('-') and any of the command's own *inputs* are refused.
    """
    if str(path) == "-":
        raise UsageError("'-' (standard output) cannot take this file", "give a file name")
    path = Path(path)
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, "file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{path}: a loop of symbolic links", "point the link at a file, or "
                               "choose another output path") from None
        raise describe_os_error(path, exc) from None
    for given in inputs:
        try:
            same = _same_file(st, os.stat(given))
        except (OSError, ValueError):
            continue
        if same:
            raise UsageError(f"{path}: is also an input of this command ({given}); writing it would "
                             "destroy that input", "choose another output path")
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: is a directory", "give a file name")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return target, "stream"
    if not stat.S_ISREG(st.st_mode):
        what = "block device" if stat.S_ISBLK(st.st_mode) else "socket or other special file"
        raise OutputError(f"{path}: is a {what}; refusing to write over it", "give a regular file name")
    return target, "file"


def _open_stream(path: Path, target: Path) -> int:
    """A write descriptor of a character device or FIFO (a FIFO nobody reads is an error, not a wait)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputError(f"{path}: a FIFO that no process is reading", "start the reader first, "
                               "or give a regular file") from None
        raise describe_os_error(path, exc) from None
    os.set_blocking(fd, True)
    return fd


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 inputs: Sequence[str | os.PathLike] = ()) -> Iterator[IO]:
    """Open a temporary file for writing; on success rename it over *path*'s target.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    the exception re-raised; OSErrors become OutputErrors naming the path. A symlink's
    target is replaced (its permission bits kept), a character device or FIFO is
    written through, and *inputs* (the command's own input files) are never written.
    """
    path = Path(path)
    target, how = check_output(path, inputs)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    if how == "stream":
        fd = _open_stream(path, target)
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                yield handle
        except OSError as exc:
            raise describe_os_error(path, exc) from None
        return
    try:
        permissions = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        permissions = 0o644
    try:
        fd, tmp = _temp_in(target.parent, target.name)
    except OSError as exc:
        raise describe_os_error(path, exc) from None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise describe_os_error(path, exc) from None
        raise


def write_files_atomic(contents: Mapping[str | os.PathLike, bytes],
                       inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Write every file of *contents* (path → bytes) or none: all are written and synced to
    temporary files before the first is renamed into place."""
    with contextlib.ExitStack() as stack:
        for path, data in contents.items():
            handle = stack.enter_context(atomic_write(path, "wb", inputs=inputs))
            handle.write(data)
            handle.flush()
            if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                os.fsync(handle.fileno())


def write_text_atomic(path: str | os.PathLike, text: str,
                      inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Write *text* (UTF-8) to *path* atomically."""
    with atomic_write(path, "w", inputs=inputs) as handle:
        handle.write(text)
