"""Named local datasets: `mnistlr import NAME TRAIN_SOURCE [TEST_SOURCE]`.

The data are converted once into the four standard IDX files (gzip) in DATA_DIR/NAME/, with
a manifest (MANIFEST, JSON) that records where they came from, their image counts and shape,
and the SHA-256 of each file's IDX payload (the checksum `fetch` uses for published files).
From then on NAME is a dataset like the registered ones (`registry.get_spec` finds it); a
file changed after the import fails verification and is refused (`check_files`).
The folder is built beside its final place and renamed into it, so a failed import leaves
nothing that looks like a dataset.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np

from mnistlr.data.registry import (
    DATASETS,
    SPLITS,
    DatasetSpec,
    _files,
    load_source,
    resolve_data_dir,
)
from mnistlr.errors import DataError, UsageError
from mnistlr.io.atomic import write_text_atomic
from mnistlr.io.idx import encode_idx, write_idx

MANIFEST = "manifest.json"
FORMAT = "mnistlr-import 1"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def read_manifest(folder: Path) -> dict | None:
    """The manifest in *folder*, or None when there is none (or it is not one of ours)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def imported_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The names of the datasets imported into the data directory, sorted."""
    root = resolve_data_dir(data_dir)
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [p.name for p in folders if p.name not in DATASETS and read_manifest(p) is not None]


def imported_spec(name: str, data_dir: str | os.PathLike | None = None) -> DatasetSpec | None:
    """The DatasetSpec of the imported dataset *name* (checksums from its manifest), or None."""
    if name in DATASETS or not NAME_PATTERN.fullmatch(name):
        return None
    manifest = read_manifest(resolve_data_dir(data_dir) / name)
    if manifest is None:
        return None
    checks = {key: (None, entry["sha256"]) for key, entry in manifest["files"].items()}
    files = {key: f for key, f in _files(checks=checks).items() if key in manifest["files"]}
    return DatasetSpec(name=name, description=manifest.get("description", "imported"),
                       files=files, homepage=f"imported from {manifest['sources'].get('train')}",
                       imported=True)


def check_files(spec: DatasetSpec, folder: Path, keys: tuple[str, ...]) -> None:
    """Refuse an imported dataset whose files *keys* changed since the import."""
    from mnistlr.data.download import verify_file

    for key in keys:
        path = folder / spec.files[key].name
        if not path.is_file():
            raise DataError(f"dataset '{spec.name}': {path} is missing", _reimport_hint(spec.name, folder))
        if verify_file(path, spec.files[key]) is not None:
            raise DataError(f"dataset '{spec.name}': {path.name} has a bad checksum (changed since "
                            "it was imported)", _reimport_hint(spec.name, folder))


def _reimport_hint(name: str, folder: Path) -> str:
    """How to import *name* again, from the sources its manifest records."""
    sources = (read_manifest(folder) or {}).get("sources", {})
    train, test = sources.get("train", "TRAIN_SOURCE"), sources.get("test")
    if test is not None and test.endswith(" (x_test, y_test)"):
        test = None  # a Keras .npz gives both splits
    paths = " ".join(shlex.quote(p) for p in (train, test) if p)
    return f"import it again: mnistlr import {name} {paths} --force"


# ---------------------------------------------------------------- importing

def _check_name(name: str, folder: Path, force: bool) -> None:
    if name in DATASETS:
        raise UsageError(f"'{name}' is a built-in dataset", "choose another name for your data")
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"'{name}' is not a usable dataset name",
                         "use letters, digits, '.', '_' and '-' (it names a folder)")
    if folder.exists() and not force:
        what = "is already imported" if read_manifest(folder) is not None else "exists"
        raise UsageError(f"{folder} {what}", "add --force to replace it")
    if folder.exists() and read_manifest(folder) is None:
        raise UsageError(f"{folder} exists and is not an imported dataset", "choose another name")


def _splits(train: str | os.PathLike, test: str | os.PathLike | None,
            train_labels, test_labels, data_dir) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """split → (images, labels, source) of what is imported; a Keras .npz gives both splits."""
    if sum(str(s) == "-" for s in (train, test, train_labels, test_labels) if s is not None) > 1:
        raise UsageError("'-' (standard input) is given more than once", "give it once, the others as files")
    if test is None and test_labels is not None:   # not dropped without a word
        raise UsageError("`test_labels` is given without a test source",
                         "give the test images too (TEST_SOURCE), or drop `test_labels`")
    if str(train) == "-" and test is None:
        # standard input is read once: kept while both splits of a Keras .npz are taken from it
        from mnistlr.io.labelled import spooled

        with spooled("-") as copy:
            splits = _train_and_keras_test(train, train_labels, data_dir, copy)
    else:
        splits = _train_and_keras_test(train, train_labels, data_dir, None if test is not None else train)
    if test is not None:
        X_t, y_t = load_source(test, test_labels, "test", data_dir, "test_labels")
        splits["test"] = (X_t, y_t, _where(test))
    shapes = {s[0].shape[1:] for s in splits.values()}
    if len(shapes) > 1:
        raise DataError("the train and test images differ in size "
                        f"({' and '.join('×'.join(map(str, s)) for s in shapes)})",
                        "import images of one size")
    return splits


def _train_and_keras_test(train, train_labels, data_dir, keras: Path | None) -> dict:
    """The train split of *train*, and the test split too when *keras* (the file itself, or the copy of
    standard input) is a Keras .npz holding x_test and y_test."""
    def read(split: str, labels, option: str):
        if keras is None or str(train) != "-":
            return load_source(train, labels, split, data_dir, option)
        with open(keras, "rb") as stream:   # '-' read from the kept copy, named <stdin> as before
            return load_source(train, labels, split, data_dir, option, stdin=stream)

    splits = {"train": (*read("train", train_labels, "train_labels"), _where(train))}
    if keras is not None and _has_keras_test(keras):
        splits["test"] = (*read("test", None, "labels"), f"{_where(train)} (x_test, y_test)")
    return splits


def _where(source: str | os.PathLike) -> str:
    """The source as the manifest records it: an absolute path (or '-')."""
    return str(source) if str(source) == "-" else str(Path(source).resolve())


def _has_keras_test(source: str | os.PathLike) -> bool:
    """True when *source* is an .npz holding Keras' x_test and y_test."""
    import zipfile

    if str(source) == "-" or not Path(source).is_file() or not zipfile.is_zipfile(source):
        return False
    with zipfile.ZipFile(source) as archive:
        names = set(archive.namelist())
    return {"x_test.npy", "y_test.npy"} <= names


