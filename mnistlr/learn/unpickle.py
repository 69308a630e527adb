"""Reading model files: joblib pickles of plain data, through one restricted unpickler.

joblib's own loader hands arrays of object dtype to a fresh, plain unpickler (a nested
stream that keeps the restricted `find_class` but not the restricted BUILD) and lets
numpy's `dtype.__setstate__` see whatever state a file holds. Neither is used here:
this module reads joblib's format itself. Every opcode goes through `_RestrictedUnpickler`,
which knows three globals (joblib's array wrapper, numpy.ndarray as the wrapper's
subclass, numpy.dtype for plain numeric types), lets BUILD touch only those, refuses the
opcodes a plain-data file never holds, and reads each array's bytes itself after checking
its dtype (plain numbers only), shape and size against the bytes the file still holds,
before anything is allocated. Decompressed size and file size are capped, and only
regular files are read, so a bomb, a device or a FIFO ends in one `ModelFileError`.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import stat
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import ModelFileError

# A model of 64 M float32 weights (e.g. 2.5 megapixel images × 26 classes) fits in this.
MAX_MODEL_BYTES = 256 << 20
# The dtypes numpy pickles for plain numeric arrays (its name, as in dtype('f4', False, True)).
NUMERIC_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
MAX_NDIM = 32  # numpy's own limit is 64; a model's arrays have 1 or 2
_DAMAGED = "it was damaged or tampered with"
_TRAIN = "give a file written by 'mnistlr train'"
# exports that are not read back, by suffix
_EXPORT_SUFFIXES = {".onnx": "an ONNX export", ".csv": "a CSV export"}


class _ArraySpec:
    """What 'joblib.numpy_pickle.NumpyArrayWrapper' stands for here: a placeholder whose
    state (shape, order, dtype) BUILD checks before it reads the array bytes that follow."""

    __slots__ = ()


class _NdarrayType:
    """What 'numpy.ndarray' stands for here: the wrapper's `subclass`, never called."""

    __slots__ = ()


_NDARRAY = _NdarrayType()


def _numeric_dtype(*args: Any) -> np.dtype:
    """np.dtype for the plain numeric types only (numpy pickles them as dtype(name, False, True))."""
    if len(args) != 3 or not isinstance(args[0], str) or not all(isinstance(a, bool) for a in args[1:]):
        raise ModelFileError("model file holds a malformed array type", _DAMAGED)
    if args[0] not in NUMERIC_DTYPES:
        raise ModelFileError(f"model file holds an array of type {args[0][:16]!r}, not plain real "
                             "numbers (a mnistlr model holds no other)", _DAMAGED)
    return np.dtype(args[0])


_ALLOWED_GLOBALS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArraySpec,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _numeric_dtype,
    ("numpy.core.multiarray", "dtype"): _numeric_dtype,
}

# Opcodes a file of plain data never holds: persistent ids, the copyreg extension registry,
# old-style instances, keyword constructors and out-of-band buffers.
_REFUSED_OPCODES = (pickle.PERSID, pickle.BINPERSID, pickle.EXT1, pickle.EXT2, pickle.EXT4,
                    pickle.INST, pickle.OBJ, pickle.NEWOBJ_EX, pickle.NEXT_BUFFER,
                    pickle.READONLY_BUFFER)


def _rebuilt_dtype(dtype: np.dtype, state: Any) -> np.dtype:
    """The dtype a BUILD opcode asks for, made without numpy's dtype.__setstate__.

    A crafted state can crash the interpreter inside __setstate__, so only the states
    numpy itself writes for plain dtypes are accepted (differing at most in byte order).
    """
    endian = state[1] if isinstance(state, tuple) and len(state) == 8 else None
    if endian in ("<", ">") and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(endian)
    if endian is None or dtype.__reduce__()[2] != state:
        raise ModelFileError("model file holds a malformed array type", _DAMAGED)
    return dtype


