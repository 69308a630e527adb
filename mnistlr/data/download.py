"""Downloading and importing dataset files, verified before they get their final name.

Each file goes to ``.NAME.part`` in the dataset folder and is renamed to ``NAME``
only after its checksum verified (the gzip's MD5 as published, or the SHA-256 of
its decompressed payload), so a failed or interrupted fetch never leaves a file
that looks complete. An HTTP transfer that was cut off or timed out keeps its
``.part`` and resumes with a Range request when the server allows it (the error
says it is kept); a transfer past the file's size cap, a file that fails
verification and a full disk leave nothing. The transfers themselves (http and
https only, capped in bytes and time) are in `mnistlr.data.transfer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import os
import shlex
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from mnistlr.data import transfer
from mnistlr.data.registry import FILE_KEYS, DatasetSpec, FileSpec
from mnistlr.data.transfer import Limits, SourceFailed, part_size
from mnistlr.errors import FetchError, Interrupted


@dataclasses.dataclass
class FetchEvent:
    """A progress report: kind is start, advance, done, skip, retry or fallback."""

    kind: str
    dataset: str
    file: str
    done: int = 0
    total: int | None = None
    message: str = ""


ProgressFn = Callable[[FetchEvent], None]
Source = str | Path  # a base URL (http, https) or a local folder


# A download may run this far past the published size (another gzip of the same payload);
# files of unknown size are capped at DEFAULT_CAP; payloads of unknown size at DEFAULT_PAYLOAD.
DEFAULT_CAP = 256 << 20
DEFAULT_PAYLOAD = 1 << 30
DEFAULT_TIMEOUT = 30.0     # seconds per read when --timeout is not given
DEFAULT_DEADLINE = 600.0   # seconds per file and source when --timeout is not given


def size_cap(spec: FileSpec) -> int:
    """The most bytes a download of *spec* may have: its published size plus 1/16 and 64 KiB."""
    return spec.size + spec.size // 16 + (64 << 10) if spec.size else DEFAULT_CAP


def limits_for(spec: FileSpec, timeout: float | None) -> Limits:
    """--timeout bounds each read and each whole file; without it 30 s per read, 10 min per file."""
    if timeout is None:
        return Limits(DEFAULT_TIMEOUT, DEFAULT_DEADLINE, size_cap(spec))
    return Limits(timeout, timeout, size_cap(spec))


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _payload_sha256(path: Path, limit: int) -> str:
    """SHA-256 of the decompressed payload (of the bytes if not gzip), or why it has none: a
    damaged gzip, or one that expands past *limit* bytes (a decompression bomb stops there)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                size += len(chunk)
                if size > limit:
                    return f"unreadable (it expands past {limit:,} bytes)"
                digest.update(chunk)
    except (EOFError, zlib.error, OSError):
        return "unreadable (damaged gzip)"
    return digest.hexdigest()


def verify_file(path: Path, spec: FileSpec) -> str | None:
    """None when *path* matches the published gzip MD5 or the payload SHA-256, else why not."""
    if spec.md5 is None and spec.sha256 is None:
        return None
    md5 = _md5(path) if spec.md5 else None
    if md5 is not None and md5 == spec.md5:
        return None
    sha = _payload_sha256(path, spec.payload or DEFAULT_PAYLOAD) if spec.sha256 else None
    if sha is not None and sha == spec.sha256:
        return None
    parts = []
    if spec.md5:
        parts.append(f"MD5 {md5}, expected {spec.md5}")
    if spec.sha256:
        parts.append(f"payload SHA-256 {sha}, expected {spec.sha256}")
    return "checksum mismatch (" + "; ".join(parts) + ")"


