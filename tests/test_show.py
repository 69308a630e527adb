"""`mnistlr show`: dataset overview, one image, a model's most confident mistakes, --plot, --json."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from mnistlr.api.show import confident_errors, pick_examples, pixel_stats
from mnistlr.data.registry import DATASETS, load_dataset
from mnistlr.errors import DataError
from mnistlr.io.idx import write_idx
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.persistence import save_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- helpers and fixtures ------------------------------------------------------------------

def centroid_model(X, y, temperature: float = 0.05) -> LinearModel:
    """A nearest-class-mean softmax model: s_k = t·(x·m_k − ½‖m_k‖²), pixels scaled to [0, 1]."""
    X2 = X.reshape(len(X), -1).astype(np.float64) / 255.0
    classes = np.unique(y).astype(np.int64)
    M = np.stack([X2[y == k].mean(axis=0) for k in classes])
    W = (temperature * 255.0 * M.T).astype(np.float32)
    b = (-0.5 * temperature * 255.0 * (M * M).sum(axis=1)).astype(np.float32)
    pre = Preprocessor.fit("scale", X.reshape(len(X), -1))
    return LinearModel("softmax", classes, tuple(X.shape[1:]), pre, W, b,
                       params={"model": "softmax"}, meta={"dataset": None})


def lines_of(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def width_of(text: str) -> int:
    return max(len(line.rstrip()) for line in lines_of(text))


def write_pair(folder, name: str, X, y):
    images, labels = folder / f"{name}-images.gz", folder / f"{name}-labels.gz"
    write_idx(images, X)
    write_idx(labels, y)
    return images, labels


def shapes_data(rows: int, cols: int, n: int = 60, seed: int = 0):
    """Three classes of small synthetic pictures: a vertical bar, a horizontal bar, a frame."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3).astype(np.uint8)
    X = rng.integers(0, 20, (n, rows, cols)).astype(np.uint8)
    for i, k in enumerate(y):
        if k == 0:
            X[i, 1:-1, cols // 2 - 1:cols // 2 + 1] = 250
        elif k == 1:
            X[i, rows // 2 - 1:rows // 2 + 1, 1:-1] = 250
        else:
            X[i, [1, -2], 1:-1] = 200
            X[i, 1:-1, [1, -2]] = 200
    return X, y


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """A class-mean model of mnist-sample (about 80% right on its test split), saved."""
    X, y = load_dataset("mnist-sample", "train")
    model = centroid_model(X, y)
    model.meta["dataset"] = "mnist-sample"
    path = tmp_path_factory.mktemp("show") / "centroid.joblib"
    save_model(model, path)
    return model, path


def reference_errors(model, X, y, top: int):
    """The brute-force answer: every wrong image, sorted by the probability of its prediction."""
    P = model.predict_proba(X)
    predicted = model.classes[np.argmax(P, axis=1)]
    wrong = [i for i in range(len(y)) if predicted[i] != y[i]]
    wrong.sort(key=lambda i: (-float(P[i].max()), i))
    return [(i, int(y[i]), int(predicted[i]), float(P[i].max())) for i in wrong[:top]], len(wrong)


# ---- overview ------------------------------------------------------------------------------

def test_overview_tables_and_grid_fit_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("show", "mnist-sample")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "▀" not in result.out  # NO_COLOR: plain characters
    assert width_of(result.out) <= 80
    rows = [line.split() for line in lines_of(result.out)]
    label_rows = [r for r in rows if len(r) == 5 and r[0].isdigit() and r[2] == "10.0%"]
    assert [r[0] for r in label_rows] == [str(k) for k in range(10)]
    assert all(r[1] == "400" and r[3] == "100" and r[4] == "10.0%" for r in label_rows)
    assert ["images", "4,000", "1,000"] in rows and ["image", "shape", "28×28", "28×28"] in rows
    # the grid: one heading per class, the first three indices of each class as titles
    X, y = load_dataset("mnist-sample", "train")
    for k in range(10):
        first = np.flatnonzero(y == k)[:3]
        assert [str(k)] + [f"#{i}" for i in first] in rows
    assert sum(ch in "@%#" for ch in result.out) > 1000  # ink was drawn


def test_overview_json_matches_numpy(cli):
    result = cli("show", "mnist-sample", "--json", "--per-class", "2")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    for split in ("train", "test"):
        X, y = load_dataset("mnist-sample", split)
        part = info["splits"][split]
        assert part["n_images"] == len(X) and part["image_shape"] == [28, 28]
        assert part["pixels"]["mean"] == pytest.approx(X.mean(dtype=np.float64), rel=1e-12)
        assert part["pixels"]["std"] == pytest.approx(X.std(dtype=np.float64), rel=1e-9)
        assert part["pixels"]["zero_share"] == pytest.approx(np.mean(X == 0))
        assert [c["count"] for c in part["labels"]] == np.bincount(y, minlength=10).tolist()
    X, y = load_dataset("mnist-sample", "train")
    indices = info["examples"]["indices"]
    assert indices == {str(k): np.flatnonzero(y == k)[:2].tolist() for k in range(10)}


def test_seeded_examples_are_of_their_class_and_reproducible(cli):
    first = json.loads(cli("show", "mnist-sample", "--seed", "7", "--json").out)["examples"]["indices"]
    again = json.loads(cli("show", "mnist-sample", "--seed", "7", "--json").out)["examples"]["indices"]
    other = json.loads(cli("show", "mnist-sample", "--seed", "8", "--json").out)["examples"]["indices"]
    _, y = load_dataset("mnist-sample", "train")
    assert first == again != other
    for label, idx in first.items():
        assert len(idx) == 3 and idx == sorted(set(idx))
        assert all(int(y[i]) == int(label) for i in idx)
    assert first != {str(k): np.flatnonzero(y == k)[:3].tolist() for k in range(10)}


def test_pick_examples_short_classes():
    y = np.array([0, 1, 0, 2, 2, 2, 0])
    assert pick_examples(y, 2, None) == {0: [0, 2], 1: [1], 2: [3, 4]}
    seeded = pick_examples(y, 5, 0)
    assert seeded == {0: [0, 2, 6], 1: [1], 2: [3, 4, 5]}


def test_pixel_stats_chunks_agree_with_numpy(monkeypatch):
    import mnistlr.api.show as show_api

    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (37, 5, 3)).astype(np.uint8)
    X[:4] = 0
    monkeypatch.setattr(show_api, "_CHUNK", 8)
    stats = pixel_stats(X)
    assert stats["mean"] == pytest.approx(X.mean(dtype=np.float64))
    assert stats["std"] == pytest.approx(X.std(dtype=np.float64))
    assert stats["zero_share"] == pytest.approx(np.mean(X == 0))
    assert (stats["min"], stats["max"]) == (int(X.min()), int(X.max()))


@pytest.mark.parametrize("shape", [(8, 8), (12, 10)])
def test_explicit_idx_files_of_other_shapes(cli, tmp_path, monkeypatch, shape):
    monkeypatch.setenv("COLUMNS", "80")
    X, y = shapes_data(*shape)
    images, labels = write_pair(tmp_path, "small", X, y)
    result = cli("show", "--images", images, "--labels", labels)
    assert result.code == 0, result.err
    assert width_of("\n".join(line for line in lines_of(result.out) if str(tmp_path) not in line)) <= 80
    rows = [line.split() for line in lines_of(result.out)]
    assert ["image", "shape", f"{shape[0]}×{shape[1]}"] in rows
    assert ["0", "20", "33.3%"] in rows and ["all", "60", "100.0%"] in rows
    assert ["0", "#0", "#3", "#6"] in rows
    info = json.loads(cli("show", "--images", images, "--labels", labels, "--json").out)
    assert list(info["splits"]) == ["file"]
    assert info["splits"]["file"]["image_shape"] == list(shape)


@pytest.mark.parametrize("name", [n for n, spec in DATASETS.items() if not spec.bundled])
def test_every_registered_dataset(cli, tmp_path, name):
    spec = DATASETS[name]
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True)
    for split, n in (("train", 60), ("test", 30)):
        X, y = shapes_data(12, 10, n=n)
        write_idx(folder / spec.file(split, "images").name, X)
        write_idx(folder / spec.file(split, "labels").name, y)
    result = cli("show", name, "--data-dir", tmp_path / "data")
    assert result.code == 0, result.err
    assert ["all", "60", "100.0%", "30", "100.0%"] in [line.split() for line in lines_of(result.out)]
    if spec.classes[0] != "0":  # named classes appear in the table
        assert spec.classes[2] in result.out


