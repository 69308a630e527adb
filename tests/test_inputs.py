"""Prediction inputs: detection by content, batch readers for IDX, NumPy, CSV and stdin, every bad case."""

from __future__ import annotations

import gzip
import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlr.errors import DataError, UsageError
from mnistlr.io import inputs
from mnistlr.io.idx import encode_idx, write_idx
from mnistlr.io.inputs import open_inputs, sniff, total_count
from mnistlr.io.pixels import check_pixels

SHAPE = (28, 28)


def digits(n: int = 37, seed: int = 0) -> np.ndarray:
    """Synthetic uint8 images (n, 28, 28) with every value 0–255 present."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def read_all(path, batch_size: int = 8, shape=SHAPE, stdin=None) -> np.ndarray:
    sources = open_inputs([str(path)], shape, stdin=stdin)
    assert len(sources) == 1
    batches = list(sources[0].batches(batch_size))
    assert [b.start for b in batches] == list(range(0, sum(len(b.X) for b in batches), batch_size))
    return np.concatenate([b.X for b in batches])


def error_of(path, shape=SHAPE, stdin=None, batch_size: int = 8) -> str:
    """The one-line message of the DataError that reading *path* raises."""
    with pytest.raises(DataError) as info:
        read_all(path, batch_size, shape, stdin)
    message = str(info.value)
    assert "\n" not in message
    return message


def csv_text(X: np.ndarray, header: str | None = None, labels=None, sep: str = ",") -> str:
    flat = X.reshape(len(X), -1)
    lines = [] if header is None else [header]
    for i, row in enumerate(flat):
        cells = [str(v) for v in row]
        lines.append(sep.join(([str(labels[i])] if labels is not None else []) + cells))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize("head, kind", [
    (b"\x1f\x8b\x08\x00", "gzip"), (b"\x93NUMPY\x01\x00", "npy"), (b"PK\x03\x04", "npz"),
    (b"\x00\x00\x08\x03\x00\x00", "idx"), (b"\x00\x00\x08\x01", "idx"),
    (b"\x89PNG\r\n\x1a\n....", "image"), (b"\xff\xd8\xff\xe0", "image"), (b"GIF89a", "image"),
    (b"BM\x00\x00", "image"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"), (b"P5\n28 28\n255\n", "image"),
    (b"label,pixel0,pixel1\n1,0,0\n", "csv"), (b"0,0,12\n", "csv"), (b"\xef\xbb\xbfpixel0\n", "csv"),
    (b"\x00\x00\x42\x03", "unknown"), (b"\x00\x01\x02\x03\xff", "unknown"), (b"hello\x00world", "unknown"),
])
def test_sniff(head, kind):
    assert sniff(head) == kind


def test_detection_is_by_content_not_name(tmp_path):
    X = digits(5)
    disguised = tmp_path / "images.csv"
    disguised.write_bytes(gzip.compress(encode_idx(X)))
    assert np.array_equal(read_all(disguised), X)
    npy_as_png = tmp_path / "array.png"
    with open(npy_as_png, "wb") as handle:
        np.save(handle, X)
    assert np.array_equal(read_all(npy_as_png), X)


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("batch_size", [1, 8, 36, 37, 1000])
def test_idx_batches_equal_the_file(tmp_path, compress, batch_size):
    X = digits(37)
    path = tmp_path / "x.idx"
    write_idx(path, X, compress=compress)
    source = open_inputs([path], SHAPE)[0]
    assert (source.kind, source.shape, source.count) == ("idx", SHAPE, 37)
    got = np.concatenate([b.X for b in source.batches(batch_size)])
    assert got.dtype == np.uint8 and np.array_equal(got, X)
    assert len(list(source.batches(batch_size))) == -(-37 // batch_size)


def test_idx_real_test_file(shared_mnist):
    from mnistlr.io.idx import read_images

    path = shared_mnist / "t10k-images-idx3-ubyte.gz"
    assert np.array_equal(read_all(path, 4096), read_images(path))


@pytest.mark.parametrize("compress", [False, True])
def test_labels_file_is_refused_as_labels(tmp_path, compress):
    path = tmp_path / "labels.idx"
    write_idx(path, np.arange(10, dtype=np.uint8), compress=compress)
    message = error_of(path)
    assert "labels" in message and "not images" in message


def test_idx_truncated_and_over_long(tmp_path):
    data = encode_idx(digits(4))
    raw = tmp_path / "cut.idx"
    raw.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated.*4 images.*holds 3"):
        open_inputs([raw], SHAPE)  # raw files are checked before anything is read
    zipped = tmp_path / "cut.idx.gz"
    zipped.write_bytes(gzip.compress(data[:-100]))
    assert "truncated" in error_of(zipped)
    long = tmp_path / "long.idx"
    long.write_bytes(data + b"\x00" * 10)
    with pytest.raises(DataError, match="over-long"):
        open_inputs([long], SHAPE)
    assert "over-long" in error_of(_gz(tmp_path / "long.gz", data + b"\x00"))


def _gz(path, data: bytes):
    path.write_bytes(gzip.compress(data))
    return path


def test_damaged_and_cut_gzip(tmp_path):
    data = gzip.compress(encode_idx(digits(50)))
    assert "cut off" in error_of(_write(tmp_path / "cut.gz", data[: len(data) // 2]))
    damaged = bytearray(data)
    damaged[len(damaged) // 2:len(damaged) // 2 + 20] = b"\xff" * 20
    message = error_of(_write(tmp_path / "bad.gz", bytes(damaged)))
    assert "gzip" in message or "cannot read" in message


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_idx_other_shapes_are_described(tmp_path):
    path = tmp_path / "small.idx"
    write_idx(path, digits(3)[:, :20, :20])
    assert open_inputs([path], SHAPE)[0].shape == (20, 20)  # the model check names both shapes
    four = tmp_path / "four.idx"
    write_idx(four, np.zeros((2, 3, 4, 5), np.uint8))
    assert "declares 4 dimensions" in error_of(four)


def test_a_header_whose_sizes_overflow_int64_is_named_truncated(tmp_path):
    # (2³² − 1)³ elements: a product of int64s would wrap to a negative count of images
    path = _write(tmp_path / "liar.idx", b"\0\0\x08\x03" + np.full(3, 2**32 - 1, ">u4").tobytes() + bytes(100))
    assert "promises 4,294,967,295 images, the file holds 0" in error_of(path)


# ---------------------------------------------------------------- NumPy

@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("fortran", [False, True])
def test_npy_uint8(tmp_path, flat, fortran):
    X = digits(21)
    array = X.reshape(21, -1) if flat else X
    path = tmp_path / "x.npy"
    np.save(path, np.asfortranarray(array) if fortran else array)
    got = read_all(path, 5)
    assert got.dtype == np.uint8 and np.array_equal(got, array)


def test_npy_floats_in_unit_range_are_scaled(tmp_path):
    X = digits(9)
    for dtype in (np.float32, np.float64, np.float16):
        path = tmp_path / f"x_{np.dtype(dtype).name}.npy"
        np.save(path, (X / 255.0).astype(dtype))
        got = read_all(path)
        if dtype == np.float16:   # k/255 in float16 is off by up to ~0.06 on the 0–255 scale: not whole
            assert got.dtype == np.float32 and np.allclose(got, X, atol=0.5)
        else:   # uint8 images divided by 255 are those images again, bit for bit
            assert got.dtype == np.uint8 and np.array_equal(got, X)


def test_npy_floats_on_the_raw_scale_are_raw(tmp_path):
    X = digits(9)
    for dtype in (np.float32, np.float64):
        path = tmp_path / f"x_{np.dtype(dtype).name}.npy"
        np.save(path, X.astype(dtype))
        got = read_all(path, 4)
        assert got.dtype == np.uint8 and np.array_equal(got, X)
    # floats that are not whole numbers stay as they are, in float32
    path = tmp_path / "fractional.npy"
    np.save(path, X.astype(np.float64) * 0.7)
    got = read_all(path, 4)
    assert got.dtype == np.float32 and np.allclose(got, X * 0.7, atol=1e-4)


def test_npy_scale_is_told_by_the_first_batch(tmp_path):
    # a later batch on another scale is refused, naming its image
    X = np.concatenate([digits(4) / 255.0, digits(4).astype(np.float64)])
    assert "image 4 holds 255, but the images before it are on the [0, 1] scale" in error_of(
        bad_array(tmp_path, X), batch_size=4)


def test_npy_other_integer_types_and_byte_orders(tmp_path):
    X = digits(6)
    for dtype in ("<i2", ">i4", "<u4", ">i8"):
        path = tmp_path / "x.npy"
        np.save(path, X.astype(dtype))
        assert np.array_equal(read_all(path), X)


def test_npz_picks_the_images(tmp_path):
    X = digits(7)
    only = tmp_path / "only.npz"
    np.savez(only, X)
    assert np.array_equal(read_all(only), X)
    named = tmp_path / "named.npz"
    np.savez_compressed(named, labels=np.arange(7), images=X)
    assert np.array_equal(read_all(named), X)
    ambiguous = tmp_path / "two.npz"
    np.savez(ambiguous, a=X, b=X)
    assert "which are the images" in error_of(ambiguous)


def test_gzipped_npy(tmp_path):
    X = digits(11)
    buffer = io.BytesIO()
    np.save(buffer, X)
    assert np.array_equal(read_all(_gz(tmp_path / "x.npy.gz", buffer.getvalue()), 4), X)


def bad_array(tmp_path, array, name="bad.npy"):
    path = tmp_path / name
    np.save(path, array)
    return path


def _poke(X: np.ndarray, image: int, value) -> np.ndarray:
    """X with pixel (5, 5) of *image* set to *value*."""
    X = X.copy()
    X[image, 5, 5] = value
    return X


UNIT = digits(6) / 255.0


@pytest.mark.parametrize("array, expected", [
    (_poke(UNIT, 2, np.nan), "bad.npy: image 2 holds NaN"),
    (_poke(UNIT, 1, np.inf), "bad.npy: image 1 holds an infinite value"),
    (_poke(UNIT, 3, -0.5), "bad.npy: image 3 holds a negative pixel value (-0.5)"),
    (_poke(UNIT, 5, 1.5), "bad.npy: image 5 holds 1.5, but the images before it are on the [0, 1] scale"),
    (_poke(UNIT, 1, 1.5), "bad.npy: image 1 holds 1.5: float pixels are either in [0, 1] or on the 0–255 scale"),
    (_poke(digits(6).astype(np.float32), 3, 255.5), "bad.npy: image 3 holds 255.5, above 255"),
    (_poke(digits(6).astype(np.int16), 4, 300), "bad.npy: image 4 holds 300, above 255"),
    (_poke(digits(6).astype(np.int32), 1, -1), "bad.npy: image 1 holds a negative pixel value (-1)"),
])
def test_npy_bad_values_name_the_image(tmp_path, array, expected):
    assert expected in error_of(bad_array(tmp_path, array), batch_size=2)


@pytest.mark.parametrize("array, expected", [
    (np.arange(10, dtype=np.uint8), "1-D array of 10 values (labels?)"),
    (np.zeros((2, 28, 28), bool), "holds bool values"),
    (np.zeros((2, 28, 28), complex), "holds complex128 values"),
    (np.zeros((0, 28, 28), np.uint8), "holds no images"),
    (np.zeros((2, 2, 28, 28), np.uint8), "images are (N, rows, cols)"),
])
def test_npy_unusable_arrays(tmp_path, array, expected):
    assert expected in error_of(bad_array(tmp_path, array))


def test_npy_objects_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert "holds object values" in error_of(path)


def test_truncated_npy(tmp_path):
    path = bad_array(tmp_path, digits(5))
    path.write_bytes(path.read_bytes()[:-784])
    with pytest.raises(DataError, match="truncated"):
        open_inputs([path], SHAPE)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=60))
def test_check_pixels_round_trips_unit_floats(values):
    X = np.array(values, np.uint8).reshape(len(values), 1)
    back = check_pixels((X / 255.0).astype(np.float32), lambda i: f"image {i}", 1.0)
    assert np.allclose(back, X, atol=1e-3)
    assert np.array_equal(check_pixels(X.astype(np.int64), lambda i: "", 255.0), X)


# ---------------------------------------------------------------- CSV

def test_csv_kaggle_train_and_test_layouts(tmp_path):
    X = digits(13)
    labels = np.arange(13) % 10
    columns = ",".join(f"pixel{i}" for i in range(784))
    train = tmp_path / "train.csv"
    train.write_text(csv_text(X, "label," + columns, labels))
    test = tmp_path / "test.csv"
    test.write_text(csv_text(X, columns))
    for path in (train, test):
        got = read_all(path, 4)
        assert got.shape == (13, 784) and np.array_equal(got, X.reshape(13, -1))


def test_csv_without_header_label_column_by_count(tmp_path):
    X = digits(5)
    with_label = tmp_path / "a.csv"
    with_label.write_text(csv_text(X, labels=[9] * 5))
    without = tmp_path / "b.csv"
    without.write_text(csv_text(X))
    assert np.array_equal(read_all(with_label), read_all(without))
    assert np.array_equal(read_all(without), X.reshape(5, -1))


def test_csv_separators_blank_lines_crlf_gzip_and_bom(tmp_path):
    X = digits(4)
    expected = X.reshape(4, -1)
    tabbed = tmp_path / "t.tsv"
    tabbed.write_text(csv_text(X, sep="\t"))
    spaced = tmp_path / "s.txt"
    spaced.write_text(csv_text(X, sep=" "))
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"\xef\xbb\xbf" + csv_text(X).replace("\n", "\r\n\r\n").encode())
    zipped = _gz(tmp_path / "z.csv.gz", csv_text(X).encode())
    for path in (tabbed, spaced, crlf, zipped):
        assert np.array_equal(read_all(path, 3), expected), path


def test_csv_unit_scale_is_told_by_the_first_batch(tmp_path):
    X = digits(6)
    path = tmp_path / "unit.csv"
    path.write_text("\n".join(",".join(f"{v / 255:.6f}" for v in row) for row in X.reshape(6, -1)))
    assert np.allclose(read_all(path, 100), X.reshape(6, -1), atol=1e-3)
    raw_floats = tmp_path / "raw.csv"
    raw_floats.write_text("\n".join(",".join(f"{v}.0" for v in row) for row in X.reshape(6, -1)))
    assert np.array_equal(read_all(raw_floats), X.reshape(6, -1))


def _lines(X, bad_line: int, transform):
    """CSV text of X (no header) with line *bad_line* (1-based) changed by transform(cells)."""
    rows = [[str(v) for v in row] for row in X.reshape(len(X), -1)]
    rows[bad_line - 1] = transform(rows[bad_line - 1])
    return "\n".join(",".join(r) for r in rows) + "\n"


@pytest.mark.parametrize("transform, expected", [
    (lambda c: c[:5] + ["abc"] + c[6:], "line 7, column 6: 'abc' is not a number"),
    (lambda c: c[:5] + [""] + c[6:], "line 7, column 6: the cell is empty"),
    (lambda c: c[:-1], "line 7 holds 783 values, expected 784"),
    (lambda c: c + ["0"], "line 7 holds 785 values, expected 784"),
    (lambda c: ["nan"] + c[1:], "line 7 holds NaN"),
    (lambda c: ["-3"] + c[1:], "line 7 holds a negative pixel value (-3)"),
    (lambda c: ["256"] + c[1:], "line 7 holds 256, above 255"),
])
def test_csv_bad_rows_name_the_line(tmp_path, transform, expected):
    path = tmp_path / "bad.csv"
    path.write_text(_lines(digits(9), 7, transform))
    assert expected in error_of(path, batch_size=4)


def test_csv_line_numbers_count_header_and_blank_lines(tmp_path):
    X = digits(3)
    text = "pixels\n\n" + _lines(X, 3, lambda c: ["x"] + c[1:])
    path = tmp_path / "bad.csv"
    path.write_text(text.replace("pixels", ",".join(f"p{i}" for i in range(784))))
    assert "line 5, column 1: 'x' is not a number" in error_of(path)


def test_csv_wrong_width_names_the_model_shape(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text(csv_text(digits(2)[:, :10, :10]))
    message = error_of(path)
    assert "holds 100 values" in message and "28×28 = 784" in message


def test_csv_header_only_and_not_utf8(tmp_path):
    header_only = tmp_path / "h.csv"
    header_only.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n")
    assert "no rows of pixels" in error_of(header_only)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(csv_text(digits(2)).encode() + b"\xe9,\xff\n")
    assert "not" in error_of(latin)


# ---------------------------------------------------------------- stdin

def _npy_bytes(X) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


@pytest.mark.parametrize("encode", [
    encode_idx, lambda X: gzip.compress(encode_idx(X)), _npy_bytes,
    lambda X: gzip.compress(_npy_bytes(X)), lambda X: csv_text(X).encode(),
])
def test_stdin_formats(encode):
    X = digits(19)
    got = read_all("-", 6, stdin=io.BytesIO(encode(X)))
    assert np.array_equal(got.reshape(19, -1), X.reshape(19, -1))


def test_stdin_npz_is_read_whole():
    X = digits(3)
    buffer = io.BytesIO()
    np.savez(buffer, images=X)
    assert np.array_equal(read_all("-", stdin=io.BytesIO(buffer.getvalue())), X)


def test_empty_stdin_and_stdin_twice():
    assert "<stdin>: empty input" in error_of("-", stdin=io.BytesIO(b""))
    with pytest.raises(UsageError, match="more than once"):
        open_inputs(["-", "-"], SHAPE, stdin=io.BytesIO(b"1"))


# ---------------------------------------------------------------- files and folders

def test_missing_unreadable_and_unknown_files(tmp_path, monkeypatch):
    assert "no such file" in error_of(tmp_path / "absent.idx")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert "unrecognised content" in error_of(garbage)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    locked = tmp_path / "locked.idx"
    write_idx(locked, digits(2))
    monkeypatch.setattr(inputs, "open", denied, raising=False)
    assert "permission denied" in error_of(locked)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real(tmp_path):
    locked = tmp_path / "locked.idx"
    write_idx(locked, digits(2))
    locked.chmod(0)
    assert "permission denied" in error_of(locked)


def test_empty_file_and_folder_without_images(tmp_path):
    empty = tmp_path / "empty.idx"
    empty.write_bytes(b"")
    assert "empty input" in error_of(empty)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README").write_text("nothing here")
    assert "folder holds no image files" in error_of(folder)


def test_several_inputs_and_total_count(tmp_path):
    a, b = tmp_path / "a.idx", tmp_path / "b.npy"
    write_idx(a, digits(3))
    np.save(b, digits(4))
    c = tmp_path / "c.csv"
    c.write_text(csv_text(digits(2)))
    sources = open_inputs([a, b], SHAPE)
    assert [s.kind for s in sources] == ["idx", "npy"] and total_count(sources) == 7
    assert total_count(open_inputs([a, c], SHAPE)) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_read_in_one_pass(tmp_path):
    import threading

    X = digits(25)
    fifo = tmp_path / "images.pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as handle:
            handle.write(gzip.compress(encode_idx(X)))

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        assert np.array_equal(read_all(fifo, 10), X)
    finally:
        writer.join(timeout=10)


def test_a_terminal_is_not_data():
    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    with pytest.raises(UsageError, match="is a terminal"):
        open_inputs(["-"], SHAPE, stdin=Terminal(b""))
