"""Atomic file writing: a temporary file in the target's directory, renamed into place.

A failed or interrupted write never leaves a truncated file under the final name,
and never touches an existing file of that name. Only regular files are replaced:
a symbolic link's target is replaced and the link kept, character devices and FIFOs
(/dev/null, a pipe) are written through, a descriptor named as a path (/dev/stdout,
/dev/fd/N) is written through that descriptor where the shell left it (appending to a
`>>` file, never replacing it), and block devices, sockets, '-' and the command's own
input files are refused (`check_output`, which commands also
call before they start work, so a refusal comes before the work is done).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import sys
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
    if code == errno.EROFS:
        return OutputError(f"{path}: on a read-only file system", "choose a writable location")
    if code in (errno.EACCES, errno.EPERM):
        return OutputError(f"{path}: permission denied", "choose a writable location")
    if code == errno.ENOSPC:
        return OutputError(f"{path}: no space left on device; nothing was written",
                            "free some disk space and run again")
    return OutputError(f"{path}: {exc.strerror or exc}", "check the path and try again")


@functools.cache
def new_file_mode() -> int:
    """The permission bits `open` gives a new file here: 0o666 less the process's umask."""
    try:   # Linux states the umask without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            mask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _temp_in(directory: Path, name: str) -> tuple[int, str]:
    """Open a fresh temporary file beside the target (so rename is atomic)."""
    return tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# paths that name one of the process's own descriptors: /dev/stdout, /dev/fd/1, /proc/self/fd/1
_NAMED_DESCRIPTORS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_DESCRIPTOR_FOLDERS = ("/dev/fd", "/proc/self/fd", f"/proc/{os.getpid()}/fd")


def descriptor_of(path: str | os.PathLike) -> int | None:
    """The descriptor N that *path* names (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N), else None."""
    text = os.path.normpath(os.fspath(path))
    if text in _NAMED_DESCRIPTORS:
        return _NAMED_DESCRIPTORS[text]
    folder, _, name = text.rpartition("/")
    if folder in _DESCRIPTOR_FOLDERS and name.isdigit() and name.isascii():
        return int(name)
    return None


def writes_stdout(path: str | os.PathLike) -> bool:
    """True when *path* names standard output's descriptor (/dev/stdout, /dev/fd/1, or a /dev/fd/N
    that is a copy of it): what is written there goes where the command's results go."""
    fd = descriptor_of(path)
    if fd is None:
        return False
    try:
        return fd == 1 or _same_file(os.fstat(fd), os.fstat(1))
    except OSError:
        return False


def check_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, str]:
    """Where writing *path* goes and how: (target, "file" | "stream" | "descriptor"); refuses what
    must not be written.

    Symbolic links are followed (the target is replaced, the link stays a link); a
    character device or a FIFO is written through ("stream"); a path naming an open
    descriptor (/dev/stdout, /dev/fd/N) is written through that descriptor ("descriptor");
    a block device, a socket, '-' and any of the command's own *inputs* are refused.
    """
    if str(path) == "-":
        raise UsageError("'-' (standard output) cannot take this file", "give a file name, or /dev/stdout")
    path = Path(path)
    fd = descriptor_of(path)
    if fd is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            raise OutputError(f"{path}: descriptor {fd} is not open", "give a file name") from None
        _refuse_inputs(path, st, inputs)
        return path, "descriptor"
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        _check_folder(path, target.parent)
        return target, "file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(f"{path}: a loop of symbolic links", "point the link at a file, or "
                               "choose another output path") from None
        raise describe_os_error(path, exc) from None
    _refuse_inputs(path, st, inputs)
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path}: is a directory", "give a file name")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return target, "stream"
    if not stat.S_ISREG(st.st_mode):
        what = "block device" if stat.S_ISBLK(st.st_mode) else "socket or other special file"
        raise OutputError(f"{path}: is a {what}; refusing to write over it", "give a regular file name")
    _check_folder(path, target.parent)
    return target, "file"


def _check_folder(path: Path, folder: Path) -> None:
    """OutputError unless *folder* (where *path*'s temporary file goes) exists and can take a new file."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise describe_os_error(path, OSError(errno.ENOENT, "")) from None
    except OSError as exc:
        raise describe_os_error(path, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        raise describe_os_error(path, OSError(errno.ENOTDIR, ""))
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise describe_os_error(path, OSError(errno.EROFS, ""))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise describe_os_error(path, OSError(errno.EACCES, ""))


def _refuse_inputs(path: Path, st: os.stat_result, inputs: Sequence[str | os.PathLike]) -> None:
    """UsageError if the file *st* of *path* is one of the command's *inputs*."""
    for given in inputs:
        try:
            same = _same_file(st, os.stat(given))
        except (OSError, ValueError):
            continue
        if same:
            raise UsageError(f"{path}: is also an input of this command ({given}); writing it would "
                             "destroy that input", "choose another output path")


def _dup_flushed(fd: int) -> int:
    """A copy of descriptor *fd*, after flushing what Python buffered for it (stdout, stderr) so the
    file's bytes come after everything written before them."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if stream.fileno() == fd:
                stream.flush()
    return os.dup(fd)


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
    if how != "file":
        fd = _open_stream(path, target) if how == "stream" else _dup_flushed(descriptor_of(path))
        try:
            with os.fdopen(fd, mode, encoding=encoding) as handle:
                yield handle
        except OSError as exc:
            raise describe_os_error(path, exc) from None
        return
    try:
        permissions = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        permissions = new_file_mode()
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
