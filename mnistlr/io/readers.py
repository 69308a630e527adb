"""Readers of prediction inputs: the `Batch` and `Source` types, the readers of array
files (IDX, .npy, .npz member), CSV rows and image files, the header parsers
(`idx_header`, `npy_header`, `csv_layout`) and the byte-stream helpers they use; each
source streams its images one batch at a time into fresh buffers, each batch checked by
the one pixel rule of `mnistlr.io.pixels` (the scale told by the source's first batch). Which reader a file gets is decided in `mnistlr.io.inputs`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple

import numpy as np

from mnistlr.errors import DataError
from mnistlr.io import images
from mnistlr.io.idx import IDX_TYPES
from mnistlr.io.labels import LABEL_VALUES_HINT, integer_labels
from mnistlr.io.pixels import PIXELS_HINT, check_pixels, pixel_top

HEAD_BYTES = 1 << 16  # enough for any header, and a CSV line of 784 long floats
CSV_CELL_CHARS = 40   # a pixel value in CSV text is never longer (with its separator)
MAX_IMAGE_BYTES = 64 << 20  # one image file (of one digit) read from standard input


class Batch(NamedTuple):
    """X: raw pixels (n, rows, cols) or (n, rows·cols), uint8 or float32 0–255.

    start: the index of X[0] within its source; names: one source name per image
    (image files, each an input of its own, index 0) or None (all from the source).
    """

    X: np.ndarray
    start: int
    names: list[str] | None = None
    y: np.ndarray | None = None


class Source:
    """One input: name, kind, per-image shape ((rows, cols) or (n_features,)), image count."""

    def __init__(self, name: str, kind: str, shape: tuple[int, ...], count: int | None):
        self.name, self.kind, self.shape, self.count = name, kind, tuple(shape), count

    def batches(self, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.kind}, shape={self.shape}, count={self.count})"


# ---------------------------------------------------------------- streams

class _Replay(io.RawIOBase):
    """A stream that gives back *head* (bytes already read) before the rest of *rest*."""

    def __init__(self, head: bytes, rest: IO[bytes], owns: bool = True):
        self._head, self._rest, self._owns = memoryview(head), rest, owns

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            k = min(len(buffer), len(self._head))
            buffer[:k] = self._head[:k]
            self._head = self._head[k:]
            return k
        return self._rest.readinto(buffer)

    def close(self) -> None:
        if self._owns and not self.closed:
            self._rest.close()
        super().close()


def _read_full(stream: IO[bytes], view: memoryview, name: str) -> int:
    """Fill *view* from *stream* as far as it goes; returns the bytes read."""
    got = 0
    try:
        while got < len(view):
            k = stream.readinto(view[got:])
            if not k:
                break
            got += k
    except EOFError:
        raise DataError(f"{name}: gzip stream is cut off (incomplete file?)", "copy it again") from None
    except (gzip.BadGzipFile, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"{name}: damaged compressed data ({exc})", "copy it again") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return got


def _peek(stream: IO[bytes], name: str, owns: bool = True) -> tuple[bytes, IO[bytes]]:
    """The first bytes of *stream* and a stream that still starts at byte 0."""
    head = bytearray(HEAD_BYTES)
    got = _read_full(stream, memoryview(head), name)
    return bytes(head[:got]), io.BufferedReader(_Replay(bytes(head[:got]), stream, owns), 1 << 16)


# ---------------------------------------------------------------- headers

def idx_header(head: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header length) of an IDX images file from its first bytes."""
    ndim = head[3]
    length = 4 + 4 * ndim
    if len(head) < length:
        raise DataError(f"{name}: truncated IDX header ({len(head)} bytes, {length} needed)")
    dims = tuple(int(d) for d in np.frombuffer(head, ">u4", count=ndim, offset=4))
    if ndim == 1:
        raise DataError(f"{name}: holds {dims[0]:,} labels (a 1-D IDX labels file), not images",
                        "give the images file, e.g. t10k-images-idx3-ubyte.gz")
    if ndim > 3:   # not the shape: up to 255 dimensions would make a line of a thousand characters
        raise DataError(f"{name}: IDX header declares {ndim} dimensions; images are 3 (n, rows, cols)",
                        "give an IDX images file, e.g. t10k-images-idx3-ubyte.gz")
    if 0 in dims:
        raise DataError(f"{name}: IDX array of shape {'×'.join(map(str, dims))} is not a set of "
                        "images (n, rows, cols)")
    return IDX_TYPES[head[2]], dims, length


