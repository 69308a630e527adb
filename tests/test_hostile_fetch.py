"""`fetch` against hostile servers and mirror URLs: a loopback server in a thread of the test,
the CLI in a fresh process under an address-space limit, so a transfer that ran away (bytes,
time or memory) shows as a failed bound, not as a slow suite. Each case: the exit status, one
stderr line without a traceback, nothing left in the data directory but a resumable `.part`
when the line says so.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import time
import zlib

import numpy as np
import pytest
from test_fetch import serving
from test_hostile_streams import MEMORY_LIMIT, run
from test_reliability import assert_one_line_error

from mnistlr.data import registry, transfer
from mnistlr.data.registry import DATASETS, DatasetSpec, FileSpec
from mnistlr.io.idx import encode_idx

MNIST = DATASETS["mnist"].files
FASHION = DATASETS["fashion-mnist"].files
TRAIN = MNIST["train-images"]            # the first file a `fetch mnist` asks for
FASHION_TRAIN = FASHION["train-images"]  # has a payload SHA-256, so its payload is decompressed


class HostileServer(http.server.ThreadingHTTPServer):
    """Answers each path with routes[path](handler); logs the paths asked for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict = {}
        self.log: list[str] = []

    def handle_error(self, request, client_address):
        pass  # clients hang up on purpose in these tests

    def url(self, prefix: str = "m/") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{prefix}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.log.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)


@pytest.fixture
def server():
    with serving(HostileServer()) as srv:
        yield srv


# ---------------------------------------------------------------- what the server sends

def raw(lines: bytes):
    """Send *lines* as they are (a status line and headers of the server's choosing)."""
    def route(h):
        h.wfile.write(lines)
        h.close_connection = True
    return route


def body(data: bytes, *, length: int | None = None, kind: str = "application/x-gzip", cut: int | None = None):
    """200 with *data*; Content-Length *length* (default len(data)); stop after *cut* bytes."""
    def route(h):
        h.send_response(200)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        h.wfile.write(data[:cut] if cut is not None else data)
        h.wfile.flush()
        h.close_connection = True
    return route


def forever(h):
    """200 without a length, then zeros until the client hangs up."""
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    block = bytes(1 << 16)
    try:
        while True:
            h.wfile.write(block)
    except OSError:
        pass
    h.close_connection = True


def drip(every: float, *, headers_too: bool = False):
    """A byte every *every* seconds: of the body, or of the status line and headers too."""
    def route(h):
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {TRAIN.size}\r\n\r\n".encode()
        if not headers_too:
            h.wfile.write(head)
            head = b""
        try:
            for byte in head + bytes(TRAIN.size):
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        h.close_connection = True
    return route


def redirect(to: str, code: int = 302):
    def route(h):
        h.send_response(code)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