def _array_layout(state: Any) -> tuple[np.dtype, tuple[int, ...], str, int | None]:
    """(dtype, shape, order, alignment) from a wrapper's state, or ModelFileError."""
    known = {"subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"}
    if not isinstance(state, dict) or not set(state) <= known or not {"shape", "dtype"} <= set(state):
        raise ModelFileError("model file holds a malformed array header", _DAMAGED)
    dtype, shape = state["dtype"], state["shape"]
    order, alignment = state.get("order", "C"), state.get("numpy_array_alignment_bytes")
    if (state.get("subclass", _NDARRAY) is not _NDARRAY or not isinstance(dtype, np.dtype)
            or dtype.kind not in "biuf" or order not in ("C", "F") or alignment not in (None, 16)
            or not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise ModelFileError("model file holds an array that is not a plain numeric array", _DAMAGED)
    return dtype, shape, order, alignment


class _RestrictedUnpickler(pickle._Unpickler):
    """An unpickler of plain containers, numbers, strings and numeric arrays only."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)
        self._size = len(data)
        super().__init__(self._file)

    def _refuse(self) -> None:
        raise ModelFileError("model file holds pickle instructions a mnistlr model never holds",
                             "it is not a mnistlr model, or it was tampered with; nothing in it was run")

    for _op in _REFUSED_OPCODES:
        dispatch[_op[0]] = _refuse
    del _op

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if func is not _numeric_dtype or not isinstance(args, tuple):
            self._refuse()
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        args = self.stack.pop()
        if self.stack[-1] is not _ArraySpec or args != ():
            self._refuse()
        self.stack[-1] = _ArraySpec()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            self.stack[-1] = _rebuilt_dtype(target, state)
        elif isinstance(target, _ArraySpec):
            self.stack[-1] = self._read_array(*_array_layout(state))
        else:
            self._refuse()

    dispatch[pickle.BUILD[0]] = load_build

    def _read_array(self, dtype: np.dtype, shape: tuple[int, ...], order: str,
                    alignment: int | None) -> np.ndarray:
        """The array bytes that follow a wrapper (after joblib's padding), checked before allocation."""
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if alignment is not None:
            padding = self._file.read(1)
            if len(padding) != 1 or not 0 <= padding[0] <= alignment:
                raise ModelFileError("model file holds a malformed array padding", _DAMAGED)
            self._file.read(padding[0])
        if nbytes > self._size - self._file.tell():
            raise ModelFileError(f"damaged or truncated model file: an array of shape {shape} "
                                 f"needs {nbytes:,} bytes, more than the file holds",
                                 "retrain the model or restore the file from a copy")
        flat = np.frombuffer(self._file.read(nbytes), dtype, count=count)
        array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
        return np.array(array, dtype.newbyteorder("="), order="C")

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise ModelFileError(
                f"refusing to load: the file asks for '{module}.{name}', which a mnistlr model never holds",
                "it is not a mnistlr model, or it was tampered with; nothing in it was run") from None


def _open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file at *path*; anything else is a ModelFileError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if str(path) == "-":   # standard input, for the data of every command, but never a model
            raise ModelFileError("'-': a model is read from its file, not from standard input",
                                 "give the model file's path (e.g. model.joblib)") from None
        raise ModelFileError(f"{path}: no such model file", "train one with 'mnistlr train -o PATH'") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file", "give the .joblib file") from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied", "check the file's permissions") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelFileError(f"{path}: a loop of symbolic links, not a model file",
                                 "point the link at the .joblib file") from None
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})",
                             "check the path and the disk") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise ModelFileError(f"{path}: is a directory, not a model file", "give the .joblib file")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ModelFileError(f"{path}: is not a regular file (a device, FIFO or socket)",
                             "give the .joblib file written by 'mnistlr train'")
    return fd