def npy_header(head: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, header length) of a .npy file from its first bytes."""
    fmt = np.lib.format
    bio = io.BytesIO(head)
    try:
        version = fmt.read_magic(bio)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(bio)
    except (ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError) as exc:
        raise DataError(f"{name}: damaged .npy header ({error_line(exc)})", "copy the file again") from None
    if dtype.kind not in "uif" or dtype.fields is not None:
        raise DataError(f"{name}: holds {dtype} values, not pixels", PIXELS_HINT)
    if len(shape) == 1:
        raise DataError(f"{name}: holds a 1-D array of {shape[0]:,} values (labels?), not images",
                        "give an array shaped (N, rows, cols) or (N, rows·cols)")
    if len(shape) not in (2, 3):
        raise DataError(f"{name}: holds an array of shape {shape}; images are (N, rows, cols) "
                        "or (N, rows·cols)")
    if shape[0] == 0:
        raise DataError(f"{name}: holds no images (shape {shape})")
    return dtype, tuple(shape), fortran, bio.tell()


def error_line(exc: BaseException, most: int = 200) -> str:
    """An exception's first line, at most *most* characters (NumPy echoes a damaged header, up to
    kilobytes of it: a message stays one readable line)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= most else text[:most] + "…"


def csv_first_line(head: bytes, name: str) -> tuple[int, str | None, list[str]]:
    """(1-based line number, delimiter or None for blanks, cells) of the first non-blank line."""
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    pieces = text.split("\n")
    lineno, line = next(((i, p) for i, p in enumerate(pieces, 1) if p.strip()), (1, ""))
    if lineno == len(pieces) and len(head) >= HEAD_BYTES:
        raise DataError(f"{name}: line {lineno} is longer than {HEAD_BYTES:,} bytes; not a CSV of images")
    delimiter = next((d for d in (",", "\t", ";") if d in line), None)
    cells = [c.strip().strip("\"'") for c in line.split(delimiter)]
    if delimiter is not None and len(cells) > 2 and all(cells[1:-1]):   # names the usual slips
        if not cells[0] and is_header(cells[1:]):
            raise DataError(f"{name}: line {lineno}, the header, names no first column: a pandas index, as "
                            "DataFrame.to_csv writes by default", "write it with to_csv(path, index=False), "
                            "or drop the first column")
        if not cells[-1] and cells[0]:
            raise DataError(f"{name}: line {lineno} ends with a separator: its last value is empty",
                            "remove the separator at the end of each line")
    return lineno, delimiter, cells


def is_header(cells: list[str]) -> bool:
    """A line with any non-numeric cell is a header line."""
    return not all(_is_number(c) for c in cells)


def csv_layout(head: bytes, name: str, image_shape: tuple[int, int]) -> tuple[str | None, bool, bool]:
    """(delimiter or None for blanks, has a header line, has a leading label column).

    Read from the first non-blank line in *head*: a line with any non-numeric cell is a
    header; rows of rows·cols + 1 values start with a label.
    """
    lineno, delimiter, cells = csv_first_line(head, name)
    rows, cols = image_shape
    n_features = rows * cols
    if len(cells) not in (n_features, n_features + 1):
        raise DataError(f"{name}: line {lineno} holds {len(cells)} values, but the model expects "
                        f"{rows}×{cols} = {n_features} pixels per row "
                        f"(or {n_features + 1} with a leading label column)",
                        "give images of the shape the model was trained on")
    return delimiter, is_header(cells), len(cells) == n_features + 1


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- sources