# ---- one image -----------------------------------------------------------------------------

def test_index_draws_the_image_with_its_label(cli):
    X, y = load_dataset("mnist-sample", "test")
    result = cli("show", "mnist-sample", "--split", "test", "--index", "123")
    assert result.code == 0, result.err
    out = result.out.split("\n")[:-1]  # blank picture rows at the bottom are lines too
    assert out[0].startswith(f"label {y[123]}, test image 123")
    assert out[1] == "from the test split of mnist-sample"
    # 28 rows drawn at 2 characters per pixel, one text line per pixel row; piped output drops
    # trailing spaces, so a row is at most 56 characters wide
    assert all(len(line) <= 56 for line in out[2:30])
    picture = [line.ljust(56) for line in out[2:30]]
    for r in range(28):
        for c in range(28):
            char = picture[r][2 * c]
            if X[123, r, c] == 0:
                assert char == " ", (r, c)
            elif X[123, r, c] > 60:
                assert char != " ", (r, c)


def test_index_json_and_model_prediction(cli, sample_model):
    model, path = sample_model
    X, y = load_dataset("mnist-sample", "train")
    info = json.loads(cli("show", "mnist-sample", "--index", "42", "--model", path, "--json").out)
    assert info["label"] == int(y[42]) and info["pixels"] == X[42].tolist()
    P = model.predict_proba(X[42:43])[0]
    assert info["predicted"] == int(np.argmax(P))
    assert info["probability"] == pytest.approx(float(P.max()), rel=1e-6)
    assert info["probability_true"] == pytest.approx(float(P[y[42]]), rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("index, valid", [("4000", "0 to 3999"), ("-1", "0 to 3999")])
def test_index_out_of_range(cli, index, valid):
    result = cli("show", "mnist-sample", "--index", index)
    assert result.code == 2
    assert valid in result.err and "4,000 images" in result.err
    assert len(lines_of(result.err)) == 1 and "Traceback" not in result.err and result.out == ""


def test_index_on_12x10_file(cli, tmp_path):
    X, y = shapes_data(12, 10)
    images, labels = write_pair(tmp_path, "small", X, y)
    result = cli("show", "--images", images, "--labels", labels, "--index", "4")
    assert result.code == 0, result.err
    out = result.out.split("\n")[:-1]  # blank picture rows at the bottom are lines too
    assert out[0].startswith(f"label {y[4]}, image 4")
    # scaled ×6: at most 60 characters wide (trailing spaces dropped when piped), 36 lines
    assert all(len(line) <= 60 for line in out[-36:]) and out[-37].endswith("labels.gz")
    picture = [line.ljust(60) for line in out[-36:]]
    # image 4 is a horizontal bar in pixel rows 5–6: text lines 15–20 (3 lines per pixel row)
    assert y[4] == 1
    assert all(picture[i].count("@") >= 45 for i in range(15, 21))
    assert not any("@" in picture[i] for i in list(range(15)) + list(range(21, 36)))


# ---- errors --------------------------------------------------------------------------------

def test_errors_match_predict_proba(cli, sample_model):
    model, path = sample_model
    X, y = load_dataset("mnist-sample", "test")
    result = cli("show", "mnist-sample", "--model", path, "--errors", "--top", "8", "--json")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    expected, n_wrong = reference_errors(model, X, y, 8)
    got = [(e["index"], e["label"], e["predicted"], e["probability"]) for e in info["errors"]]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-6)
    from sklearn.metrics import accuracy_score

    assert info["n_errors"] == n_wrong > 8
    assert info["accuracy"] == pytest.approx(accuracy_score(y, model.predict(X)))
    assert sum(p["count"] for p in info["pairs"]) == 8
    for pair in info["pairs"]:
        listed = [e for e in info["errors"] if (e["label"], e["predicted"]) == (pair["true"], pair["predicted"])]
        assert pair["count"] == len(listed)
        assert pair["total"] == int(np.sum((y == pair["true"]) & (model.predict(X) == pair["predicted"])))


