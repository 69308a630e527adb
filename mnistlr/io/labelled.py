"""Labelled images from any MNIST-format source: the one reader of train, sweep, evaluate and show.

`read_labelled(source, labels=None, split="train")` returns images uint8 (n, rows, cols) and
labels (n,) (uint8 when they fit, else int64). What *source* is, is told by its content (the
file name is not used):

- an IDX images file, raw or gzip (its labels: *labels*, an IDX labels file or a 1-D .npy);
- a .npy array of images, raw or gzip (labels from *labels*);
- a .npz archive: Keras' names (``x_train``/``y_train`` for split "train", ``x_test``/``y_test``
  for "test", as in Keras' mnist.npz), else ``images``/``labels``, else exactly two arrays
  (images and a 1-D array of labels);
- CSV, raw or gzip, one image per row, with a label column (see `mnistlr.io.tables`): Kaggle's
  digit-recognizer train.csv and the headerless mnist_train.csv both read as they are;
- Parquet in Hugging Face's layout (the `parquet` extra; see `mnistlr.io.tables`);
- a folder of class folders DIR/<label>/*.png (torchvision's ImageFolder layout), the images
  read as they are (greyscale, one size), sorted by label then file name; a folder of images
  without class folders takes its labels from *labels*, in file-name order;
- ``-``: standard input (IDX, .npy, .npz, CSV or Parquet, raw or gzip), copied a block at a time
  to a temporary file (at most MAX_STDIN_BYTES; removed after) and read from there as a file:
  memory holds the result, never the whole input as well.

Pixels: the one rule of `mnistlr.io.pixels` (integers 0–255; floats in [0, 1], scaled by 255,
or 0–255), rounded to uint8 (exact for images stored as uint8 / 255); CSV text follows `mnistlr.io.inputs`' rule. Images
of any size are fine when they all have the same size. *labels*, when given, replaces the
source's own labels and must have one label per image. CSV and Parquet results are cached in
*cache_dir* (when given), keyed by the file's content (`mnistlr.io.cache`).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import re
import sys
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from mnistlr.errors import DataError, UsageError
from mnistlr.io import cache, images, tables
from mnistlr.io.idx import read_idx
from mnistlr.io.inputs import (
    MAX_STREAM_BYTES,
    STDIN,
    content_of,
    detect,
    read_capped,
    sniff,
    unrecognised,
)
from mnistlr.io.labels import LABEL_VALUES_HINT, integer_labels
from mnistlr.io.pixels import PIXELS_HINT, raw_pixels
from mnistlr.io.readers import Reopen, error_line

SPLITS = ("train", "test")
NPZ_PAIRS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
FORMATS = ("IDX (raw or .gz), .npy, .npz (Keras' mnist.npz), CSV (raw or .gz; Kaggle's train.csv, "
           "mnist_train.csv), Parquet (Hugging Face layout), a folder DIR/<label>/*.png, or '-'")
STDIN_NAME = "<stdin>"
MAX_STDIN_BYTES = 4 << 30   # labelled data on standard input (copied to a temporary file)
_STDIN_BLOCK = 1 << 20
_NOT_A_FILE = "give the file itself, or '-' to pipe it in on standard input"   # read more than once
LABELS_HINT = "give the labels too, with `{option}`: an IDX labels file or a .npy"


def read_labelled(source: str | os.PathLike, labels: str | os.PathLike | None = None, *,
                  split: str = "train", cache_dir: str | os.PathLike | None = None,
                  stdin: IO[bytes] | None = None, labels_option: str = "labels",
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, rows, cols) and labels (n,) from *source* (and *labels*); see the module doc.

    split: which pair of a Keras-style .npz ("train" or "test"). labels_option: the option that
    gives *labels*, named by the error when they are missing. Raises DataError (one line,
    naming the file and the fix) for anything it cannot read.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", "use 'train' or 'test'")
    if labels is not None and str(labels) == STDIN and str(source) == STDIN:
        raise UsageError("'-' (standard input) is given for both the images and the labels",
                         "give one of them as a file")
    name = STDIN_NAME if str(source) == STDIN else str(source)
    with spooled(source, stdin) as path:
        X, y = _read_source(path, split, None if cache_dir is None or name == STDIN_NAME else Path(cache_dir),
                            name)
    if labels is not None:
        if y is not None:   # two sources of truth: one would be dropped without a word
            raise UsageError(f"{Path(name).name} holds its own labels, and {Path(labels).name} is given as "
                             "labels too", "drop the labels file, or give images that hold no labels")
        y = read_label_file(labels, stdin)
        if len(y) != len(X):
            raise DataError(f"{Path(name).name} holds {len(X):,} images but {Path(labels).name} holds "
                            f"{len(y):,} labels", "pass the labels file that belongs to these images")
    if y is None:
        raise DataError(f"{name}: holds images but no labels", LABELS_HINT.format(option=labels_option))
    return X, label_array(y, name)


def read_label_file(path: str | os.PathLike, stdin: IO[bytes] | None = None) -> np.ndarray:
    """Labels (n,) from an IDX labels file or a 1-D .npy (raw or gzip)."""
    name = STDIN_NAME if str(path) == STDIN else str(path)
    with spooled(path, stdin) as file:
        images.regular_path(file, "a labels file", _NOT_A_FILE)
        kind, _, reopen = _content(file)
        if kind == "idx":
            array = read_idx(file)
        elif kind == "npy":
            array = _load_npy(_bytes(reopen, name), name)
        else:
            raise DataError(f"{name}: not a labels file ({kind} content)",
                            "give an IDX labels file (e.g. train-labels-idx1-ubyte.gz) or a 1-D .npy")
    if array.ndim == 3:
        raise DataError(f"{name}: holds images, not labels", "pass it as the images file")
    return label_array(array, name)


# ---------------------------------------------------------------- sources

def _content(path: Path) -> tuple[str, bytes, Reopen]:
    """(kind, first bytes, opener of the content) of a file, gzip looked through."""
    kind, compressed, head = detect(path)
    return kind, head, content_of(path, compressed)


@contextlib.contextmanager
def spooled(source: str | os.PathLike, stdin: IO[bytes] | None = None) -> Iterator[Path]:
    """*source* as a Path; for '-', a temporary copy of standard input (*stdin* or sys.stdin),
    named STDIN_NAME so that every reader's messages name it so, removed afterwards."""
    if str(source) != STDIN:
        yield Path(source)
        return
    stream = stdin if stdin is not None else sys.stdin.buffer
    if stream.isatty():
        raise UsageError(f"{STDIN_NAME} is a terminal, not data", "pipe or redirect the data into it")
    with tempfile.TemporaryDirectory(prefix="mnistlr-stdin-") as folder:
        path = Path(folder) / STDIN_NAME
        try:
            with open(path, "wb") as copy:
                _copy_capped(stream, copy)
        except OSError as exc:
            raise DataError(f"{STDIN_NAME}: cannot keep a copy in {folder}: {exc.strerror or exc}",
                            "free disk space there (or set TMPDIR), or give the data as a file") from None
        yield path