def _copy_local(src: Path, part: Path, cap: int, report: Callable[[int, int | None], None]) -> None:
    """Copy the local file *src* into *part*, never past *cap* bytes."""
    if not src.is_file():
        raise SourceFailed("not found")
    name = part.name.removeprefix(".").removesuffix(".part")
    try:
        total = src.stat().st_size
        if total > cap:
            raise SourceFailed(f"{total:,} bytes, more than the {cap:,} {name} can be")
        with open(src, "rb") as inp, transfer.open_part(part, append=False) as out:
            transfer.copy_capped(inp, out, 0, name, cap, report, total)
            transfer.sync_part(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise SourceFailed(exc.strerror or str(exc)) from None
    except BaseException:  # a local copy is not resumed: nothing of it is kept
        part.unlink(missing_ok=True)
        raise


def is_url(source: Source) -> bool:
    """True for an http(s) URL (what --mirror takes), False for a local folder."""
    return isinstance(source, str) and source.split(":", 1)[0].lower() in transfer.SCHEMES


def _where(source: Source, name: str) -> str:
    """The URL or path of file *name* at *source*."""
    if is_url(source):
        return str(source).rstrip("/") + "/" + name
    return str(Path(source) / name)


class _Fetcher:
    """Fetches the files of one dataset into *folder*, reporting through *progress*."""

    def __init__(self, spec: DatasetSpec, folder: Path, sources: Sequence[Source], *,
                 force: bool, timeout: float | None, retries: int, progress: ProgressFn | None):
        self.spec, self.folder, self.sources = spec, folder, list(sources)
        self.force, self.timeout, self.retries = force, timeout, retries
        self.progress = progress or (lambda event: None)

    def _event(self, kind: str, name: str, **fields) -> None:
        self.progress(FetchEvent(kind, self.spec.name, name, **fields))

    def _get(self, source: Source, spec: FileSpec, part: Path) -> None:
        def report(done: int, total: int | None) -> None:
            self._event("advance", spec.name, done=done, total=total)

        def on_retry(message: str) -> None:
            self._event("retry", spec.name, message=message)

        limits = limits_for(spec, self.timeout)
        if is_url(source):
            transfer.download(_where(source, spec.name), part, limits, self.retries, report, on_retry)
        else:
            _copy_local(Path(source) / spec.name, part, limits.cap, report)

    def _try_source(self, source: Source, spec: FileSpec, part: Path) -> str | None:
        """Fetch and verify from one source: None on success, else the failure."""
        resumed = part_size(part) > 0 and is_url(source)
        for _ in range(2 if resumed else 1):
            try:
                self._get(source, spec, part)
            except SourceFailed as exc:
                return str(exc)
            reason = verify_file(part, spec)
            if reason is None:
                return None
            part.unlink()  # a bad or stale partial file: start afresh once, then give up
        return reason

    def fetch_file(self, spec: FileSpec) -> dict:
        """Fetch one file unless it is present and verifies; returns what was done."""
        final = self.folder / spec.name
        part = self.folder / f".{spec.name}.part"
        if final.is_file() and not self.force:
            if verify_file(final, spec) is None:
                self._event("skip", spec.name, message="already present and verified")
                return {"file": spec.name, "status": "present", "bytes": final.stat().st_size}
            self._event("retry", spec.name, message=f"{final} fails verification; fetching it again")
        if self.force:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        failures = []
        for source in self.sources:
            where = _where(source, spec.name)
            self._event("start", spec.name, message=where)
            failure = self._try_source(source, spec, part)
            if failure is None:
                os.replace(part, final)
                self._event("done", spec.name, done=final.stat().st_size, message=where)
                return {"file": spec.name, "status": "downloaded" if is_url(source) else "imported",
                        "source": where, "bytes": final.stat().st_size}
            failures.append(f"{where}: {failure}")
            self._event("fallback", spec.name, message=f"{where}: {failure}")
        if not any(is_url(s) for s in self.sources):
            raise self._not_official(spec, failures)
        hint = ("every source offered a different file: give --mirror URL or --source DIR with the "
                "official files" if all("checksum mismatch" in f for f in failures)
                else "check the network, or give --mirror URL or --source DIR")
        kept = part_size(part)
        if kept:
            failures.append(f"the partial download {part.name} ({kept:,} bytes) is kept in {self.folder}")
            hint += "; run the same command again to resume it"
        raise FetchError(f"could not fetch {self.spec.name}/{spec.name}: " + "; ".join(failures), hint)

    def _not_official(self, spec: FileSpec, failures: list[str]) -> FetchError:
        """Local folders (--source) that do not hold the published file: say so, point to import."""
        folder = Path(self.sources[0])
        files = {key: shlex.quote(str(folder / f.name)) for key, f in self.spec.files.items()}
        missing = all(f.endswith(": not found") for f in failures)
        what = (f"{folder} holds no {spec.name} (a partial copy?)" if missing else
                f"these are not the published {self.spec.name} files: " + "; ".join(failures))
        command = (f"mnistlr import NAME {files['train-images']} {files['test-images']} --train-labels "
                   f"{files['train-labels']} --test-labels {files['test-labels']}")
        return FetchError(f"could not fetch {self.spec.name}/{spec.name}: {what}",
                          "to use your own files as a dataset, import them: "
                          + ("mnistlr import NAME TRAIN_SOURCE [TEST_SOURCE]" if missing else command))


def fetch_dataset(spec: DatasetSpec, folder: Path, sources: Sequence[Source], *,
                  force: bool = False, timeout: float | None = None, retries: int = 2,
                  progress: ProgressFn | None = None) -> dict:
    """Fetch the four files of *spec* into *folder* from *sources* (tried in order).

    *timeout* bounds each read and each whole file from one source (None: 30 s per read,
    10 minutes per file); each file is capped at its published size plus a margin.
    Returns {"name", "status": "fetched"|"present", "where", "files": [...]}.
    Raises FetchError when a file cannot be fetched and verified from any source; a file
    that fails verification is deleted, so nothing that looks complete is left behind.
    """
    if not sources:
        raise FetchError(f"no source for dataset '{spec.name}'", "give --mirror URL or --source DIR")
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise FetchError(f"{folder}: cannot create the dataset folder ({exc.strerror or exc})",
                         "choose a writable --data-dir") from None
    fetcher = _Fetcher(spec, folder, sources, force=force, timeout=timeout, retries=retries,
                       progress=progress)
    try:
        files = [fetcher.fetch_file(spec.files[key]) for key in FILE_KEYS]
    except Interrupted as exc:
        _remove_empty(created)
        parts = sorted(p.name for p in folder.glob(".*.part")) if folder.is_dir() else []
        if not parts:
            raise
        raise Interrupted(f"{exc.message.split(';')[0]}; the partial download {', '.join(parts)} is kept "
                          f"in {folder}", "run the same command again to resume it",
                          exit_code=exc.exit_code) from None
    except BaseException:
        _remove_empty(created)
        raise
    fetched = any(f["status"] != "present" for f in files)
    return {"name": spec.name, "status": "fetched" if fetched else "present",
            "where": str(folder), "files": files}


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders this run created (deepest first) that are still empty."""
    for path in folders:
        try:
            path.rmdir()  # only succeeds when nothing at all was left in it
        except OSError:
            return
