"""`mnistlr evaluate`: JSON metrics against scikit-learn on the real test set, data selection,
errors, the terminal report in 80 columns, and the PNG figures."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn import metrics as sk

from mnistlr.data.registry import load_dataset, load_pair
from mnistlr.learn.fit import fit_model
from mnistlr.learn.options import TrainOptions
from mnistlr.learn.persistence import load_model, save_model

JSON_KEYS = ("accuracy", "log_loss", "brier", "ece", "roc_auc_ovr_macro", "roc_auc_ovr_weighted",
             "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted",
             "f1_weighted", "n_samples", "labels", "average_labels", "confusion_matrix", "per_class",
             "top_confusions")


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample", "train")


@pytest.fixture(scope="module")
def softmax_path(tmp_path_factory, sample):
    """A softmax model trained on the bundled sample (4,000 real digits)."""
    model = fit_model(*sample, TrainOptions(l2=1e-3, max_iter=40), dataset="mnist-sample")
    path = tmp_path_factory.mktemp("models") / "softmax.joblib"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def binary_path(tmp_path_factory, sample):
    model = fit_model(*sample, TrainOptions(model="logistic", classes=[3, 8], max_iter=30), dataset="mnist-sample")
    path = tmp_path_factory.mktemp("models") / "3v8.joblib"
    save_model(model, path)
    return path


def naive_ece(y, P, n_bins=15):
    conf, correct = P.max(axis=1).astype(np.float64), P.argmax(axis=1) == y
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, n_bins + 1)[:-1], np.linspace(0, 1, n_bins + 1)[1:], strict=True):
        members = (conf > lo) & (conf <= hi)
        if members.any():
            total += members.mean() * abs(correct[members].mean() - conf[members].mean())
    return total


def check_against_sklearn(report, model, X, y):
    """Every key of the report against scikit-learn on the model's own predictions."""
    P, y_pred, labels = model.predict_proba(X), model.predict(X), model.classes
    assert report["n_samples"] == len(y) and report["labels"] == labels.tolist()
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, y_pred), abs=1e-6)
    # scikit-learn clips at the ε of the probabilities' dtype: float64's, as for `predict --proba` read back
    assert report["log_loss"] == pytest.approx(sk.log_loss(y, P.astype(np.float64), labels=labels), abs=1e-6)
    assert report["brier"] == pytest.approx(sk.brier_score_loss(y, P, labels=labels), abs=1e-6)
    binary = len(labels) == 2
    present = np.union1d(y, y_pred)   # scikit-learn's default averages run over y_true ∪ y_pred
    assert report["average_labels"] == present.tolist()
    for avg in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y, y_pred, average=avg, zero_division=0)
        assert report[f"precision_{avg}"] == pytest.approx(p, abs=1e-6)
        assert report[f"recall_{avg}"] == pytest.approx(r, abs=1e-6)
        assert report[f"f1_{avg}"] == pytest.approx(f, abs=1e-6)
        # ROC AUC over the classes in y (scikit-learn's macro with labels=classes is NaN otherwise)
        seen = np.isin(labels, y)
        auc = (sk.roc_auc_score(y == labels[1], P[:, 1]) if binary
               else sk.roc_auc_score(y, P, multi_class="ovr", average=avg, labels=labels) if seen.all()
               else sk.roc_auc_score(y[:, None] == labels[seen], P[:, seen], average=avg))
        assert report[f"roc_auc_ovr_{avg}"] == pytest.approx(auc, abs=1e-6)
    p, r, f, support = sk.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    for k, row in enumerate(report["per_class"]):
        assert row["label"] == labels[k] and row["support"] == support[k]
        if labels[k] not in present:   # neither in the data nor predicted: undefined
            assert row["precision"] is row["recall"] is row["f1"] is row["roc_auc"] is None
            continue
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[k], r[k], f[k]), abs=1e-6)
        score = P[:, 1] if binary else P[:, k]
        assert row["roc_auc"] == pytest.approx(sk.roc_auc_score(y == labels[1 if binary else k], score), abs=1e-6)
    cm = sk.confusion_matrix(y, y_pred, labels=labels)
    assert report["confusion_matrix"] == cm.tolist()
    assert report["ece"] == pytest.approx(naive_ece(np.searchsorted(labels, y), P), abs=1e-6)
    off = cm - np.diag(np.diag(cm))
    top = report["top_confusions"]
    assert [t["count"] for t in top] == sorted(off.ravel(), reverse=True)[: len(top)]
    assert all(off[np.searchsorted(labels, t["true"]), np.searchsorted(labels, t["predicted"])] == t["count"]
               for t in top)