def bomb(size: int) -> bytes:
    """A gzip of exactly *size* bytes whose members expand about a thousandfold (zeros)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(64)) + squeeze.flush()
    blob = member * (size // len(member))
    return blob + bytes(size - len(blob))  # gzip readers skip zero padding after a member


# ---------------------------------------------------------------- the cases

def fetch(server, tmp_path, *args, dataset="mnist", timeout=60):
    start = time.monotonic()
    result = run(["fetch", dataset, "-q", "--mirror", server.url(), *args],
                 env={"MNISTLR_DATA": str(tmp_path / "data")}, limit=MEMORY_LIMIT, timeout=timeout)
    return result, time.monotonic() - start


def left(tmp_path) -> list[str]:
    folder = tmp_path / "data"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_a_server_that_streams_forever_is_cut_at_the_size_cap(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = forever
    result, seconds = fetch(server, tmp_path, "--retries", "0")
    cap = transfer_cap(TRAIN)
    assert_one_line_error(result, 1, rf"sent more than the {cap:,} bytes {TRAIN.name} can be: stopped after",
                          r"check the network")
    assert left(tmp_path) == [] and seconds < 30


def test_an_oversize_content_length_is_refused_before_reading(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = body(b"", length=11_000_000_000)
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, r"announces 11,000,000,000 bytes, more than the .* refused before reading",
                          r"check the network")
    assert left(tmp_path) == []
    assert server.log == [f"/m/{TRAIN.name}"]  # refused: not retried


def test_a_dripping_body_ends_at_the_timeout_and_keeps_a_resumable_part(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = drip(2.0)
    result, seconds = fetch(server, tmp_path, "--timeout", "3")
    line = assert_one_line_error(result, 1, r"timed out after 3 s for the whole file \(\d bytes received\)",
                                 r"run the same command again to resume")
    part = f"mnist/.{TRAIN.name}.part"
    assert left(tmp_path) == ["mnist", part] and f".{TRAIN.name}.part" in line
    assert 3 <= seconds < 3 + 10  # the deadline, plus the interpreter's start-up on a loaded machine


def test_dripping_headers_end_at_the_timeout(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = drip(0.5, headers_too=True)
    result, seconds = fetch(server, tmp_path, "--timeout", "2")
    assert_one_line_error(result, 1, r"timed out after 2 s for the whole file \(0 bytes received\)",
                          r"check the network")
    assert left(tmp_path) == [] and seconds < 2 + 10


def test_control_bytes_in_the_status_reason_are_escaped(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = raw(b"HTTP/1.1 404 \x1b[2J\x1b]0;owned\x07gone\r\nContent-Length: 0\r\n\r\n")
    result, _ = fetch(server, tmp_path)
    line = assert_one_line_error(result, 1, r"HTTP 404 \\x1b\[2J\\x1b\]0;owned\\x07gone", r"check the network")
    assert "\x1b" not in result.err and "\x07" not in result.err and line.isprintable()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:,hello",
                                    "file:///dev/zero#"])
def test_a_redirect_to_a_non_http_url_is_refused(server, tmp_path, target):
    server.routes[f"/m/{TRAIN.name}"] = redirect(target)
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, rf"redirected to {target[:4]}.*, not an http\(s\) URL: refused",
                          r"check the network")
    assert left(tmp_path) == []


def test_control_bytes_in_a_redirect_target_are_escaped(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = redirect("file:///\x1b[31mred")
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, r"redirected to file:///\\x1b\[31mred", r"check the network")
    assert "\x1b" not in result.err


def test_a_redirect_to_a_host_name_that_cannot_be_encoded_is_one_line(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = redirect("http://a..b/x")
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, r"an invalid URL on the way \(encoding with 'idna' codec failed",
                          r"check the network")
    assert left(tmp_path) == []


def test_a_redirect_loop_ends(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = redirect(server.url() + TRAIN.name)
    server.routes["/a"] = redirect("/b", 301)
    server.routes["/b"] = redirect("/a", 307)
    result, seconds = fetch(server, tmp_path)
    assert_one_line_error(result, 1, r"too many redirects", r"check the network")
    assert left(tmp_path) == [] and len(server.log) <= 6 and seconds < 30


def test_a_redirect_chain_longer_than_five_ends(server, tmp_path):
    server.routes[f"/m/{TRAIN.name}"] = redirect("/r1")
    for i in range(1, 20):
        server.routes[f"/r{i}"] = redirect(f"/r{i + 1}")
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, r"too many redirects \(6", r"check the network")
    assert len(server.log) == 6


def test_a_gzip_bomb_of_the_published_size_stops_at_the_payload_size(server, tmp_path):
    blob = bomb(FASHION_TRAIN.size)
    assert len(blob) == FASHION_TRAIN.size
    server.routes[f"/m/{FASHION_TRAIN.name}"] = body(blob)
    result, seconds = fetch(server, tmp_path, dataset="fashion-mnist")
    assert_one_line_error(result, 1, rf"checksum mismatch .*unreadable \(it expands past "
                          rf"{FASHION_TRAIN.payload:,} bytes\)", r"official files")
    assert left(tmp_path) == []
    assert seconds < 30  # uncapped, the SHA-256 of its ~26 GB would take minutes


def test_a_file_of_the_right_size_with_the_wrong_bytes_is_deleted(server, tmp_path):
    junk = np.random.default_rng(0).integers(0, 256, TRAIN.size, dtype=np.uint8).tobytes()
    server.routes[f"/m/{TRAIN.name}"] = body(junk)
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, rf"checksum mismatch \(MD5 {hashlib.md5(junk).hexdigest()}, "
                          rf"expected {TRAIN.md5}\)", r"official files")
    assert left(tmp_path) == []


def test_an_html_page_instead_of_the_file_is_named(server, tmp_path):
    page = b"<html><body>Please log in</body></html>"
    server.routes[f"/m/{TRAIN.name}"] = body(page, kind="text/html; charset=utf-8")
    result, _ = fetch(server, tmp_path)
    assert_one_line_error(result, 1, rf"sent an HTML page \(Content-Type text/html\), not {TRAIN.name}",
                          r"check the network")
    assert left(tmp_path) == []


def test_a_connection_closed_mid_file_keeps_the_part_and_says_so(server, tmp_path):
    junk = bytes(TRAIN.size)
    server.routes[f"/m/{TRAIN.name}"] = body(junk, cut=100_000)
    result, _ = fetch(server, tmp_path, "--retries", "0")
    assert_one_line_error(result, 1, r"connection (closed|broke) after 100,000 .*the partial download "
                          rf"\.{TRAIN.name}\.part \(100,000 bytes\) is kept in", r"run the same command again")
    assert left(tmp_path) == ["mnist", f"mnist/.{TRAIN.name}.part"]


def test_a_local_source_file_over_the_cap_is_refused_unread(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with open(source / TRAIN.name, "wb") as big:
        big.truncate(20 << 30)  # sparse: 20 GiB that take no room
    result = run(["fetch", "mnist", "-q", "--source", source],
                 env={"MNISTLR_DATA": str(tmp_path / "data")}, limit=MEMORY_LIMIT, timeout=60)
    assert_one_line_error(result, 1, r"21,474,836,480 bytes, more than the .* can be", r"import them")
    assert left(tmp_path) == []


def transfer_cap(spec: FileSpec) -> int:
    from mnistlr.data.download import size_cap
    return size_cap(spec)


# ---------------------------------------------------------------- in-process: resume and limits

def tiny_spec(server, monkeypatch, blob: bytes) -> None:
    """Register 'tiny': four copies of *blob* under /t/, its size and MD5 published."""
    files = {k: FileSpec(f.name, md5=hashlib.md5(blob).hexdigest(), size=len(blob))
             for k, f in registry._files().items()}
    monkeypatch.setitem(DATASETS, "tiny", DatasetSpec(name="tiny", description="loopback", files=files,
                                                      mirrors=(server.url("t/"),)))
    monkeypatch.setattr(transfer, "_sleep", lambda seconds: None)


def test_a_cut_transfer_resumes_on_the_next_run(cli, server, monkeypatch, tmp_path):
    labels = np.random.default_rng(1).integers(0, 256, 6000, dtype=np.uint8)
    blob = gzip.compress(encode_idx(labels), mtime=0)
    assert len(blob) > 5000
    tiny_spec(server, monkeypatch, blob)
    name = TRAIN.name
    served = []

    def ranged(h):
        start = int((h.headers.get("Range") or "bytes=0-")[6:-1])
        served.append(start)
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(blob) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
        h.end_headers()
        h.wfile.write(blob[start:] if start or len(served) > 1 else blob[:500])
        h.close_connection = True

    for key in registry.FILE_KEYS:
        server.routes[f"/t/{registry._files()[key].name}"] = ranged if key == "train-images" else body(blob)
    result = cli("fetch", "tiny", "-q", "--retries", "0")
    assert result.code == 1 and "is kept in" in result.err, (result, served)
    result = cli("fetch", "tiny", "-q")
    assert result.code == 0, result.err
    assert served == [0, 500] and (tmp_path / "data" / "tiny" / name).read_bytes() == blob


@pytest.mark.parametrize("mirror, problem", [
    ("file:///dev/zero#", r"not an http:// or https:// URL \(give the http"),
    ("file:/etc/", r"not an http:// or https:// URL"),
    ("ftp://example.org/mnist/", r"not an http:// or https:// URL"),
    ("data:,x", r"not an http:// or https:// URL"),
    ("gopher://example.org/", r"not an http:// or https:// URL"),
    ("example.org/mnist/", r"not an http:// or https:// URL"),
    ("http:///mnist/", r"names no host"),
    ("https://", r"names no host"),
    ("http://user:secret@example.org/", r"user names and passwords .* not supported"),
    ("http://example.org:99999/", r"port is not a number from 1 to 65535"),
    ("http://example.org:0/", r"port is not a number from 1 to 65535"),
    ("http://example.org:http/", r"port is not a number from 1 to 65535"),
    ("http://example.org/mnist/?file=", r"query or fragment"),
    ("http://example.org/#", r"query or fragment"),
    ("http://example.org/a b/", r"spaces or control characters"),
    ("http://[::1/mnist/", r"not a valid URL \(Invalid IPv6 URL\)"),
    ("http://a..b/", r"host name 'a\.\.b' is not a valid one"),
    ("http://[::1]:65536/", r"port is not a number from 1 to 65535"),
    ("http://example.org/\x1b[2J/", r"spaces or control characters"),
])
def test_a_mirror_that_is_not_an_http_base_url_is_a_usage_error(cli, mirror, problem, tmp_path):
    result = cli("fetch", "mnist", "--mirror", mirror)
    assert_one_line_error(result, 2, problem, r"give the http\(s\) base URL .*--source DIR")
    assert result.err.count("--source DIR") == 1          # the hint says it, once
    assert "\x1b" not in result.err and left(tmp_path) == []


@pytest.mark.parametrize("value, problem", [
    ("nan", r"--timeout.*(nan: not a number of seconds|0\.1)"), ("inf", r"--timeout inf: not a number of seconds"),
    ("1e9", r"--timeout 1000000000.0: not a number of seconds"),
    ("0", r"--timeout.*(0\.1|x>=0\.1)"), ("-1", r"--timeout.*(0\.1|x>=0\.1)"),
])
def test_bad_timeouts_are_usage_errors(cli, value, problem, tmp_path):
    result = cli("fetch", "mnist", "--timeout", value)
    assert result.code == 2 and "Traceback" not in result.err
    assert __import__("re").search(problem, result.err), result.err
    assert left(tmp_path) == []


def test_the_watchdog_unblocks_a_read_that_would_wait_forever():
    """The deadline holds for any blocking read, not only between chunks: a socket pair whose
    other end never writes, read with no timeout at all, returns when the watchdog fires."""
    ours, theirs = socket.socketpair()
    watch = transfer._Watchdog(0.3)
    watch.attach(ours)
    start = time.monotonic()
    assert ours.recv(10) == b""
    assert 0.25 < time.monotonic() - start < 5 and watch.fired
    ours.close()
    theirs.close()
