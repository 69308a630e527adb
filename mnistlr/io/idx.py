"""Reading and writing IDX files (the MNIST format), raw or gzip-compressed.

An IDX file is a 4-byte magic (0, 0, element type, number of dimensions), one
big-endian uint32 per dimension, then the elements in C order, big-endian.
Every malformed input becomes a `DataError` naming the file and the problem.

A gzip file is decompressed block by block straight into the final array (no
bytes object of the whole file first: peak memory is the array plus ~1 MiB).
Decoded arrays of gzip files can be cached (``cache=True``; the data layer asks for
it, nothing else does) in the content-keyed cache of `mnistlr.io.cache`, in a
``.cache`` folder beside the source or in *cache_dir*.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from mnistlr.errors import DataError
from mnistlr.io import cache as content_cache
from mnistlr.io.atomic import atomic_write

GZIP_MAGIC = b"\x1f\x8b"
CACHE_DIR = ".cache"            # the default cache folder, beside the file
_READ_BLOCK = 1 << 18          # compressed bytes read at a time
_OUT_BLOCK = 1 << 18           # decompressed bytes produced at a time

# IDX element type code -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPES.items()}
# The fix for a file that is not (or no longer) a valid IDX file.
NOT_IDX_HINT = "give an IDX file (e.g. from 'mnistlr fetch'), or copy it again if it is damaged"


def dims_text(dims: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in dims)


def _check_header(view: memoryview, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate the header; return (big-endian dtype, dims, header length)."""
    size = len(view)
    if size == 0:
        raise DataError(f"{name}: empty file", "fetch or copy it again")
    if size < 4:
        raise DataError(f"{name}: too short for an IDX header ({size} bytes)", NOT_IDX_HINT)
    zero0, zero1, code, ndim = view[0], view[1], view[2], view[3]
    if zero0 or zero1:
        raise DataError(f"{name}: not an IDX file (magic bytes {bytes(view[:4]).hex(' ')}, "
                        "expected 00 00 TYPE NDIM)", NOT_IDX_HINT)
    if code not in IDX_TYPES:
        raise DataError(f"{name}: unknown IDX element type 0x{code:02X} "
                        "(known: 08, 09, 0B, 0C, 0D, 0E)", NOT_IDX_HINT)
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares zero dimensions", NOT_IDX_HINT)
    header_len = 4 + 4 * ndim
    if size < header_len:
        raise DataError(f"{name}: truncated header: {ndim} dimensions need {header_len} bytes, "
                        f"file holds {size:,}", "fetch or copy it again")
    dims = tuple(int(d) for d in np.frombuffer(view, ">u4", count=ndim, offset=4))
    if 0 in dims:
        raise DataError(f"{name}: IDX header declares a dimension of size 0 ({dims_text(dims)})",
                        NOT_IDX_HINT)
    return IDX_TYPES[code], dims, header_len


def parse_idx(data: bytes | memoryview, name: str) -> np.ndarray:
    """Decode the (already decompressed) bytes of an IDX file.

    Returns an array of shape ``dims`` in native byte order; for byte types it is a
    read-only view on *data* (no copy). *name* is used in error messages.
    """
    view = memoryview(data).cast("B")
    dtype, dims, header_len = _check_header(view, name)
    count = _count(dims)
    _check_payload(len(view) - header_len, dtype, dims, header_len, name)
    return _native(np.frombuffer(view, dtype, count=count, offset=header_len).reshape(dims))


def _count(dims: tuple[int, ...]) -> int:
    count = 1
    for d in dims:
        count *= d
    return count


def _check_payload(payload: int, dtype: np.dtype, dims: tuple[int, ...], header_len: int, name: str,
                   more: bool = False) -> None:
    """DataError unless *payload* bytes (more: at least that many) are what the header promises."""
    expected = _count(dims) * dtype.itemsize
    what = (f"{dims_text(dims)} bytes" if dtype.itemsize == 1
            else f"{dims_text(dims)} values of {dtype.itemsize} bytes ({expected:,} bytes)")
    if payload < expected:
        raise DataError(f"{name}: truncated: header promises {what}, "
                        f"file holds {payload:,} after the {header_len}-byte header",
                        "fetch or copy it again")
    if payload > expected:
        extra = f"{'more than ' if more else ''}{payload - expected:,}"
        raise DataError(f"{name}: over-long: {extra} bytes after the {what} "
                        "the header promises", "fetch or copy it again")


