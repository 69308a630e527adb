"""Prediction inputs: what a file holds is told by its content, and it is read in batches.

Recognised inputs (``open_inputs``):

- IDX image files, raw or gzip (a 1-D IDX labels file is refused, naming it as labels);
- NumPy ``.npy`` and ``.npz`` (the array named ``images``/``x``/``X``, or the only one),
  gzip-compressed ``.npy`` too; shape (N, rows, cols) or (N, rows·cols);
- CSV (comma, tab, semicolon or blank separated; optional header line; an optional
  leading label column, recognised by rows holding rows·cols + 1 values, as in the
  Kaggle "digit recognizer" files), raw or gzip;
- Parquet (the Hugging Face layout, or a column per pixel; `mnistlr.io.tables.ParquetSource`),
  raw or gzip, a record batch at a time (the labels left unread);
- image files (PNG, JPEG, ...; see `mnistlr.io.images`) and folders of image files;
- ``-``: standard input (IDX, npy, npz, CSV or Parquet, raw or gzip; or one image).

Pixel values follow the one rule of `mnistlr.io.pixels`: integers (and CSV cells without a
decimal point) are raw pixels 0–255; floats are on the [0, 1] scale when all lie in [0, 1],
on the 0–255 scale when the largest is 2 or more, and refused in between; an input's scale
is told by its first batch. NaN, infinities, negative values and values above the scale's
top are errors naming the image (or CSV line).

Everything streams: array files are read one batch at a time into fresh buffers
(never loaded whole), gzip files are decompressed incrementally, CSV is parsed a
batch of lines at a time, so memory stays flat however large the input.
Each batch is a `Batch` of raw pixels, uint8 or float32 0–255. This module detects and opens
the inputs; the readers themselves live in `mnistlr.io.readers`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import stat
import sys
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from mnistlr.errors import DataError, UsageError
from mnistlr.io import images
from mnistlr.io.idx import IDX_TYPES
from mnistlr.io.readers import (
    HEAD_BYTES,
    MAX_IMAGE_BYTES,
    ArraySource,
    CsvSource,
    ImageFiles,
    Reopen,
    Source,
    _peek,
    _read_full,
    csv_layout,
    idx_header,
    npy_header,
)

GZIP_MAGIC = b"\x1f\x8b"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"
STDIN = "-"
NPZ_NAMES = ("images", "x", "X", "x_test", "X_test", "arr_0")
MAX_STREAM_BYTES = 1 << 30  # an .npz archive or .npy array read whole from standard input


# ---------------------------------------------------------------- sniffing and streams

def sniff(head: bytes) -> str:
    """What a file's first bytes say it is: gzip, npy, npz, parquet, idx, image, csv or unknown."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_TYPES and head[3] > 0:
        return "idx"
    if images.looks_like_image(head):
        return "image"
    return "csv" if _is_text(head) else "unknown"


def unrecognised(name: str, head: bytes, fix: str) -> DataError:
    """The DataError for content that is no format read here, naming a text file in another encoding
    than UTF-8 (a CSV saved as UTF-16 or Latin-1) with the conversion that makes it readable."""
    encoding = _other_text_encoding(head)
    if encoding is not None:
        return DataError(f"{name}: text in {encoding}, not UTF-8 (CSV files are read as UTF-8 or ASCII)",
                         f"convert it, e.g. iconv -f {encoding} -t UTF-8 FILE > FILE.utf8.csv")
    return DataError(f"{name}: unrecognised content (first bytes {head[:4].hex(' ')})", fix)


