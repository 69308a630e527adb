"""mnistlr.io.readers: header parsing, CSV layout and pixel checks, each on crafted bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mnistlr.errors import DataError
from mnistlr.io.idx import encode_idx
from mnistlr.io.readers import check_pixels, csv_layout, idx_header, npy_header


def test_idx_header_reads_dtype_dims_and_length():
    head = encode_idx(np.zeros((3, 4, 5), np.uint8))[:64]
    dtype, dims, length = idx_header(head, "x.idx")
    assert (dtype, dims, length) == (np.dtype(np.uint8), (3, 4, 5), 16)


@pytest.mark.parametrize("head, message", [
    (encode_idx(np.zeros(7, np.uint8))[:64], "holds 7 labels"),
    (b"\0\0\x08\x03" + np.array([0, 2, 2], ">u4").tobytes(), "is not a set of images"),
    (b"\0\0\x08\x04" + np.array([1, 2, 2, 2], ">u4").tobytes(), "declares 4 dimensions; images are 3"),
    (b"\0\0\x08\xff" + bytes(4 * 255), "declares 255 dimensions; images are 3"),
])
def test_idx_header_refuses_what_is_not_images(head, message):
    with pytest.raises(DataError, match=message) as info:
        idx_header(head, "x.idx")
    assert len(str(info.value)) < 200   # 255 dimensions are not spelled out


def test_idx_header_refuses_a_truncated_header():
    with pytest.raises(DataError, match="truncated IDX header"):
        idx_header(encode_idx(np.zeros((1, 2, 2), np.uint8))[:9], "x.idx")


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npy_header_reads_the_shape_and_where_data_starts():
    data = npy_bytes(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    dtype, shape, fortran, length = npy_header(data[:256], "x.npy")
    assert (dtype, shape, fortran) == (np.dtype(np.float32), (2, 3, 4), False)
    np.testing.assert_array_equal(np.frombuffer(data[length:], np.float32), np.arange(24))


@pytest.mark.parametrize("array, message", [
    (np.array(["a", "b"]), "not pixels"),
    (np.zeros(5), "1-D array"),
    (np.zeros((0, 4)), "holds no images"),
    (np.zeros((1, 2, 2, 2)), "shape"),
])
def test_npy_header_refuses_arrays_that_are_not_images(array, message):
    with pytest.raises(DataError, match=message):
        npy_header(npy_bytes(array)[:256], "x.npy")


@pytest.mark.parametrize("text, layout", [
    ("1,2,3,4\n", (",", False, False)),
    ("7,1,2,3,4\n", (",", False, True)),
    ("label,p0,p1,p2,p3\n0,1,2,3,4\n", (",", True, True)),
    ("\n\n1\t2\t3\t4\n", ("\t", False, False)),
    ("1 2 3 4\n", (None, False, False)),
    ("\ufeffa;b;c;d\n", (";", True, False)),
])
def test_csv_layout_finds_delimiter_header_and_label_column(text, layout):
    assert csv_layout(text.encode(), "x.csv", (2, 2)) == layout


def test_csv_layout_names_the_line_with_the_wrong_width():
    with pytest.raises(DataError, match="line 2 holds 3 values.*2×2 = 4 pixels"):
        csv_layout(b"\n1,2,3\n", "x.csv", (2, 2))


def test_check_pixels_keeps_raw_values_and_scales_unit_floats():
    raw = np.array([[0, 128, 255]], np.int64)
    assert check_pixels(raw, str, 255).dtype == np.uint8
    unit = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(check_pixels(unit, str, 1), [[0.0, 127.5, 255.0]])


@pytest.mark.parametrize("values, top, message", [
    ([[0.0, np.nan]], 255, "holds NaN"),
    ([[0.0, np.inf]], 255, "infinite"),
    ([[-1.0, 2.0]], 255, "negative pixel value"),
    ([[256.0, 2.0]], 255, "above 255"),
    ([[0.5, 1.5]], 1, r"holds 1.5, but the images before it are on the \[0, 1\] scale"),
])
def test_check_pixels_names_the_image_and_the_problem(values, top, message):
    with pytest.raises(DataError, match=message) as info:
        check_pixels(np.array(values), lambda i: f"image {i}", top)
    assert "image 0" in str(info.value)


def test_a_damaged_npy_header_is_not_echoed_whole():
    import struct

    text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2), 'x': " + b"9" * 8000 + b"+}\n"
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + bytes(4)
    with pytest.raises(DataError, match="damaged .npy header") as info:
        npy_header(data, "x.npy")
    assert len(info.value.message) < 300