def test_errors_match_mnistlr_predict(cli, sample_model, tmp_path):
    model, path = sample_model
    X, y = load_dataset("mnist-sample", "test")
    images, labels = write_pair(tmp_path, "test", X, y)
    info = json.loads(cli("show", "--images", images, "--labels", labels, "--model", path,
                          "--errors", "--json").out)
    predicted = cli("predict", path, images, "--proba")
    assert predicted.code == 0, predicted.err
    rows = {int(r["index"]): r for r in csv.DictReader(io.StringIO(predicted.out))}
    for e in info["errors"]:
        row = rows[e["index"]]
        assert int(row["label"]) == e["predicted"] != e["label"] == int(y[e["index"]])
        assert float(row[f"p{e['predicted']}"]) == pytest.approx(e["probability"], rel=1e-5)
        assert float(row[f"p{e['label']}"]) == pytest.approx(e["probability_true"], rel=1e-5, abs=1e-12)


def test_errors_text(cli, sample_model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model, path = sample_model
    result = cli("show", "mnist-sample", "--model", path, "--errors", "--top", "5")
    assert result.code == 0, result.err
    assert width_of(result.out) <= 80 and "\x1b" not in result.out
    X, y = load_dataset("mnist-sample", "test")
    expected, n_wrong = reference_errors(model, X, y, 5)
    assert f"{n_wrong} of 1,000 images misclassified" in result.out
    words = result.out.split()
    for index, label, pred, _ in expected:
        assert f"#{index}" in words and f"{label}→{pred}" in words
        assert f"{label} → {pred}" in result.out  # the pairs table


def test_confident_errors_refuses_unknown_labels_or_leaves_them_out_and_handles_perfect_models():
    X, y = shapes_data(8, 8, n=30)
    model = centroid_model(X[y < 2], y[y < 2])
    with pytest.raises(DataError, match=r"10 images have labels \(2\) the model does not know"):
        confident_errors(model, X, y, 5)
    found = confident_errors(model, X, y, 5, only_model_classes=True)
    assert found["left_out"] == 10 and found["n_images"] == 20
    assert found["n_errors"] == 0 and found["errors"] == [] and found["accuracy"] == 1.0


def test_errors_and_evaluate_treat_labels_the_model_does_not_know_alike(cli, tmp_path):
    # a model of labels 0 and 1, on data that also holds label 2 (which it cannot get right)
    X, y = shapes_data(8, 8, n=60, seed=2)
    X[::5] = np.random.default_rng(1).integers(0, 120, X[::5].shape).astype(np.uint8)
    model_path = tmp_path / "m.joblib"
    save_model(centroid_model(X[y < 2], y[y < 2]), model_path)
    images, labels = write_pair(tmp_path, "all", X, y)
    data = ("--images", images, "--labels", labels)
    refused = [cli("show", *data, "--model", model_path, "--errors"), cli("evaluate", model_path, *data)]
    for result in refused:
        assert result.code == 1 and result.out == "" and len(result.err.strip().splitlines()) == 1
        assert "20 images have labels (2) the model does not know" in result.err
        assert "add --only-model-classes" in result.err
    shown = json.loads(cli("show", *data, "--model", model_path, "--errors", "--only-model-classes",
                           "--json").out)
    scored = json.loads(cli("evaluate", model_path, *data, "--only-model-classes", "--json").out)
    assert shown["left_out"] == scored["data"]["left_out"] == 20
    assert shown["n_images"] == scored["n_samples"] == 40
    assert shown["accuracy"] == pytest.approx(scored["accuracy"]) and shown["n_errors"] > 0
    assert all(e["label"] < 2 for e in shown["errors"])
    usage = cli("show", *data, "--only-model-classes")
    assert usage.code == 2 and "--only-model-classes goes with --errors" in usage.err


def test_errors_with_12x10_model(cli, tmp_path):
    X, y = shapes_data(12, 10, n=90, seed=3)
    X[::7] = X[::7][:, ::-1]  # flipped frames/bars: still right; add noise-only images, wrong
    X[5::11] = np.random.default_rng(0).integers(0, 120, X[5::11].shape).astype(np.uint8)
    model = centroid_model(X, y)
    model_path = tmp_path / "m.joblib"
    save_model(model, model_path)
    images, labels = write_pair(tmp_path, "small", X, y)
    info = json.loads(cli("show", "--images", images, "--labels", labels, "--model", model_path,
                          "--errors", "--json").out)
    expected, n_wrong = reference_errors(model, X, y, 10)
    assert n_wrong > 0 and info["n_errors"] == n_wrong
    assert [e["index"] for e in info["errors"]] == [e[0] for e in expected]


def test_errors_on_real_digits(cli, shared_mnist, tmp_path, monkeypatch):
    """A softmax model trained on the first 3,000 real training images; its confident
    mistakes on the 10,000 test images are what predict_proba says."""
    from mnistlr.data.registry import load_pair
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    X_train, y_train = load_pair(shared_mnist / "train-head-images-idx3-ubyte.gz",
                                 shared_mnist / "train-head-labels-idx1-ubyte.gz")
    model = fit_model(X_train[:3000], y_train[:3000], TrainOptions())
    path = tmp_path / "head.joblib"
    save_model(model, path)
    images, labels = shared_mnist / "t10k-images-idx3-ubyte.gz", shared_mnist / "t10k-labels-idx1-ubyte.gz"
    X, y = load_pair(images, labels)
    info = json.loads(cli("show", "--images", images, "--labels", labels, "--model", path,
                          "--errors", "--top", "12", "--json").out)
    expected, n_wrong = reference_errors(model, X, y, 12)
    assert 300 < n_wrong < 2000  # a real model on real digits: roughly 85–97% right
    assert [(e["index"], e["label"], e["predicted"]) for e in info["errors"]] == [e[:3] for e in expected]
    assert [e["probability"] for e in info["errors"]] == pytest.approx([e[3] for e in expected], rel=1e-5)
    assert all(e["probability"] > 0.9 for e in info["errors"])  # confidently wrong
    monkeypatch.setenv("COLUMNS", "80")
    text = cli("show", "--images", images, "--labels", labels, "--model", path, "--errors")
    assert text.code == 0 and width_of(text.out) <= 80
    assert f"{n_wrong:,} of 10,000 images misclassified" in text.out


# ---- figures -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [[], ["--index", "3"], ["--errors"]])
def test_plot_writes_a_png(cli, sample_model, tmp_path, mode):
    from PIL import Image

    _, path = sample_model
    figure = tmp_path / "figs" / "show.png"
    figure.parent.mkdir()
    extra = ["--model", path] if mode else []
    result = cli("show", "mnist-sample", *mode, *extra, "--plot", figure)
    assert result.code == 0, result.err
    assert figure.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {figure}" in result.err and "wrote" not in result.out
    assert [p.name for p in figure.parent.iterdir()] == ["show.png"]
    width, height = Image.open(figure).size
    assert width > 300 and height > 300
    if not mode:  # ten class columns, three examples each: wider than tall
        assert width > 2 * height


@pytest.mark.parametrize("model_name, top", [("centroid.joblib", "1"), ("centroid.joblib", "3"),
                                              ("centroid.joblib", "10"), ("a-" * 40 + "model.joblib", "2")])
def test_plot_titles_fit_inside_the_figure(cli, sample_model, tmp_path, monkeypatch, model_name, top):
    import shutil

    from mnistlr.evaluation import figures

    drawn, save = [], figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, *a: drawn.append(fig) or save(fig, path, *a))
    model = tmp_path / model_name
    shutil.copy(sample_model[1], model)
    for args in (["--model", model, "--errors", "--top", top], [], ["--model", model, "--index", "3"]):
        assert cli("show", "mnist-sample", *args, "--plot", tmp_path / "f.png").code == 0
    for fig in drawn:
        fig.canvas.draw()
        box = fig.bbox
        titles = [t for t in fig.texts if t.get_text()]
        assert titles and all(box.x0 <= t.get_window_extent().x0 and t.get_window_extent().x1 <= box.x1
                              and box.y0 <= t.get_window_extent().y0 and t.get_window_extent().y1 <= box.y1
                              for t in titles), [t.get_text() for t in titles]


