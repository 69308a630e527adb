"""Downloading and importing dataset files, verified before they get their final name.

Each file goes to ``.NAME.part`` in the dataset folder and is renamed to ``NAME``
only after its checksum verified (the gzip's MD5 as published, or the SHA-256 of
its decompressed payload), so a failed or interrupted fetch never leaves a file
that looks complete. An HTTP transfer that was cut off resumes with a Range
request when the server allows it. Only the standard library's urllib is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import hashlib
import http.client
import os
import shlex
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from mnistlr import __version__
from mnistlr.data.registry import FILE_KEYS, DatasetSpec, FileSpec
from mnistlr.errors import FetchError, Interrupted

CHUNK = 1 << 16
_sleep = time.sleep  # tests replace it to skip the backoff


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
Source = str | Path  # a base URL (http, https, file) or a local folder


class _SourceFailed(Exception):
    """This source cannot deliver the file (the message says why)."""


class _Transient(_SourceFailed):
    """A failure worth retrying on the same source (timeouts, resets, 5xx)."""


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(part: Path, exc: OSError) -> FetchError:
    """The disk (not the source) failed: drop the partial file; no other source can help."""
    with contextlib.suppress(OSError):
        part.unlink()
    name = part.name.removeprefix(".").removesuffix(".part")
    return FetchError(f"{part.parent}: {exc.strerror or 'no space left on device'} while writing {name}; "
                      "nothing was kept", "free some disk space (or choose another --data-dir) and run again")


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** attempt, 5.0)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _payload_sha256(path: Path) -> str | None:
    """SHA-256 of the decompressed payload (of the bytes if not gzip); None if damaged."""
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (EOFError, zlib.error, OSError):
        return None
    return digest.hexdigest()


def verify_file(path: Path, spec: FileSpec) -> str | None:
    """None when *path* matches the published gzip MD5 or the payload SHA-256, else why not."""
    if spec.md5 is None and spec.sha256 is None:
        return None
    md5 = _md5(path) if spec.md5 else None
    if md5 is not None and md5 == spec.md5:
        return None
    sha = _payload_sha256(path) if spec.sha256 else None
    if sha is not None and sha == spec.sha256:
        return None
    parts = []
    if spec.md5:
        parts.append(f"MD5 {md5}, expected {spec.md5}")
    if spec.sha256:
        parts.append(f"payload SHA-256 {sha or 'unreadable (damaged gzip)'}, expected {spec.sha256}")
    return "checksum mismatch (" + "; ".join(parts) + ")"


def _open_url(url: str, offset: int, timeout: float):
    """urlopen with an optional Range header; failures become _SourceFailed/_Transient."""
    request = urllib.request.Request(url, headers={"User-Agent": f"mnistlr/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        message = f"HTTP {exc.code} {exc.reason}".strip()
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Transient(message) from None
        raise _SourceFailed(message) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        if isinstance(exc.reason, FileNotFoundError):
            raise _SourceFailed("not found") from None
        raise _Transient(str(exc.reason)) from None
    except TimeoutError:
        raise _Transient(f"timed out after {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(str(exc) or type(exc).__name__) from None


def _download_once(url: str, part: Path, timeout: float,
                   report: Callable[[int, int | None], None]) -> None:
    """One attempt: resume *part* if the server honours Range (206), else restart (200)."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open_url(url, offset, timeout)
    if response is None:
        return  # 416: nothing after *offset*, so the partial file may be whole; verification decides
    with response:
        status = getattr(response, "status", None)
        content_range = response.headers.get("Content-Range", "") if response.headers else ""
        resumed = offset > 0 and status == 206 and content_range.startswith(f"bytes {offset}-")
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length") if response.headers else None
        total = offset + int(length) if length and length.isdigit() else None
        done = offset
        try:
            with open(part, "ab" if resumed else "wb") as out:
                report(done, total)
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    done += len(chunk)
                    report(done, total)
                out.flush()
                os.fsync(out.fileno())
        except TimeoutError:
            raise _Transient(f"timed out after {timeout:g} s ({done:,} bytes received)") from None
        except (http.client.HTTPException, ConnectionError) as exc:
            raise _Transient(f"connection broke after {done:,} bytes ({type(exc).__name__})") from None
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise _disk_full(part, exc) from None
            raise _SourceFailed(f"{part}: {exc.strerror or exc}") from None
    if total is not None and done < total:
        raise _Transient(f"connection closed after {done:,} of {total:,} bytes")


def _download(url: str, part: Path, timeout: float, retries: int,
              report: Callable[[int, int | None], None],
              on_retry: Callable[[str], None]) -> None:
    """Download *url* into *part* with up to *retries* retries of transient failures."""
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout, report)
            return
        except _Transient as exc:
            if attempt == retries:
                raise
            on_retry(f"{url}: {exc}; retrying ({attempt + 1} of {retries})")
            _sleep(_backoff(attempt))


def _copy_local(src: Path, part: Path, report: Callable[[int, int | None], None]) -> None:
    """Copy the local file *src* into *part*."""
    if not src.is_file():
        raise _SourceFailed("not found")
    try:
        total = src.stat().st_size
        with open(src, "rb") as inp, open(part, "wb") as out:
            done = 0
            report(done, total)
            for chunk in iter(lambda: inp.read(1 << 20), b""):
                out.write(chunk)
                done += len(chunk)
                report(done, total)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise _disk_full(part, exc) from None
        raise _SourceFailed(exc.strerror or str(exc)) from None


def is_url(source: Source) -> bool:
    return isinstance(source, str) and source.split(":", 1)[0].lower() in ("http", "https", "file")


def _where(source: Source, name: str) -> str:
    """The URL or path of file *name* at *source*."""
    if is_url(source):
        return str(source).rstrip("/") + "/" + name
    return str(Path(source) / name)


class _Fetcher:
    """Fetches the files of one dataset into *folder*, reporting through *progress*."""

    def __init__(self, spec: DatasetSpec, folder: Path, sources: Sequence[Source], *,
                 force: bool, timeout: float, retries: int, progress: ProgressFn | None):
        self.spec, self.folder, self.sources = spec, folder, list(sources)
        self.force, self.timeout, self.retries = force, timeout, retries
        self.progress = progress or (lambda event: None)

    def _event(self, kind: str, name: str, **fields) -> None:
        self.progress(FetchEvent(kind, self.spec.name, name, **fields))

    def _get(self, source: Source, name: str, part: Path) -> None:
        def report(done: int, total: int | None) -> None:
            self._event("advance", name, done=done, total=total)

        def on_retry(message: str) -> None:
            self._event("retry", name, message=message)

        if is_url(source):
            _download(_where(source, name), part, self.timeout, self.retries, report, on_retry)
        else:
            _copy_local(Path(source) / name, part, report)

    def _try_source(self, source: Source, spec: FileSpec, part: Path) -> str | None:
        """Fetch and verify from one source: None on success, else the failure."""
        resumed = part.exists() and part.stat().st_size > 0 and is_url(source)
        for _ in range(2 if resumed else 1):
            try:
                self._get(source, spec.name, part)
            except _SourceFailed as exc:
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
                  force: bool = False, timeout: float = 30.0, retries: int = 2,
                  progress: ProgressFn | None = None) -> dict:
    """Fetch the four files of *spec* into *folder* from *sources* (tried in order).

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