def _copy_capped(stream: IO[bytes], copy: IO[bytes]) -> None:
    """Copy *stream* to *copy* a block at a time; a DataError when it is empty, over MAX_STDIN_BYTES,
    or when its first block is no format at all (/dev/zero or /dev/urandom: stop there, not after
    copying gigabytes)."""
    total = 0
    while block := _read_block(stream):
        if not total and sniff(block) == "unknown":
            raise unrecognised(STDIN_NAME, block, f"give {FORMATS}")
        total += len(block)
        if total > MAX_STDIN_BYTES:
            raise DataError(f"{STDIN_NAME}: more than {MAX_STDIN_BYTES >> 20:,} MiB of data on standard input",
                            "give it as a file")
        copy.write(block)
    if not total:
        raise DataError(f"{STDIN_NAME}: empty input", "pipe in a file of images and labels")


def _read_block(stream: IO[bytes]) -> bytes:
    try:
        return stream.read(_STDIN_BLOCK)
    except OSError as exc:
        raise DataError(f"{STDIN_NAME}: cannot read: {exc.strerror or exc}") from None


def _bytes(reopen: Reopen, name: str) -> bytes:
    """All of a content (an array or archive, read into memory): at most MAX_STREAM_BYTES of it
    when it came on standard input."""
    with reopen() as stream:
        return _read_stream(stream, name, MAX_STREAM_BYTES if name == STDIN_NAME else None)


