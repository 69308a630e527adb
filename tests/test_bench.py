"""The benchmark script's pure parts (bench/): tables, ratios, target checks, parsing. No timings."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
import render  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
from report import Check, FitResult  # noqa: E402


def fit(dataset="MNIST", name="mnistlr softmax", family="softmax", mine=True, seconds=(1.0,),
        accuracy=0.92, log_loss=0.29):
    return FitResult(dataset, name, family, mine, list(seconds), accuracy, log_loss)


@pytest.fixture
def results():
    return [
        fit(seconds=(2.0, 1.0, 1.5)),
        fit(name="mnistlr ridge", family="ridge", seconds=(0.2,), accuracy=0.854, log_loss=None),
        fit(name="LogisticRegression()", mine=False, seconds=(12.0,), accuracy=0.921, log_loss=0.30),
        fit(name="RidgeClassifier()", family="ridge", mine=False, seconds=(0.5, 0.4), accuracy=0.854,
            log_loss=None),
        fit(dataset="Fashion", seconds=(4.0,), accuracy=0.84, log_loss=0.45),
        fit(dataset="Fashion", name="LogisticRegression()", mine=False, seconds=(50.0,), accuracy=0.84,
            log_loss=0.46),
    ]


def test_markdown_table_aligns_and_escapes():
    text = report.markdown_table(["name", "value"], [["a|b", "1"], ["long name", "22"]])
    lines = text.splitlines()
    assert lines[0] == "| name      | value |"
    assert lines[1] == "| :-------- | ----: |"
    assert lines[2] == "| a\\|b      |     1 |"
    assert lines[3] == "| long name |    22 |"
    assert len({len(line) for line in lines}) == 1


def test_markdown_table_refuses_ragged_rows():
    with pytest.raises(ValueError):
        report.markdown_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError):
        report.markdown_table(["a", "b"], [["1", "2"]], align="l")


@pytest.mark.parametrize(("value", "text"), [(0.0123456, "0.0123"), (1.23456, "1.23"), (12.345, "12.3"),
                                             (123.4, "123"), (None, "—"), (float("nan"), "—")])
def test_fmt_seconds(value, text):
    assert report.fmt_seconds(value) == text


def test_fmt_ratio_and_count():
    assert report.fmt_ratio(12.04) == "12.0×"
    assert report.fmt_ratio(2.456) == "2.46×"
    assert report.fmt_ratio(None) == "—"
    assert report.fmt_count(1234567.4) == "1,234,567"


def test_best_is_the_fastest_run(results):
    assert results[0].best == 1.0
    assert results[3].best == 0.4


def test_speed_ratio_compares_with_the_same_family_and_dataset(results):
    assert report.speed_ratio(results, results[2]) == pytest.approx(12.0)     # LR vs softmax 1.0
    assert report.speed_ratio(results, results[3]) == pytest.approx(2.0)      # Ridge 0.4 vs 0.2
    assert report.speed_ratio(results, results[5]) == pytest.approx(12.5)     # Fashion LR 50 vs 4
    assert report.speed_ratio(results, results[0]) == pytest.approx(1.0)
    assert report.speed_ratio([results[2]], results[2]) is None


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_fit_table_rows(results):
    lines = report.fit_table(results).splitlines()
    assert len(lines) == 2 + len(results)
    assert cells(lines[2]) == ["MNIST", "**mnistlr softmax**", "1", "3", "—", "—", "0.9200", "0.2900", "ref"]
    assert cells(lines[3])[7] == "—"                      # ridge: no probabilities, no log-loss
    assert cells(lines[4])[-1] == "12.0×"
    assert cells(lines[5])[-1] == "2.00×"


def test_fit_checks_speed_accuracy_and_loss(results):
    checks = report.fit_checks(results, "LogisticRegression()", "softmax", 10.0)
    assert [c.ok for c in checks] == [False, True]     # MNIST: accuracy 0.92 < 0.921; Fashion: all met
    assert "time ratio 12.0×" in checks[0].measured
    slower = report.fit_checks(results, "LogisticRegression()", "softmax", 13.0)
    assert [c.ok for c in slower] == [False, False]


def test_fit_checks_accuracy_slack_and_no_loss(results):
    ridge = report.fit_checks(results, "RidgeClassifier()", "ridge", 3.0, accuracy_slack=0.0005, check_loss=False)
    assert len(ridge) == 1 and ridge[0].ok is False          # 2× < 3×
    ridge = report.fit_checks(results, "RidgeClassifier()", "ridge", 2.0, accuracy_slack=0.0005, check_loss=False)
    assert ridge[0].ok is True


def test_fit_checks_loss_higher_misses():
    rows = [fit(seconds=(1.0,), accuracy=0.93, log_loss=0.31),
            fit(name="LogisticRegression()", mine=False, seconds=(20.0,), accuracy=0.92, log_loss=0.30)]
    assert report.fit_checks(rows, "LogisticRegression()", "softmax", 10.0)[0].ok is False


def test_threshold_check():
    assert report.threshold_check("help", 0.25, 0.3, "s").ok is True
    assert report.threshold_check("help", 0.35, 0.3, "s").ok is False
    rate = report.threshold_check("rate", 1_500_000, 1_000_000, "images/s", higher_is_better=True)
    assert rate.ok is True and rate.measured == "1,500,000 images/s"
    assert report.threshold_check("x", None, 1, "s").ok is None


def test_checks_table_verdicts():
    table = report.checks_table([Check("a", "1", True), Check("b", "2", False), Check("c", "—", None)])
    assert "met" in table and "**missed**" in table and "not measured" in table


def test_cpu_model_and_memory():
    cpuinfo = "processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2 fma sse\n\nprocessor\t: 1\n"
    assert report.cpu_model(cpuinfo) == "Some CPU 9000 (avx2, fma)"
    assert report.cpu_model("") == "unknown CPU"
    assert report.memory_gib("MemTotal:       24683520 kB\nMemFree: 1 kB\n") == pytest.approx(23.54, abs=0.01)
    assert report.memory_gib("") is None


def test_top_level_imports():
    text = ("import time: self [us] | cumulative | imported package\n"
            "import time:       120 |        120 |   numpy._core\n"
            "import time:        50 |       5000 | numpy\n"
            "import time:        80 |         80 |     typer.main\n"
            "some other line\n")
    assert procs.top_level_imports(text) == {"numpy", "typer"}


def test_splice_replaces_only_the_block():
    doc = f"# Benchmarks\n\nprose before\n\n{run.START}\nold table\n{run.END}\n\nprose after\n"
    out = run.splice(doc, "new table\n")
    assert out == f"# Benchmarks\n\nprose before\n\n{run.START}\nnew table\n{run.END}\n\nprose after\n"
    assert run.splice(out, "new table") == out


def test_splice_appends_when_there_is_no_block():
    assert run.splice("", "t") == f"{run.START}\nt\n{run.END}\n"
    assert run.splice("# B\n", "t") == f"# B\n\n{run.START}\nt\n{run.END}\n"


def test_parse_args_quick_and_skips():
    args = run.parse_args(["--quick"])
    assert args.repeat == 1 and args.no_fashion and args.predict_rows == 100_000 and args.write is None
    args = run.parse_args(["--no-fashion", "--no-sweep", "--write"])
    assert args.no_fashion and args.no_sweep and args.write == run.BENCHMARKS and args.repeat == 3


def _read(seconds: float, before_mib: float, peak_mib: float) -> dict:
    return {"seconds": seconds, "cpu_seconds": seconds - 0.4, "rss_before_mib": before_mib, "rss_peak_mib": peak_mib,
            "result_bytes": 60_000 * 784, "n": 60_000}


def test_csv_memory_on_top_of_the_result():
    # 150 MiB added while reading 47.04 MB of images: (157.3 − 47.04) / 47.04 = 2.34× on top
    assert abs(render.csv_overhead(_read(1.0, 50.0, 200.0)) - 2.344) < 1e-3
    assert render.threshold_check("x", render.csv_overhead(_read(1.0, 0.0, 200.0)), 3.0, "×").ok is False


def test_render_document_lists_every_target(results):
    parts = {
        "machine": [("CPU", "Some CPU")],
        "results": results,
        "predict": [("LinearModel.predict", 2_000_000.0)],
        "cli": {"help": 0.2, "help_imports": [], "predict_first": 1.0, "predict_warm": 0.9,
                "evaluate_warm": 1.1, "second_train_seconds": 3.0, "second_train_compiles": ["f"],
                "numba_cache": ["/x/__pycache__"]},
        "evaluate_api": 0.1,
        "sweep": {"seconds": 30.0, "n_train": 22699, "n_jobs": 2, "best": {}},
        "memory": {"max_rss_mib": 400.0, "seconds": 10.0, "n": 60_000, "dataset": "Fashion"},
        "csv": {"file": {"rows": 60_000, "bytes": 110_000_000},
                "mnistlr": _read(2.5, 100.0, 200.0), "pyarrow": _read(5.0, 100.0, 400.0),
                "mnistlr-cached": _read(0.4, 100.0, 160.0)},
    }
    text = render.render_document(parts)
    checks = render.checks(parts)
    assert len(checks) == 2 + 1 + 6 + 2 + 1  # 2 LR, 1 ridge, predict/cli/evaluate/help/imports/compiles, CSV, memory
    by_target = {c.target: c.ok for c in checks}
    assert by_target["read a 60,000-row MNIST CSV in ≤ 3 s"] is True
    # 100 MiB added, 47 MB of it the result: (104.9 − 47.0) / 47.0 = 1.23× on top
    assert by_target["…with ≤ 3× the uint8 result in peak memory on top of it"] is True
    assert "1.23× the 47 MB uint8 result" in text
    assert re.search(r"pyarrow ÷ mnistlr wall \(same run\) *\| *2\.00", text)
    assert "2.5 s (2.1 s CPU) / 1.23× the 47 MB uint8 result" in text
    assert by_target["a second `mnistlr train` compiles nothing"] is False
    assert by_target["peak memory training on 60,000 images < 600 MB"] is True
    assert by_target["predict ≥ 1,000,000 images/s in-process (LinearModel.predict)"] is True
    assert "### Targets" in text and "2,000,000 images/s" in text and "419 MB" in text


def test_feature_rows_and_checks():
    import features

    part = {"dataset": "MNIST 22,699",
            "deskew": {"raw_seconds": 2.0, "deskew_seconds": 3.0, "raw_accuracy": 0.92, "deskew_accuracy": 0.952},
            "train": [{"pipeline": "deskew,pca:50,rff:5000", "dataset": "MNIST 22,699", "seconds": 40.0,
                       "fit_seconds": 30.0, "max_rss_mib": 900.0, "accuracy": 0.9849, "cpu_seconds": 55.0, "load": 1.5},
                      {"pipeline": "pca:50,rff:5000", "dataset": "Fashion 60,000", "seconds": 100.0,
                       "fit_seconds": 90.0, "max_rss_mib": 3000.0, "accuracy": 0.895}],
            "predict": {"first": 2.0, "warm": 1.0},
            "rbf": {"D": 5000, "gamma": 0.0128, "mnistlr_seconds": 10.0, "sklearn_seconds": 150.0,
                    "mnistlr_accuracy": 0.97, "sklearn_accuracy": 0.969}}
    part["train"].insert(1, {"pipeline": "deskew,pca:50,rff:5000:0.03", "dataset": "MNIST 22,699", "seconds": 12.0,
                             "fit_seconds": 9.0, "max_rss_mib": 700.0, "accuracy": 0.9845, "target": False})
    verdicts = [c.ok for c in features.checks(part)]
    # the rff row beside the chosen pipeline is a measurement, not a target: no check of its own;
    # deskew met (1.5×); MNIST missed (0.9849 < 0.985); Fashion met (no memory target); predict 10,000/s
    # missed; 15× and higher accuracy met
    assert verdicts == [True, False, True, False, True]
    text = render.render_document({"machine": [], "results": [], "features": part})
    assert "Beyond raw pixels" in text and "0.9849" in text and "15.0×" in text and "0.94 GB" in text
    assert "40.0 s (55.0, 1.5)" in text   # wall (CPU seconds, load average)
    assert "deskew,pca:50,rff:5000:0.03` on MNIST 22,699" in text and "0.9845" in text


class _Dummy:
    classes_ = [0, 1]

    def predict(self, X):
        return [0] * len(X)

    def predict_proba(self, X):
        return [[0.5, 0.5]] * len(X)


@pytest.mark.parametrize(("repeat_under", "expected"), [(0.0, {"once": 1, "twice": 2}),
                                                          (1e9, {"once": 3, "twice": 3})])
def test_contest_repeats_cheap_fits_and_min_runs(repeat_under, expected):
    import numpy as np
    from fits import Contender, Dataset, contest

    data = Dataset("toy", np.zeros((6, 2, 2), np.uint8), np.array([0, 1] * 3), np.zeros((4, 2, 2), np.uint8),
                   np.array([0, 1, 0, 1]))
    calls = []
    contenders = [Contender(name, "softmax", False, lambda d, name=name: calls.append(name) or _Dummy(),
                            min_runs=2 if name == "twice" else 1) for name in ("once", "twice")]
    results, models = contest(data, contenders, 3, repeat_under, lambda message: None)
    assert {r.name: len(r.seconds) for r in results} == expected
    assert calls.count("once") == expected["once"] + 1          # + the warm-up fit
    assert results[0].cpu_seconds is not None and results[0].core_seconds is None
    assert results[0].accuracy == 0.5 and results[0].log_loss == pytest.approx(np.log(2))
    assert models == {}                                        # no mnistlr contender


def test_fast_peer_and_process_checks(results):
    peers = [fit(dataset="Fashion", name="JAX", mine=False, seconds=(9.0,), accuracy=0.84, log_loss=0.46),
             fit(dataset="Fashion", name="torch", mine=False, seconds=(20.0,), accuracy=0.83, log_loss=0.5)]
    parts = {"results": results + peers, "peers": {"ran": ["JAX", "torch"], "absent": ["sklearnex"],
                                                   "skipped": False},
             "train_overhead": [{"dataset": "MNIST 22,699", "process": 1.0, "fit": 0.7},
                                {"dataset": "Fashion 60,000", "process": 2.0, "fit": 1.0}],
             "memory_big": {"max_rss_mib": 1200.0, "seconds": 40.0, "n": 1_200_000, "data_bytes": 940_800_000,
                            "dataset": "Fashion shifted 1,200,000"}}
    fast = render.fast_peer_checks(parts["results"], {"JAX", "torch"})
    assert [c.ok for c in fast] == [False]          # 9 s / 4 s = 2.25× < 3×, against the fastest (JAX)
    assert "JAX" in fast[0].target and "2.25×" in fast[0].measured
    by_target = {c.target: c for c in render.process_checks(parts)}
    assert by_target["`mnistlr train` process ≤ its fit + 0.4 s (MNIST 22,699, warm)"].ok is True
    assert by_target["`mnistlr train` process ≤ its fit + 0.5 s (Fashion 60,000, warm)"].ok is False
    big = by_target["peak memory training on 1,200,000 images from a gzip IDX ≤ 1.25× data + 300 MB"]
    assert big.ok is True and "limit 1,476 MB" in big.measured     # 1.25 · 940.8 + 300
    assert "ran: JAX, torch; absent: sklearnex" in render.render_document(parts | {"machine": []})


def test_shifted_sets_move_every_image_and_keep_the_labels():
    import numpy as np
    import scale
    from fits import Dataset

    X = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    np.testing.assert_array_equal(scale.shift(X, 1, 0)[:, 1:], X[:, :-1])
    np.testing.assert_array_equal(scale.shift(X, 0, -2)[:, :, :2], X[:, :, 2:])
    assert not scale.shift(X, -1, 2)[:, -1].any() and not scale.shift(X, -1, 2)[:, :, :2].any()
    data = Dataset("toy", X, np.array([3, 5]), X[:1], np.array([3]))
    big = scale.shifted(data, 5)
    assert big.X_train.shape == (10, 4, 4) and big.y_train.tolist() == [3, 5] * 5
    assert scale.SHIFTS[:5] == [(0, 0), (-1, 0), (0, -1), (0, 1), (1, 0)]   # none, then the 4 one-pixel moves
    assert len({s for s in scale.SHIFTS[:20]}) == 20 and max(max(map(abs, s)) for s in scale.SHIFTS[:20]) == 2


def test_gzip_idx_written_block_by_block_reads_back(tmp_path):
    import numpy as np
    import scale

    from mnistlr.io.idx import read_images

    X = np.random.default_rng(0).integers(0, 256, size=(300, 28, 28)).astype(np.uint8)
    scale.write_gzip_idx(tmp_path / "x.gz", X, rows=64)
    np.testing.assert_array_equal(read_images(tmp_path / "x.gz"), X)


def test_the_training_objective_is_one_formula_for_mnistlr_and_scikit_learn():
    """fits.training_objective: mean cross-entropy + (l2/2)‖W‖² + l1·‖W‖₁ on x/255, the same number
    for the same weights."""
    import fits
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mnistlr.learn import objective
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(90, 4, 4)).astype(np.uint8)
    labels = np.repeat([0, 1, 2], 30)
    data = fits._Inputs(fits.Dataset("toy", images, labels, images[:0], labels[:0]))
    model = fit_model(images, labels, TrainOptions(l1=fits.L1 * 100, l2=0.0, max_iter=30))
    X64 = data.X64
    # mnistlr's own objective of its weights on z = x/255, plus the L1 term
    l2 = 3e-3
    expected = (objective.objective(X64, labels, model.W, model.b, "softmax", l2=l2).value
                + fits.L1 * np.abs(model.W.astype(np.float64)).sum())
    mnistlr_side = fits.Contender("m", "l1", True, None)
    assert fits.training_objective(mnistlr_side, model, data, l1=fits.L1, l2=l2) == pytest.approx(expected, rel=1e-5)
    # scikit-learn's model holding the same weights gives the same value
    sk = LogisticRegression().fit(X64, labels)
    sk.coef_, sk.intercept_ = model.W.T.astype(np.float64), model.b.astype(np.float64)
    assert (fits.training_objective(fits.Contender("s", "l1", False, None), sk, data, l1=fits.L1, l2=l2)
            == pytest.approx(expected, rel=1e-5))


@pytest.mark.parametrize("n_iter, shown", [([[100, 37]], "100 it (cap)"), ([[99, 37]], "99 it")])
def test_a_peer_stopped_by_its_iteration_cap_says_so(n_iter, shown):
    """fits._note: a scikit-learn fit whose largest n_iter_ reached max_iter is marked "(cap)"."""
    import types

    import fits
    import numpy as np

    peer = types.SimpleNamespace(n_iter_=np.array(n_iter), max_iter=100, coef_=np.array([[0.0, 1.0]]))
    assert fits._note(fits.Contender("saga", "l1", False, None), peer) == f"{shown}, 50% zero"


def test_the_gd_row_is_judged_by_its_test_accuracy(results):
    gd = [fit(dataset=dataset, name="mnistlr softmax --solver gd", family="gd", seconds=(2.5, 2.1), accuracy=acc)
          for acc, dataset in ((0.9189, "MNIST 22,699"), (0.9149, "MNIST 22,699"), (0.90, "mnist-sample"))]
    for row in gd:
        row.note = "37 it"
    found = render.checks({"results": results + gd})
    judged = [c for c in found if c.target.startswith("`train --solver gd`")]
    assert [(c.measured, c.ok) for c in judged] == [("0.9189 in 2.1 s (37 it)", True), ("0.9149 in 2.1 s (37 it)", False)]
    # the target is on the real digits: the --quick sample's row is shown, not judged
    assert all(c.target == "`train --solver gd` (defaults) test accuracy ≥ 0.915 (MNIST 22,699)" for c in judged)
    assert render.gd_checks(results) == []        # no gd row, no check


def test_feature_fits_repeat_under_the_contest_limit(monkeypatch):
    import features
    import fits

    calls = []
    clock = iter([0.0, 5.0, 10.0, 13.0])                       # runs of 5 s and 3 s: the best is the second
    monkeypatch.setattr(features.time, "perf_counter", lambda: next(clock))
    result, seconds, _, runs = features._repeated(lambda: calls.append(1) or "model")
    assert (result, seconds, runs, len(calls)) == ("model", 3.0, 2, 2)
    monkeypatch.setattr(fits, "REPEAT_UNDER", 4.0)             # a first run over the limit is not repeated
    clock = iter([0.0, 5.0])
    monkeypatch.setattr(features.time, "perf_counter", lambda: next(clock))
    assert features._repeated(lambda: "model")[1:4:2] == (5.0, 1)
    part = {"dataset": "MNIST 22,699", "train": [], "predict": {"first": 1.0, "warm": 0.5},
            "deskew": {"raw_seconds": 0.3, "deskew_seconds": 0.3, "raw_accuracy": 0.92, "deskew_accuracy": 0.95},
            "rbf": {"D": 5000, "gamma": 0.01, "mnistlr_seconds": 3.0, "sklearn_seconds": 30.0, "mnistlr_runs": 2,
                    "sklearn_runs": 1, "mnistlr_accuracy": 0.97, "sklearn_accuracy": 0.95}}
    label, value = features.rows(part)[-1]
    assert "best of 2 / 1" in label and value.startswith("3.0 s")


def test_the_fast_peer_check_shows_what_the_objective_s_minimiser_scores(results):
    peer = fit(dataset="Fashion", name="JAX", mine=False, seconds=(20.0,), accuracy=0.84, log_loss=0.434)
    minimiser = FitResult("Fashion", "mnistlr softmax --tol 1e-7", "converged", True, [9.0], 0.845, 0.4333,
                          objective=0.39602)
    (check,) = render.fast_peer_checks(results + [peer, minimiser], {"JAX"})
    # 20 s / 4 s = 5×, but 0.45 > 0.434: missed, with the minimiser's own log-loss beside it
    assert check.ok is False
    assert check.measured.endswith("(the objective's minimiser: log-loss 0.4333, f 0.39602)")
    # the minimiser row is a reference of its own family: not the softmax row the peers are timed against
    assert report.reference_for(results + [peer, minimiser], peer).name == "mnistlr softmax"
