"""HTTP(S) transfers for `fetch`: http and https only, bounded in bytes and in time.

A transfer never writes more than its cap (the published size of the file plus a margin): a
Content-Length above it is refused before the body is read, and a body that runs past it is
stopped at once and deleted. Each file has a deadline per source as well as the per-read
timeout: a watchdog shuts the connection when it passes, so a server that drips a byte at a
time cannot hold a read open. Redirects are followed to http(s) URLs only, at most 5 times.
Text the server chose (status reasons, header values, redirect targets) reaches a message only
escaped and shortened (`server_text`). Only the standard library's urllib is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mnistlr import __version__
from mnistlr.errors import FetchError, MnistlrError, printable

CHUNK = 1 << 16
SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
_sleep = time.sleep  # tests replace it to skip the backoff
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

Report = Callable[[int, "int | None"], None]


class SourceFailed(Exception):
    """This source cannot deliver the file (the message says why)."""


class Transient(SourceFailed):
    """A failure worth retrying on the same source (timeouts, resets, 5xx)."""


class Oversize(SourceFailed):
    """The source sent (or announced) more than the file can be: its partial file is junk."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """How long one read may wait, how long one file may take from one source, how many bytes."""

    timeout: float   # seconds per read (and per connect)
    deadline: float  # seconds for the whole file from one source, retries included
    cap: int         # bytes the file may have at most


def server_text(text: object, limit: int = 120) -> str:
    """Text a server chose, safe to put in a message: unprintables escaped, at most *limit* chars."""
    text = printable(str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mirror_problem(url: str) -> str | None:
    """Why *url* cannot be a base URL to fetch from (None when it can): http(s) with a host only."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [IPv6 address
        return f"not a valid URL ({exc})"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if parts.scheme.lower() not in SCHEMES:
        return "not an http:// or https:// URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it holds spaces or control characters"
    if not parts.hostname:
        return "it names no host"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"its host name '{parts.hostname}' is not a valid one (an empty or over-long label?)"
    if parts.username is not None or parts.password is not None:
        return "user names and passwords in the URL are not supported"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    if "?" in url or "#" in url:
        return "it has a query or fragment ('?' or '#'), which would swallow the appended file name"
    return None


class _Watchdog:
    """Shuts the current connection when the deadline passes, so a blocked read returns at once."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.ends - time.monotonic()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                _shut(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    """Shut *sock* both ways (the plain socket under TLS too): a read blocked on it returns."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """A connection mixin: the socket, once connected, is handed to the watchdog."""

    def __init__(self, *args, watch: _Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._watch = watch

    def connect(self) -> None:
        super().connect()
        self._watch.attach(self.sock)


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watchdog):
        super().__init__()
        self.watch = watch

    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTP, watch=self.watch), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watchdog):
        super().__init__()
        self.watch = watch

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPS, watch=self.watch), req,
                            context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only, at most MAX_REDIRECTS times."""

    max_redirections = MAX_REDIRECTS

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri") or ""
        target = urllib.parse.urljoin(req.full_url, location)
        seen = getattr(req, "redirect_dict", {})
        if urllib.parse.urlsplit(target).scheme.lower() not in SCHEMES:
            fp.close()
            raise SourceFailed(f"redirected to {server_text(target)}, not an http(s) URL: refused")
        if len(seen) >= self.max_redirections or target in seen:
            fp.close()
            raise SourceFailed(f"too many redirects ({len(seen) + 1}, the last to {server_text(target)})")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(watch: _Watchdog) -> urllib.request.OpenerDirector:
    """An opener with http(s), proxies and redirects only: no file:, ftp: or data: handlers."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    _HTTPHandler(watch), _HTTPSHandler(watch),
                    urllib.request.HTTPDefaultErrorHandler(), _RedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _open_url(url: str, offset: int, limits: Limits, watch: _Watchdog):
    """The response to GET *url* (with a Range from *offset*); None on 416; failures mapped."""
    request = urllib.request.Request(url, headers={"User-Agent": f"mnistlr/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return _opener(watch).open(request, timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        message = f"HTTP {exc.code} {server_text(exc.reason)}".strip()
        if exc.code in (408, 429) or exc.code >= 500:
            raise Transient(message) from None
        raise SourceFailed(message) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise Transient(f"timed out after {limits.timeout:g} s") from None
        raise Transient(server_text(exc.reason)) from None
    except TimeoutError:
        raise Transient(f"timed out after {limits.timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise Transient(server_text(exc) or type(exc).__name__) from None
    except ValueError as exc:  # e.g. a redirect to a host name IDNA cannot encode
        raise SourceFailed(f"an invalid URL on the way ({server_text(exc)})") from None


def _announced(response, offset: int, name: str, cap: int) -> int | None:
    """The total size the response announces (None if it does not); refuses HTML and oversize."""
    headers = response.headers
    kind = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        raise SourceFailed(f"the server sent an HTML page (Content-Type {server_text(kind)}), "
                           f"not {name}")
    length = (headers.get("Content-Length") or "").strip()
    if not length.isdigit():
        return None
    total = offset + int(length)
    if total > cap:
        raise Oversize(f"the server announces {total:,} bytes, more than the {cap:,} "
                       f"{name} can be: refused before reading")
    return total


def copy_capped(response, out, done: int, name: str, cap: int, report: Report, total: int | None) -> int:
    """Copy *response* (a body or a file: anything with read1) to *out*, which already holds *done*
    bytes, never past *cap* bytes in all; returns the count."""
    report(done, total)
    for chunk in iter(lambda: response.read1(CHUNK), b""):
        if done + len(chunk) > cap:
            raise Oversize(f"the server sent more than the {cap:,} bytes {name} can be: "
                           f"stopped after {done + len(chunk):,}")
        _write(out, chunk)
        done += len(chunk)
        report(done, total)
    return done


def _write(out, chunk: bytes) -> None:
    with _disk_errors(out):
        out.write(chunk)


def sync_part(out) -> None:
    """Flush *out* to the disk (a failing disk ends the fetch, see `_disk_errors`)."""
    with _disk_errors(out):
        out.flush()
        os.fsync(out.fileno())


@contextlib.contextmanager
def _disk_errors(out):
    """A failing disk is not the source's fault: it ends the fetch (FetchError) at once."""
    try:
        yield
    except OSError as exc:
        part = Path(out.name)
        if exc.errno in _DISK_FULL:
            raise disk_full(part, exc) from None
        raise FetchError(f"{part}: {exc.strerror or exc}", "choose a writable --data-dir") from None


