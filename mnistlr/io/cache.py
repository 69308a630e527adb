"""A content-keyed cache of parsed labelled data (images and labels as .npy files).

The key is the SHA-256 of the source file's bytes (as stored, compressed or not) together
with what else decides the result (the reader's version, the labels' source): a changed
file gets a new key, so a cached result is never stale, whatever its size or mtime.
Entries live in CACHE_DIR/<key>.images.npy and <key>.labels.npy, written atomically and
memory-mapped (read-only) on a hit; the oldest entries beyond MAX_ENTRIES are dropped.
A cache that cannot be read or written is skipped silently: it only saves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnistlr.errors import MnistlrError
from mnistlr.io.atomic import atomic_write

VERSION = "1"        # bump when a reader's output for the same bytes changes
MAX_ENTRIES = 8
_HASH_CHUNK = 1 << 22


def content_key(path: Path, extra: str = "") -> str:
    """Hex SHA-256 of the file's bytes, the cache version and *extra*."""
    digest = hashlib.sha256(f"mnistlr-cache {VERSION} {extra};".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.images.npy", cache_dir / f"{key}.labels.npy"


def load(cache_dir: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images, labels) under *key*, memory-mapped; None when absent or unreadable."""
    images_path, labels_path = _paths(cache_dir, key)
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
        os.utime(images_path)  # recently used: kept longest
    except (OSError, ValueError, EOFError):
        return None
    if images.ndim != 3 or labels.shape != (len(images),):
        return None
    return images, labels


def store(cache_dir: Path, key: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Save (images, labels) under *key* (labels first, so a whole pair is there once the images
    are), then drop the oldest entries beyond MAX_ENTRIES; failures are ignored."""
    images_path, labels_path = _paths(cache_dir, key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for path, array in ((labels_path, labels), (images_path, images)):
            with atomic_write(path, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        _prune(cache_dir)
    except (OSError, MnistlrError):
        pass


def _prune(cache_dir: Path) -> None:
    entries = sorted(cache_dir.glob("*.images.npy"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        key = old.name.removesuffix(".images.npy")
        for path in _paths(cache_dir, key):
            with contextlib.suppress(OSError):
                path.unlink()


def cached(path: Path, cache_dir: Path | None, extra: str,
           read: Callable[[], tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """read() through the cache in *cache_dir* (no cache when None), keyed by *path*'s content;
    results without labels are not cached."""
    if cache_dir is None:
        return read()
    try:
        key = content_key(path, extra)
    except OSError:
        return read()
    hit = load(cache_dir, key)
    if hit is not None:
        return hit
    images, labels = read()
    if labels is not None:
        store(cache_dir, key, images, labels)
    return images, labels
