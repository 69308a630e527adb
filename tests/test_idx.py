"""IDX reading and writing: round trips, every malformed-file case, the decoded-array cache."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from mnistlr.errors import DataError
from mnistlr.io import cache, idx
from mnistlr.io.idx import parse_idx, read_idx, read_images, read_labels, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(7,), (3, 5), (4, 2, 3), (2, 3, 1, 4)]


def header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def sample(dtype, shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.integers(-100, 100, size=shape) if np.dtype(dtype).kind != "u" \
        else rng.integers(0, 256, size=shape)
    return (values * (1.5 if np.dtype(dtype).kind == "f" else 1)).astype(dtype)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, shape, compress):
    array = sample(dtype, shape)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.shape == shape
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_layout_is_big_endian_as_specified():
    data = header(0x0C, (2,)) + struct.pack(">2i", 1, -2)
    np.testing.assert_array_equal(parse_idx(data, "x"), [1, -2])


def test_bytes_are_not_copied():
    data = header(0x08, (2, 2)) + bytes([1, 2, 3, 4])
    array = parse_idx(data, "x")
    assert not array.flags.owndata  # a view on the bytes
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw_named_gz = tmp_path / "raw.gz"
    gz_named_raw = tmp_path / "packed-ubyte"
    write_idx(raw_named_gz, array, compress=False)
    write_idx(gz_named_raw, array, compress=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)


def test_write_is_reproducible(tmp_path):
    array = sample(np.uint8, (4, 2, 3))
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("data, problem", [
    (b"", "empty file"),
    (b"\x00\x00", "too short"),
    (b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
    (header(0x0A, (1,)) + b"\x00", "unknown IDX element type 0x0A"),
    (bytes([0, 0, 8, 0]), "zero dimensions"),
    (bytes([0, 0, 8, 3]) + struct.pack(">I", 5), "truncated header"),
    (header(0x08, (3, 0, 2)), "dimension of size 0"),
    (header(0x08, (10, 28, 28)) + bytes(100), "truncated: header promises 10×28×28 bytes, file holds 100"),
    (header(0x0D, (2, 3)) + bytes(23), "truncated"),
    (header(0x08, (2, 2)) + bytes(5), "over-long: 1 bytes"),
])
def test_malformed_bytes(data, problem):
    with pytest.raises(DataError) as err:
        parse_idx(data, "t10k-images.gz")
    assert problem in err.value.message
    assert err.value.message.startswith("t10k-images.gz: ")


def test_truncated_file_names_file_and_counts(tmp_path):
    path = tmp_path / "t10k-images.gz"
    path.write_bytes(gzip.compress(header(0x08, (10000, 28, 28)) + bytes(7_812_112)))
    with pytest.raises(DataError, match=r"t10k-images\.gz: truncated: header promises "
                                        r"10000×28×28 bytes, file holds 7,812,112"):
        read_idx(path)


def test_cut_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    blob = gzip.compress(header(0x08, (50, 28, 28)) + bytes(range(256)) * 150)
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut.gz: gzip stream is cut off"):
        read_idx(path)


def test_damaged_gzip_stream(tmp_path):
    path = tmp_path / "bad.gz"
    blob = bytearray(gzip.compress(header(0x08, (100,)) + bytes(range(100))))
    blob[-5] ^= 0xFF  # the stored length no longer matches
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="bad.gz: damaged gzip stream"):
        read_idx(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.gz"
    write_idx(path, np.zeros(3, np.uint8))
    path.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        read_idx(path)


def test_unreadable_file_as_root(tmp_path, monkeypatch):
    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(idx.os, "open", deny)
    with pytest.raises(DataError, match="locked.gz: permission denied"):
        read_idx(tmp_path / "locked.gz")


def test_images_and_labels_refuse_each_other(tmp_path):
    images, labels = tmp_path / "images.gz", tmp_path / "labels.gz"
    write_idx(images, np.zeros((3, 4, 4), np.uint8))
    write_idx(labels, np.arange(3, dtype=np.uint8))
    assert read_images(images).shape == (3, 4, 4)
    assert read_labels(labels).dtype == np.uint8
    with pytest.raises(DataError, match="labels.gz: holds 3 labels"):
        read_images(labels)
    with pytest.raises(DataError, match="images.gz: holds images, not labels"):
        read_labels(images)


def test_images_must_be_bytes_and_labels_integers(tmp_path):
    write_idx(tmp_path / "f.gz", np.zeros((2, 2, 2), np.float32))
    write_idx(tmp_path / "g.gz", np.zeros(2, np.float64))
    with pytest.raises(DataError, match="unsigned bytes"):
        read_images(tmp_path / "f.gz")
    with pytest.raises(DataError, match="must be integers"):
        read_labels(tmp_path / "g.gz")


def test_write_refuses_unsupported_arrays(tmp_path):
    for bad in (np.zeros(3, np.uint16), np.zeros((), np.uint8), np.zeros((2, 0), np.uint8)):
        with pytest.raises(DataError):
            write_idx(tmp_path / "x.gz", bad)
    assert not list(tmp_path.iterdir())


class _CountingDecompress:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = idx._read_gzip

        def counting(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(idx, "_read_gzip", counting)


def test_cache_second_load_does_not_decompress(tmp_path, monkeypatch):
    array = sample(np.uint8, (20, 28, 28))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, array)
    counter = _CountingDecompress(monkeypatch)
    first = read_idx(path, cache=True)
    second = read_idx(path, cache=True)
    assert counter.calls == 1
    assert isinstance(second, np.memmap)
    np.testing.assert_array_equal(first, array)
    np.testing.assert_array_equal(second, array)
    assert len(list((tmp_path / ".cache").glob("*.npy"))) == 1


def test_cache_invalidated_when_source_changes(tmp_path, monkeypatch):
    path = tmp_path / "labels.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    counter = _CountingDecompress(monkeypatch)
    read_labels(path, cache=True)
    changed = np.arange(12, dtype=np.uint8)[::-1].copy()
    write_idx(path, changed)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # coarse clocks
    np.testing.assert_array_equal(read_labels(path, cache=True), changed)
    np.testing.assert_array_equal(read_labels(path, cache=True), changed)
    assert counter.calls == 2
    assert len(list((tmp_path / ".cache").glob("labels.gz.*.npy"))) == 1  # the stale one is gone


def test_no_cache_unless_asked(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(4, dtype=np.uint8))
    read_idx(tmp_path / "a.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gz"]


def test_cache_skipped_silently_in_read_only_folder(tmp_path, monkeypatch):
    path = tmp_path / "a.gz"
    write_idx(path, np.arange(4, dtype=np.uint8))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    np.testing.assert_array_equal(read_idx(path, cache=True), np.arange(4))
    assert not (tmp_path / ".cache").exists()


def test_corrupt_cache_entry_is_ignored(tmp_path):
    path = tmp_path / "a.gz"
    write_idx(path, np.arange(4, dtype=np.uint8))
    read_idx(path, cache=True)
    (cached,) = (tmp_path / ".cache").glob("*.npy")
    cached.write_bytes(b"garbage")
    np.testing.assert_array_equal(read_idx(path, cache=True), np.arange(4))


def test_cache_is_keyed_by_content_not_size_or_time(tmp_path, monkeypatch):
    path = tmp_path / "labels.gz"

    def stored(array):   # gzip level 0: the file's size depends on the length only
        path.write_bytes(gzip.compress(idx.encode_idx(array), compresslevel=0, mtime=0))

    stored(np.arange(10, dtype=np.uint8))
    st = path.stat()
    counter = _CountingDecompress(monkeypatch)
    read_labels(path, cache=True)
    changed = np.arange(10, dtype=np.uint8)[::-1].copy()
    stored(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))    # same size and modification time
    assert path.stat().st_size == st.st_size
    np.testing.assert_array_equal(read_labels(path, cache=True), changed)
    assert counter.calls == 2


def test_cache_in_another_folder_keeps_the_last_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    store = tmp_path / "store"
    for i in range(5):
        path = tmp_path / f"f{i}.gz"
        write_idx(path, np.full(4, i, np.uint8))
        np.testing.assert_array_equal(read_idx(path, cache=True, cache_dir=store), np.full(4, i))
    assert len(list(store.glob("*.npy"))) == 3
    assert not (tmp_path / ".cache").exists()
    np.testing.assert_array_equal(read_idx(tmp_path / "f4.gz", cache=True, cache_dir=store), np.full(4, 4))


def _members(data: bytes, cuts: list[int]) -> bytes:
    """*data* gzip-compressed as several members, split at *cuts*."""
    edges = [0, *cuts, len(data)]
    return b"".join(gzip.compress(data[a:b], mtime=0) for a, b in zip(edges, edges[1:], strict=False))


@pytest.mark.parametrize("layout", ["one", "members", "padded"])
def test_blockwise_gzip_read_is_bit_identical(tmp_path, layout):
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, size=(3000, 28, 28)).astype(np.uint8)   # 2.4 MB: several blocks
    array[:1000] = 0                                                     # long runs: large blocks out
    raw = idx.encode_idx(array)
    blob = {"one": gzip.compress(raw, mtime=0), "members": _members(raw, [2, 1_000_003]),
            "padded": gzip.compress(raw, mtime=0) + bytes(1000) + gzip.compress(b"", mtime=0)}[layout]
    path = tmp_path / "x.gz"
    path.write_bytes(blob)
    got = read_idx(path)
    want = parse_idx(gzip.decompress(blob), "x.gz")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_blockwise_gzip_read_of_wide_types(tmp_path, dtype):
    array = sample(dtype, (300, 50, 7))
    write_idx(tmp_path / "w.gz", array)
    back = read_idx(tmp_path / "w.gz")
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_gzip_read_peak_memory_is_the_array_plus_blocks(tmp_path):
    import tracemalloc

    array = np.random.default_rng(4).integers(0, 256, size=(12000, 28, 28)).astype(np.uint8)  # 9.4 MB
    path = tmp_path / "big.gz"
    write_idx(path, array)
    tracemalloc.start()
    back = read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(back, array)
    assert peak < array.nbytes + 2 * 2**20, f"peak {peak:,} bytes for {array.nbytes:,} of data"


def test_over_long_gzip_is_refused_with_its_extra_bytes(tmp_path):
    path = tmp_path / "long.gz"
    path.write_bytes(gzip.compress(header(0x08, (2, 2)) + bytes(5)))
    with pytest.raises(DataError, match="long.gz: over-long: 1 bytes"):
        read_idx(path)
    path.write_bytes(gzip.compress(header(0x08, (2, 2)) + bytes(4 + (1 << 25))))
    with pytest.raises(DataError, match="over-long: more than "):
        read_idx(path)


def test_garbage_after_the_gzip_stream_is_damage(tmp_path):
    path = tmp_path / "tail.gz"
    path.write_bytes(gzip.compress(header(0x08, (4,)) + bytes(4)) + b"garbage")
    with pytest.raises(DataError, match="tail.gz: damaged gzip stream"):
        read_idx(path)


def test_a_header_promising_more_than_the_file_can_hold_allocates_nothing(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(header(0x08, (60000, 4000, 4000)) + bytes(100)))   # 960 GB promised
    with pytest.raises(DataError, match="huge.gz: truncated: header promises 60000×4000×4000 bytes, file holds 100"):
        read_idx(path)
