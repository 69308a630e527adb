"""`mnistlr predict`: every input kind, output formats, streaming, pipes, and one-line errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from mnistlr.api.predict import RowWriter, predict, predict_batches
from mnistlr.errors import OutputClosed
from mnistlr.io.idx import write_idx
from mnistlr.io.inputs import open_inputs
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.persistence import save_model


@pytest.fixture(scope="session")
def sample():
    """The bundled real digits: (train X, train y, test X, test y)."""
    from mnistlr.data.registry import load_dataset

    X, y = load_dataset("mnist-sample", "train")
    X_test, y_test = load_dataset("mnist-sample", "test")
    return X, y, X_test, y_test


@pytest.fixture(scope="session")
def trained(sample, tmp_path_factory) -> tuple[LinearModel, Path]:
    """A softmax model trained on 2,500 real sample digits, and its file."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    X, y, _, _ = sample
    model = fit_model(X[:2500], y[:2500], TrainOptions(model="softmax", max_iter=30, seed=0))
    path = tmp_path_factory.mktemp("model") / "softmax.joblib"
    save_model(model, path)
    return model, path


def rows(text: str, sep: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=sep))


def labels_of(text: str) -> np.ndarray:
    return np.array([int(r["label"]) for r in rows(text)])


def assert_one_line_error(result, code: int = 1) -> str:
    assert result.code == code, result.err
    assert result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("mnistlr: error: ")
    assert "Traceback" not in result.err
    return result.err


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    """mnistlr in a real process (real pipes)."""
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "mnistlr", *map(str, args)], input=stdin,
                          capture_output=True, env=env, timeout=300)


# ---------------------------------------------------------------- real digits

def test_real_test_set_labels_equal_model_predict(shared_mnist, trained, cli):
    from mnistlr.io.idx import read_images

    model, path = trained
    images = shared_mnist / "t10k-images-idx3-ubyte.gz"
    result = cli("predict", path, images)
    assert result.code == 0 and result.err == ""
    table = rows(result.out)
    assert list(table[0]) == ["index", "label"] and len(table) == 10_000
    assert [int(r["index"]) for r in table] == list(range(10_000))
    assert np.array_equal(labels_of(result.out), model.predict(read_images(images)))


def test_stdin_through_a_real_pipe_matches_the_file(shared_mnist, trained, tmp_path):
    from mnistlr.io.idx import read_images

    model, path = trained
    X = read_images(shared_mnist / "t10k-images-idx3-ubyte.gz")[:3000]
    raw = tmp_path / "images.idx"
    write_idx(raw, X, compress=False)
    done = run_cli("predict", path, "-", stdin=raw.read_bytes())
    assert done.returncode == 0 and done.stderr == b""
    assert np.array_equal(labels_of(done.stdout.decode()), model.predict(X))


def test_npy_csv_and_idx_give_the_same_labels(sample, trained, tmp_path, cli):
    model, path = trained
    _, _, X, y = sample
    write_idx(tmp_path / "t.idx.gz", X)
    np.save(tmp_path / "u8.npy", X.reshape(len(X), -1))
    np.save(tmp_path / "unit.npy", (X / 255.0).astype(np.float32))
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    body = "\n".join(f"{label}," + ",".join(map(str, row)) for label, row in zip(y, X.reshape(len(X), -1), strict=True))
    (tmp_path / "train.csv").write_text(header + "\n" + body + "\n")
    # every cell quoted, as pandas' QUOTE_ALL and spreadsheets write them (train reads them too)
    quoted = "\n".join(",".join(f'"{cell}"' for cell in line.split(",")) for line in [header, *body.split("\n")])
    (tmp_path / "quoted.csv").write_text(quoted + "\n")
    names = ["t.idx.gz", "u8.npy", "unit.npy", "train.csv", "quoted.csv"]
    result = cli("predict", path, *[tmp_path / n for n in names], "--batch-size", "300")
    assert result.code == 0, result.err
    table = rows(result.out)
    assert list(table[0]) == ["source", "index", "label"] and len(table) == len(names) * len(X)
    expected = model.predict(X)
    for name in names:
        mine = [r for r in table if r["source"].endswith(name)]
        assert [int(r["index"]) for r in mine] == list(range(len(X)))
        assert np.array_equal([int(r["label"]) for r in mine], expected), name