@pytest.mark.slow
def test_json_on_the_real_test_set_agrees_with_sklearn(cli, shared_mnist, softmax_path):
    images, labels = shared_mnist / "t10k-images-idx3-ubyte.gz", shared_mnist / "t10k-labels-idx1-ubyte.gz"
    result = cli("evaluate", softmax_path, "--images", images, "--labels", labels, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert set(JSON_KEYS) <= set(report)
    X, y = load_pair(images, labels)
    assert report["n_samples"] == 10_000
    check_against_sklearn(report, load_model(softmax_path), X, y)
    assert report["accuracy"] > 0.85  # a real model on real digits


def test_default_data_is_the_training_datasets_test_split(cli, softmax_path):
    result = cli("evaluate", softmax_path, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["data"] == {"dataset": "mnist-sample", "split": "test", "left_out": 0}
    X, y = load_dataset("mnist-sample", "test")
    check_against_sklearn(report, load_model(softmax_path), X, y)


def test_train_split_can_be_chosen(cli, softmax_path):
    report = json.loads(cli("evaluate", softmax_path, "--split", "train", "--json").out)
    assert report["n_samples"] == 4000 and report["data"]["split"] == "train"


def test_binary_model_refuses_other_digits_then_filters_them(cli, binary_path):
    refused = cli("evaluate", binary_path)
    assert refused.code == 1 and refused.out == ""
    assert len(refused.err.strip().splitlines()) == 1 and "--only-model-classes" in refused.err
    result = cli("evaluate", binary_path, "--only-model-classes", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    X, y = load_dataset("mnist-sample", "test")
    keep = np.isin(y, [3, 8])
    assert report["data"]["left_out"] == int((~keep).sum()) and report["labels"] == [3, 8]
    check_against_sklearn(report, load_model(binary_path), X[keep], y[keep])


def test_data_of_some_classes_is_averaged_over_them_as_sklearn_does(cli, tmp_path, softmax_path):
    # digits 0-4 that the 10-class model labels 0-4: its other five classes are in neither
    model = load_model(softmax_path)
    X, y = load_dataset("mnist-sample", "test")
    keep = (y < 5) & (model.predict(X) < 5)
    np.savez(tmp_path / "low.npz", images=X[keep], labels=y[keep])
    result = cli("evaluate", softmax_path, "--images", tmp_path / "low.npz", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["average_labels"] == [0, 1, 2, 3, 4] and report["labels"] == list(range(10))
    assert report["f1_macro"] > 0.9   # over all ten classes it would be below 0.5
    check_against_sklearn(report, model, X[keep], y[keep])
    text = cli("evaluate", softmax_path, "--images", tmp_path / "low.npz").out
    assert "never predicted (5, 6, 7, 8, 9)" in text


@pytest.mark.parametrize("args, code, words", [
    (("--labels", "x.gz"), 2, "--labels goes with --images"),
    (("--images", "x.gz", "--labels", "y.gz", "--dataset", "mnist-sample"), 2, "give only one"),
    (("--dataset", "nope"), 2, "unknown dataset"),
    (("--split", "validation"), 2, "--split"),
    (("--images", "missing-images.gz", "--labels", "missing-labels.gz"), 1, "missing-images.gz"),
])
def test_bad_data_options_give_one_line(cli, softmax_path, args, code, words):
    result = cli("evaluate", softmax_path, *args)
    assert result.code == code and result.out == ""
    assert len(result.err.strip().splitlines()) == 1 and words in result.err
    assert "Traceback" not in result.err


def test_model_from_files_needs_data_named(cli, tmp_path, softmax_path):
    model = load_model(softmax_path)
    model.meta["dataset"] = None
    save_model(model, tmp_path / "files.joblib")
    result = cli("evaluate", tmp_path / "files.joblib")
    assert result.code == 2 and "--dataset NAME or --images" in result.err


def test_missing_or_foreign_model_file_is_one_line(cli, tmp_path):
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    for path in (tmp_path / "none.joblib", tmp_path / "junk.joblib"):
        result = cli("evaluate", path)
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1 and result.out == ""


def test_images_of_another_shape_are_refused(cli, tmp_path, softmax_path):
    from mnistlr.io.idx import write_idx

    write_idx(tmp_path / "i.gz", np.zeros((5, 14, 14), np.uint8))
    write_idx(tmp_path / "l.gz", np.zeros(5, np.uint8))
    result = cli("evaluate", softmax_path, "--images", tmp_path / "i.gz", "--labels", tmp_path / "l.gz")
    assert result.code == 1 and "14×14" in result.err and "28×28" in result.err


def test_terminal_report_is_plain_when_piped_and_complete(cli, softmax_path):
    result = cli("evaluate", softmax_path)
    assert result.code == 0 and result.err == ""
    assert "\x1b[" not in result.out
    for heading in ("Evaluation", "Per class", "Confusion matrix, counts", "Most confused pairs",
                    "macro avg", "weighted avg", "log-loss", "Brier score", "ECE"):
        assert heading in result.out
    report = json.loads(cli("evaluate", softmax_path, "--json").out)
    assert f"{report['accuracy']:.4f}" in result.out
    top = report["top_confusions"][0]
    assert re.search(rf"{top['true']} → {top['predicted']}\s+{top['count']}\s", result.out)


def test_terminal_report_fits_80_columns(softmax_path):
    from rich.console import Console

    from mnistlr.api.evaluate import evaluate
    from mnistlr.cli.render import evaluation_renderables

    report = evaluate(softmax_path)
    for normalize in (False, True):
        for color in (False, True):
            console = Console(width=80, record=True, force_terminal=color, no_color=not color,
                              color_system="truecolor" if color else None, file=open("/dev/null", "w"))
            for renderable in evaluation_renderables(report, normalize=normalize, color=color):
                console.print(renderable)
            text = console.export_text()
            assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
            # nothing was wrapped: each confusion-matrix row holds all 10 cells and the support
            rows = [line.split() for line in text.splitlines() if re.match(r"^\s+\d\s+(\d|·)", line)]
            assert len([r for r in rows if len(r) == 12]) == 10


def test_a_40_column_report_prints_every_figure_in_full(cli, softmax_path, monkeypatch):
    from mnistlr.cli.tables import format_value

    report = json.loads(cli("evaluate", softmax_path, "--json").out)
    monkeypatch.setenv("COLUMNS", "40")
    text = cli("evaluate", softmax_path).out
    assert "…" not in text and max(map(len, text.splitlines())) <= 40
    words = text.split()
    for header in ("label", "precision", "recall", "f1-score", "AUC", "support"):
        assert header in words
    for row in report["per_class"]:
        assert {format_value(row[k]) for k in ("precision", "recall", "f1", "roc_auc")} <= set(words)
    # the confusion matrix splits its columns into groups: each true label's cells, read across
    # the groups, are its whole row and its support
    matrix = text[text.index("Confusion matrix"):text.index("Most confused")]
    cells: dict[str, list[str]] = {}
    for line in matrix.splitlines():
        if re.match(r"^\s+\d\s", line):
            label, *rest = line.split()
            cells.setdefault(label, []).extend(rest)
    for label, counts in zip(report["labels"], report["confusion_matrix"], strict=True):
        assert cells[str(label)] == [str(c) if c else "·" for c in counts] + [str(sum(counts))]


def test_normalize_prints_row_shares(cli, softmax_path):
    counts = json.loads(cli("evaluate", softmax_path, "--json").out)["confusion_matrix"]
    out = cli("evaluate", softmax_path, "--normalize").out
    matrix = out.split("Confusion matrix, row shares")[1].split("Most confused")[0]
    row0 = next(line.split() for line in matrix.splitlines() if line.split()[:1] == ["0"])
    expected = [f"{c / sum(counts[0]):.2f}" if c else "·" for c in counts[0]]
    assert row0[1:11] == expected


def test_plot_writes_four_pngs_named_in_json_and_on_stderr(cli, tmp_path, softmax_path):
    out = tmp_path / "figs"
    result = cli("evaluate", softmax_path, "--plot", out, "--json")
    assert result.code == 0, result.err
    figures = json.loads(result.out)["figures"]
    assert sorted(figures) == ["confusion", "learning_curves", "roc", "weights"]
    for path in figures.values():
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and path in result.err
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "learning_curves.png", "roc.png",
                                                     "weights.png"]


def test_plot_without_matplotlib_fails_cleanly(cli, tmp_path, softmax_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = cli("evaluate", softmax_path, "--plot", tmp_path / "figs")
    assert result.code == 1 and result.out == ""
    assert "pip install 'mnistlr[plot]'" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "figs").exists()


def test_roc_figure_of_a_binary_model_is_one_curve(binary_path):
    from mnistlr.api.evaluate import roc_curves

    model = load_model(binary_path)
    X, y = load_dataset("mnist-sample", "test")
    keep = np.isin(y, [3, 8])
    curves = roc_curves(y[keep], model.predict_proba(X[keep]), model.classes)
    assert len(curves) == 1 and curves[0]["label"] == "8 vs 3"
    fpr, tpr, _ = sk.roc_curve(y[keep] == 8, model.predict_proba(X[keep])[:, 1])
    np.testing.assert_allclose(curves[0]["fpr"], fpr)
    np.testing.assert_allclose(curves[0]["tpr"], tpr)


def test_help_ends_with_examples(cli):
    result = cli("evaluate", "--help")
    assert result.code == 0
    tail = result.out.rstrip().splitlines()[-6:]
    assert sum("mnistlr evaluate" in line for line in tail) >= 2


def test_plot_into_an_existing_file_is_refused_before_any_work(cli, tmp_path, softmax_path):
    (tmp_path / "taken").write_text("x")
    result = cli("evaluate", softmax_path, "--plot", tmp_path / "taken")
    assert result.code == 1 and "is a file, not a folder" in result.err
    assert (tmp_path / "taken").read_text() == "x"


def test_top_zero_leaves_out_the_confused_pairs(cli, softmax_path):
    result = cli("evaluate", softmax_path, "--top", "0")
    assert result.code == 0 and "Most confused pairs" not in result.out and "Per class" in result.out


def test_model_without_training_meta_still_plots(cli, tmp_path):
    """A hand-built model (class-mean templates, no history, no class means) evaluates and plots."""
    from mnistlr.learn.model import LinearModel, Preprocessor

    X, y = load_dataset("mnist-sample", "train")
    X2 = X.reshape(len(X), -1)
    means = np.stack([X2[y == k].mean(axis=0) for k in range(10)]) / 255.0
    model = LinearModel("softmax", np.arange(10), (28, 28), Preprocessor.fit("scale", X2),
                        ((means - means.mean(axis=0)).T * 5).astype(np.float32), np.zeros(10, np.float32))
    save_model(model, tmp_path / "bare.joblib")
    result = cli("evaluate", tmp_path / "bare.joblib", "--dataset", "mnist-sample", "--plot", tmp_path / "f",
                 "--json", "-q")
    assert result.code == 0, result.err
    assert json.loads(result.out)["accuracy"] > 0.5 and result.err == ""
    assert len(list((tmp_path / "f").glob("*.png"))) == 4


def test_split_with_images_that_are_one_set_is_a_usage_error(cli, tmp_path):
    from mnistlr.data.registry import load_dataset
    from mnistlr.io.idx import write_idx

    X, y = load_dataset("mnist-sample", "test")
    write_idx(tmp_path / "img.gz", X[:50]), write_idx(tmp_path / "lab.gz", y[:50].astype(np.uint8))
    model = tmp_path / "m.joblib"
    assert cli("train", "-d", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    result = cli("evaluate", model, "--images", tmp_path / "img.gz", "--labels", tmp_path / "lab.gz", "--split", "train")
    assert result.code == 2 and result.out == "" and result.err.count("\n") == 1
    assert "--split chooses a split of a dataset or of a Keras .npz" in result.err


def test_normalize_with_json_adds_the_row_shares(cli, tmp_path):
    model = tmp_path / "m.joblib"
    assert cli("train", "-d", "mnist-sample", "--per-class", "20", "-q", "-o", model).code == 0
    plain = json.loads(cli("evaluate", model, "--json").out)
    shares = json.loads(cli("evaluate", model, "--json", "--normalize").out)
    assert "confusion_matrix_shares" not in plain and shares["confusion_matrix"] == plain["confusion_matrix"]
    cm = np.asarray(plain["confusion_matrix"], float)
    np.testing.assert_allclose(shares["confusion_matrix_shares"], cm / cm.sum(axis=1, keepdims=True))
    from mnistlr.api.evaluate import evaluate

    report = evaluate(model, normalize=True)                      # the same report from the Python API
    np.testing.assert_allclose(report["confusion_matrix_shares"], shares["confusion_matrix_shares"])
    assert "confusion_matrix_shares" not in evaluate(model)