def _write_split(folder: Path, split: str, X: np.ndarray, y: np.ndarray) -> dict[str, dict]:
    """Write the split's two IDX files; returns their manifest entries."""
    # the range is checked on the labels as given (once cast, an out-of-range label has wrapped)
    if len(y) and (y.min() < -2**31 or y.max() >= 2**31):
        bad = y[(y < -2**31) | (y >= 2**31)][0]
        raise DataError(f"{split} label {int(bad)} is beyond the 32-bit range IDX stores",
                        "relabel the classes with small integers, e.g. 0…n−1")
    y = y.astype(np.uint8) if y.dtype == np.uint8 else y.astype(np.int32)
    entries = {}
    for kind, array in (("images", X), ("labels", y)):
        key = f"{split}-{kind}"
        name = _files()[key].name
        write_idx(folder / name, array)
        entries[key] = {"file": name, "count": int(len(array)),
                        "sha256": hashlib.sha256(encode_idx(array)).hexdigest(),
                        "bytes": (folder / name).stat().st_size}
    return entries


def import_dataset(name: str, train: str | os.PathLike, test: str | os.PathLike | None = None, *,
                   train_labels: str | os.PathLike | None = None,
                   test_labels: str | os.PathLike | None = None, force: bool = False,
                   data_dir: str | os.PathLike | None = None) -> dict:
    """Convert *train* (and *test*) into DATA_DIR/NAME/ as IDX files with a manifest.

    Returns {"name", "where", "splits": {split: {"images", "image_shape", "source"}}, "files"}.
    """
    root = resolve_data_dir(data_dir)
    folder = root / name
    _check_name(name, folder, force)
    splits = _splits(train, test, train_labels, test_labels, data_dir)
    shape = next(iter(splits.values()))[0].shape[1:]
    building = root / f".{name}.importing"
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir(parents=True)
        files = {}
        for split, (X, y, _) in splits.items():
            files |= _write_split(building, split, X, y)
        counts = ", ".join(f"{len(s[0]):,} {split}" for split, s in splits.items())
        manifest = {"format": FORMAT, "name": name,
                    "description": f"imported; {counts}; {'×'.join(map(str, shape))} images",
                    "image_shape": [int(d) for d in shape],
                    "sources": {split: s[2] for split, s in splits.items()},
                    "imported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "files": files}
        write_text_atomic(building / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _replace(building, folder)
    except OSError as exc:
        raise DataError(f"{folder}: cannot write the dataset ({exc.strerror or exc})",
                        "choose a writable --data-dir") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return {"name": name, "where": str(folder), "files": files,
            "splits": {split: {"images": int(len(s[0])), "image_shape": list(shape), "source": s[2]}
                       for split, s in splits.items()}}


def _replace(building: Path, folder: Path) -> None:
    """Move the finished folder into place (replacing an earlier import of the same name)."""
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(building, folder)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


def splits_of(spec: DatasetSpec) -> tuple[str, ...]:
    """The splits an imported dataset has (train, and test when it was imported with one)."""
    return tuple(s for s in SPLITS if f"{s}-images" in spec.files)