def _other_text_encoding(head: bytes) -> str | None:
    """'UTF-16' or 'UTF-32' for text that starts with their byte-order mark, 'Latin-1' for
    8-bit text that is not UTF-8 (printable, with digits), else None."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    text = head.decode("latin-1")
    if b"\0" not in head and any(c.isdigit() for c in text) and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "Latin-1"
    return None


def _is_text(head: bytes) -> bool:
    """Printable UTF-8 text holding at least one digit (a cut-off last character is allowed)."""
    for cut in range(4):
        try:
            text = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    text = text.removeprefix("\ufeff")
    return any(c.isdigit() for c in text) and all(c.isprintable() or c in "\t\r\n" for c in text)


def _open_file(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", "check the path") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied (cannot read)", "check the file's permissions") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}", "check the file and the disk") from None


def _layers(raw: IO[bytes], name: str, owns: bool = True) -> tuple[str, bool, bytes, IO[bytes]]:
    """Look through gzip: (kind, compressed, head, stream at the content's byte 0)."""
    head, stream = _peek(raw, name, owns)
    if not head:
        raise DataError(f"{name}: empty input", "give a non-empty IDX, .npy, CSV or image file")
    if not head.startswith(GZIP_MAGIC):
        return sniff(head), False, head, stream
    head, stream = _peek(gzip.GzipFile(fileobj=stream, mode="rb"), name)
    if not head:
        raise DataError(f"{name}: empty gzip file", "give a non-empty file")
    return sniff(head), True, head, stream


# ---------------------------------------------------------------- opening

def _skipping(reopen: Reopen, n_bytes: int, name: str) -> Reopen:
    """*reopen*, with the first *n_bytes* (a header) skipped."""
    @contextlib.contextmanager
    def opened() -> Iterator[IO[bytes]]:
        with reopen() as stream:
            _read_full(stream, memoryview(bytearray(n_bytes)), name)
            yield stream
    return opened


def _file_content(path: Path, compressed: bool) -> Reopen:
    @contextlib.contextmanager
    def opened() -> Iterator[IO[bytes]]:
        with _open_file(path) as raw:
            if not compressed:
                yield raw
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as content:
                yield content
    return opened


def _check_size(name: str, size: int | None, header: int, dims: tuple[int, ...], itemsize: int) -> None:
    """Compare an uncompressed file's size with what its header promises (before reading)."""
    # Python integers: a hostile header's dims overflow int64 (np.prod would wrap to a negative)
    expected = header + math.prod(dims) * itemsize
    if size is None or size == expected:
        return
    row = math.prod(dims[1:]) * itemsize
    if size < expected:
        raise DataError(f"{name}: truncated: the header promises {dims[0]:,} images, the file holds "
                        f"{max(size - header, 0) // row:,}", "copy the file again")
    raise DataError(f"{name}: over-long: {size - expected:,} bytes after the {dims[0]:,} images "
                    "the header promises", "copy the file again")


def _content_source(name: str, kind: str, head: bytes, reopen: Reopen,
                    image_shape: tuple[int, int], size: int | None = None) -> Source:
    """A Source for IDX, npy or CSV content (already out of any gzip layer)."""
    if kind == "idx":
        dtype, dims, length = idx_header(head, name)
        _check_size(name, size, length, dims, dtype.itemsize)
        return ArraySource(name, "idx", dtype, dims, False, _skipping(reopen, length, name))
    if kind == "npy":
        dtype, shape, fortran, length = npy_header(head, name)
        _check_size(name, size, length, shape, dtype.itemsize)
        return ArraySource(name, "npy", dtype, shape, fortran, _skipping(reopen, length, name))
    if kind == "csv":
        return CsvSource(name, reopen, csv_layout(head, name, image_shape), image_shape)
    raise unrecognised(name, head, "give an IDX, .npy/.npz, CSV, Parquet or image file")


def _npz_source(name: str, file: Path | IO[bytes]) -> Source:
    """The images array of an .npz file (named images/x/X/..., or the only array)."""
    try:
        with zipfile.ZipFile(file) as archive:
            keys = [m[:-4] for m in archive.namelist() if m.endswith(".npy")]
            key = keys[0] if len(keys) == 1 else next((k for k in NPZ_NAMES if k in keys), None)
            if key is None:
                raise DataError(f"{name}: holds {len(keys)} arrays ({', '.join(keys[:8]) or 'none'}); "
                                "which are the images?", "name the array 'images': np.savez(f, images=X)")
            with archive.open(key + ".npy") as member:
                head = member.read(HEAD_BYTES)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DataError(f"{name}: damaged .npz file ({exc})") from None
    dtype, shape, fortran, length = npy_header(head, f"{name}[{key}]")

    @contextlib.contextmanager
    def opened() -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(file) as archive, archive.open(key + ".npy") as member:
            yield member

    return ArraySource(name, "npz", dtype, shape, fortran, _skipping(opened, length, name))


def _open_path(path: Path, image_shape: tuple[int, int]) -> Source | tuple[str, Any]:
    """A Source for the file at *path*, or (name, path) for an image file."""
    name = str(path)
    raw = _open_file(path)
    if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):  # a pipe or device: one pass only
        return _open_stream(raw, name, image_shape)
    with raw:
        kind, compressed, head, _ = _layers(raw, name, owns=False)
    if kind == "image" or (kind == "unknown" and path.suffix.lower() in images.IMAGE_SUFFIXES):
        return name, path
    if kind == "npz" and not compressed:
        return _npz_source(name, path)
    if kind == "parquet":
        from mnistlr.io.tables import ParquetSource

        if not compressed:
            return ParquetSource(name, path)
        with _file_content(path, True)() as content:   # read from its end: inflated into memory
            return ParquetSource(name, _in_memory(content, name, "a Parquet file"))
    size = None if compressed else path.stat().st_size
    return _content_source(name, kind, head, _file_content(path, compressed), image_shape, size)