Reopen = Callable[[], contextlib.AbstractContextManager]


class ArraySource(Source):
    """IDX or NumPy images read one batch at a time (fresh buffers) from a stream."""

    def __init__(self, name: str, kind: str, dtype: np.dtype, dims: tuple[int, ...],
                 fortran: bool, reopen: Reopen):
        super().__init__(name, kind, dims[1:], dims[0])
        self.dtype, self.fortran, self._reopen = dtype, fortran, reopen
        self.top: float | None = None   # the scale, told by the first batch

    def _checked(self, X: np.ndarray, start: int) -> Batch:
        def where(i: int) -> str:
            return f"{self.name}: image {start + i:,}"

        if self.top is None:
            self.top = pixel_top(X, where)
        return Batch(check_pixels(X, where, self.top), start)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        row_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        with self._reopen() as stream:
            if self.fortran:  # column-major data cannot be read row by row
                buf = self._read(stream, self.count * row_bytes, 0, row_bytes)
                X = buf.view(self.dtype).reshape((self.count,) + self.shape, order="F")
                for start in range(0, self.count, batch_size):
                    yield self._checked(X[start:start + batch_size], start)
                return
            for start in range(0, self.count, batch_size):
                k = min(batch_size, self.count - start)
                buf = self._read(stream, k * row_bytes, start, row_bytes)
                yield self._checked(buf.view(self.dtype).reshape((k,) + self.shape), start)
            if _read_full(stream, memoryview(bytearray(1)), self.name):
                raise DataError(f"{self.name}: over-long: data continues after the "
                                f"{self.count:,} images the header promises", "copy the file again")

    def _read(self, stream: IO[bytes], size: int, start: int, row_bytes: int) -> np.ndarray:
        buf = np.empty(size, np.uint8)
        got = _read_full(stream, memoryview(buf), self.name)
        if got < size:
            raise DataError(f"{self.name}: truncated: the header promises {self.count:,} images, "
                            f"the data ends after {start + got // row_bytes:,}", "copy the file again")
        return buf


class CsvSource(Source):
    """CSV rows of pixels, parsed a batch of lines at a time.

    label_column: the index of the label column, whose values each batch carries as `y`
    (integers, checked); None: a leading label column is dropped when the layout has one.
    """

    def __init__(self, name: str, reopen: Reopen, layout: tuple[str | None, bool, bool],
                 image_shape: tuple[int, int], label_column: int | None = None):
        n_features = image_shape[0] * image_shape[1]
        super().__init__(name, "csv", (n_features,), None)
        self.delimiter, self.header, leading = layout
        self.label_column = 0 if leading and label_column is None else label_column
        self.keep_labels = label_column is not None
        self.n_columns = n_features + (self.label_column is not None)
        self._reopen = reopen

    def _split(self, X: np.ndarray, numbers: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """(pixels, labels or None) of a parsed batch."""
        if self.label_column is None:
            return X, None
        pixels = np.delete(X, self.label_column, axis=1)
        if not self.keep_labels:
            return pixels, None
        labels = X[:, self.label_column]
        return pixels, integer_labels(labels, lambda i: f"{self.name}: line {numbers[i]}: label {labels[i]:g}")

    def batches(self, batch_size: int) -> Iterator[Batch]:
        # a row of pixels is at most this long (so an endless line is refused, not read whole)
        limit = max(HEAD_BYTES, self.n_columns * CSV_CELL_CHARS)
        with self._reopen() as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline=None)
            lines, numbers, lineno = _next_lines(text, 1 if self.header else 0, 0, self.name, limit)
            start, top = 0, None
            while True:
                lines, numbers, lineno = _next_lines(text, batch_size, lineno, self.name, limit)
                if not lines:
                    break
                X = _parse_lines(lines, numbers, self.delimiter, self.n_columns, self.name,
                                 self.label_column)
                X, y = self._split(X, numbers)

                def where(i: int, n: list[int] = numbers) -> str:
                    return f"{self.name}: line {n[i]}"

                if top is None:
                    top = pixel_top(X, where)   # integers: 0–255; floats: the pixel rule
                yield Batch(check_pixels(X, where, top), start, None, y)
                start += len(X)
            text.detach()
        if start == 0:
            raise DataError(f"{self.name}: no rows of pixels", "give a CSV with one image per row")


