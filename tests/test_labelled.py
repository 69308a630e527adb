"""The labelled-data reader (mnistlr.io.labelled): every format gives the same images and labels
as IDX, training on each gives bit-identical weights, evaluate identical metrics; bad input is
one line."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest

from mnistlr.errors import DataError
from mnistlr.io.idx import read_images, read_labels, write_idx
from mnistlr.io.labelled import read_labelled

N_TRAIN, N_TEST, N_FOLDER = 2000, 500, 300
FIT = ("--max-iter", "5", "--seed", "0", "-q", "--json")


@pytest.fixture(scope="module")
def real(shared_mnist):
    """The first N_TRAIN training and N_TEST test images of the real MNIST files."""
    X = read_images(shared_mnist / "train-head-images-idx3-ubyte.gz")[:N_TRAIN]
    y = read_labels(shared_mnist / "train-head-labels-idx1-ubyte.gz")[:N_TRAIN]
    X_t = read_images(shared_mnist / "t10k-images-idx3-ubyte.gz")[:N_TEST]
    y_t = read_labels(shared_mnist / "t10k-labels-idx1-ubyte.gz")[:N_TEST]
    return np.array(X), np.array(y), np.array(X_t), np.array(y_t)


def write_csv(path, X, y, header: bool, label_name: str = "label", last: bool = False):
    """Kaggle's layout (header label,pixel0,…) or mnist_train.csv's (no header, label first)."""
    flat = X.reshape(len(X), -1)
    rows = np.column_stack([flat, y]) if last else np.column_stack([y, flat])
    text = io.StringIO()
    if header:
        pixels = [f"pixel{i}" for i in range(flat.shape[1])]
        text.write(",".join(pixels + [label_name] if last else [label_name] + pixels) + "\n")
    np.savetxt(text, rows, fmt="%d", delimiter=",")
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def write_folder(root, X, y):
    """DIR/<label>/<index>.png; returns the order the reader yields (by label, then name)."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(X, y, strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i:05d}.png")
    return np.argsort(y, kind="stable")