def _in_memory(content: IO[bytes], name: str, what: str) -> IO[bytes]:
    """A seekable copy of a format read from its end or by its index (.npz, Parquet) that came on a
    stream or through gzip: at most MAX_STREAM_BYTES of it."""
    return io.BytesIO(read_capped(content, MAX_STREAM_BYTES, name, what))


def _open_stream(stream: IO[bytes], name: str, image_shape: tuple[int, int]) -> Source | tuple[str, Any]:
    """A Source for a stream read once (standard input, a pipe), sniffed from its first bytes."""
    if stream.isatty():
        raise UsageError(f"{name} is a terminal, not data", "pipe or redirect the images into it")
    kind, _, head, content = _layers(stream, name, owns=False)
    if kind == "image":
        return name, read_capped(content, MAX_IMAGE_BYTES, name, "an image file")
    if kind == "npz":
        return _npz_source(name, _in_memory(content, name, "an .npz file"))
    if kind == "parquet":   # Parquet is read from its end: held in memory, as an .npz is
        from mnistlr.io.tables import ParquetSource

        return ParquetSource(name, _in_memory(content, name, "a Parquet file"))
    used = []

    @contextlib.contextmanager
    def opened() -> Iterator[IO[bytes]]:
        if used:
            raise DataError(f"{name} can be read only once")
        used.append(True)
        yield content

    return _content_source(name, kind, head, opened, image_shape)


def read_capped(stream: IO[bytes], cap: int, name: str, what: str) -> bytes:
    """All of *stream*, which must hold at most *cap* bytes (a stream is never read unbounded)."""
    chunks, total = [], 0
    while total <= cap:
        chunk = bytearray(min(1 << 20, cap + 1 - total))
        got = _read_full(stream, memoryview(chunk), name)
        chunks.append(bytes(chunk[:got]))
        total += got
        if got < len(chunk):
            return b"".join(chunks)
    size = f"{cap >> 20:,} MiB" if cap >= 1 << 20 else f"{cap:,} bytes"
    raise DataError(f"{name}: {what} of more than {size} on standard input",
                    "give it as a file, or a smaller one")


def open_inputs(inputs: Sequence[str | os.PathLike], image_shape: tuple[int, int],
                stdin: IO[bytes] | None = None) -> list[Source]:
    """Open and check every input (headers, shapes of CSV rows) before any is read.

    inputs: paths, folders (their image files) or "-" (standard input, *stdin* or
    sys.stdin.buffer). Consecutive image files are grouped into one ImageFiles source.
    """
    if not inputs:
        raise UsageError("no input given", "give a file, a folder or '-' for standard input")
    if sum(str(arg) == STDIN for arg in inputs) > 1:
        raise UsageError("'-' (standard input) is given more than once", "give it once")
    sources: list[Source] = []
    pictures: list[tuple[str, Any]] = []
    for arg in inputs:
        if str(arg) == STDIN:
            found = [_open_stream(stdin if stdin is not None else sys.stdin.buffer, "<stdin>",
                                   image_shape)]
        elif Path(arg).is_dir():
            found = [(str(p), p) for p in images.image_files_in(Path(arg))]
        else:
            found = [_open_path(Path(arg), image_shape)]
        for item in found:
            if isinstance(item, Source):
                if pictures:
                    sources.append(ImageFiles(pictures, image_shape))
                    pictures = []
                sources.append(item)
            else:
                pictures.append(item)
    if pictures:
        sources.append(ImageFiles(pictures, image_shape))
    return sources


def total_count(sources: Sequence[Source]) -> int | None:
    """The number of images in all *sources*, or None when a CSV makes it unknown."""
    counts = [s.count for s in sources]
    return None if None in counts else sum(counts)


def detect(path: str | os.PathLike) -> tuple[str, bool, bytes]:
    """(kind as `sniff` tells it, gzip-compressed, the content's first bytes) of the file at *path*."""
    name = str(path)
    with _open_file(Path(path)) as raw:
        kind, compressed, head, _ = _layers(raw, name, owns=False)
    return kind, compressed, head


def content_of(path: str | os.PathLike, compressed: bool) -> Reopen:
    """Opens the content of the file at *path* (through its gzip layer when *compressed*)."""
    return _file_content(Path(path), compressed)
