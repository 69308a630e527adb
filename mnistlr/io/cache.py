"""The one content-keyed cache of decoded arrays: IDX files' decompressed arrays (`mnistlr.io.idx`)
and parsed CSV/Parquet tables (`mnistlr.io.labelled`) both live in it.

An entry is one or more named arrays saved as ``CACHE_DIR/<source name>.<key>.<part>.npy``.
The key is the SHA-256 of the source file's bytes (as stored, compressed or not), the cache
version and what else decides the result (the reader): a changed file gets a new key, so an
entry is never stale, whatever the file's size or mtime. Entries are written atomically and
memory-mapped (read-only) on a hit. Policy, the same for every user: storing an entry drops
the other entries of the same source name (superseded versions of the file), then the least
recently used beyond MAX_ENTRIES. An entry that is missing a part, truncated or corrupt is a
miss (and is rebuilt); a cache folder that cannot be read or written is no cache, silently:
the cache only saves time, it never changes a result or raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from mnistlr.errors import MnistlrError
from mnistlr.io.atomic import atomic_write

VERSION = "3"        # part of every key: bump when a reader's output for the same bytes changes
MAX_ENTRIES = 16     # entries kept in one cache folder (least recently used dropped)
_ENTRY = re.compile(r"(?P<tag>.+)\.(?P<key>[0-9a-f]{64})\.(?P<part>\w+)\.npy")

Arrays = tuple[np.ndarray, ...]


def content_key(path: Path, extra: str = "") -> str:
    """Hex SHA-256 of the cache version, *extra* (who reads it, how) and the file's bytes."""
    digest = hashlib.sha256(f"mnistlr-cache {VERSION} {extra};".encode())
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: digest).hexdigest()


def _path(cache_dir: Path, tag: str, key: str, part: str) -> Path:
    return cache_dir / f"{tag}.{key}.{part}.npy"


def load(cache_dir: Path, tag: str, key: str, parts: tuple[str, ...]) -> Arrays | None:
    """The arrays of entry *key* (one per part, memory-mapped), or None when any is missing or damaged."""
    arrays = []
    for part in parts:
        path = _path(cache_dir, tag, key, part)
        try:
            arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError, EOFError):   # absent, truncated, not an .npy, a pickle
            return None
        with contextlib.suppress(OSError):       # recently used: kept longest (not on a read-only disk)
            os.utime(path)
    return tuple(arrays)


def store(cache_dir: Path, tag: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Save *arrays* (part name → array) as entry *key* of source *tag*, then apply the policy
    (see the module doc); any failure leaves no part of the entry and raises nothing."""
    written = []
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for part, array in arrays.items():
            path = _path(cache_dir, tag, key, part)
            with atomic_write(path, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            written.append(path)
        _prune(cache_dir, tag, key)
    except (OSError, MnistlrError):
        for path in written:     # half an entry is never left behind
            with contextlib.suppress(OSError):
                path.unlink()


def _entries(cache_dir: Path) -> dict[tuple[str, str], list[Path]]:
    """The cache's files grouped by entry (tag, key); files of other names are not the cache's."""
    found: dict[tuple[str, str], list[Path]] = {}
    for path in cache_dir.iterdir():
        match = _ENTRY.fullmatch(path.name)
        if match:
            found.setdefault((match["tag"], match["key"]), []).append(path)
    return found


def _prune(cache_dir: Path, tag: str, key: str) -> None:
    """Drop the other entries of *tag*, then the least recently used beyond MAX_ENTRIES."""
    entries = _entries(cache_dir)

    def last_used(files: list[Path]) -> int:
        with contextlib.suppress(OSError):
            return max(p.stat().st_mtime_ns for p in files)
        return 0

    kept = sorted((k for k in entries if k[0] != tag or k[1] == key),
                  key=lambda k: (k == (tag, key), last_used(entries[k])), reverse=True)
    dropped = [k for k in entries if k not in kept[:MAX_ENTRIES]]
    for entry in dropped:
        for path in entries[entry]:
            with contextlib.suppress(OSError):
                path.unlink()


def cached(path: Path, cache_dir: Path | None, extra: str, parts: tuple[str, ...],
           read: Callable[[], Arrays], check: Callable[[Arrays], bool] = lambda arrays: True,
           ) -> Arrays:
    """read() (arrays, one per part) through the cache in *cache_dir* (no cache when None), keyed
    by *path*'s content and *extra*. A hit that *check* refuses is a miss; a result holding a
    None (nothing to keep, e.g. no labels) is returned but not stored."""
    if cache_dir is None:
        return read()
    try:
        key = content_key(path, extra)
    except OSError:
        return read()
    hit = load(cache_dir, path.name, key, parts)
    if hit is not None and check(hit):
        return hit
    arrays = read()
    if all(a is not None for a in arrays):
        store(cache_dir, path.name, key, dict(zip(parts, arrays, strict=True)))
    return arrays
