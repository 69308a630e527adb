"""`mnistlr fetch` against a loopback HTTP server serving generated IDX files."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mnistlr.api.fetch import fetch
from mnistlr.data import registry, transfer
from mnistlr.data.registry import DATASETS, DatasetSpec, FileSpec, load_dataset
from mnistlr.errors import FetchError
from mnistlr.io.idx import encode_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


class Server(http.server.ThreadingHTTPServer):
    """Serves self.files (URL path -> bytes), honouring Range; logs every request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.log: list[dict] = []
        self.honour_range = True
        self.cut: dict[str, int] = {}        # path -> send only this many bytes, once
        self.errors: dict[str, list[int]] = {}  # path -> statuses to answer first
        self.delay: dict[str, float] = {}    # path -> seconds to wait before answering

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is part of the tests

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{prefix}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv, path = self.server, self.path
        entry = {"path": path, "range": self.headers.get("Range"), "status": None, "sent": 0}
        srv.log.append(entry)
        if srv.delay.get(path):
            time.sleep(srv.delay[path])
        if srv.errors.get(path):
            entry["status"] = srv.errors[path].pop(0)
            self.send_error(entry["status"])
            return
        if path not in srv.files:
            entry["status"] = 404
            self.send_error(404)
            return
        body, start = srv.files[path], 0
        wanted = self.headers.get("Range")
        if wanted and srv.honour_range and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= len(body):
                entry["status"] = 416
                self.send_error(416)
                return
        entry["status"] = 206 if start else 200
        self.send_response(entry["status"])
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        payload = body[start:]
        if path in srv.cut:
            payload = payload[: srv.cut.pop(path)]
            self.close_connection = True
        self.wfile.write(payload)
        entry["sent"] = len(payload)


@contextlib.contextmanager
def serving(srv: http.server.ThreadingHTTPServer):
    """*srv* answering on a thread of its own until the block ends (both fetch test files use it)."""
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def server():
    with serving(Server()) as srv:
        yield srv


