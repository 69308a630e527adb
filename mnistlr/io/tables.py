"""Labelled images in tables: CSV (plain or gzip) and Parquet (the Hugging Face layout).

CSV: one image per row, its pixels in C order. The label column is found by its header
name (`LABEL_NAMES`: label, class, y, target, any case); without a header, or with one that
names no label column, a row of rows·cols + 1 values starts with its label, a row of a
square number of values has none. The image is square: rows = cols = √(number of pixels).
The rows are parsed by pandas' C parser (the `csv` extra) a chunk at a time; without pandas,
or when pandas refuses a chunk (a ragged row, a value that is not a 0–255 integer), the
streaming reader of `mnistlr.io.readers.CsvSource` reads the file instead: it accepts
[0, 1] floats too and names the line and column of anything it cannot accept.

Parquet (the `parquet` extra, pyarrow): a label column (as above) and either an image
column of encoded image files (a struct with a `bytes` field, as in Hugging Face's
ylecun/mnist, or plain binary) or one numeric column per pixel; read a row group at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mnistlr.errors import DataError, MissingExtraError
from mnistlr.io.idx import dims_text
from mnistlr.io.labels import LABEL_VALUES_HINT, integer_labels
from mnistlr.io.pixels import raw_pixels
from mnistlr.io.readers import Batch, CsvSource, Reopen, Source, csv_first_line, is_header

LABEL_NAMES = ("label", "class", "y", "target")
CHUNK_ROWS = 4096
PANDAS_CHUNK_CELLS = 1 << 24   # values pandas parses at a time (~21,000 MNIST rows): measured fastest
                               # at bounded memory (bench/csvread.py; 4,096 rows took ~15 % more CPU)
PARQUET_HINT = "give a Parquet file with a 'label' column and an image or pixel columns"


def square_side(n_pixels: int, name: str, where: str) -> int:
    """The side of a square image of *n_pixels*; a DataError when it is not a square."""
    side = math.isqrt(max(n_pixels, 0))
    if n_pixels < 1 or side * side != n_pixels:
        raise DataError(f"{name}: {where} {n_pixels} pixel values, which is not a square image",
                        "give one square image per row, e.g. 784 = 28×28 values (plus a label)")
    return side


def find_label(names: list[str]) -> int | None:
    """Index of the first column named like a label (label, class, y, target), else None."""
    lowered = [n.strip().strip("\"'").lower() for n in names]
    return next((i for i, n in enumerate(lowered) if n in LABEL_NAMES), None)


# ---------------------------------------------------------------- CSV

def csv_layout(head: bytes, name: str) -> tuple[str | None, bool, int | None, int]:
    """(delimiter, has a header, label column or None, image side) from the first line."""
    lineno, delimiter, cells = csv_first_line(head, name)
    header = is_header(cells)
    label = find_label(cells) if header else None
    n = len(cells)
    if label is None and math.isqrt(n) ** 2 != n and n > 1 and math.isqrt(n - 1) ** 2 == n - 1:
        label = 0
    if label is None and math.isqrt(n) ** 2 != n:
        raise DataError(f"{name}: line {lineno} holds {n} values: neither the pixels of a square "
                        "image nor a label and those pixels",
                        "give one image per row, e.g. a label and 784 = 28×28 pixel values")
    where = f"line {lineno} holds" if label is None else f"line {lineno} holds a label and"
    return delimiter, header, label, square_side(n - (label is not None), name, where)


def read_csv(name: str, reopen: Reopen, head: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Images uint8 (n, side, side) and labels int64 (n,) or None of a CSV."""
    delimiter, header, label, side = csv_layout(head, name)
    try:
        import pandas  # noqa: F401
    except ImportError:
        pandas = None
    if pandas is not None:
        try:
            return _pandas_csv(reopen, delimiter, header, label, side)
        except (ValueError, OverflowError, EOFError, OSError):
            # the streaming reader names the line and the problem (a bad cell, a gzip stream cut
            # off or damaged: pandas lets gzip's EOFError escape), or reads what pandas cannot
            pass
    source = CsvSource(name, reopen, (delimiter, header, False), (side, side), label)
    return _gather(source.batches(CHUNK_ROWS), side)


