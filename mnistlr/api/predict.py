"""`predict`: labels (and probabilities) for images from any input, streamed batch by batch.

Output rows: ``source`` (when there are several input files), ``index`` (the image's
position in its source; 0 for image files), ``label``; with ``proba`` one column per
class (``p<label>``); with ``top_k`` the K best labels and their probabilities
(``top1, p_top1, ...``). Formats: csv, tsv (header line), jsonl (one object per
image, same fields, one a line) and json (the same objects as one JSON array, still streamed:
'[', the objects comma-separated, ']' after the last batch); kaggle: ``ImageId,Label`` with 1-based ids counted over all inputs, as
Kaggle's digit recognizer expects. Probabilities carry 6 significant digits.

Rows are formatted a batch at a time with one precomputed %-format (no per-row Python
in the common case) and the stream is flushed after each batch, so memory stays flat
and a reader that stops early (``| head``) ends the run quietly (`OutputClosed`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from mnistlr.errors import DataError, MnistlrError, OutputClosed, UsageError
from mnistlr.io.atomic import atomic_write, check_output
from mnistlr.io.inputs import open_inputs, total_count
from mnistlr.io.readers import Source
from mnistlr.learn.model import LinearModel

FORMATS = ("csv", "tsv", "jsonl", "json", "kaggle")
DEFAULT_BATCH_SIZE = 8192
# Rows scored per matrix product: small enough for the float32 copy to stay in cache.
SCORE_CHUNK = 2048
PROBA_FORMAT = "%.6g"

Progress = Callable[[int, "int | None"], None]


@dataclasses.dataclass
class Predictions:
    """One batch of results: index (n,) int64, labels (n,) int64, proba (n, n_classes)
    float32 or None, top_labels / top_proba (n, k) or None; source: the input's name,
    or one name per image (image files)."""

    source: str | list[str]
    index: np.ndarray
    labels: np.ndarray
    proba: np.ndarray | None = None
    top_labels: np.ndarray | None = None
    top_proba: np.ndarray | None = None


def scores(model: LinearModel, X: np.ndarray) -> np.ndarray:
    """Decision scores (n, n_outputs) float32 of raw pixels X, SCORE_CHUNK rows at a time (a feature
    model takes them all: it scores blocks of rows on two threads)."""
    if len(X) <= SCORE_CHUNK or model.features is not None:
        return model.raw_scores(X)
    return np.concatenate([model.raw_scores(X[i:i + SCORE_CHUNK])
                           for i in range(0, len(X), SCORE_CHUNK)])


def predict_batches(model: LinearModel, sources: Sequence[Source], batch_size: int = DEFAULT_BATCH_SIZE,
                    proba: bool = False, top_k: int | None = None) -> Iterator[Predictions]:
    """Predictions for every image of *sources*, one batch at a time (the next batch is read
    while one is scored)."""
    from mnistlr.learn.kernels.threads import read_ahead

    for source in sources:
        batches = source.batches(batch_size)
        for batch in read_ahead(batches, getattr(batches, "close", None)):
            S = scores(model, batch.X)
            n = len(S)
            if batch.names is None:
                name, index = source.name, np.arange(batch.start, batch.start + n, dtype=np.int64)
            else:
                name, index = batch.names, np.zeros(n, np.int64)
            result = Predictions(name, index, model.labels_from_scores(S))
            if proba or top_k:
                P = model.proba_from_scores(S)
                result.proba = P if proba else None
                if top_k:
                    # the k most probable classes, best first (ties: the smaller class index)
                    order = np.argsort(-P, axis=1, kind="stable")[:, :top_k]
                    result.top_labels = model.classes[order]
                    result.top_proba = np.take_along_axis(P, order, axis=1)
            yield result


def _quote(text: str, fmt: str) -> str:
    """*text* as a field of *fmt* (CSV quoting, or a JSON string), '%' escaped for formatting."""
    if fmt in ("jsonl", "json"):
        quoted = json.dumps(text, ensure_ascii=False)
    elif any(c in text for c in ('"', "\n", "\r", "," if fmt == "csv" else "\t")):
        quoted = '"' + text.replace('"', '""') + '"'
    else:
        quoted = text
    return quoted.replace("%", "%%")


class RowWriter:
    """Turns `Predictions` into bytes of csv, tsv, jsonl or json rows (`header`, `rows` per batch, `footer`)."""

    def __init__(self, fmt: str, classes: np.ndarray, proba: bool = False,
                 top_k: int | None = None, with_source: bool = False):
        if fmt == "kaggle":
            proba, top_k, with_source = False, None, False
        self.fmt, self.with_source, self.written = fmt, with_source, 0
        columns = [("ImageId", "%d"), ("Label", "%d")] if fmt == "kaggle" else [("index", "%d"), ("label", "%d")]
        columns += [(f"p{c}", PROBA_FORMAT) for c in classes] if proba else []
        for k in range(1, (top_k or 0) + 1):
            columns += [(f"top{k}", "%d"), (f"p_top{k}", PROBA_FORMAT)]
        self.columns = (["source"] if with_source else []) + [name for name, _ in columns]
        if fmt in ("jsonl", "json"):
            self._numeric = ", ".join(f'"{name}": {spec}' for name, spec in columns) + "}\n"
        else:
            self._numeric = ("\t" if fmt == "tsv" else ",").join(spec for _, spec in columns) + "\n"
        self._floats = proba or bool(top_k)

    def header(self) -> bytes:
        if self.fmt in ("jsonl", "json"):
            return b"[\n" if self.fmt == "json" else b""
        return (("\t" if self.fmt == "tsv" else ",").join(self.columns) + "\n").encode()

    def footer(self) -> bytes:
        """What follows the last batch: the end of json's array."""
        return b"\n]\n" if self.fmt == "json" else b""

    def _prefix(self, name: str) -> str:
        if self.fmt in ("jsonl", "json"):
            return '{"source": ' + _quote(name, "jsonl") + ", " if self.with_source else "{"
        if not self.with_source:
            return ""
        return _quote(name, self.fmt) + ("\t" if self.fmt == "tsv" else ",")

    def rows(self, result: Predictions) -> bytes:
        """The formatted rows of one batch."""
        n, earlier = len(result.labels), self.written
        index = np.arange(self.written + 1, self.written + n + 1) if self.fmt == "kaggle" else result.index
        self.written += n
        parts = [index, result.labels]
        if result.proba is not None:
            parts.append(result.proba)
        if result.top_labels is not None:
            pairs = np.empty((len(result.labels), 2 * result.top_labels.shape[1]), np.float64)
            pairs[:, 0::2], pairs[:, 1::2] = result.top_labels, result.top_proba
            parts.append(pairs)
        table = np.column_stack(parts).astype(np.float64 if self._floats else np.int64)
        if isinstance(result.source, str):
            row = self._prefix(result.source) + self._numeric
            text = (row * len(table)) % tuple(table.ravel().tolist())
        else:
            text = "".join((self._prefix(name) + self._numeric) % tuple(values)
                           for name, values in zip(result.source, table.tolist(), strict=True))
        if self.fmt == "json":   # JSON strings hold no raw newline: each one ends an object
            text = (",\n" if earlier else "") + text[:-1].replace("\n", ",\n")
        return text.encode()