def confident_digits(model: LinearModel, X: np.ndarray, y: np.ndarray) -> list[int]:
    """One test image per class that the model gets right with p ≥ 0.95."""
    P = model.predict_proba(X)
    picks = []
    for digit in range(10):
        ok = np.flatnonzero((y == digit) & (model.predict(X) == digit) & (P.max(axis=1) >= 0.95))
        picks.append(int(ok[0]))
    return picks


def dark_on_light(digit: np.ndarray, size=(100, 80), at=(20, 3)) -> np.ndarray:
    """The digit scaled ×2.5, drawn dark on a light-grey page of (height, width) at offset *at*."""
    from PIL import Image

    big = np.asarray(Image.fromarray(digit).resize((70, 70), Image.Resampling.BICUBIC), np.float32)
    page = np.full(size, 230.0, np.float32)
    page[at[0]:at[0] + 70, at[1]:at[1] + 70] -= big * (200 / 255)
    return np.clip(page, 0, 255).astype(np.uint8)


def test_png_digits_are_classified(sample, trained, tmp_path, cli):
    from PIL import Image

    model, path = trained
    _, _, X, y = sample
    folder = tmp_path / "digits"
    folder.mkdir()
    picks = confident_digits(model, X, y)
    for i in picks:
        Image.fromarray(X[i]).save(folder / f"{i:04d}-plain.png")
        Image.fromarray(dark_on_light(X[i], (100, 80))).save(folder / f"{i:04d}-paper.png")
    (folder / "README.txt").write_text("not an image")
    result = cli("predict", path, folder, "--proba")
    assert result.code == 0, result.err
    table = rows(result.out)
    assert len(table) == 2 * len(picks) and all(r["index"] == "0" for r in table)
    for r in table:
        number = int(Path(r["source"]).name[:4])
        assert int(r["label"]) == y[number], r["source"]


# ---------------------------------------------------------------- output formats

def test_proba_and_top_k_columns(sample, trained, tmp_path, cli):
    model, path = trained
    _, _, X, _ = sample
    np.save(tmp_path / "x.npy", X[:50])
    result = cli("predict", path, tmp_path / "x.npy", "--proba", "--top-k", "3")
    table = rows(result.out)
    assert list(table[0]) == (["index", "label"] + [f"p{c}" for c in range(10)]
                              + ["top1", "p_top1", "top2", "p_top2", "top3", "p_top3"])
    P = np.array([[float(r[f"p{c}"]) for c in range(10)] for r in table])
    expected = model.predict_proba(X[:50])
    assert np.allclose(P, expected, rtol=1e-5, atol=1e-12)
    assert np.allclose(P.sum(axis=1), 1, atol=1e-5)
    for r, p in zip(table, expected, strict=True):
        order = np.argsort(-p, kind="stable")[:3]
        assert [int(r[f"top{k}"]) for k in (1, 2, 3)] == list(order)
        assert r["top1"] == r["label"]
        assert np.allclose([float(r[f"p_top{k}"]) for k in (1, 2, 3)], p[order], rtol=1e-5)