def _pandas_csv(reopen: Reopen, delimiter: str | None, header: bool, label: int | None,
                side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The fast path: pandas' C parser, every value a uint8 (pixels 0–255, labels 0–255),
    PANDAS_CHUNK_CELLS values at a time (no NA detection: an empty cell is refused like any
    non-integer); anything else raises ValueError (and the slow path decides)."""
    import pandas as pd

    parts = []
    n_columns = side * side + (label is not None)
    with reopen() as stream:
        chunks = pd.read_csv(stream, sep=delimiter or r"\s+", header=None,
                             skiprows=1 if header else 0, dtype=np.uint8, engine="c", na_filter=False,
                             chunksize=max(1, PANDAS_CHUNK_CELLS // n_columns), encoding="utf-8-sig",
                             skip_blank_lines=True)
        for chunk in chunks:
            parts.append(chunk.to_numpy())
    if parts and parts[0].shape[1] != n_columns:
        raise ValueError("column count")
    labels = np.concatenate([p[:, label] for p in parts]).astype(np.int64) if label is not None else None
    keep = None if label is None else np.delete(np.arange(side * side + 1), label)
    return _stack(parts, side, keep), labels


def _stack(parts: list[np.ndarray], side: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Concatenate (k, columns) parts (their *keep* columns) into one C-contiguous uint8
    (n, side, side), freeing each part once copied."""
    n = sum(len(p) for p in parts)
    out = np.empty((n, side * side), np.uint8)
    start = 0
    while parts:
        part = parts.pop(0)
        if keep is not None:
            part = part[:, 1:] if keep[0] == 1 and keep[-1] == len(keep) else part[:, keep]
        out[start:start + len(part)] = part
        start += len(part)
    return out.reshape(n, side, side)


def _gather(batches: Iterator, side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The batches of a CsvSource as uint8 images (rounded) and int64 labels."""
    pixels, labels = [], []
    for batch in batches:
        X = batch.X
        pixels.append(X if X.dtype == np.uint8 else np.clip(np.rint(X), 0, 255).astype(np.uint8))
        if batch.y is not None:
            labels.append(batch.y)
    return _stack(pixels, side), (np.concatenate(labels) if labels else None)


# ---------------------------------------------------------------- Parquet

def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("pyarrow", "parquet", "reading Parquet files") from None
    return pq


def read_parquet(name: str, file: str | Path | IO[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
    """Images uint8 (n, rows, cols) and labels int64 (n,) or None of a Parquet file."""
    images, labels = [], []
    for X, y in _parquet_blocks(name, _parquet_layout(name, file), CHUNK_ROWS):
        images.append(X)
        if y is not None:
            labels.append(y)
    if not images or not sum(map(len, images)):
        raise DataError(f"{name}: holds no rows", PARQUET_HINT)
    return _consistent(images, name), (np.concatenate(labels) if labels else None)


class ParquetSource(Source):
    """The images of a Parquet file for `predict`, a record batch at a time (as `read_parquet`
    reads them; the labels, if any, are left unread)."""

    def __init__(self, name: str, file: str | Path | IO[bytes]):
        self._file = file
        layout = _parquet_layout(name, file)
        first = next(_parquet_blocks(name, layout, 1, labels=False), None)   # row 0: the image shape
        if first is None:
            raise DataError(f"{name}: holds no rows", PARQUET_HINT)
        super().__init__(name, "parquet", first[0].shape[1:], layout[0].metadata.num_rows)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        start = 0
        for X, _ in _parquet_blocks(self.name, _parquet_layout(self.name, self._file), batch_size, labels=False):
            if X.shape[1:] != self.shape:
                raise DataError(f"{self.name}: row {start}: images of different sizes "
                                f"({dims_text(X.shape[1:])} after {dims_text(self.shape)})", "resize them to one size first")
            yield Batch(X, start)
            start += len(X)


def _parquet_layout(name: str, file: str | Path | IO[bytes]) -> tuple[Any, str | None, list[str], str | None]:
    """(the ParquetFile, its image column or None, its pixel columns, its label column or None)."""
    pq = _pyarrow()
    import pyarrow as pa

    if hasattr(file, "seek"):
        file.seek(0)
    try:
        table = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]})",
                        PARQUET_HINT) from None
    schema = table.schema_arrow
    names = list(schema.names)
    label = find_label(names)
    image = next((n for n in names if _is_encoded(schema.field(n).type)), None)
    numeric = (pa.types.is_integer, pa.types.is_floating)
    pixel_columns = [n for i, n in enumerate(names)
                     if i != label and any(is_kind(schema.field(n).type) for is_kind in numeric)]
    if image is None and not pixel_columns:
        raise DataError(f"{name}: no image column (image bytes) and no pixel columns among "
                        f"{', '.join(names[:8])}", PARQUET_HINT)
    return table, image, pixel_columns, (names[label] if label is not None else None)


def _parquet_blocks(name: str, layout: tuple, batch_size: int,
                    labels: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(images uint8 (k, rows, cols), labels (k,) or None) a record batch of *batch_size* rows at a time."""
    import pyarrow as pa

    table, image, pixel_columns, label = layout
    offset = 0
    try:
        for batch in table.iter_batches(batch_size=batch_size):
            if image is not None:
                X = _decode_column(batch.column(image), name, offset)
            else:
                X = _pixel_block(batch, pixel_columns, name, offset)
            y = _label_values(batch.column(label), name, offset) if labels and label is not None else None
            offset += len(X)
            yield X, y
    except pa.ArrowException as exc:
        raise DataError(f"{name}: damaged Parquet data ({str(exc).splitlines()[0]})", PARQUET_HINT) from None


def _is_encoded(kind: Any) -> bool:
    """Binary, or a struct with a binary `bytes` field (Hugging Face's Image feature)."""
    import pyarrow as pa

    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return True
    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


def _decode_column(column: Any, name: str, offset: int) -> np.ndarray:
    """Decode a column of encoded images (as they are: greyscale, no scaling) → uint8 (k, h, w)."""
    import pyarrow as pa

    from mnistlr.io.images import read_grey

    if pa.types.is_struct(column.type):
        column = column.field("bytes")
    decoded = []
    for i, data in enumerate(column.to_pylist()):
        where = f"{name}: row {offset + i}"
        if data is None:
            raise DataError(f"{where}: the image is missing (null)", PARQUET_HINT)
        decoded.append(read_grey(data, where))
    shapes = {d.shape for d in decoded}
    if len(shapes) > 1:
        raise DataError(f"{name}: images of different sizes ({', '.join(sorted(map(str, shapes)))})",
                        "resize them to one size first")
    return np.stack(decoded)


def _pixel_block(batch: Any, columns: list[str], name: str, offset: int) -> np.ndarray:
    """Flat pixel columns → uint8 (k, side, side), checked like every other array input."""
    side = square_side(len(columns), name, "holds")
    X = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns])
    X = raw_pixels(X, lambda i: f"{name}: row {offset + i}")   # the one pixel rule
    X = X if X.dtype == np.uint8 else np.clip(np.rint(X), 0, 255).astype(np.uint8)
    return X.reshape(len(X), side, side)


def _label_values(column: Any, name: str, offset: int) -> np.ndarray:
    import pyarrow as pa

    # integers, or floats that are whole numbers (7.0), as from CSV and .npy
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if not numeric or column.null_count:
        raise DataError(f"{name}: the label column holds {column.type} values"
                        f"{' and nulls' if column.null_count else ''}, not integers", LABEL_VALUES_HINT)
    y = column.to_numpy()
    return integer_labels(y, lambda i: f"{name}: row {offset + i}: label {y[i]}")


def _consistent(parts: list[np.ndarray], name: str) -> np.ndarray:
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise DataError(f"{name}: images of different sizes ({', '.join(sorted(map(str, shapes)))})",
                        "resize them to one size first")
    return np.ascontiguousarray(np.concatenate(parts))