def _download_once(url: str, part: Path, limits: Limits, watch: _Watchdog, report: Report) -> None:
    """One attempt: resume *part* if the server honours Range (206), else restart (200)."""
    offset = part_size(part)
    response = _open_url(url, offset, limits, watch)
    if response is None:
        return  # 416: nothing after *offset*, so the partial file may be whole; verification decides
    name = part.name.removeprefix(".").removesuffix(".part")
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = offset > 0 and response.status == 206 and content_range.startswith(f"bytes {offset}-")
        offset = offset if resumed else 0
        total = _announced(response, offset, name, limits.cap)
        with open_part(part, resumed) as out:
            try:
                done = copy_capped(response, out, offset, name, limits.cap, report, total)
            except TimeoutError:
                raise Transient(f"timed out after {limits.timeout:g} s ({out.tell():,} bytes "
                                "received)") from None
            except (http.client.HTTPException, OSError) as exc:
                raise Transient(f"connection broke after {out.tell():,} bytes "
                                f"({type(exc).__name__})") from None
            sync_part(out)
    if total is not None and done < total:
        raise Transient(f"connection closed after {done:,} of {total:,} bytes")


def open_part(part: Path, append: bool):
    """*part* opened to append (a resumed download) or afresh; a failure ends the fetch."""
    try:
        return open(part, "ab" if append else "wb")
    except OSError as exc:
        raise FetchError(f"{part}: {exc.strerror or exc}", "choose a writable --data-dir") from None


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** attempt, 5.0)


def download(url: str, part: Path, limits: Limits, retries: int, report: Report,
             on_retry: Callable[[str], None]) -> None:
    """Download *url* into *part* with up to *retries* retries of transient failures, all within
    one deadline; Oversize deletes *part*, any other failure leaves it to resume from."""
    watch = _Watchdog(limits.deadline)
    try:
        for attempt in range(retries + 1):
            try:
                _download_once(url, part, limits, watch, report)
            except Oversize:
                part.unlink(missing_ok=True)
                raise
            except MnistlrError:
                raise
            except Exception as exc:
                if watch.fired:
                    raise _late(limits, part) from None
                if not isinstance(exc, Transient) or attempt == retries:
                    raise
                if watch.remaining() <= _backoff(attempt):
                    raise _late(limits, part) from None
                on_retry(f"{url}: {exc}; retrying ({attempt + 1} of {retries})")
                _sleep(_backoff(attempt))
                continue
            if watch.fired:  # the watchdog's shutdown can look like the end of the body
                raise _late(limits, part)
            return
    finally:
        watch.cancel()


def part_size(part: Path) -> int:
    """The bytes in the partial file *part* (0 when there is none)."""
    try:
        return part.stat().st_size
    except OSError:
        return 0


def _late(limits: Limits, part: Path) -> SourceFailed:
    return SourceFailed(f"timed out after {limits.deadline:g} s for the whole file "
                        f"({part_size(part):,} bytes received)")


def disk_full(part: Path, exc: OSError) -> FetchError:
    """The disk (not the source) failed: drop the partial file; no other source can help."""
    part.unlink(missing_ok=True)
    name = part.name.removeprefix(".").removesuffix(".part")
    return FetchError(f"{part.parent}: {exc.strerror or 'no space left on device'} while writing {name}; "
                      "nothing was kept", "free some disk space (or choose another --data-dir) and run again")