def _native(array: np.ndarray) -> np.ndarray:
    """*array* in native byte order (a copy only for multi-byte big-endian types)."""
    dtype = array.dtype
    return array.astype(dtype.newbyteorder("=")) if dtype.itemsize > 1 else array


_IN_FOLDER = "give the IDX file inside it, e.g. DIR/train-images-idx3-ubyte.gz"


def _os_error(path: Path, exc: OSError) -> DataError:
    """The DataError naming *path* for an OS problem opening or reading it."""
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{path}: no such file", "check the path")
    if isinstance(exc, IsADirectoryError) or exc.errno == errno.EISDIR:
        return DataError(f"{path}: is a directory, not an IDX file", _IN_FOLDER)
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: permission denied (cannot read)", "check the file's permissions")
    return DataError(f"{path}: cannot read: {exc.strerror or exc}", "check the file and the disk")


def _gunzip_blocks(handle, name: str):
    """Yield the decompressed bytes of the gzip stream *handle* (every member), ≤ 256 KiB at a time.

    A stream that ends early, or is damaged (bad header, data or CRC), raises a DataError.
    """
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = b""
    try:
        while True:
            if not data:
                data = handle.read(_READ_BLOCK)
                if not data:
                    break
            block = stream.decompress(data, _OUT_BLOCK)
            data = stream.unconsumed_tail
            if block:
                yield block
            if stream.eof:
                # another member may follow, after zero padding (as gzip.decompress allows)
                data = stream.unused_data.lstrip(b"\0")
                while not data:
                    data = handle.read(_READ_BLOCK)
                    if not data:
                        return
                    data = data.lstrip(b"\0")
                stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        block = stream.flush()
        if block:
            yield block
    except zlib.error as exc:
        raise DataError(f"{name}: damaged gzip stream ({exc})", "fetch or copy it again") from None
    if not stream.eof:
        raise DataError(f"{name}: gzip stream is cut off (incomplete download?)",
                        "fetch or copy it again")


# Bytes past the promised payload counted before an over-long file is refused.
_EXTRA_COUNTED = 1 << 24
# Deflate expands at most ~1032:1, so a payload larger than this times the file cannot be there.
_DEFLATE_MAX_RATIO = 1032


def _read_gzip(handle, name: str, compressed_size: int) -> np.ndarray:
    """Decode a gzip IDX stream block by block into the final array (no copy of the whole file).

    A header promising more than the file can hold is not allocated: its bytes are counted
    for the "truncated" message instead.
    """
    blocks = _gunzip_blocks(handle, name)
    head = b""
    for block in blocks:
        head += block
        # the header: 4 bytes, then 4 per dimension
        if len(head) >= 4 and len(head) >= 4 + 4 * head[3]:
            break
    dtype, dims, header_len = _check_header(memoryview(head), name)
    expected = _count(dims) * dtype.itemsize
    if expected > _DEFLATE_MAX_RATIO * compressed_size + _OUT_BLOCK:
        payload = len(head) - header_len + sum(len(block) for block in blocks)
        _check_payload(payload, dtype, dims, header_len, name)
    out = np.empty(expected, np.uint8)
    filled = min(len(head) - header_len, expected)
    out[:filled] = np.frombuffer(head, np.uint8, count=filled, offset=header_len)
    extra = len(head) - header_len - filled
    del head
    for block in blocks:
        take = min(len(block), expected - filled)
        out[filled:filled + take] = np.frombuffer(block, np.uint8, count=take)
        filled, extra = filled + take, extra + len(block) - take
        if extra > _EXTRA_COUNTED:
            break
    _check_payload(filled + extra, dtype, dims, header_len, name, more=extra > _EXTRA_COUNTED)
    return _native(out.view(dtype).reshape(dims))