def test_probabilities_match_scikit_learn(sample, tmp_path, cli):
    from sklearn.linear_model import LogisticRegression

    X, y, X_test, _ = sample
    flat = X[:600].reshape(600, -1) / 255.0
    with warnings.catch_warnings():  # any coefficients will do: convergence is not the point
        warnings.simplefilter("ignore")
        reference = LogisticRegression(C=0.1, max_iter=30).fit(flat, y[:600])
    model = LinearModel("softmax", reference.classes_.astype(np.int64), (28, 28),
                        Preprocessor.fit("scale", flat), reference.coef_.T.astype(np.float32),
                        reference.intercept_.astype(np.float32))
    save_model(model, tmp_path / "sk.joblib")
    write_idx(tmp_path / "test.idx", X_test[:400], compress=False)
    result = cli("predict", tmp_path / "sk.joblib", tmp_path / "test.idx", "--proba")
    table = rows(result.out)
    flat_test = X_test[:400].reshape(400, -1) / 255.0
    assert np.array_equal(labels_of(result.out), reference.predict(flat_test))
    P = np.array([[float(r[f"p{c}"]) for c in range(10)] for r in table])
    assert np.allclose(P, reference.predict_proba(flat_test), atol=2e-5)


def test_binary_model_columns_are_named_by_class(sample, tmp_path, cli):
    X, y, _, _ = sample
    keep = np.isin(y, (3, 8))
    flat = X[keep].reshape(keep.sum(), -1).astype(np.float32)
    # w = mean(8) − mean(3) in scaled pixels; b puts the boundary half-way
    m3, m8 = flat[y[keep] == 3].mean(0) / 255, flat[y[keep] == 8].mean(0) / 255
    W = (m8 - m3)[:, None].astype(np.float32)
    b = np.array([-(m8 - m3) @ (m8 + m3) / 2], np.float32)
    model = LinearModel("logistic", np.array([3, 8]), (28, 28), Preprocessor.fit("scale", flat), W, b)
    save_model(model, tmp_path / "3v8.joblib")
    np.save(tmp_path / "x.npy", X[keep][:30])
    result = cli("predict", tmp_path / "3v8.joblib", tmp_path / "x.npy", "--proba", "-k", "1")
    assert result.out.splitlines()[0] == "index,label,p3,p8,top1,p_top1"
    assert np.array_equal(labels_of(result.out), model.predict(X[keep][:30]))
    assert set(labels_of(result.out)) <= {3, 8}


def test_jsonl_and_tsv(sample, trained, tmp_path, cli):
    model, path = trained
    _, _, X, _ = sample
    np.save(tmp_path / "a.npy", X[:20])
    write_idx(tmp_path / "b%,\"odd\".idx", X[20:25])
    result = cli("predict", path, tmp_path / "a.npy", tmp_path / "b%,\"odd\".idx", "--format", "jsonl",
                 "--top-k", "2")
    objects = [json.loads(line) for line in result.out.splitlines()]
    assert len(objects) == 25
    assert list(objects[0]) == ["source", "index", "label", "top1", "p_top1", "top2", "p_top2"]
    assert objects[-1]["source"].endswith('b%,"odd".idx') and objects[-1]["index"] == 4
    assert [o["label"] for o in objects] == list(model.predict(X[:25]))
    tsv = cli("predict", path, tmp_path / "a.npy", tmp_path / "b%,\"odd\".idx", "-f", "tsv")
    table = rows(tsv.out, "\t")
    assert table[-1]["source"].endswith('b%,"odd".idx') and len(table) == 25
    quoted = cli("predict", path, tmp_path / "a.npy", tmp_path / "b%,\"odd\".idx")
    assert rows(quoted.out)[-1]["source"].endswith('b%,"odd".idx')


@pytest.mark.parametrize("batch_size", ["7", "8192"])
def test_a_json_output_is_one_json_array_and_jsonl_ndjson_stay_lines(sample, trained, tmp_path, cli, batch_size):
    model, path = trained
    _, _, X, _ = sample
    np.save(tmp_path / "a.npy", X[:20])
    write_idx(tmp_path / "b.idx", X[20:25])
    out = tmp_path / "p.json"
    result = cli("predict", path, tmp_path / "a.npy", tmp_path / "b.idx", "-o", out, "--batch-size", batch_size,
                 "--proba")
    assert result.code == 0, result.err
    objects = json.loads(out.read_text())
    assert isinstance(objects, list) and len(objects) == 25
    assert [o["label"] for o in objects] == list(model.predict(X[:25]))
    assert objects[-1]["source"].endswith("b.idx") and objects[-1]["index"] == 4 and "p9" in objects[0]
    streamed = cli("predict", path, tmp_path / "a.npy", "-f", "json", "--batch-size", batch_size)
    assert [o["label"] for o in json.loads(streamed.out)] == list(model.predict(X[:20]))
    for suffix in (".jsonl", ".ndjson"):
        lines = tmp_path / f"p{suffix}"
        assert cli("predict", path, tmp_path / "a.npy", "-o", lines).code == 0
        assert [json.loads(line)["label"] for line in lines.read_text().splitlines()] == list(model.predict(X[:20]))


