"""The large sets (Fashion's images shifted by one and two pixels) and the whole-process figures of `train`.

Nothing here is committed data: the shifted sets are made in memory by the benchmark, the
1,200,000-image gzip IDX file it trains on is written into the benchmark's temporary folder.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import numpy as np
import procs
from fits import Dataset

# (dy, dx) shifts: none, the 8 of one pixel, then those of two pixels, nearest first
SHIFTS = sorted(((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)),
                key=lambda s: (max(abs(s[0]), abs(s[1])), abs(s[0]) + abs(s[1]), s))


def shift(X: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images X (n, rows, cols) moved down by dy and right by dx pixels, zeros shifted in."""
    out = np.zeros_like(X)
    rows, cols = X.shape[1:]
    out[:, max(dy, 0):rows + min(dy, 0), max(dx, 0):cols + min(dx, 0)] = \
        X[:, max(-dy, 0):rows + min(-dy, 0), max(-dx, 0):cols + min(-dx, 0)]
    return out


def shifted(data: Dataset, n_copies: int) -> Dataset:
    """*data*'s training images in n_copies shifts (the first: unshifted; 5 → the 4 one-pixel moves
    along the axes are next, 20 → every one-pixel and most two-pixel moves); same test images."""
    if not 1 <= n_copies <= len(SHIFTS):
        raise ValueError(f"between 1 and {len(SHIFTS)} copies")
    X = np.concatenate([shift(data.X_train, dy, dx) for dy, dx in SHIFTS[:n_copies]])
    y = np.tile(data.y_train, n_copies)
    n = len(X)
    return Dataset(f"Fashion shifted {n:,}", X, y, data.X_test, data.y_test)


def write_gzip_idx(path: Path, array: np.ndarray, level: int = 1, rows: int = 65536) -> None:
    """*array* as a gzip IDX file, compressed block by block (level 1: 1.2 M images in seconds)."""
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    packer = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(packer.compress(header))
        for start in range(0, len(array), rows):
            handle.write(packer.compress(np.ascontiguousarray(array[start:start + rows]).tobytes()))
        handle.write(packer.flush())


def memory_at_scale(data: Dataset, work: Path, log) -> dict:
    """Peak RSS and wall of a child `mnistlr train` on *data* written as gzip IDX files."""
    images, labels = work / "big-images-idx3-ubyte.gz", work / "big-labels-idx1-ubyte.gz"
    started = time.perf_counter()
    write_gzip_idx(images, data.X_train)
    write_gzip_idx(labels, data.y_train.astype(np.uint8))
    log(f"memory: wrote {len(data.X_train):,} images as gzip IDX in {time.perf_counter() - started:.0f} s")
    cmd = [*procs.mnistlr_command(), "train", "--train-images", str(images), "--train-labels", str(labels),
           "-q", "-o", str(work / "big.joblib")]
    # a data directory of its own: the decoded-IDX cache of 1.2 M images stays in the temporary folder
    result = procs.run_checked(cmd, procs.child_env(MNISTLR_DATA=str(work / "data-big")))
    images.unlink(), labels.unlink()
    return {"max_rss_mib": result.max_rss_mib, "seconds": result.seconds, "n": len(data.X_train),
            "data_bytes": int(data.X_train.nbytes), "dataset": data.name}


def train_overhead(name: str, files: dict[str, Path], work: Path, log) -> dict:
    """A `mnistlr train --json` child run three times on *files* as a fetched dataset (symlinks in a
    data directory of the benchmark's, so the decoded-IDX cache lives beside them): the wall time of
    a warm run against the fit's own `seconds`."""
    data_dir = work / "data"
    folder = data_dir / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for key, fetched in (("train-images", "train-images-idx3-ubyte.gz"), ("train-labels", "train-labels-idx1-ubyte.gz")):
        link = folder / fetched
        link.unlink(missing_ok=True)
        link.symlink_to(files[key])
    cmd = [*procs.mnistlr_command(), "train", "-d", "mnist", "--data-dir", str(data_dir),
           "-q", "--json", "-o", str(work / "overhead.joblib")]
    out = work / "overhead.json"
    runs = []
    for _ in range(3):
        result = procs.run_checked(cmd, stdout=out)
        runs.append((result.seconds, float(json.loads(out.read_text())["seconds"])))
    # the warm runs (caches filled by the first); the one with the least time around the fit
    process, fit = min(runs[1:], key=lambda r: r[0] - r[1])
    log(f"train process on {name}: {process:.2f} s, of which fit {fit:.2f} s")
    return {"dataset": name, "process": process, "fit": fit}