def _open_regular(path: Path):
    """*path* opened for reading without waiting on a FIFO; only a regular file is read (a
    device such as /dev/zero, a FIFO or a socket would never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        raise DataError(f"{path}: is a device, FIFO or socket, not an IDX file",
                        "give the IDX file, e.g. one from 'mnistlr fetch'")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_file(path: Path) -> tuple[np.ndarray, bool]:
    """(decoded array, whether the file was gzip); OS problems become DataErrors naming the path."""
    try:
        with _open_regular(path) as handle:
            if handle.peek(2)[:2] == GZIP_MAGIC:
                return _read_gzip(handle, path.name, os.fstat(handle.fileno()).st_size), True
            data = handle.read()
    except OSError as exc:
        raise _os_error(path, exc) from None
    return parse_idx(data, path.name), False


def _is_gzip_file(path: Path) -> bool:
    """Whether *path* is a regular file holding gzip (what the cache keeps); False when unreadable."""
    try:
        with _open_regular(path) as handle:
            return handle.peek(2)[:2] == GZIP_MAGIC
    except (OSError, DataError):
        return False   # _read_file names the problem


def read_idx(path: str | os.PathLike, cache: bool = False, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Read an IDX file, gzip or raw (detected by content, not by name).

    With ``cache=True`` the decoded array of a gzip file is kept in the content-keyed cache of
    `mnistlr.io.cache` (in *cache_dir*, default ``.cache/`` beside the file) and memory-mapped
    (read-only) on later loads.
    """
    path = Path(path)
    if not cache or not _is_gzip_file(path):
        return _read_file(path)[0]
    folder = path.parent / CACHE_DIR if cache_dir is None else Path(cache_dir)
    (array,) = content_cache.cached(path, folder, "idx", ("array",), lambda: (_read_file(path)[0],))
    return array


def read_images(path: str | os.PathLike, cache: bool = False) -> np.ndarray:
    """Read an IDX images file: uint8 array (n_samples, rows, cols)."""
    path = Path(path)
    array = read_idx(path, cache=cache)
    if array.ndim == 1:
        raise DataError(f"{path.name}: holds {array.shape[0]:,} labels (a 1-D IDX file), "
                        "not images", "pass it as the labels file")
    if array.ndim != 3:
        raise DataError(f"{path.name}: holds an array of shape {dims_text(array.shape)}; "
                        "images need 3 dimensions (n, rows, cols)", "give an IDX images file")
    if array.dtype != np.uint8:
        raise DataError(f"{path.name}: holds {array.dtype} values; images must be "
                        "unsigned bytes (IDX type 0x08)", "give an IDX images file of bytes")
    return array


def read_labels(path: str | os.PathLike, cache: bool = False) -> np.ndarray:
    """Read an IDX labels file: integer array (n_samples,), uint8 for MNIST."""
    path = Path(path)
    array = read_idx(path, cache=cache)
    if array.ndim != 1:
        what = ("images" if array.ndim == 3
                else f"an array of shape {dims_text(array.shape)}")
        raise DataError(f"{path.name}: holds {what}, not labels (labels are a 1-D IDX file)",
                        "pass it as the images file" if array.ndim == 3 else "give an IDX labels file")
    if array.dtype.kind not in "iu":
        raise DataError(f"{path.name}: holds {array.dtype} values; labels must be integers",
                        "give an IDX labels file of integers")
    return array


def encode_idx(array: np.ndarray) -> bytes:
    """The raw (uncompressed) IDX bytes of *array*."""
    array = np.asarray(array)
    code = _CODE_OF.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise DataError(f"cannot write {array.dtype} as IDX "
                        "(supported: uint8, int8, int16, int32, float32, float64)")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write a {array.ndim}-dimensional array as IDX (1 to 255)")
    if any(d == 0 or d >= 2**32 for d in array.shape):
        raise DataError(f"cannot write shape {array.shape} as IDX (sizes 1 to 2**32-1)")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = True) -> None:
    """Write *array* as an IDX file, atomically; gzip (mtime 0, reproducible) when *compress*."""
    data = encode_idx(array)
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    with atomic_write(path, "wb") as handle:
        handle.write(data)