def _read_capped(fd: int, path: Path) -> bytes:
    """At most MAX_MODEL_BYTES of the file; a longer file is refused before it is read."""
    try:
        if os.fstat(fd).st_size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path}: {os.fstat(fd).st_size:,} bytes is larger than any mnistlr "
                                 f"model ({MAX_MODEL_BYTES >> 20} MiB at most)", _TRAIN)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})",
                             "check the file and the disk") from None
    finally:
        os.close(fd)
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: larger than any mnistlr model "
                             f"({MAX_MODEL_BYTES >> 20} MiB at most)", _TRAIN)
    return data


# joblib's other compressors (compress=("bz2" | "xz" | "lzma" | "lz4", level)), by their magic bytes
_OTHER_COMPRESSION = {b"BZh": "bz2", b"\xfd7zXZ": "xz", b"\x5d\x00\x00": "lzma", b"\x04\x22\x4d\x18": "lz4"}


def _inflated(data: bytes, path: Path) -> bytes:
    """The pickle stream inside joblib's gzip or zlib layer (compress=N is zlib), else *data* itself."""
    if data[:2] == b"\x1f\x8b":
        return _inflate_capped(data, path, 16 + zlib.MAX_WBITS)
    if len(data) > 1 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0:   # a zlib header
        return _inflate_capped(data, path, zlib.MAX_WBITS)
    for magic, name in _OTHER_COMPRESSION.items():
        if data.startswith(magic):
            raise ModelFileError(f"{path}: a model file compressed with {name}, which mnistlr does not read",
                                 "save it with joblib's compress=0, 'zlib' or 'gzip', or retrain the model")
    return data


def _inflate_capped(data: bytes, path: Path, wbits: int) -> bytes:
    """Decompress joblib's gzip or zlib layer, refusing output past MAX_MODEL_BYTES (a bomb)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, MAX_MODEL_BYTES + 1)
    except zlib.error:
        raise ModelFileError(f"{path}: corrupt compressed model file", "train the model again") from None
    if len(out) > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: expands to more than {MAX_MODEL_BYTES >> 20} MiB, larger than "
                             "any mnistlr model (a decompression bomb?)", _TRAIN)
    if not inflater.eof:
        raise ModelFileError(f"{path}: compressed model file is cut off",
                             "retrain the model or restore the file from a copy")
    return out


def read_model_bytes(path: Path) -> bytes:
    """The bytes of the regular file at *path*, at most MAX_MODEL_BYTES (a model or an .npz export)."""
    return _read_capped(_open_regular(path), path)


def read_payload(path: Path, data: bytes | None = None) -> Any:
    """The object stored in the model file at *path* (or in its bytes *data*), read through the
    restricted unpickler."""
    data = _inflated(read_model_bytes(path) if data is None else data, path)
    if not data:
        raise ModelFileError(f"{path}: empty file, not a mnistlr model file", _TRAIN)
    if data[:1] != b"\x80":   # every pickle of protocol 2 or later starts so
        export = _EXPORT_SUFFIXES.get(path.suffix.lower())
        if export:
            raise ModelFileError(f"{path}: not a mnistlr model file (by its name, {export}, which "
                                 "mnistlr does not read back)", "give the .joblib model it was exported from")
        raise ModelFileError(f"{path}: not a mnistlr model file (no joblib pickle in it)",
                             "give a .joblib file written by 'mnistlr train' or an .npz from 'mnistlr export'")
    try:
        return _RestrictedUnpickler(data).load()
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc.message}", exc.hint) from None
    except MemoryError:
        raise ModelFileError(f"{path}: not enough memory to read this model file",
                             "free some memory, or check the file is a mnistlr model") from None
    except Exception:  # noqa: BLE001  any failure of a damaged stream; nothing in it ran
        raise ModelFileError(f"{path}: damaged or truncated model file (its pickle stream breaks off "
                             "or is corrupt)", "retrain the model or restore the file from a copy") from None