def gz_files(n_train=40, n_test=12, seed=3) -> dict[str, bytes]:
    """The four gzip IDX files of a small synthetic dataset, by file name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test-images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test-labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    names = registry._files()
    return {names[k].name: gzip.compress(encode_idx(a), mtime=0) for k, a in arrays.items()}


@pytest.fixture
def tiny(server, monkeypatch):
    """Register 'tiny': its files served under /good/, its first built-in mirror 404s."""
    files = gz_files()
    for name, blob in files.items():
        server.files[f"/good/{name}"] = blob
    specs = {k: FileSpec(f.name, md5=hashlib.md5(files[f.name]).hexdigest())
             for k, f in registry._files().items()}
    spec = DatasetSpec(name="tiny", description="loopback test data", files=specs,
                       mirrors=(server.url("gone/"), server.url("good/")))
    monkeypatch.setitem(DATASETS, "tiny", spec)
    monkeypatch.setattr(transfer, "_sleep", lambda seconds: None)
    return files


def data_dir(tmp_path) -> Path:
    return tmp_path / "data"  # the cli fixture's MNISTLR_DATA


def entries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def requests_for(server, name) -> list[dict]:
    return [e for e in server.log if e["path"].endswith("/" + name)]


def test_fetch_with_mirror_fallback(cli, server, tiny, tmp_path):
    result = cli("fetch", "tiny")
    assert result.code == 0, result.err
    assert "tiny: fetched" in result.out and "4 downloaded" in result.out
    folder = data_dir(tmp_path) / "tiny"
    assert entries(folder) == sorted(tiny)
    for name, blob in tiny.items():
        assert (folder / name).read_bytes() == blob
        statuses = [e["status"] for e in requests_for(server, name)]
        assert statuses == [404, 200]  # the first mirror failed, the second served it
    X, y = load_dataset("tiny", "train")
    assert X.shape == (40, 28, 28) and y.shape == (40,)


def test_all_mirrors_fail_lists_each(cli, server, tiny, tmp_path):
    server.files.clear()
    result = cli("fetch", "tiny")
    assert result.code == 1
    line = result.err.strip().splitlines()[-1]  # the error line, after the per-mirror notes
    assert line.startswith("mnistlr: error: ")
    assert "could not fetch tiny/train-images-idx3-ubyte.gz" in line
    assert line.count("HTTP 404") == 2 and "/gone/" in line and "/good/" in line
    assert "check the network" in line
    assert entries(data_dir(tmp_path)) == []


def test_checksum_mismatch_leaves_nothing(cli, server, tiny, tmp_path):
    for name, blob in tiny.items():
        server.files[f"/good/{name}"] = blob[:-8] + bytes(8)
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 1
    assert "checksum mismatch" in result.err
    assert "with the official files" in result.err and "check the network" not in result.err
    assert entries(data_dir(tmp_path)) == []  # no file, no .part, no empty dataset folder


def test_mismatch_of_a_later_file_keeps_verified_ones(cli, server, tiny, tmp_path):
    name = "train-labels-idx1-ubyte.gz"
    server.files[f"/good/{name}"] = gzip.compress(b"not the labels")
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 1 and f"tiny/{name}" in result.err
    assert entries(data_dir(tmp_path) / "tiny") == ["train-images-idx3-ubyte.gz"]


def test_resume_partial_download(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    blob = tiny[name]
    folder = data_dir(tmp_path) / "tiny"
    folder.mkdir(parents=True)
    (folder / f".{name}.part").write_bytes(blob[:1000])
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0, result.err
    (request,) = requests_for(server, name)
    assert request["range"] == "bytes=1000-" and request["status"] == 206
    assert request["sent"] == len(blob) - 1000
    assert (folder / name).read_bytes() == blob
    assert not list(folder.glob(".*.part"))


def test_complete_partial_is_verified_without_download(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    folder = data_dir(tmp_path) / "tiny"
    folder.mkdir(parents=True)
    (folder / f".{name}.part").write_bytes(tiny[name])  # whole, but interrupted before the rename
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0, result.err
    assert [e["status"] for e in requests_for(server, name)] == [416]
    assert (folder / name).read_bytes() == tiny[name]


def test_restart_when_server_ignores_range(cli, server, tiny, tmp_path):
    server.honour_range = False
    name = "train-images-idx3-ubyte.gz"
    folder = data_dir(tmp_path) / "tiny"
    folder.mkdir(parents=True)
    (folder / f".{name}.part").write_bytes(b"stale bytes of something else")
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0, result.err
    (request,) = requests_for(server, name)
    assert request["status"] == 200 and request["sent"] == len(tiny[name])
    assert (folder / name).read_bytes() == tiny[name]


def test_stale_partial_is_discarded_after_mismatch(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    folder = data_dir(tmp_path) / "tiny"
    folder.mkdir(parents=True)
    (folder / f".{name}.part").write_bytes(bytes(500))  # not a prefix of the real file
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0, result.err
    assert [e["status"] for e in requests_for(server, name)] == [206, 200]
    assert (folder / name).read_bytes() == tiny[name]


def test_cut_off_transfer_is_retried_and_resumed(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    server.cut[f"/good/{name}"] = 4000
    result = cli("fetch", "tiny", "--mirror", server.url("good/"), "--retries", "1")
    assert result.code == 0, result.err
    first, second = requests_for(server, name)
    assert first["sent"] == 4000 and second["range"] == "bytes=4000-"
    assert "retrying" in result.err
    assert (data_dir(tmp_path) / "tiny" / name).read_bytes() == tiny[name]


def test_server_error_is_retried(cli, server, tiny, tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    server.errors[f"/good/{name}"] = [503]
    result = cli("fetch", "tiny", "--mirror", server.url("good/"), "--retries", "2")
    assert result.code == 0, result.err
    assert [e["status"] for e in requests_for(server, name)] == [503, 200]


def test_retries_are_bounded(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    server.errors[f"/good/{name}"] = [500] * 10
    result = cli("fetch", "tiny", "--mirror", server.url("good/"), "--retries", "2")
    assert result.code == 1 and "HTTP 500" in result.err
    assert len(requests_for(server, name)) == 3


def test_timeout_falls_back_to_next_mirror(cli, server, tiny, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    server.files[f"/slow/{name}"] = tiny[name]
    server.delay[f"/slow/{name}"] = 1.5
    result = cli("fetch", "tiny", "--mirror", server.url("slow/"), "--mirror", server.url("good/"),
                 "--timeout", "0.3", "--retries", "0")
    assert result.code == 0, result.err
    assert "timed out after 0.3 s" in result.err
    assert (data_dir(tmp_path) / "tiny" / name).read_bytes() == tiny[name]


def test_source_import(cli, server, tiny, tmp_path):
    source = tmp_path / "local"
    source.mkdir()
    for name, blob in tiny.items():
        (source / name).write_bytes(blob)
    result = cli("fetch", "tiny", "--source", source)
    assert result.code == 0, result.err
    assert "4 imported" in result.out
    assert server.log == []  # --source replaces the built-in mirrors
    assert entries(data_dir(tmp_path) / "tiny") == sorted(tiny)


def test_source_with_other_files_says_so_and_points_to_import(cli, tiny, tmp_path):
    """A folder of modified files is not 'a network problem': the line says what is true and gives
    the import command that works; the suggested command then really imports them."""
    source = tmp_path / "local"
    source.mkdir()
    for name, blob in tiny.items():
        (source / name).write_bytes(blob)
    images = source / "train-images-idx3-ubyte.gz"
    payload = bytearray(gzip.decompress(images.read_bytes()))
    payload[-1] ^= 0xFF
    images.write_bytes(gzip.compress(bytes(payload)))
    result = cli("fetch", "tiny", "--source", source, "-q")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    line = result.err.strip()
    assert "these are not the published tiny files" in line and "check the network" not in line
    command = line.split("import them: ", 1)[1].rstrip(")").split()
    assert command[:3] == ["mnistlr", "import", "NAME"]
    imported = cli("import", "mycopy", *command[3:])
    assert imported.code == 0, imported.err
    (source / "t10k-images-idx3-ubyte.gz").unlink()
    images.write_bytes(tiny["train-images-idx3-ubyte.gz"])
    result = cli("fetch", "tiny", "--source", source, "-q")
    assert result.code == 1 and "holds no t10k-images-idx3-ubyte.gz (a partial copy?)" in result.err
    assert "mnistlr import NAME TRAIN_SOURCE [TEST_SOURCE]" in result.err


def test_source_must_be_a_folder(cli, tiny, tmp_path):
    result = cli("fetch", "tiny", "--source", tmp_path / "absent")
    assert result.code == 2
    result = cli("fetch", "tiny", "--mirror", "ftp://example/")
    assert result.code == 2 and "not an http" in result.err


def test_present_files_are_skipped_unless_forced(cli, server, tiny, tmp_path):
    assert cli("fetch", "tiny", "--mirror", server.url("good/")).code == 0
    server.log.clear()
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0 and "tiny: present" in result.out
    assert server.log == []
    result = cli("fetch", "tiny", "--mirror", server.url("good/"), "--force", "--json")
    assert result.code == 0, result.err
    assert len(server.log) == 4
    (report,) = json.loads(result.out)["datasets"]
    assert [f["status"] for f in report["files"]] == ["downloaded"] * 4


def test_damaged_present_file_is_fetched_again(cli, server, tiny, tmp_path):
    assert cli("fetch", "tiny", "--mirror", server.url("good/")).code == 0
    path = data_dir(tmp_path) / "tiny" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"damaged")
    server.log.clear()
    result = cli("fetch", "tiny", "--mirror", server.url("good/"))
    assert result.code == 0, result.err
    assert [e["path"] for e in server.log] == ["/good/t10k-images-idx3-ubyte.gz"]
    assert path.read_bytes() == tiny["t10k-images-idx3-ubyte.gz"]


def test_list(cli, server, tiny, tmp_path):
    result = cli("fetch", "--list", "--json")
    assert result.code == 0
    listing = {d["name"]: d for d in json.loads(result.out)["datasets"]}
    assert {"mnist", "fashion-mnist", "kmnist", "mnist-sample", "tiny"} <= set(listing)
    assert listing["tiny"]["present"] is False and listing["mnist-sample"]["bundled"] is True
    assert cli("fetch", "tiny", "--mirror", server.url("good/")).code == 0
    listing = {d["name"]: d for d in json.loads(cli("fetch", "--list", "--json").out)["datasets"]}
    assert listing["tiny"]["present"] is True
    assert listing["tiny"]["where"] == str(data_dir(tmp_path) / "tiny")
    assert listing["tiny"]["failed"] == []
    table = cli("fetch", "--list").out
    assert "tiny" in table and "present" in table and "kmnist" in table and "missing" in table
    assert "bad checksum" not in table


def test_list_checks_files_copied_in_by_hand(cli, server, tiny, tmp_path):
    assert cli("fetch", "tiny", "--mirror", server.url("good/")).code == 0
    labels = data_dir(tmp_path) / "tiny" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-4] + bytes(4))  # someone's different copy
    listing = {d["name"]: d for d in json.loads(cli("fetch", "--list", "--json").out)["datasets"]}
    assert listing["tiny"]["failed"] == ["t10k-labels-idx1-ubyte.gz"]
    assert "bad checksum (1 of 4)" in cli("fetch", "--list").out


def test_sample_needs_no_fetch(cli, server):
    result = cli("fetch", "mnist-sample")
    assert result.code == 0 and "needs no fetch" in result.out
    assert server.log == []


def test_unknown_dataset_is_a_usage_error(cli):
    result = cli("fetch", "emnist")
    assert result.code == 2 and "known datasets: mnist" in result.err


def test_api_reports_progress(server, tiny, tmp_path):
    events = []
    results = fetch(["tiny"], tmp_path, mirrors=[server.url("good/")], progress=events.append)
    assert results[0]["status"] == "fetched"
    kinds = {e.kind for e in events}
    assert {"start", "advance", "done"} <= kinds
    last = [e for e in events if e.kind == "advance"][-1]
    assert last.done == last.total == len(tiny["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(FetchError):
        fetch(["tiny"], tmp_path / "other", mirrors=[server.url("nowhere/")])


@pytest.fixture(scope="module")
def fashion_files() -> dict[str, bytes]:
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} is absent (apt-get install dataset-fashion-mnist to run this test)")
    return {p.name: p.read_bytes() for p in FASHION.glob("*.gz")}


def test_fetch_fashion_mnist_from_loopback(cli, server, fashion_files, tmp_path):
    for name, blob in fashion_files.items():
        server.files[f"/fm/{name}"] = blob
    result = cli("fetch", "fashion-mnist", "--mirror", server.url("fm/"))
    assert result.code == 0, result.err
    assert "4 downloaded" in result.out  # Debian's gzip MD5s differ; payload SHA-256s verify
    X, y = load_dataset("fashion-mnist", "test")
    assert X.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_corrupted_fashion_mnist_is_refused(cli, server, fashion_files, tmp_path):
    for name, blob in fashion_files.items():
        server.files[f"/fm/{name}"] = blob
    name = "train-images-idx3-ubyte.gz"
    payload = bytearray(gzip.decompress(fashion_files[name]))
    payload[5000] ^= 0x01  # one pixel off, recompressed: a valid gzip of the wrong payload
    server.files[f"/fm/{name}"] = gzip.compress(bytes(payload), compresslevel=1)
    result = cli("fetch", "fashion-mnist", "--mirror", server.url("fm/"))
    assert result.code == 1 and "checksum mismatch" in result.err
    assert entries(data_dir(tmp_path)) == []


def test_interrupted_download_leaves_only_a_part_and_resumes(server, tiny, tmp_path, monkeypatch):
    name = "train-images-idx3-ubyte.gz"
    monkeypatch.setattr(transfer, "CHUNK", 1024)

    def interrupt(event):
        if event.kind == "advance" and event.file == name and event.done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(["tiny"], tmp_path, mirrors=[server.url("good/")], progress=interrupt)
    folder = tmp_path / "tiny"
    assert not (folder / name).exists()  # nothing that looks complete
    partial = (folder / f".{name}.part").stat().st_size
    assert 0 < partial < len(tiny[name])
    fetch(["tiny"], tmp_path, mirrors=[server.url("good/")])
    assert requests_for(server, name)[-1]["range"] == f"bytes={partial}-"
    assert (folder / name).read_bytes() == tiny[name]
