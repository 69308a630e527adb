"""mnistlr.data.download: verification of a file against its published checksums, sources and retries."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from mnistlr.data.download import is_url, verify_file
from mnistlr.data.registry import FileSpec
from mnistlr.data.transfer import _backoff

PAYLOAD = b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03"


@pytest.fixture
def gz(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(PAYLOAD, mtime=0))
    return path


def test_a_file_verifies_by_its_gzip_md5_or_by_its_payload_sha256(gz):
    md5 = hashlib.md5(gz.read_bytes()).hexdigest()
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert verify_file(gz, FileSpec(gz.name, md5=md5)) is None
    assert verify_file(gz, FileSpec(gz.name, sha256=sha)) is None
    # recompressed copies (other MD5) still verify by their payload
    assert verify_file(gz, FileSpec(gz.name, md5="0" * 32, sha256=sha)) is None


def test_a_mismatch_says_what_was_found_and_expected(gz):
    why = verify_file(gz, FileSpec(gz.name, md5="0" * 32, sha256="f" * 64))
    assert why.startswith("checksum mismatch")
    assert f"expected {'0' * 32}" in why and hashlib.sha256(PAYLOAD).hexdigest() in why


def test_a_damaged_gzip_is_named_unreadable(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(PAYLOAD)[:-6])
    assert "unreadable (damaged gzip)" in verify_file(path, FileSpec(path.name, sha256="f" * 64))


def test_a_file_without_checksums_is_taken_as_it_is(gz):
    assert verify_file(gz, FileSpec(gz.name)) is None


@pytest.mark.parametrize("source, url", [
    ("https://example.org/mnist/", True), ("HTTP://example.org", True), ("/data/mnist", False),
    ("mirror.example.org/mnist", False),
])
def test_urls_are_told_from_local_folders(source, url):
    assert is_url(source) is url


def test_backoff_grows_and_stays_bounded():
    waits = [_backoff(attempt) for attempt in range(8)]
    assert all(a <= b for a, b in zip(waits, waits[1:], strict=False)) and waits[0] > 0
    assert max(waits) <= 30