def _read_stream(stream: IO[bytes], name: str, cap: int | None = None) -> bytes:
    """All of *stream* (at most *cap* bytes when given); read errors as one DataError."""
    try:
        return stream.read() if cap is None else read_capped(stream, cap, name, "an array or archive")
    except EOFError:
        raise DataError(f"{name}: gzip stream is cut off (incomplete file?)", "copy it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{name}: damaged compressed data ({exc})", "copy it again") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _read_source(source: Path, split: str, cache_dir: Path | None,
                 name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, labels or None) of the file or folder *source* (called *name*), by its content."""
    if source.is_dir():
        return read_folder(source)
    images.regular_path(source, "a file of images", _NOT_A_FILE)
    kind, head, reopen = _content(source)
    if kind == "unknown" and (head[:2] == b"\0\0" or _named_like_idx(name)):
        kind = "idx"  # let the IDX parser name what is wrong with it
    if kind == "idx":
        array = read_idx(source)   # not cached: a run that fails later leaves no file behind
        if array.ndim == 1:
            raise DataError(f"{name}: holds {len(array):,} labels (a 1-D IDX file), not images",
                            "pass it as the labels file, and the images file as the images")
        return image_array(array, name), None
    if kind == "npy":
        return image_array(_load_npy(_bytes(reopen, name), name), name), None
    if kind == "npz":
        return _read_npz(_bytes(reopen, name), name, split)
    if kind in ("csv", "parquet"):
        def read() -> tuple[np.ndarray, np.ndarray | None]:
            if kind == "csv":
                return tables.read_csv(name, reopen, head)
            return tables.read_parquet(name, source)
        return cache.cached(source, cache_dir, kind, ("images", "labels"), read, _is_pair)
    if kind == "image":
        raise DataError(f"{name}: one image file holds no labelled dataset",
                        "give a folder DIR/<label>/*.png, or predict on single images")
    raise unrecognised(name, head, f"give {FORMATS}")


def _is_pair(arrays: tuple[np.ndarray, ...]) -> bool:
    """A cached (images, labels) entry of the shapes read_labelled returns."""
    images, labels = arrays
    return images.ndim == 3 and images.dtype == np.uint8 and labels.shape == (len(images),)


def _named_like_idx(name: str) -> bool:
    """The file name as a hint: an IDX file's name (…-ubyte, .idx, idx3/idx1 in it)."""
    lowered = Path(name).name.lower()
    return lowered.endswith((".idx", "-ubyte", "-ubyte.gz")) or "idx1" in lowered or "idx3" in lowered


# what NumPy raises on a damaged .npy header or stream (tokenize: a header cut off mid-dict)
_NPY_ERRORS = (ValueError, EOFError, OSError, SyntaxError, TypeError, tokenize.TokenError)
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_claim(shape: tuple[int, ...], dtype: np.dtype, available: int, name: str) -> None:
    """DataError when a header promises more bytes than the file holds (before NumPy allocates them),
    or Python objects (a pickle, which is never loaded: not "truncated", whatever its size)."""
    if dtype.hasobject:
        raise DataError(f"{name}: holds object values (a pickled array), not numbers",
                        "save it with a numeric dtype, e.g. np.save(path, np.asarray(a, dtype=np.int64))")
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise DataError(f"{name}: truncated: the header promises an array of shape {tuple(shape)} "
                        f"({need:,} bytes), the file holds {available:,}", "copy the file again")