@pytest.mark.parametrize("name, fmt", [("p.csv.gz", None), ("p.jsonl.XZ", "jsonl")])
def test_a_compressed_output_name_is_refused_not_written_as_plain_text(sample, trained, tmp_path, cli, name, fmt):
    _, path = trained
    np.save(tmp_path / "a.npy", sample[2][:5])
    result = cli("predict", path, tmp_path / "a.npy", "-o", tmp_path / name, *(["-f", fmt] if fmt else []))
    assert result.code == 2 and "predictions are written as plain text, not " in result.err, result.err
    assert "| gzip >" in result.err if name.endswith(".gz") else "| xz >" in result.err
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["p.parquet", "p.NPY", "p.xlsx", "p.joblib"])
def test_a_binary_output_name_is_refused_not_written_as_csv(sample, trained, tmp_path, cli, name):
    _, path = trained
    np.save(tmp_path / "a.npy", sample[2][:5])
    result = cli("predict", path, tmp_path / "a.npy", "-o", tmp_path / name)
    assert result.code == 2 and result.err.count("\n") == 1 and "predictions are written as text" in result.err
    assert f"name it {name.split('.')[0]}.csv" in result.err and not (tmp_path / name).exists()
    # with --format, the name is the user's choice
    assert cli("predict", path, tmp_path / "a.npy", "-o", tmp_path / name, "-f", "csv").code == 0
    assert (tmp_path / name).read_text().startswith("index,label\n")


def test_json_without_images_is_an_empty_array():
    writer, stream = RowWriter("json", np.arange(10)), io.BytesIO()
    from mnistlr.api.predict import _write

    assert _write(stream, writer, iter([]), None, 0) == 0 and json.loads(stream.getvalue()) == []


def test_the_format_choices_are_the_api_formats():
    from mnistlr.api.predict import FORMATS
    from mnistlr.cli.base import OutputFormat

    assert tuple(f.value for f in OutputFormat) == FORMATS


def test_kaggle_format_numbers_images_from_one_over_all_inputs(sample, trained, tmp_path, cli):
    model, path = trained
    _, _, X, _ = sample
    np.save(tmp_path / "a.npy", X[:30])
    write_idx(tmp_path / "b.idx", X[30:45])
    result = cli("predict", path, tmp_path / "a.npy", tmp_path / "b.idx", "--format", "kaggle",
                 "--batch-size", "7")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "ImageId,Label"
    table = rows(result.out)
    assert [int(r["ImageId"]) for r in table] == list(range(1, 46))
    assert [int(r["Label"]) for r in table] == list(model.predict(X[:45]))
    refused = cli("predict", path, tmp_path / "a.npy", "-f", "kaggle", "--proba")
    assert refused.code == 2 and "--format kaggle writes ImageId,Label only" in refused.err