def png_bytes(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(path, X, y, flat: bool = False):
    """Hugging Face's layout: image {bytes, path} PNG structs and label; or one column per pixel."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    if flat:
        columns = {f"pixel{i}": X.reshape(len(X), -1)[:, i] for i in range(X[0].size)}
        table = pa.table(columns | {"label": pa.array(y.astype(np.int64))})
    else:
        images = [{"bytes": png_bytes(x), "path": f"{i}.png"} for i, x in enumerate(X)]
        table = pa.table({"image": pa.array(images), "label": pa.array(y.astype(np.int64))})
    pq.write_table(table, path, row_group_size=700)
    return path


@pytest.fixture(scope="module")
def sources(real, tmp_path_factory):
    """Each format written from the same real images: name → (train args, test args, order)."""
    X, y, X_t, y_t = real
    d = tmp_path_factory.mktemp("formats")
    out = {}
    write_idx(d / "train-images.gz", X)
    write_idx(d / "train-labels.gz", y)
    write_idx(d / "test-images.gz", X_t)
    write_idx(d / "test-labels.gz", y_t)
    out["idx"] = (["--train-images", d / "train-images.gz", "--train-labels", d / "train-labels.gz"],
                  ["--images", d / "test-images.gz", "--labels", d / "test-labels.gz"])
    np.savez(d / "mnist.npz", x_train=X, y_train=y, x_test=X_t, y_test=y_t)
    out["keras-npz"] = (["--train-images", d / "mnist.npz"], ["--images", d / "mnist.npz"])
    out["kaggle-csv"] = (["--train-images", write_csv(d / "train.csv", X, y, header=True)],
                         ["--images", write_csv(d / "test.csv", X_t, y_t, header=True)])
    out["headerless-csv-gz"] = (["--train-images", write_csv(d / "mnist_train.csv.gz", X, y, False)],
                                ["--images", write_csv(d / "mnist_test.csv.gz", X_t, y_t, False)])
    np.save(d / "x.npy", X.astype(np.float32) / 255)
    np.save(d / "y.npy", y.astype(np.int64))
    np.save(d / "xt.npy", X_t.reshape(len(X_t), -1))
    out["npy-float-flat"] = (["--train-images", d / "x.npy", "--train-labels", d / "y.npy"],
                             ["--images", d / "xt.npy", "--labels", d / "test-labels.gz"])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return out
    out["hf-parquet"] = (["--train-images", write_parquet(d / "train.parquet", X, y)],
                         ["--images", write_parquet(d / "test.parquet", X_t, y_t)])
    out["flat-parquet"] = (["--train-images", write_parquet(d / "trainf.parquet", X, y, True)],
                           ["--images", write_parquet(d / "testf.parquet", X_t, y_t, True)])
    return out


def _weights(path):
    from mnistlr.learn.persistence import load_model

    model = load_model(path)
    return model.W, model.b


FORMATS = ["keras-npz", "kaggle-csv", "headerless-csv-gz", "npy-float-flat", "hf-parquet", "flat-parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_trains_and_evaluates_like_idx(cli, sources, fmt, tmp_path):
    if fmt not in sources:
        pytest.skip("pyarrow is not installed (the 'parquet' extra)")
    reference = tmp_path / "idx.joblib"
    model = tmp_path / f"{fmt}.joblib"
    assert cli("train", *sources["idx"][0], *FIT, "-o", reference).code == 0
    result = cli("train", *sources[fmt][0], *FIT, "-o", model)
    assert result.code == 0, result.err
    (W_ref, b_ref), (W, b) = _weights(reference), _weights(model)
    assert W.tobytes() == W_ref.tobytes() and b.tobytes() == b_ref.tobytes()
    expected = json.loads(cli("evaluate", reference, *sources["idx"][1], "--json").out)
    report = json.loads(cli("evaluate", reference, *sources[fmt][1], "--json").out)
    expected.pop("data"), report.pop("data")
    assert report == expected and sum(map(sum, report["confusion_matrix"])) == N_TEST


def test_image_folder_trains_like_idx_in_folder_order(cli, real, tmp_path):
    X, y = real[0][:N_FOLDER], real[1][:N_FOLDER]
    order = write_folder(tmp_path / "digits", X, y)
    write_idx(tmp_path / "img.gz", X[order])
    write_idx(tmp_path / "lab.gz", y[order])
    X_read, y_read = read_labelled(tmp_path / "digits")
    assert np.array_equal(X_read, X[order]) and np.array_equal(y_read, y[order])
    a, b = tmp_path / "a.joblib", tmp_path / "b.joblib"
    assert cli("train", "--train-images", tmp_path / "img.gz", "--train-labels", tmp_path / "lab.gz",
               *FIT, "-o", a).code == 0
    assert cli("train", "--train-images", tmp_path / "digits", *FIT, "-o", b).code == 0
    assert all(p.tobytes() == q.tobytes() for p, q in zip(_weights(a), _weights(b), strict=True))


def test_reader_gives_the_idx_arrays_for_each_split(real, sources):
    X, y, X_t, y_t = real
    for fmt, (train_args, test_args) in sources.items():
        for args, split, (X_e, y_e) in ((train_args, "train", (X, y)), (test_args, "test", (X_t, y_t))):
            labels = args[3] if len(args) > 2 else None
            X_r, y_r = read_labelled(args[1], labels, split=split)
            assert X_r.dtype == np.uint8 and X_r.flags.c_contiguous, fmt
            assert np.array_equal(X_r, X_e) and np.array_equal(y_r, y_e), (fmt, split)


def test_stdin_csv_and_npz(real, tmp_path):
    X, y = real[0][:50], real[1][:50]
    data = write_csv(tmp_path / "s.csv.gz", X, y, header=True).read_bytes()
    X_r, y_r = read_labelled("-", stdin=io.BytesIO(data))
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)
    buffer = io.BytesIO()
    np.savez(buffer, images=X, labels=y)
    X_r, y_r = read_labelled("-", stdin=io.BytesIO(buffer.getvalue()))
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)


class Piped(io.RawIOBase):
    """Standard input as a pipe gives it: *data* (then, when *endless*, zeros for ever), in
    reads of at most what is asked; records the largest read asked for."""

    def __init__(self, data: bytes, endless: bool = False):
        self.data, self.endless, self.largest, self.given = memoryview(data), endless, 0, 0
        self.read_whole = False

    def read(self, size=-1):
        self.read_whole |= size is None or size < 0
        return super().read(size)

    def readable(self):
        return True

    def isatty(self):
        return False

    def readinto(self, buffer):
        self.largest = max(self.largest, len(buffer))
        if not self.data and self.endless:
            buffer[:] = bytes(len(buffer))
            self.given += len(buffer)
            return len(buffer)
        k = min(len(buffer), len(self.data))
        buffer[:k], self.data = self.data[:k], self.data[k:]
        self.given += k
        return k


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """Where the copies of standard input go (checked empty afterwards)."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []   # the copy of standard input is gone


def test_stdin_is_read_a_block_at_a_time_in_any_format(real, tmp_path, spool):
    from mnistlr.io import labelled

    X, y = real[0][:200], real[1][:200]
    write_idx(tmp_path / "i.gz", X)
    np.save(tmp_path / "y.npy", y)
    for data in (write_csv(tmp_path / "s.csv", X, y, header=False).read_bytes(),
                 write_csv(tmp_path / "s.csv.gz", X, y, header=True).read_bytes()):
        stream = Piped(data)
        X_r, y_r = read_labelled("-", stdin=stream)
        assert np.array_equal(X_r, X) and np.array_equal(y_r, y)
        assert not stream.read_whole and 0 < stream.largest <= labelled._STDIN_BLOCK   # a block at a time
    X_r, y_r = read_labelled(tmp_path / "i.gz", "-", stdin=Piped((tmp_path / "y.npy").read_bytes()))
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)
    X_r, y_r = read_labelled("-", tmp_path / "y.npy", stdin=Piped((tmp_path / "i.gz").read_bytes()))
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)