def _load_npy(data: bytes, name: str) -> np.ndarray:
    try:
        stream = io.BytesIO(data)
        reader = _HEADER_READERS.get(np.lib.format.read_magic(stream))
        if reader is not None:      # a later .npy version: np.load's own checks
            shape, _, dtype = reader(stream)
            _check_claim(shape, dtype, len(data) - stream.tell(), name)
        return np.load(io.BytesIO(data), allow_pickle=False)
    except DataError:
        raise
    except _NPY_ERRORS as exc:
        raise DataError(f"{name}: damaged .npy file ({error_line(exc)})", "copy it again") from None


def _npz_shapes(archive, name: str) -> dict[str, tuple[int, ...] | None]:
    """Each member's array shape from its .npy header, the data left unread (None: not an array);
    a header promising more than its member holds is a DataError."""
    names = set(archive.zip.namelist())
    shapes: dict[str, tuple[int, ...] | None] = {}
    for key in archive.files:
        member_name = key + ".npy" if key + ".npy" in names else key
        with archive.zip.open(member_name) as member:
            if member.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                shapes[key] = None
                continue
            member.seek(0)
            reader = _HEADER_READERS.get(np.lib.format.read_magic(member))
            if reader is not None:
                shape, _, dtype = reader(member)
                _check_claim(shape, dtype, archive.zip.getinfo(member_name).file_size - member.tell(),
                             f"{name}[{key}]")
                shapes[key] = tuple(shape)
                continue
        shapes[key] = tuple(archive[key].shape)    # a later .npy version: read the array itself
    return shapes


def _npz_pair(keys: list[str], shapes: dict, split: str) -> tuple[str, str] | None:
    """Keras' names for *split*, images/labels, or the only two arrays (the 1-D one the labels)."""
    pair = next((p for p in (NPZ_PAIRS[split], ("images", "labels")) if set(p) <= set(keys)), None)
    if pair is None and len(keys) == 2 and all(shapes[k] is not None for k in keys):
        pair = tuple(sorted(keys, key=lambda k: -len(shapes[k])))
        if len(shapes[pair[1]]) != 1:
            pair = None
    return pair


def _count_mismatch(name: str, pair: tuple[str, str], n_images: int, n_labels: int) -> DataError:
    return DataError(f"{name}: {pair[0]} holds {n_images:,} images but {pair[1]} holds {n_labels:,} labels",
                     "save the images with their own labels")