def test_plot_without_matplotlib(cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    figure = tmp_path / "x.png"
    result = cli("show", "mnist-sample", "--plot", figure)
    assert result.code == 1
    assert "pip install 'mnistlr[plot]'" in result.err and not figure.exists()


def test_plot_to_missing_folder_fails_first(cli, tmp_path):
    result = cli("show", "mnist-sample", "--plot", tmp_path / "nope" / "x.png")
    assert result.code == 1 and "does not exist" in result.err and result.out == ""


# ---- options and terminal ------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    ([], "no data named"),
    (["nope"], "unknown dataset"),
    (["mnist-sample", "--errors"], "--errors needs a model"),
    (["mnist-sample", "--model", "m.joblib"], "--model is used with --errors or --index"),
    (["mnist-sample", "--model", "m.joblib", "--errors", "--index", "1"], "two different views"),
    (["mnist-sample", "--images", "a.gz", "--labels", "b.gz"], "both name the data"),
    (["--labels", "a.gz"], "--labels goes with --images"),
    (["mnist-sample", "--per-class", "0"], "--per-class"),
    (["mnist-sample", "--split", "valid"], "--split"),
    # options the view does not read: refused as --only-model-classes without --errors is, not ignored
    (["mnist-sample", "--index", "3", "--per-class", "2"], "--per-class chooses the overview's example images, "
                                                            "not read with --index (leave it out)"),
    (["mnist-sample", "--index", "3", "--seed", "1"], "--seed chooses the overview's example images"),
    (["mnist-sample", "--top", "3"], "--top counts the mistakes of --errors"),
])
def test_usage_errors(cli, args, needle):
    result = cli("show", *args)
    assert result.code == 2
    assert needle in result.err and len(lines_of(result.err)) == 1 and result.out == ""