def _next_lines(text: IO[str], k: int, lineno: int, name: str,
                limit: int = HEAD_BYTES) -> tuple[list[str], list[int], int]:
    """Up to *k* non-blank lines, their 1-based line numbers, and the last line number read.

    A line longer than *limit* characters is an error (it is never read whole)."""
    lines: list[str] = []
    numbers: list[int] = []
    try:
        while len(lines) < k:
            line = text.readline(limit + 1)
            if not line:
                break
            lineno += 1
            if len(line) > limit:
                raise DataError(f"{name}: line {lineno} is longer than {limit:,} characters; "
                                "not a row of pixels", "give one image per row")
            if not line.isspace():
                lines.append(line)
                numbers.append(lineno)
    except UnicodeDecodeError:
        raise DataError(f"{name}: line {lineno + 1} is not UTF-8 text") from None
    except EOFError:
        raise DataError(f"{name}: gzip stream is cut off (incomplete file?)", "copy it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{name}: damaged compressed data ({exc})", "copy it again") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {exc.strerror or exc}", "check the file and the disk") from None
    return lines, numbers, lineno


def _parse_lines(lines: list[str], numbers: list[int], delimiter: str | None, n_columns: int,
                 name: str, label_column: int | None = None) -> np.ndarray:
    """Parse CSV lines into (n, n_columns) int64 (all integers) or float64."""
    if delimiter is None:
        counts = [len(line.split()) for line in lines]
    else:
        counts = [line.count(delimiter) + 1 for line in lines]
    if counts.count(n_columns) != len(counts):
        i = next(i for i, c in enumerate(counts) if c != n_columns)
        raise DataError(f"{name}: line {numbers[i]} holds {counts[i]} values, expected {n_columns} "
                        "(rows must all have the same length)")
    for dtype in (np.int64, np.float64):
        try:
            # quotechar: cells quoted as a spreadsheet or pandas' QUOTE_ALL writes them ("7","0",…)
            return np.loadtxt(lines, delimiter=delimiter, dtype=dtype, comments=None, ndmin=2, quotechar='"')
        except ValueError:
            continue
    for line, number in zip(lines, numbers, strict=True):
        for column, cell in enumerate(line.split(delimiter), 1):
            cell = cell.strip().removeprefix('"').removesuffix('"')
            if not _is_number(cell):
                text = cell.strip()
                what = f"'{text[:20]}' is not a number" if text else "the cell is empty"
                if column - 1 == label_column:
                    raise DataError(f"{name}: line {number}: label '{text[:20]}' is not an integer",
                                    LABEL_VALUES_HINT)
                raise DataError(f"{name}: line {number}, column {column}: {what}",
                                "give one image per row of pixel values; only the first line may be a header")
    raise DataError(f"{name}: lines {numbers[0]}–{numbers[-1]} cannot be read as numbers")


class ImageFiles(Source):
    """Image files, each one digit, converted MNIST-style (names: one per image)."""

    def __init__(self, items: list[tuple[str, Any]], image_shape: tuple[int, int]):
        images.require_pillow()
        name = items[0][0] if len(items) == 1 else f"{len(items)} image files"
        super().__init__(name, "image", image_shape, len(items))
        self.items = items

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self.items), batch_size):
            chunk = self.items[start:start + batch_size]
            yield Batch(images.read_digits(chunk, self.shape), 0, [name for name, _ in chunk])