def test_output_file_is_written_atomically(sample, trained, tmp_path, cli):
    model, path = trained
    _, _, X, _ = sample
    np.save(tmp_path / "x.npy", X[:100])
    out = tmp_path / "predictions.jsonl"
    result = cli("predict", path, tmp_path / "x.npy", "-o", out, "--batch-size", "7")
    assert result.code == 0 and result.out == "" and "wrote 100 predictions" in result.err
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == list(model.predict(X[:100]))
    # a bad value in a later batch: nothing is written and the old file stays as it was
    bad = (X[:100] / 255.0).astype(np.float32)
    bad[90, 3, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    before = out.read_bytes()
    failed = cli("predict", path, tmp_path / "bad.npy", "-o", out, "--batch-size", "7")
    assert "image 90 holds NaN" in assert_one_line_error(failed)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy", "predictions.jsonl", "x.npy"]


def test_row_writer_formats_without_per_row_python_for_one_source():
    writer = RowWriter("csv", np.arange(10), proba=False)
    from mnistlr.api.predict import Predictions

    batch = Predictions("a", np.arange(5, 8), np.array([3, 1, 4]))
    assert writer.header() == b"index,label\n"
    assert writer.rows(batch) == b"5,3\n6,1\n7,4\n"
    jsonl = RowWriter("jsonl", np.arange(10), with_source=True)
    assert jsonl.rows(batch).splitlines()[0] == b'{"source": "a", "index": 5, "label": 3}'


# ---------------------------------------------------------------- errors

def _bad_inputs(tmp_path: Path, X: np.ndarray) -> dict[str, tuple[list[str], str]]:
    """name → (inputs, expected part of the one-line message)."""
    nan = (X[:10] / 255.0).astype(np.float32)
    nan[4, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "range.npy", X[:10].astype(np.int16) + 255)
    np.save(tmp_path / "float1.5.npy", np.full((10, 28, 28), 1.5, np.float32))
    lines = [",".join(map(str, row)) for row in X[:5].reshape(5, -1)]
    (tmp_path / "cell.csv").write_text("\n".join(lines[:3] + ["x" + lines[3]] + lines[4:]) + "\n")
    (tmp_path / "ragged.csv").write_text("\n".join(lines[:2] + [lines[2] + ",0"] + lines[3:]) + "\n")
    write_idx(tmp_path / "labels.idx.gz", np.arange(10, dtype=np.uint8))
    write_idx(tmp_path / "small.idx", X[:5, :20, :20])
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 8)
    return {
        "nan": (["nan.npy"], "nan.npy: image 4 holds NaN"),
        "out-of-range": (["range.npy"], "range.npy: image 0 holds"),
        "float-ambiguous": (["float1.5.npy"], "float pixels are either in [0, 1] or on the 0–255 scale"),
        "non-numeric": (["cell.csv"], "cell.csv: line 4, column 1:"),
        "ragged": (["ragged.csv"], "ragged.csv: line 3 holds 785 values, expected 784"),
        "labels": (["labels.idx.gz"], "holds 10 labels"),
        "shape": (["small.idx"], "input images are 20×20 but the model expects 28×28"),
        "missing": (["absent.idx"], "absent.idx: no such file"),
        "unreadable": (["noise.bin"], "noise.bin: unrecognised content"),
        "empty-folder": (["empty"], "folder holds no image files"),
        "class-folders": (["digits"], "digits: folder holds no image files, only folders (3, 7) (give the folders "
                                      f"of images themselves, e.g. {tmp_path / 'digits' / '3'})"),
    }


def test_every_malformed_input_gets_one_line(sample, trained, tmp_path, cli):
    from PIL import Image

    _, path = trained
    _, _, X, _ = sample
    (tmp_path / "empty").mkdir()
    for label in (3, 7):   # DIR/<label>/*.png, as train reads: predict takes the class folders themselves
        (tmp_path / "digits" / str(label)).mkdir(parents=True)
        Image.fromarray(X[0]).save(tmp_path / "digits" / str(label) / "a.png")
    for name, (names, expected) in _bad_inputs(tmp_path, X).items():
        result = cli("predict", path, *[tmp_path / n for n in names])
        assert expected in assert_one_line_error(result), name


def test_empty_stdin(trained, cli, monkeypatch):
    _, path = trained
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert "<stdin>: empty input" in assert_one_line_error(cli("predict", path, "-"))