def _read_npz(data: bytes, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The (images, labels) pair of an .npz (`_npz_pair`); the counts are checked from the arrays'
    headers before the images are inflated (a small archive can declare gigabytes of zeros)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            keys = list(archive.files)
            shapes = _npz_shapes(archive, name)
            pair = _npz_pair(keys, shapes, split)
            if pair is None:
                raise DataError(f"{name}: holds arrays {', '.join(keys[:10]) or '(none)'}; none is a "
                                f"pair of images and labels for the {split} split",
                                f"name them {NPZ_PAIRS[split][0]}/{NPZ_PAIRS[split][1]} (Keras) "
                                "or images/labels")
            declared = [shapes[k] for k in pair]
            if all(declared) and declared[0][0] != declared[1][0]:
                raise _count_mismatch(name, pair, declared[0][0], declared[1][0])
            X, y = archive[pair[0]], archive[pair[1]]
    except DataError:
        raise   # a ValueError too, but it names what the file holds, not damage
    except (zipfile.BadZipFile, zlib.error, *_NPY_ERRORS) as exc:
        raise DataError(f"{name}: damaged .npz file ({error_line(exc)})", "copy it again") from None
    where = f"{name}[{pair[0]}]"
    X, y = image_array(X, where), label_array(y, f"{name}[{pair[1]}]")
    if len(y) != len(X):
        raise _count_mismatch(name, pair, len(X), len(y))
    return X, y


_FOLDER_LABEL = re.compile(r"-?[0-9]{1,10}")


def read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images of DIR/<label>/* (sorted by label, then file name) and their labels; a folder of
    images without class folders gives its images (by file name) and no labels."""
    try:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    if not classes:
        try:
            found = images.image_files_in(folder)
        except DataError:
            raise DataError(f"{folder}: is a directory without class folders or image files",
                            "give the IDX file inside it, or class folders DIR/<label>/*.png") from None
        return _stack_images(found, folder), None
    labelled, seen = [], {}
    for sub in classes:
        # ASCII digits (int() also takes ' 7 ', '٣' and '1_0'), within the 32 bits labels are stored in
        if not _FOLDER_LABEL.fullmatch(sub.name) or not -2**31 <= int(sub.name) < 2**31:
            raise DataError(f"{sub}: class folder '{sub.name}' is not an integer label (−2³¹ to 2³¹−1)",
                            "name each class folder by its label: DIR/0/, DIR/1/, …")
        label = int(sub.name)
        if label in seen:
            raise DataError(f"{folder}: class folders '{seen[label]}' and '{sub.name}' both name label {label}",
                            "keep one folder per label")
        seen[label] = sub.name
        labelled.append((label, sub))
    labelled.sort()
    files = [(label, path) for label, sub in labelled for path in images.image_files_in(sub)]
    X = _stack_images([path for _, path in files], folder)
    return X, np.array([label for label, _ in files], np.int64)


def _stack_images(paths: list[Path], folder: Path) -> np.ndarray:
    """The image files as they are, greyscale uint8 (n, h, w); all of one size."""
    images.require_pillow()
    first = images.read_grey(paths[0], str(paths[0]))
    X = np.empty((len(paths),) + first.shape, np.uint8)
    X[0] = first
    for i, path in enumerate(paths[1:], 1):
        grey = images.read_grey(path, str(path))
        if grey.shape != first.shape:
            raise DataError(f"{path}: image is {grey.shape[1]}×{grey.shape[0]} pixels but {paths[0].name} "
                            f"is {first.shape[1]}×{first.shape[0]}", f"give images of one size in {folder}")
        X[i] = grey
    return X


# ---------------------------------------------------------------- arrays

def image_array(X: np.ndarray, name: str) -> np.ndarray:
    """Images as uint8 (n, rows, cols): (n, rows, cols), (n, rows, cols, 1) or square (n, rows·cols)
    arrays; pixels by the one rule of `mnistlr.io.pixels` (floats rounded to uint8)."""
    X = np.asarray(X)
    if X.dtype.kind not in "uif" or X.dtype.fields is not None:
        raise DataError(f"{name}: holds {X.dtype} values, not pixels", PIXELS_HINT)
    if X.ndim == 4 and X.shape[3] == 1:
        X = X[..., 0]
    if X.ndim == 2:
        X = X.reshape(len(X), *(2 * (tables.square_side(X.shape[1], name, "rows of"),)))
    if X.ndim != 3:
        raise DataError(f"{name}: holds an array of shape {X.shape}; images are (n, rows, cols) or "
                        "(n, rows·cols)", "give an array of images")
    if len(X) == 0:
        raise DataError(f"{name}: holds no images")
    if X.dtype != np.uint8:
        X = raw_pixels(X, lambda i: f"{name}: image {i:,}")
        X = X if X.dtype == np.uint8 else np.clip(np.rint(X), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(X)


def label_array(y: np.ndarray, name: str) -> np.ndarray:
    """Labels (n,) as uint8 when they are all 0–255, else int64; refuses non-integers."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}: holds an array of shape {y.shape}, not labels (n,)",
                        "give one integer label per image")
    if y.dtype.kind not in "iubf":
        raise DataError(f"{name}: holds {y.dtype} labels, not integers", LABEL_VALUES_HINT)
    y = integer_labels(y, lambda i: f"{name}: label {i:,} ({y[i]:g})")
    if len(y) and y.min() >= 0 and y.max() <= 255:
        return y.astype(np.uint8)
    return y
