"""`mnistlr train` end to end: the CLI on the bundled sample, and the issue's bars on real MNIST."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss

from mnistlr.learn.fit import fit_model
from mnistlr.learn.options import TrainOptions
from mnistlr.learn.persistence import load_model


def test_train_json_summary_and_model_file(cli, tmp_path):
    out = tmp_path / "m.joblib"
    result = cli("train", "--dataset", "mnist-sample", "--per-class", "40", "-o", out, "--json", "-q")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    for key in ("model", "solver", "n_train", "n_val", "train_accuracy", "val_accuracy", "train_loss",
                "val_loss", "epochs", "stop_reason", "seconds", "output"):
        assert key in summary
    assert summary["model"] == "softmax" and summary["solver"] == "lbfgs"
    assert summary["n_train"] == 400 and summary["output"] == str(out)
    model = load_model(out)
    assert model.meta["history"] and model.meta["data_sha256"]
    assert model.meta["class_means"].shape == (10, 784)


def test_the_subsampled_phases_are_in_the_summary_and_the_model_file(cli, tmp_path, monkeypatch):
    from mnistlr.learn import solvers

    out = tmp_path / "m.joblib"
    args = ("train", "--dataset", "mnist-sample", "--per-class", "160", "-o", out, "--json", "-q")
    assert json.loads(cli(*args).out)["subsampled_phases"] == []     # 1,600 images: too few
    monkeypatch.setattr(solvers, "COARSE_MIN_ROWS", 100)
    summary = json.loads(cli(*args).out)
    assert [p["rows"] for p in summary["subsampled_phases"]] == [100, 400]
    assert load_model(out).meta["subsampled_phases"] == summary["subsampled_phases"]
    assert json.loads(cli("inspect", out, "--json").out)["subsampled_phases"] == summary["subsampled_phases"]
    rows, its = summary["subsampled_phases"][0]["rows"], summary["subsampled_phases"][0]["iterations"]
    for text in (cli(*args[:-2]).out, cli("inspect", out).out):
        assert f"subsampled phases   {rows:,} rows: {its} iterations; 400 rows:" in " ".join(text.split("\n"))


def test_no_phases_row_without_them(cli, tmp_path):
    table = cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-o", tmp_path / "m.joblib").out
    assert "stop reason" in table and "subsampled phases" not in table


def test_train_table_goes_to_stdout_nothing_else(cli, tmp_path):
    result = cli("train", "--dataset", "mnist-sample", "--per-class", "20", "-o", tmp_path / "m.joblib")
    assert result.code == 0
    assert "Training summary" in result.out and "train accuracy" in result.out
    assert result.err == ""


def test_ridge_summary_claims_no_l1_penalty_and_keeps_the_json_keys(cli, tmp_path):
    args = ("train", "--dataset", "mnist-sample", "--per-class", "30", "-q")
    ridge = cli(*args, "--model", "ridge", "-o", tmp_path / "r.joblib")
    assert ridge.code == 0, ridge.err
    rows = [line.split() for line in ridge.out.splitlines()]
    assert ["l2", "1.0000"] in rows and not [r for r in rows if r and r[0] == "l1"]
    softmax = cli(*args, "--max-iter", "5", "-o", tmp_path / "s.joblib")
    assert ["l1", "0"] in [line.split() for line in softmax.out.splitlines()]   # L-BFGS has one
    ridge_json = json.loads(cli(*args, "--model", "ridge", "-o", tmp_path / "r.joblib", "--json").out)
    softmax_json = json.loads(cli(*args, "--max-iter", "5", "-o", tmp_path / "s.joblib", "--json").out)
    assert list(ridge_json) == list(softmax_json)
    assert ridge_json["l1"] is None and softmax_json["l1"] == 0.0 and ridge_json["l2"] == 1.0


def test_same_seed_same_weights_sgd(cli, tmp_path):
    args = ("train", "--dataset", "mnist-sample", "--per-class", "30", "--solver", "sgd",
            "--epochs", "3", "-q")
    assert cli(*args, "--seed", "7", "-o", tmp_path / "a.joblib").code == 0
    assert cli(*args, "--seed", "7", "-o", tmp_path / "b.joblib").code == 0
    assert cli(*args, "--seed", "8", "-o", tmp_path / "c.joblib").code == 0
    a, b, c = (load_model(tmp_path / f"{n}.joblib").W for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_binary_model_on_two_classes(cli, tmp_path):
    out = tmp_path / "m.joblib"
    result = cli("train", "--dataset", "mnist-sample", "--model", "logistic", "--classes", "3,8",
                 "-o", out, "-q", "--json")
    assert result.code == 0, result.err
    model = load_model(out)
    assert model.classes.tolist() == [3, 8] and model.W.shape == (784, 1)
    assert json.loads(result.out)["train_accuracy"] > 0.9


@pytest.mark.parametrize("args", [("--l2", "nan"), ("--l2", "-1"), ("--model", "ridge", "--l1", "0.01"),
                                  ("--classes", "3"), ("--model", "perceptron"), ("--epochs", "0")])
def test_bad_options_exit_2_with_one_line(cli, tmp_path, args):
    out = tmp_path / "m.joblib"
    result = cli("train", "--dataset", "mnist-sample", *args, "-o", out)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not out.exists()


def test_an_oversized_learning_rate_is_one_line_exit_1_and_no_file(cli, tmp_path):
    out = tmp_path / "m.joblib"
    result = cli("train", "-d", "mnist-sample", "--solver", "gd", "--lr", "1e12", "-q", "-o", out)
    assert result.code == 1 and not out.exists() and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith("mnistlr: error: training diverged at epoch ") and "the estimated safe step, or --lr auto" in line


@pytest.mark.parametrize("value,code", [("auto", 0), ("AUTO", 0), ("0.25", 0), ("fast", 2), ("-1", 2)])
def test_lr_takes_a_number_or_auto(cli, tmp_path, value, code):
    result = cli("train", "-d", "mnist-sample", "--solver", "gd", "--epochs", "2", "--lr", value, "-q", "--json",
                 "-o", tmp_path / "m.joblib")
    assert result.code == code, result.err
    if code == 2:
        assert len(result.err.strip().splitlines()) == 1 and "--lr" in result.err


def test_track_test_records_the_test_split_and_needs_files_beside_train_images(cli, tmp_path):
    out = tmp_path / "m.joblib"
    result = cli("train", "-d", "mnist-sample", "--solver", "gd", "--epochs", "3", "--track-test", "-q", "-o", out)
    assert result.code == 0, result.err
    history = load_model(out).meta["history"]
    assert len(history) == 3 and all(0 < r["test_accuracy"] <= 1 and r["test_loss"] > 0 for r in history)
    result = cli("train", "--train-images", tmp_path / "x.gz", "--train-labels", tmp_path / "y.gz",
                 "--track-test", "-o", tmp_path / "n.joblib")
    assert result.code == 2 and "--test-images" in result.err and not (tmp_path / "n.joblib").exists()
    help_words = " ".join(re.sub("[│╭╮╰╯─]", " ", cli("train", "--help").out).split())
    assert "for the learning curves only: never used for stopping or selection" in help_words


@pytest.mark.parametrize("test_args", [("--test-images", "-"), ("--test-images", "x.npy", "--test-labels", "-")])
def test_standard_input_for_both_training_and_test_data_is_a_usage_error(cli, tmp_path, test_args):
    # the second read found standard input spent: '<stdin>: empty input', exit 1
    args = [tmp_path / a if a.endswith(".npy") else a for a in test_args]
    result = cli("train", "--train-images", "-", *args, "-m", "ridge", "-o", tmp_path / "m.joblib")
    assert result.code == 2 and "'-' (standard input) is given for both the training and the test data" in result.err
    assert not (tmp_path / "m.joblib").exists()


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("name", ["model.onnx", "train.csv", "w.NPZ"])
def test_a_model_named_like_an_export_is_refused_before_the_fit(cli, tmp_path, command, name):
    # a joblib file under model.onnx is no ONNX graph; train.csv may be the user's data
    (tmp_path / name).write_text("kept")
    extra = ("--param", "l2=1,10", "--cv", "2") if command == "sweep" else ()
    result = cli(command, "-d", "mnist-sample", "-m", "ridge", *extra, "-o", tmp_path / name)
    assert result.code == 2 and "names an export" in result.err and "mnistlr export " in result.err, result.err
    assert (tmp_path / name).read_text() == "kept"


def test_missing_dataset_names_fetch_and_sample(cli, tmp_path):
    result = cli("train", "--dataset", "mnist", "-o", tmp_path / "m.joblib")
    assert result.code == 1
    assert "mnistlr fetch" in result.err and "mnist-sample" in result.err


# ---- the bars on real digits: train on the 22,699 head images, test on the 10,000 ----

@pytest.fixture(scope="module")
def real(shared_mnist):
    from mnistlr.io.idx import read_images, read_labels

    return (read_images(shared_mnist / "train-head-images-idx3-ubyte.gz"),
            read_labels(shared_mnist / "train-head-labels-idx1-ubyte.gz"),
            read_images(shared_mnist / "t10k-images-idx3-ubyte.gz"),
            read_labels(shared_mnist / "t10k-labels-idx1-ubyte.gz"))


def test_softmax_defaults_reach_the_bar(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions())
    P = model.predict_proba(X_test)
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.920
    assert log_loss(y_test, P, labels=model.classes) <= 0.300


def test_one_vs_rest_logistic_reaches_the_bar(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions(model="logistic"))
    assert model.W.shape == (784, 10)
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.910


def test_ridge_reaches_the_bar(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions(model="ridge"))
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.850


def test_gd_defaults_reach_the_bar(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions(solver="gd"))
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.915


def test_l1_with_the_default_solver_is_accurate_and_sparse(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions(l1=1e-4))
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.915
    assert (model.W == 0).mean() >= 0.40


def test_l2_auto_on_1000_images_per_class_beats_the_bar(real):
    X, y, X_test, y_test = real
    model = fit_model(X, y, TrainOptions(l2="auto", per_class=1000))
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.912
    path = model.meta["l2_path"]
    assert model.params["l2"] == path["points"][path["chosen"]]["l2"] and model.meta["n_train"] == 10_000


def test_gd_with_l1_is_accurate_and_sparse(real):
    X, y, X_test, y_test = real
    # A constant rate (T very large) suits full-batch GD: one step per epoch.
    model = fit_model(X, y, TrainOptions(solver="gd", l1=1e-4, l2=0.0, epochs=120, lr=1.0,
                                         anneal=1e9, patience=10))
    assert accuracy_score(y_test, model.predict(X_test)) >= 0.90
    assert (model.W == 0).mean() >= 1 / 3


def test_early_stopping_restores_the_best_epoch(real):
    X, y, X_test, y_test = real
    model = fit_model(X[:3000], y[:3000], TrainOptions(solver="sgd", lr=2.0, anneal=1e6, epochs=40,
                                                       patience=2, val_size=500, batch_size=32))
    history, meta = model.meta["history"], model.meta
    val = [h["val_accuracy"] for h in history]
    assert meta["stop_reason"] == "patience" and len(history) < 40
    best = int(np.argmax(val))
    assert history[best]["epoch"] == meta["best_epoch"]
    assert meta["metrics"]["val_accuracy"] == pytest.approx(max(val), abs=1e-9)


def test_a_fit_that_learnt_nothing_or_stopped_at_max_iter_is_warned_of_on_stderr(cli, tmp_path):
    """One warning line each, exit 0, the model saved, and the same notes under "warnings" in --json."""
    args = ("train", "--dataset", "mnist-sample", "--per-class", "40", "--json", "-q")
    zero = cli(*args, "--l1", "10", "-o", tmp_path / "zero.joblib")
    assert zero.code == 0, zero.err
    assert "mnistlr: warning: every weight is zero" in zero.err and "lower the penalty" in zero.err
    assert json.loads(zero.out)["warnings"][0].startswith("every weight is zero")
    assert (tmp_path / "zero.joblib").is_file()
    capped = cli(*args, "--max-iter", "2", "-o", tmp_path / "capped.joblib")
    assert capped.code == 0 and "mnistlr: warning: L-BFGS reached max_iter=2" in capped.err
    plain = cli(*args, "-o", tmp_path / "plain.joblib")
    assert plain.code == 0 and "warning" not in plain.err and json.loads(plain.out)["warnings"] == []
    table = cli(*args[:-2], "--l1", "10", "-o", tmp_path / "zero2.joblib")
    assert table.code == 0 and "warning" not in table.out and table.err.count("mnistlr: warning:") == 1


def test_per_class_beyond_a_class_is_warned_of_and_takes_all_of_it(cli, tmp_path):
    # the sample holds 400 images a class: 500 a class was 400 a class without a word
    result = cli("train", "-d", "mnist-sample", "-m", "ridge", "--per-class", "500", "--json", "-q",
                 "-o", tmp_path / "m.joblib")
    assert result.code == 0 and json.loads(result.out)["n_train"] == 4000, result.err
    assert "mnistlr: warning: --per-class 500: 10 of 10 classes hold fewer images" in result.err
    assert json.loads(result.out)["warnings"][0].endswith("for balanced classes give --per-class 400")
    fits = cli("train", "-d", "mnist-sample", "-m", "ridge", "--per-class", "400", "-q", "-o", tmp_path / "n.joblib")
    assert fits.code == 0 and "warning" not in fits.err


def test_a_training_accuracy_at_the_majority_share_is_warned_of():
    from mnistlr.learn.fit_notes import weak_fit_note

    class Fitted:
        classes = np.array([3, 7])
        W = np.ones((4, 1), dtype=np.float32)
        meta = {"metrics": {"train_accuracy": 0.75}}

    labels = np.array([3, 3, 3, 7, 9, 9])    # 9 is not a model class: 3 is 3 of the 4 that count
    assert "no better than always answering the most common class (0.7500)" in weak_fit_note(Fitted(), labels)
    Fitted.meta = {"metrics": {"train_accuracy": 0.76}}
    assert weak_fit_note(Fitted(), labels) is None