_COMPRESSED = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
# binary formats a name may promise that predictions (text rows) are not
_BINARY = {".parquet": "Parquet", ".feather": "Feather", ".arrow": "Arrow", ".npy": "a NumPy array",
           ".npz": "a NumPy archive", ".xlsx": "Excel", ".xls": "Excel", ".h5": "HDF5", ".hdf5": "HDF5",
           ".pkl": "a pickle", ".pickle": "a pickle", ".joblib": "a joblib file", ".onnx": "ONNX", ".zip": "zip"}


def output_format(output: str | os.PathLike | None, fmt: str | None) -> str:
    """The output format: *fmt*, else told by the output's suffix (.json, .jsonl, .tsv), else csv.
    A compression suffix (.gz, …) or a binary format's (.parquet, .npy, …) without *fmt* is refused:
    the rows are written as plain text."""
    suffix = Path(output).suffix.lower() if output is not None else ""
    if suffix in _COMPRESSED:
        raise UsageError(f"{output}: predictions are written as plain text, not {_COMPRESSED[suffix]}",
                         f"drop '{Path(output).suffix}' from the name, or pipe: mnistlr predict … | "
                         f"{_COMPRESSED[suffix]} > {Path(output).name}")
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format '{fmt}'", f"use one of {', '.join(FORMATS)}")
        return fmt
    if suffix in _BINARY:
        raise UsageError(f"{output}: predictions are written as text ({', '.join(FORMATS[:4])}), "
                         f"not {_BINARY[suffix]}", f"name it {Path(output).with_suffix('.csv').name} (or .tsv, "
                         ".jsonl, .json), or give --format")
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".tsv": "tsv",
            ".tab": "tsv"}.get(suffix, "csv")