def test_stdin_beyond_the_cap_is_one_line_and_stops(tmp_path, spool, monkeypatch):
    from mnistlr.io import labelled

    monkeypatch.setattr(labelled, "MAX_STDIN_BYTES", 3 << 20)
    stream = Piped(b"0," * 1000, endless=True)
    with pytest.raises(DataError, match=r"^<stdin>: more than 3 MiB of data on standard input") as err:
        read_labelled("-", stdin=stream)
    assert err.value.hint == "give it as a file"
    assert stream.given <= (3 << 20) + labelled._STDIN_BLOCK


def test_stdin_errors_name_stdin(tmp_path, spool):
    with pytest.raises(DataError, match=r"^<stdin>: empty input"):
        read_labelled("-", stdin=Piped(b""))
    data = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(100)
    with pytest.raises(DataError, match=r"^<stdin>: truncated"):
        read_labelled("-", stdin=Piped(data))
    with pytest.raises(DataError, match=r"^<stdin>: line 2 holds 3 values"):
        read_labelled("-", stdin=Piped(b"1,2,3,4,5\n1,2,3\n"))


class Endless(io.RawIOBase):
    """/dev/zero or /dev/urandom on standard input: bytes without end; counts what was read."""

    def __init__(self, byte: int | None):
        self.byte, self.read_bytes = byte, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = len(buffer)
        buffer[:n] = bytes([self.byte]) * n if self.byte is not None else np.random.default_rng(self.read_bytes).bytes(n)
        self.read_bytes += n
        return n


@pytest.mark.parametrize("byte", [0, None])
def test_endless_garbage_on_stdin_stops_at_its_first_block(spool, byte):
    stream = Endless(byte)
    with pytest.raises(DataError, match=r"^<stdin>: unrecognised content \(first bytes"):
        read_labelled("-", stdin=stream)
    assert stream.read_bytes <= 16 << 20     # one block, not the 4 GiB cap