def test_model_file_errors(tmp_path, cli):
    write_idx(tmp_path / "x.idx", np.zeros((2, 28, 28), np.uint8))
    missing = cli("predict", tmp_path / "none.joblib", tmp_path / "x.idx")
    assert "no such model file" in assert_one_line_error(missing)
    piped = cli("predict", "-", tmp_path / "x.idx")   # '-' names standard input, not a missing file
    assert "'-': a model is read from its file, not from standard input" in assert_one_line_error(piped)
    (tmp_path / "fake.joblib").write_bytes(b"not a model")
    assert "not a mnistlr model" in assert_one_line_error(cli("predict", tmp_path / "fake.joblib",
                                                              tmp_path / "x.idx"))


@pytest.mark.parametrize("args", [["--top-k", "11"], ["--top-k", "0"], ["--batch-size", "0"],
                                  ["--format", "xml"], []])
def test_usage_errors_exit_2(trained, tmp_path, cli, args):
    _, path = trained
    write_idx(tmp_path / "x.idx", np.zeros((2, 28, 28), np.uint8))
    inputs = [] if not args else [tmp_path / "x.idx"]
    assert_one_line_error(cli("predict", path, *inputs, *args), code=2)


def test_help_ends_with_examples(cli):
    result = cli("predict", "--help")
    assert result.code == 0
    examples = result.out[result.out.index("Examples:"):]
    assert examples.count("mnistlr predict") >= 3


# ---------------------------------------------------------------- pipes and streaming

def test_closed_output_ends_quietly_in_process(trained, tmp_path, cli, monkeypatch):
    import mnistlr.cli.predict as command

    _, path = trained
    write_idx(tmp_path / "x.idx", np.zeros((50, 28, 28), np.uint8))

    class Closed:
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(command, "_binary_stdout", lambda: Closed())
    result = cli("predict", path, tmp_path / "x.idx")
    assert (result.code, result.err) == (0, "")
    with pytest.raises(OutputClosed) as info:
        predict(path, [tmp_path / "x.idx"], stdout=Closed())
    assert info.value.exit_code == 0


def test_other_stdout_failures_are_one_line(trained, tmp_path, cli, monkeypatch):
    import mnistlr.cli.predict as command

    _, path = trained
    write_idx(tmp_path / "x.idx", np.zeros((5, 28, 28), np.uint8))

    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr(command, "_binary_stdout", lambda: Full())
    message = assert_one_line_error(cli("predict", path, tmp_path / "x.idx"))
    assert "cannot write to standard output: No space left on device" in message


def test_text_only_stdout(trained, tmp_path, monkeypatch):
    from mnistlr.cli import main

    model, path = trained
    write_idx(tmp_path / "x.idx", np.zeros((3, 28, 28), np.uint8))
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["predict", str(path), str(tmp_path / "x.idx")]) == 0
    assert sys.stdout.getvalue().splitlines()[0] == "index,label"
    assert len(sys.stdout.getvalue().splitlines()) == 4