def _check(model: LinearModel, sources: Sequence[Source], top_k: int | None, batch_size: int,
           fmt: str = "csv", proba: bool = False) -> None:
    """Refuse bad option values and inputs whose image shape does not fit the model."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}", "e.g. --batch-size 8192")
    if fmt == "kaggle" and (proba or top_k):
        raise UsageError("--format kaggle writes ImageId,Label only", "drop --proba and --top-k")
    if top_k is not None and not 1 <= top_k <= model.n_classes:
        raise UsageError(f"--top-k {top_k} is not between 1 and the model's {model.n_classes} classes",
                         f"give 1 to {model.n_classes}")
    rows, cols = model.image_shape
    for source in sources:
        # compared as tuples: a header may promise sizes no array could have
        if source.shape not in ((rows, cols), (rows * cols,)):
            raise DataError(f"{source.name}: input images are {'×'.join(map(str, source.shape))} "
                            f"but the model expects {rows}×{cols}",
                            "give images of the shape the model was trained on")


def _write(stream: IO[bytes], writer: RowWriter, results: Iterator[Predictions],
           callback: Progress | None, total: int | None) -> int:
    """Write the header, every batch of rows (flushed) and the footer; returns the number of rows.

    The header goes out with the first batch, so an input refused in its first batch
    leaves the output empty (without images, json's still goes out, before its footer).
    """
    done = 0
    header = writer.header()
    for result in results:
        stream.write(header + writer.rows(result))
        stream.flush()
        header = b""
        done += len(result.labels)
        if callback is not None:
            callback(done, total)
    if writer.footer():
        stream.write(header + writer.footer())
        stream.flush()
    return done


def predict(model: str | os.PathLike | LinearModel, inputs: Sequence[str | os.PathLike],
            output: str | os.PathLike | None = None, fmt: str | None = None, proba: bool = False,
            top_k: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
            stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None,
            callback: Progress | None = None) -> dict[str, Any]:
    """Predict every image of *inputs* and write rows to *output* (atomically) or *stdout*.

    model: a model file or a LinearModel; inputs: files, folders or "-" (stdin);
    stdout: a binary stream (default sys.stdout.buffer); callback(done, total) after
    each batch (total None when unknown). Raises OutputClosed when the reader of
    stdout goes away. Returns a summary: images, sources, output, format, seconds.
    """
    from mnistlr.learn.persistence import load_model

    started = time.perf_counter()
    read = [p for p in [model, *inputs] if not isinstance(p, LinearModel) and str(p) != "-"]
    if output is not None:   # first: an output that is an input (img.gz) is named as such
        check_output(output, read)
    fmt = output_format(output, fmt)
    if not isinstance(model, LinearModel):
        model = load_model(model)
    sources = open_inputs(inputs, model.image_shape, stdin=stdin)
    _check(model, sources, top_k, batch_size, fmt, proba)
    several = len(sources) > 1 or any(s.kind == "image" and s.count > 1 for s in sources)
    writer = RowWriter(fmt, model.classes, proba, top_k, with_source=several)
    results = predict_batches(model, sources, batch_size, proba, top_k)
    total = total_count(sources)
    if output is not None:
        with atomic_write(output, "wb", inputs=read) as handle:
            n_images = _write(handle, writer, results, callback, total)
    else:
        stream = stdout if stdout is not None else sys.stdout.buffer
        try:
            n_images = _write(stream, writer, results, callback, total)
        except BrokenPipeError:
            raise OutputClosed("the reader of the output went away") from None
        except OSError as exc:
            raise MnistlrError(f"cannot write to standard output: {exc.strerror or exc}",
                               "check the disk or pipe it is redirected to") from None
    seconds = time.perf_counter() - started
    return {"images": n_images, "sources": [s.name for s in sources],
            "output": None if output is None else str(output), "format": fmt,
            "seconds": seconds}