def test_other_image_sizes_and_label_column_by_name(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
    y = rng.integers(0, 5, 40).astype(np.uint8)
    path = write_csv(tmp_path / "t.csv", X, y, header=True, label_name="Target", last=True)
    X_r, y_r = read_labelled(path)
    assert X_r.shape == (40, 12, 12) and np.array_equal(X_r, X) and np.array_equal(y_r, y)


def test_parsed_csv_is_cached_by_content(real, tmp_path, monkeypatch):
    from mnistlr.io import tables

    X, y = real[0][:100], real[1][:100]
    path = write_csv(tmp_path / "c.csv", X, y, header=False)
    cache = tmp_path / "cache"
    read_labelled(path, cache_dir=cache)
    assert len(list(cache.glob("*.images.npy"))) == 1
    monkeypatch.setattr(tables, "read_csv", lambda *a: pytest.fail("parsed again"))
    X_r, y_r = read_labelled(path, cache_dir=cache)
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)
    # same size, same mtime, other content: a new key, parsed again (never stale)
    import os

    stat = path.stat()
    text = path.read_bytes().replace(b"\n0,", b"\n1,", 1)
    assert len(text) == stat.st_size
    path.write_bytes(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.undo()
    X_r, y_r = read_labelled(path, cache_dir=cache)
    assert not np.array_equal(y_r, y)
    assert len(list(cache.glob("*.images.npy"))) == 1   # the superseded entry of c.csv is gone


def test_labels_option_count_must_match(real, tmp_path):
    np.save(tmp_path / "x.npy", real[0][:10])
    np.save(tmp_path / "y.npy", real[1][:9])
    with pytest.raises(DataError, match="x.npy holds 10 images but y.npy holds 9 labels"):
        read_labelled(tmp_path / "x.npy", tmp_path / "y.npy")


# ---------------------------------------------------------------- bad input: one line, exit 1

def _csv_rows(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def _pixels(n: int = 4, value: str = "0") -> list[str]:
    return [value] * n


GOOD = ",".join(["3"] + _pixels())


def bad_ragged(d):
    (d / "r.csv").write_bytes(_csv_rows([GOOD, GOOD, ",".join(["3"] + _pixels(3))]))
    return ["--train-images", d / "r.csv"]


def bad_pandas_index(d):
    # DataFrame.to_csv without index=False: a first column with no name, holding 0, 1, 2, …
    (d / "i.csv").write_bytes(_csv_rows([",label," + ",".join(f"p{i}" for i in range(4))]
                                        + [f"{i},{GOOD}" for i in range(3)]))
    return ["--train-images", d / "i.csv"]


def bad_trailing_separator(d):
    (d / "t.csv").write_bytes(_csv_rows([GOOD + ","] * 3))
    return ["--train-images", d / "t.csv"]


def bad_long_row(d):
    (d / "r.csv").write_bytes(_csv_rows([GOOD, ",".join(["3"] + _pixels(5)), GOOD]))
    return ["--train-images", d / "r.csv"]


def bad_text_pixel(d):
    (d / "t.csv").write_bytes(_csv_rows(["label,a,b,c,d", GOOD, "3,0,x,0,0"]))
    return ["--train-images", d / "t.csv"]


def bad_big_pixel(d):
    (d / "b.csv").write_bytes(_csv_rows([GOOD, GOOD, "4,0,300,0,0"]))
    return ["--train-images", d / "b.csv"]


def bad_label_text(d):
    (d / "l.csv").write_bytes(_csv_rows(["label,a,b,c,d", GOOD, "cat,0,0,0,0"]))
    return ["--train-images", d / "l.csv"]


def bad_label_fraction(d):
    (d / "l.csv").write_bytes(_csv_rows(["label,a,b,c,d", GOOD, "3.5,0,0,0,0"]))
    return ["--train-images", d / "l.csv"]


def bad_label_huge(d):
    (d / "l.csv").write_bytes(_csv_rows(["label,a,b,c,d", GOOD, "99999999999999999999,0,0,0,0"]))
    return ["--train-images", d / "l.csv"]


def bad_npy_label_huge(d):
    np.save(d / "x.npy", np.zeros((2, 4, 4), np.uint8))
    np.save(d / "y.npy", np.array([1.0, 1e20]))
    return ["--train-images", d / "x.npy", "--train-labels", d / "y.npy"]


def bad_not_square(d):
    (d / "s.csv").write_bytes(_csv_rows(["1,2,3,4,5,6,7"]))
    return ["--train-images", d / "s.csv"]


def bad_npz(d):
    np.savez(d / "odd.npz", a=np.zeros(3), b=np.zeros(3), c=np.zeros(3))
    return ["--train-images", d / "odd.npz"]


def bad_npz_declared_count(d):
    """An .npz of 1,000 images beside 5 labels: the counts are compared from the headers, before the
    images are inflated (a header that promises more than its member holds: bad_npz_claims_gigabytes)."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (1000, 4, 4)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(5, np.uint8))
    with zipfile.ZipFile(d / "short.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", header.getvalue() + bytes(1000 * 16))
        archive.writestr("labels.npy", labels.getvalue())
    return ["--train-images", d / "short.npz"]


def bad_npz_text_member(d):
    import zipfile

    np.savez(d / "notes.npz", a=np.zeros((3, 4, 4), np.uint8))
    with zipfile.ZipFile(d / "notes.npz", "a") as archive:
        archive.writestr("notes.txt", "not an array")
    return ["--train-images", d / "notes.npz"]


def bad_class_folder(d):
    from PIL import Image

    (d / "digits" / "cats").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "digits" / "cats" / "a.png")
    return ["--train-images", d / "digits"]


def bad_image_file(d):
    from PIL import Image

    (d / "digits" / "3").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "digits" / "3" / "a.png")
    (d / "digits" / "3" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return ["--train-images", d / "digits"]


def bad_image_size(d):
    from PIL import Image

    (d / "digits" / "3").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "digits" / "3" / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(d / "digits" / "3" / "b.png")
    return ["--train-images", d / "digits"]


def bad_parquet_no_label(d):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"image": pa.array([{"bytes": png_bytes(np.zeros((4, 4), np.uint8)),
                                                 "path": "a.png"}])}), d / "p.parquet")
    return ["--train-images", d / "p.parquet"]


def bad_count(d):
    np.save(d / "x.npy", np.zeros((10, 4, 4), np.uint8))
    np.save(d / "y.npy", np.zeros(9, np.uint8))
    return ["--train-images", d / "x.npy", "--train-labels", d / "y.npy"]


def bad_labels_are_images(d):
    np.save(d / "x.npy", np.zeros((10, 4, 4), np.uint8))
    return ["--train-images", d / "x.npy", "--train-labels", d / "x.npy"]


def bad_npy_no_labels(d):
    np.save(d / "x.npy", np.zeros((10, 4, 4), np.uint8))
    return ["--train-images", d / "x.npy"]


def bad_float_scale(d):
    np.save(d / "x.npy", np.full((10, 4, 4), 1.5, np.float32))   # neither [0, 1] nor 0–255
    np.save(d / "y.npy", np.zeros(10, np.uint8))
    return ["--train-images", d / "x.npy", "--train-labels", d / "y.npy"]


def _npy_header(shape, descr="|u1") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def bad_npy_header_cut_off(d):
    import struct

    text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1, 4, 4)"   # no closing brace
    text += b" " * (117 - len(text)) + b"\n"
    (d / "cut.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(16))
    np.save(d / "y.npy", np.zeros(1, np.uint8))
    return ["--train-images", d / "cut.npy", "--train-labels", d / "y.npy"]


def bad_npy_claims_gigabytes(d):
    (d / "claim.npy").write_bytes(_npy_header((10**7, 28, 28)) + bytes(3000))   # 7.8 GB promised, 3 KB held
    np.save(d / "y.npy", np.zeros(10, np.uint8))
    return ["--train-images", d / "claim.npy", "--train-labels", d / "y.npy"]


def bad_npz_claims_gigabytes(d):
    import zipfile

    with zipfile.ZipFile(d / "claim.npz", "w") as archive:
        archive.writestr("x_train.npy", _npy_header((10**8, 28, 28)) + bytes(500))
        archive.writestr("y_train.npy", _npy_header((10**8,)) + bytes(500))
    return ["--train-images", d / "claim.npz"]


def bad_npy_object_labels(d):
    np.save(d / "x.npy", np.zeros((10, 4, 4), np.uint8))
    np.save(d / "y.npy", np.zeros(10, object), allow_pickle=True)     # a pickle: smaller than 10 pointers
    return ["--train-images", d / "x.npy", "--train-labels", d / "y.npy"]


def bad_npz_object_images(d):
    np.savez(d / "obj.npz", x_train=np.zeros((10, 4, 4), object), y_train=np.zeros(10, np.uint8))
    return ["--train-images", d / "obj.npz"]


def _kaggle_gz(d) -> bytes:
    rows = "\n".join(",".join(["label"] + [f"pixel{i}" for i in range(16)]) if i == 0 else
                     ",".join(str((i * 7 + j) % 256) if j else str(i % 3) for j in range(17)) for i in range(400))
    return gzip.compress(rows.encode())


def bad_csv_gz_cut_off(d):
    data = _kaggle_gz(d)
    (d / "k.csv.gz").write_bytes(data[:len(data) // 2])
    return ["--train-images", d / "k.csv.gz"]


def bad_csv_gz_crc(d):
    data = bytearray(_kaggle_gz(d))
    data[-8] ^= 0xFF
    (d / "k.csv.gz").write_bytes(bytes(data))
    return ["--train-images", d / "k.csv.gz"]


def _png_folder(d, names):
    from PIL import Image

    for name in names:
        (d / "digits" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "digits" / name / "a.png")
    return ["--train-images", d / "digits"]


@pytest.mark.parametrize("build, pattern", [
    (bad_npy_header_cut_off, r"cut.npy: damaged .npy file \(\('EOF in multi-line statement"),
    (bad_npy_claims_gigabytes, r"claim.npy: truncated: the header promises an array of shape \(10000000, 28, 28\) "
                               r"\(7,840,000,000 bytes\), the file holds 3,000"),
    (bad_npz_claims_gigabytes, r"claim.npz\[x_train\]: truncated: the header promises"),
    (bad_npy_object_labels, r"y.npy: holds object values \(a pickled array\), not numbers"),   # not "truncated"
    (bad_npz_object_images, r"obj.npz\[x_train\]: holds object values \(a pickled array\)"),
    (bad_csv_gz_cut_off, r"k.csv.gz: gzip stream is cut off"),     # not "interrupted", exit 130
    (bad_csv_gz_crc, r"k.csv.gz: damaged compressed data \(CRC check failed"),
    (lambda d: _png_folder(d, ["3", "99999999999999999999"]), r"class folder '99999999999999999999' is not an "
                                                              r"integer label"),
    (lambda d: _png_folder(d, ["3", " 7 "]), r"class folder ' 7 ' is not an integer label"),
    (lambda d: _png_folder(d, ["07", "7"]), r"class folders '07' and '7' both name label 7"),
    (bad_ragged, r"r.csv: line 3 holds 4 values, expected 5"),
    (bad_long_row, r"r.csv: line 2 holds 6 values, expected 5"),
    (bad_pandas_index, r"i.csv: line 1, the header, names no first column: a pandas index.*index=False"),
    (bad_trailing_separator, r"t.csv: line 1 ends with a separator: its last value is empty"),
    (bad_text_pixel, r"t.csv: line 3, column 3: 'x' is not a number"),
    (bad_big_pixel, r"b.csv: line 3 holds 300, above 255"),
    (bad_label_text, r"l.csv: line 3: label 'cat' is not an integer"),
    (bad_label_fraction, r"l.csv: line 3: label 3.5 is not an integer"),
    (bad_label_huge, r"l.csv: line 3: label 1e\+20 is out of range"),   # not cast to −2⁶³ with a warning
    (bad_npy_label_huge, r"y.npy: label 1 \(1e\+20\) is out of range"),
    (bad_not_square, r"s.csv: line 1 holds 7 values: neither the pixels of a square image nor a label"),
    (bad_npz, r"^mnistlr: error: \S*odd.npz: holds arrays a, b, c; none is a pair of images and labels"),
    (bad_npz_declared_count, r"short.npz: images holds 1,000 images but labels holds 5 labels"),
    (bad_npz_text_member, r"notes.npz: holds arrays a, notes.txt; none is a pair of images and labels"),
    (bad_class_folder, r"cats: class folder 'cats' is not an integer label"),
    (bad_image_file, r"b.png: not a readable image"),
    (bad_image_size, r"b.png: image is 4×5 pixels but a.png is 4×4"),
    (bad_parquet_no_label, r"p.parquet: holds images but no labels"),
    (bad_count, r"x.npy holds 10 images but y.npy holds 9 labels"),
    (bad_labels_are_images, r"x.npy: holds images, not labels"),
    (bad_npy_no_labels, r"x.npy: holds images but no labels \(give the labels too"),
    (bad_float_scale, r"x.npy: image 0 holds 1.5: float pixels are either in \[0, 1\] or on the 0–255 scale"),
])
def test_bad_sources_give_one_line(cli, tmp_path, build, pattern):
    import re

    args = build(tmp_path)
    result = cli("train", *args, "-o", tmp_path / "m.joblib", "-q")
    assert result.code == 1, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), lines
    assert "Traceback" not in result.err and not (tmp_path / "m.joblib").exists()


def test_without_pandas_the_streaming_reader_gives_the_same_arrays(real, tmp_path, monkeypatch):
    X, y = real[0][:300], real[1][:300]
    path = write_csv(tmp_path / "k.csv.gz", X, y, header=True)
    fast = read_labelled(path)
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)   # import pandas → ImportError
    slow = read_labelled(path)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(fast, slow, strict=True))


def test_float_csv_on_the_unit_scale_is_read_by_the_streaming_reader(real, tmp_path):
    X, y = real[0][:20], real[1][:20]
    rows = np.column_stack([y, X.reshape(20, -1) / 255])
    np.savetxt(tmp_path / "f.csv", rows, fmt=["%d"] + ["%.9g"] * X[0].size, delimiter=",")
    X_r, y_r = read_labelled(tmp_path / "f.csv")
    assert np.array_equal(X_r, X) and np.array_equal(y_r, y)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    from mnistlr.errors import MissingExtraError

    (tmp_path / "t.parquet").write_bytes(b"PAR1" + bytes(64) + b"PAR1")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match=r"mnistlr\[parquet\]"):
        read_labelled(tmp_path / "t.parquet")


@pytest.mark.parametrize("command, option", [("train", "--train-images"), ("sweep", "--train-images"),
                                             ("evaluate", "--images"), ("show", "--images"),
                                             ("import", "TRAIN_SOURCE")])
def test_help_names_the_formats(cli, monkeypatch, command, option):
    monkeypatch.setenv("COLUMNS", "400")
    text = " ".join(cli(command, "--help").out.split())
    assert option in text
    for word in ("IDX", ".npy", ".npz", "CSV", "Parquet", "DIR/<label>/*.png"):
        assert word in text, (command, word)


def test_other_image_sizes_train_and_evaluate(cli, tmp_path):
    from mnistlr.learn.persistence import load_model

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 90).astype(np.uint8)
    X = (rng.integers(0, 60, (90, 12, 12)) + 60 * y[:, None, None]).astype(np.uint8)
    path = write_csv(tmp_path / "small.csv", X, y, header=True)
    model = tmp_path / "m.joblib"
    assert cli("train", "--train-images", path, *FIT, "-o", model).code == 0
    assert load_model(model).image_shape == (12, 12)
    report = json.loads(cli("evaluate", model, "--images", path, "--json").out)
    assert sum(map(sum, report["confusion_matrix"])) == 90


def test_train_records_test_images_from_a_keras_npz(cli, sources, tmp_path):
    from mnistlr.learn.persistence import load_model

    npz = sources["keras-npz"][0][1]
    out = tmp_path / "m.joblib"
    result = cli("train", "--train-images", npz, "--test-images", npz, "--solver", "gd", "--epochs", "2",
                 "-q", "-o", out)
    assert result.code == 0, result.err
    history = load_model(out).meta["history"]
    assert len(history) == 2 and all(0 < r["test_accuracy"] <= 1 for r in history)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_an_array_on_stdin_is_read_up_to_a_cap(monkeypatch, compress):
    """.npy/.npz on standard input are read into memory, so never past MAX_STREAM_BYTES (raw
    or decompressed: a small gzip bomb on stdin stops there too)."""
    from mnistlr.io import labelled

    monkeypatch.setattr(labelled, "MAX_STREAM_BYTES", 4096)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((20, 28, 28), np.uint8))
    data = gzip.compress(buffer.getvalue()) if compress else buffer.getvalue()
    assert len(data) < 4096 if compress else len(data) > 4096
    with pytest.raises(DataError, match=r"<stdin>: an array or archive of more than 4,096 bytes on standard input"):
        read_labelled("-", stdin=io.BytesIO(data))
    small = io.BytesIO()
    np.savez(small, images=np.zeros((2, 28, 28), np.uint8), labels=np.zeros(2, np.uint8))
    assert read_labelled("-", stdin=io.BytesIO(small.getvalue()))[0].shape == (2, 28, 28)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("which", ["images", "labels"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, which):
    """A named pipe is refused by its type (labelled data is read more than once), never opened:
    opening one that nobody writes would wait for ever."""
    import os
    import threading

    X, y = np.zeros((3, 4, 4), np.uint8), np.arange(3, dtype=np.uint8)
    write_idx(tmp_path / "x.idx", X)
    write_idx(tmp_path / "y.idx", y)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = (fifo, tmp_path / "y.idx") if which == "images" else (tmp_path / "x.idx", fifo)
    raised = []

    def read():
        try:
            read_labelled(*args)
        except DataError as exc:
            raised.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    waited = reader.is_alive()
    if waited:   # release the reader blocked in open(): a writer comes and goes
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=10)
    assert not waited
    assert raised and "pipe: is a device, FIFO or socket" in raised[0] and "'-'" in raised[0]


@pytest.mark.parametrize("labels, error", [(np.array([3.0, 8.0, 3.0, 8.0]), None),
                                           (np.array([3.0, 8.5, 3.0, 8.0]), r"row 1: label 8.5 is not an integer"),
                                           (np.array(["3", "8", "3", "8"]), r"holds string values, not integers")])
def test_parquet_float_labels_that_are_whole_numbers_read_as_from_csv(tmp_path, labels, error):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    X = np.arange(4 * 16, dtype=np.uint8).reshape(4, 16)
    pq.write_table(pa.table({f"pixel{i}": X[:, i] for i in range(16)} | {"label": pa.array(labels)}), tmp_path / "p.parquet")
    if error is None:
        X_r, y_r = read_labelled(tmp_path / "p.parquet")
        assert y_r.tolist() == [3, 8, 3, 8]
        np.testing.assert_array_equal(X_r.reshape(4, 16), X)
    else:
        with pytest.raises(DataError, match=error):
            read_labelled(tmp_path / "p.parquet")


def test_labels_given_for_a_source_that_holds_its_own_are_a_usage_error(tmp_path):
    from mnistlr.errors import UsageError

    X = np.zeros((6, 4, 4), np.uint8)
    np.savez(tmp_path / "keras.npz", x_train=X, y_train=np.arange(6) % 2)
    np.save(tmp_path / "other.npy", np.ones(6, np.uint8))
    with pytest.raises(UsageError, match="keras.npz holds its own labels, and other.npy is given as labels too"):
        read_labelled(tmp_path / "keras.npz", tmp_path / "other.npy")
    assert read_labelled(tmp_path / "keras.npz")[1].tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("encoding, named", [("latin-1", "Latin-1"), ("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_csv_in_another_encoding_is_named_with_its_conversion(tmp_path, encoding, named):
    header = "étiquette," + ",".join(f"p{i}" for i in range(4))
    text = header + "\n" + "\n".join(f"{k % 2},0,255,12,{k}" for k in range(6)) + "\n"
    path = tmp_path / "digits.csv"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(DataError, match=f"text in {named}, not UTF-8") as raised:
        read_labelled(path, None)
    assert f"iconv -f {named} -t UTF-8" in raised.value.hint
    # the same text as UTF-8 reads
    path.write_bytes(text.encode("utf-8"))
    X, y = read_labelled(path, None)[:2]
    assert X.shape[0] == 6 and list(y) == [0, 1, 0, 1, 0, 1]