def test_head_closes_the_pipe_quietly(sample, trained, tmp_path):
    _, path = trained
    _, _, X, _ = sample
    write_idx(tmp_path / "many.idx", np.concatenate([X] * 40), compress=False)  # 40,000 images
    env = dict(os.environ, NO_COLOR="1")
    process = subprocess.Popen([sys.executable, "-m", "mnistlr", "predict", str(path),
                                str(tmp_path / "many.idx"), "--proba", "--batch-size", "1000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout.readline().startswith(b"index,label,p0")
    process.stdout.close()  # what `| head -1` does
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert stderr == b""


STREAM_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from mnistlr.api.predict import predict
    from mnistlr.learn.model import LinearModel, Preprocessor

    class Null:
        def write(self, data):
            return len(data)
        def flush(self):
            pass

    rng = np.random.default_rng(0)
    model = LinearModel("softmax", np.arange(10), (28, 28),
                        Preprocessor("scale", np.zeros(784, np.float32), np.ones(784, np.float32)),
                        rng.normal(size=(784, 10)).astype(np.float32), np.zeros(10, np.float32))
    small, *large = sys.argv[1:]
    predict(model, [small], stdout=Null(), batch_size=2048)  # warm up: imports, first batches
    for path in large:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        summary = predict(model, [path], stdout=Null(), batch_size=2048)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(summary["images"], grown * 1024)
""")


def test_memory_stays_flat_on_large_inputs(sample, tmp_path):
    """100,000 real digits (78 MB raw, and gzip): peak memory grows by far less than the file."""
    _, _, X, _ = sample  # 1,000 images, repeated
    n = 100 * len(X)
    header = bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes()
    raw, zipped = tmp_path / "big.idx", tmp_path / "big.idx.gz"
    with open(raw, "wb") as plain, gzip.open(zipped, "wb", compresslevel=1) as packed:
        for handle in (plain, packed):
            handle.write(header)
            for _ in range(100):
                handle.write(X.tobytes())
    write_idx(tmp_path / "small.idx", X[:5000])
    script = tmp_path / "stream.py"
    script.write_text(STREAM_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "small.idx"), str(raw), str(zipped)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    size = raw.stat().st_size
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        images, grown = map(int, line.split())
        assert images == n
        assert grown < size / 4, f"peak memory grew by {grown / 1e6:.0f} MB on a {size / 1e6:.0f} MB input"


def test_predict_batches_in_scripts(sample, trained, tmp_path):
    model, _ = trained
    _, _, X, _ = sample
    write_idx(tmp_path / "x.idx", X[:30])
    sources = open_inputs([tmp_path / "x.idx"], model.image_shape)
    batches = list(predict_batches(model, sources, batch_size=8, top_k=2))
    assert [len(b.labels) for b in batches] == [8, 8, 8, 6]
    assert np.array_equal(np.concatenate([b.labels for b in batches]), model.predict(X[:30]))
    assert np.array_equal(np.concatenate([b.index for b in batches]), np.arange(30))
    assert all(b.proba is None and b.top_labels.shape[1] == 2 for b in batches)


def test_dash_output_means_stdout(trained, tmp_path, cli, monkeypatch):
    _, path = trained
    write_idx(tmp_path / "x.idx", np.zeros((3, 28, 28), np.uint8))
    monkeypatch.chdir(tmp_path)
    result = cli("predict", path, "x.idx", "-o", "-")
    assert result.code == 0 and result.out.startswith("index,label\n0,")
    assert not (tmp_path / "-").exists()


def test_images_without_pillow_name_the_extra(trained, tmp_path, cli, monkeypatch):
    from PIL import Image

    _, path = trained
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    monkeypatch.setitem(sys.modules, "PIL", None)
    message = assert_one_line_error(cli("predict", path, tmp_path / "digit.png"))
    assert "reading image files needs the optional package 'Pillow'" in message
    assert "pip install 'mnistlr[images]'" in message


HEAVY = ("numba", "scipy", "joblib", "sklearn", "matplotlib", "pydantic")
IMPORTS_PROBE = """
import json, sys
from mnistlr.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    json.dump([m for m in sys.modules if m.split(".")[0] in {heavy!r} or m in ("scipy.optimize", "scipy.linalg")],
              handle)
sys.exit(code)
"""


def _heavy_imports(tmp_path, *args) -> list[str]:
    import json
    import subprocess

    record = tmp_path / "imports.json"
    done = subprocess.run([sys.executable, "-c", IMPORTS_PROBE.format(heavy=set(HEAVY)), str(record), *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text())


def test_predict_and_evaluate_load_no_heavy_package(trained, tmp_path):
    # scoring 10,000 images takes milliseconds; importing Numba, SciPy or joblib would take far longer
    from mnistlr.io.idx import write_idx

    _, path = trained
    write_idx(tmp_path / "x.gz", np.zeros((20, 28, 28), np.uint8))
    write_idx(tmp_path / "y.gz", np.zeros(20, np.uint8))
    assert _heavy_imports(tmp_path, "predict", str(path), str(tmp_path / "x.gz"), "-o", str(tmp_path / "p.csv")) == []
    assert _heavy_imports(tmp_path, "evaluate", str(path), "--images", str(tmp_path / "x.gz"),
                          "--labels", str(tmp_path / "y.gz")) == []


def test_softmax_training_imports_neither_scipy_optimize_nor_scipy_linalg(tmp_path):
    # learn.lbfgs instead of scipy.optimize; Numba's probe of SciPy's BLAS answered in kernels.setup
    found = _heavy_imports(tmp_path, "train", "-d", "mnist-sample", "--train-limit", "300", "--max-iter", "3",
                           "-q", "-o", str(tmp_path / "m.joblib"))
    assert "scipy.optimize" not in found and "scipy.linalg" not in found and "numba" in found


def test_numba_still_compiles_dot_products_after_the_blas_probe_was_skipped():
    import subprocess

    code = ("import numpy as np, numba\n"
            "from mnistlr.learn.kernels import setup\n"
            "vec = numba.njit(lambda a, b: np.dot(a, b))\n"
            "mat = numba.njit(lambda A, B: A @ B)\n"
            "A = np.arange(6.0).reshape(2, 3)\n"
            "assert vec(A[0], A[1]) == A[0] @ A[1]\n"
            "assert np.array_equal(mat(A, A.T), A @ A.T)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _parquet(path, X, y, flat):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from PIL import Image

    if flat:
        columns = {f"pixel{i}": X.reshape(len(X), -1)[:, i] for i in range(X[0].size)}
    else:
        def png(x):
            buffer = io.BytesIO()
            Image.fromarray(x).save(buffer, format="PNG")
            return buffer.getvalue()
        columns = {"image": pa.array([{"bytes": png(x), "path": f"{i}.png"} for i, x in enumerate(X)])}
    pq.write_table(pa.table(columns | {"label": pa.array(y.astype(np.int64))}), path, row_group_size=64)
    return path


@pytest.mark.parametrize("flat", [False, True], ids=["hugging-face", "pixel-columns"])
def test_parquet_predicts_as_the_same_images_do_in_any_batch(sample, trained, tmp_path, cli, flat):
    import gzip

    model, path = trained
    _, _, X, y = sample
    X, y = X[:150], y[:150]
    parquet = _parquet(tmp_path / "t.parquet", X, y, flat)
    (tmp_path / "t.parquet.gz").write_bytes(gzip.compress(parquet.read_bytes()))
    expected = model.predict(X).tolist()
    for args in ([parquet], [parquet, "--batch-size", "7"], [tmp_path / "t.parquet.gz"]):
        result = cli("predict", path, *args)
        assert result.code == 0, result.err
        assert labels_of(result.out).tolist() == expected and [int(r["index"]) for r in rows(result.out)] == list(range(150))
    assert cli("predict", path, parquet, "--proba").code == 0


def test_parquet_of_another_image_size_is_the_models_shape_error(trained, tmp_path, cli):
    _, path = trained
    parquet = _parquet(tmp_path / "small.parquet", np.zeros((5, 8, 8), np.uint8), np.zeros(5), flat=True)
    result = cli("predict", path, parquet)
    assert result.code == 1 and "small.parquet" in result.err and "8×8" in result.err and "28×28" in result.err


@pytest.mark.parametrize("args", [["inspect", "{m}", "--json"], ["evaluate", "{m}", "-d", "mnist-sample", "--json"],
                                  ["--version"], ["fetch", "--list", "--json"]], ids=lambda a: "-".join(a[:2]))
def test_a_reader_that_never_reads_is_status_0_for_every_echoed_output(trained, args):
    _, path = trained
    command = [sys.executable, "-m", "mnistlr", *(a.format(m=path) for a in args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, NO_COLOR="1"))
    process.stdout.close()   # `| true`: closed before the first write
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == b""