def test_help_ends_with_examples(cli):
    result = cli("show", "--help")
    assert result.code == 0
    tail = result.out.rstrip().splitlines()[-9:]  # three (what it does, command) pairs
    assert sum("mnistlr show mnist-sample" in line for line in tail) == 3


def test_colour_grid_uses_half_blocks():
    from rich.console import Console

    from mnistlr.cli.show import picture_grid

    X, y = load_dataset("mnist-sample", "train")
    rows = [(str(k), [X[i] for i in np.flatnonzero(y == k)[:3]], ["#"] * 3) for k in range(2)]
    for color, expect in ((True, "▀"), (False, "@")):
        console = Console(file=io.StringIO(), force_terminal=color, color_system="truecolor" if color else None,
                          width=80)
        console.print(picture_grid(rows, color, 80))
        out = console.file.getvalue()
        assert expect in out and (("\x1b[" in out) == color)
        if not color:
            assert width_of(out) <= 80


def test_no_mistakes(cli, tmp_path):
    X, y = shapes_data(8, 8, n=30)
    model_path = tmp_path / "m.joblib"
    save_model(centroid_model(X, y), model_path)
    images, labels = write_pair(tmp_path, "small", X, y)
    figure = tmp_path / "none.png"
    result = cli("show", "--images", images, "--labels", labels, "--model", model_path, "--errors",
                 "--plot", figure)
    assert result.code == 0, result.err
    assert "0 of 30 images misclassified" in result.out and "no mistakes to show" in result.out
    assert figure.read_bytes()[:8] == PNG_MAGIC
