"""Reading and writing IDX files (the MNIST format), raw or gzip-compressed.

An IDX file is a 4-byte magic (0, 0, element type, number of dimensions), one
big-endian uint32 per dimension, then the elements in C order, big-endian.
Every malformed input becomes a `DataError` naming the file and the problem.

Decoded arrays of gzip files can be cached as ``.npy`` files in a ``.cache``
folder beside the source (``cache=True``; the data layer asks for it, nothing
else does), keyed by the source's size and modification time.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import stat
import zlib
from pathlib import Path

import numpy as np

from mnistlr.errors import DataError, MnistlrError
from mnistlr.io.atomic import atomic_write

GZIP_MAGIC = b"\x1f\x8b"
CACHE_DIR = ".cache"

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


def _dims_text(dims: tuple[int, ...]) -> str:
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
        raise DataError(f"{name}: IDX header declares a dimension of size 0 ({_dims_text(dims)})",
                        NOT_IDX_HINT)
    return IDX_TYPES[code], dims, header_len


def parse_idx(data: bytes | memoryview, name: str) -> np.ndarray:
    """Decode the (already decompressed) bytes of an IDX file.

    Returns an array of shape ``dims`` in native byte order; for byte types it is a
    read-only view on *data* (no copy). *name* is used in error messages.
    """
    view = memoryview(data).cast("B")
    dtype, dims, header_len = _check_header(view, name)
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    payload = len(view) - header_len
    what = (f"{_dims_text(dims)} bytes" if dtype.itemsize == 1
            else f"{_dims_text(dims)} values of {dtype.itemsize} bytes ({expected:,} bytes)")
    if payload < expected:
        raise DataError(f"{name}: truncated: header promises {what}, "
                        f"file holds {payload:,} after the {header_len}-byte header",
                        "fetch or copy it again")
    if payload > expected:
        raise DataError(f"{name}: over-long: {payload - expected:,} bytes after the {what} "
                        "the header promises", "fetch or copy it again")
    array = np.frombuffer(view, dtype, count=count, offset=header_len).reshape(dims)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


_IN_FOLDER = "give the IDX file inside it, e.g. DIR/train-images-idx3-ubyte.gz"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; OS problems become DataErrors naming the path."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", "check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file", _IN_FOLDER) from None
    except PermissionError:
        raise DataError(f"{path}: permission denied (cannot read)", "check the file's permissions") from None
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise DataError(f"{path}: is a directory, not an IDX file", _IN_FOLDER) from None
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}", "check the file and the disk") from None


def _decompress(raw: bytes, name: str) -> bytes:
    """gunzip *raw*; a damaged or cut-off stream becomes a DataError."""
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{name}: gzip stream is cut off (incomplete download?)",
                        "fetch or copy it again") from None
    except (zlib.error, gzip.BadGzipFile, OSError, ValueError) as exc:
        raise DataError(f"{name}: damaged gzip stream ({exc})", "fetch or copy it again") from None


def _cache_path(path: Path, st: os.stat_result) -> Path:
    return path.parent / CACHE_DIR / f"{path.name}.{st.st_size}.{st.st_mtime_ns}.npy"


def _load_cached(cached: Path) -> np.ndarray | None:
    try:
        return np.load(cached, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def _store_cached(path: Path, cached: Path, array: np.ndarray) -> None:
    """Save *array* as the cache of *path*, dropping stale entries; skip silently on failure."""
    try:
        cached.parent.mkdir(exist_ok=True)
        mine = re.compile(re.escape(path.name) + r"\.\d+\.\d+\.npy")
        for stale in cached.parent.iterdir():
            if stale.name != cached.name and mine.fullmatch(stale.name):
                stale.unlink()
        with atomic_write(cached, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    except (OSError, MnistlrError):
        pass


def read_idx(path: str | os.PathLike, cache: bool = False) -> np.ndarray:
    """Read an IDX file, gzip or raw (detected by content, not by name).

    With ``cache=True`` the decoded array of a gzip file is kept as a ``.npy`` in
    ``.cache/`` beside it and memory-mapped (read-only) on later loads.
    """
    path = Path(path)
    st = None
    if cache:
        with contextlib.suppress(OSError):
            st = path.stat()
        if st is not None and stat.S_ISREG(st.st_mode):
            hit = _load_cached(_cache_path(path, st))
            if hit is not None:
                return hit
    raw = _read_bytes(path)
    compressed = raw[:2] == GZIP_MAGIC
    data = _decompress(raw, path.name) if compressed else raw
    del raw
    array = parse_idx(data, path.name)
    if cache and compressed and st is not None:
        _store_cached(path, _cache_path(path, st), array)
    return array


def read_images(path: str | os.PathLike, cache: bool = False) -> np.ndarray:
    """Read an IDX images file: uint8 array (n_samples, rows, cols)."""
    path = Path(path)
    array = read_idx(path, cache=cache)
    if array.ndim == 1:
        raise DataError(f"{path.name}: holds {array.shape[0]:,} labels (a 1-D IDX file), "
                        "not images", "pass it as the labels file")
    if array.ndim != 3:
        raise DataError(f"{path.name}: holds an array of shape {_dims_text(array.shape)}; "
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
                else f"an array of shape {_dims_text(array.shape)}")
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
