"""`mnistlr sweep` end to end on small subsets of the bundled sample (real digits)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import mnistlr
from mnistlr.data.registry import load_dataset
from mnistlr.learn.persistence import load_model

# 20 images per class (200 in all) and short lbfgs runs keep every fit well under a second
SMALL = ("--dataset", "mnist-sample", "--per-class", "20", "--max-iter", "20")


def run_json(cli, *args):
    result = cli("sweep", *SMALL, *args, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def scores(report):
    return [(t["trial"], t["params"], t["fold_scores"], t["mean"], t["std"]) for t in report["trials"]]


def test_nested_3x3_over_6_random_l2_values(cli):
    report = run_json(cli, "--param", "l2=log:1e-6:1e-1", "--n-iter", "6", "--cv", "3", "--nested", "3")
    nested = report["nested"]
    assert report["mode"] == "random" and report["n_candidates"] == 6
    assert nested["outer_folds"] == 3 and len(nested["outer_scores"]) == 3
    assert all(0.5 < s <= 1.0 for s in nested["outer_scores"])
    assert nested["mean"] == pytest.approx(np.mean(nested["outer_scores"]))
    assert nested["std"] == pytest.approx(np.std(nested["outer_scores"]))
    for fold in nested["folds"]:
        assert len(fold["trials"]) == 6 and all(len(t["fold_scores"]) == 3 for t in fold["trials"])
        best = max(fold["trials"], key=lambda t: (t["mean"], -t["trial"]))
        assert (fold["trial"], fold["params"]) == (best["trial"], best["params"])
        assert 1e-6 <= fold["params"]["l2"] <= 1e-1
    picks = [f["trial"] for f in nested["folds"]]
    assert nested["agreement"]["count"] == max(picks.count(p) for p in picks)
    assert report["trials"] == []                         # no whole-split search without --refit


def test_nested_text_report_names_outer_scores_and_choices(cli):
    result = cli("sweep", *SMALL, "--param", "l2=1e-4,1e-1", "--cv", "2", "--nested", "2")
    assert result.code == 0, result.err
    assert "Nested CV: 2 outer folds" in result.out and "outer accuracy:" in result.out
    assert ("2 of 2 outer folds chose trial" in result.out
            or "each of the 2 outer folds chose different parameters" in result.out)
    assert result.err == ""                                # no live table when stderr is not a terminal


def test_grid_mode_runs_every_combination(cli):
    report = run_json(cli, "--param", "l2=1e-4,1e-1", "--param", "preprocess=scale,standardize",
                      "--n-iter", "1", "--cv", "3")
    assert report["mode"] == "grid" and len(report["trials"]) == 4
    combos = {(t["params"]["l2"], t["params"]["preprocess"]) for t in report["trials"]}
    assert combos == {(a, b) for a in (1e-4, 1e-1) for b in ("scale", "standardize")}
    assert [t["rank"] for t in report["trials"]] == [1, 2, 3, 4]
    means = [t["mean"] for t in report["trials"]]
    assert means == sorted(means, reverse=True) and report["best"] == report["trials"][0]


def test_random_mode_and_log_loss_ranks_lowest_first(cli, tmp_path):
    report = run_json(cli, "--param", "l2=1e-5:1", "--n-iter", "3", "--cv", "2", "--metric", "log_loss")
    assert report["mode"] == "random" and len(report["trials"]) == 3 and not report["greater_is_better"]
    means = [t["mean"] for t in report["trials"]]
    assert means == sorted(means) and all(m > 0 for m in means)
    assert all(1e-5 <= t["params"]["l2"] <= 1 for t in report["trials"])


def test_any_number_of_jobs_gives_identical_numbers(cli):
    args = ("--param", "l2=log:1e-5:1e-1", "--n-iter", "3", "--cv", "3", "--seed", "5")
    one = run_json(cli, *args, "-j", "1")
    two = run_json(cli, *args, "-j", "2")
    assert one["n_jobs"] == 1 and two["n_jobs"] == 2
    assert scores(one) == scores(two)
    assert scores(one) != scores(run_json(cli, *args[:-1], "6", "-j", "2"))


def test_budget_stops_the_search_in_time(cli):
    budget = 4.0
    run_json(cli, "--param", "l2=1e-3", "--cv", "2")     # warm the workers: the budget counts their start-up
    report = run_json(cli, "--param", "l2=log:1e-6:1", "--n-iter", "500", "--cv", "2", "--budget", str(budget))
    assert report["budget_stopped"] and 0 < len(report["trials"]) < 500
    assert report["seconds"] <= 1.2 * budget
    result = cli("sweep", *SMALL, "--param", "l2=log:1e-6:1", "--n-iter", "500", "--cv", "2", "--budget", "1",
                 "--json")
    assert result.code == 0 and "--budget of 1 s ended the search" in result.err
    result = cli("sweep", *SMALL, "--param", "l2=log:1e-6:1", "--n-iter", "500", "--cv", "2", "--budget", "1")
    assert result.code == 0 and "the --budget of 1 s ended the search after" in result.out
    assert result.err == ""


def test_refit_writes_a_model_that_evaluate_and_predict_accept(cli, tmp_path):
    out, table = tmp_path / "best.joblib", tmp_path / "trials.csv"
    report = run_json(cli, "--param", "l2=1e-4,1e-2", "--cv", "2", "--refit", "-o", out, "--results", table)
    model = load_model(out)
    X, y = load_dataset("mnist-sample", "test")
    assert (model.predict(X[:300]) == y[:300]).mean() > 0.6
    sweep = model.meta["sweep"]
    assert sweep["best"]["params"] == report["best"]["params"] == report["refit"]["params"]
    assert model.params["l2"] == report["best"]["params"]["l2"]
    assert len(sweep["trials"]) == 2 and sweep["metric"] == "accuracy"
    evaluated = cli("evaluate", out, "--dataset", "mnist-sample", "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["accuracy"] > 0.6
    sample = Path(mnistlr.__file__).parent / "data" / "sample" / "mnist-sample-t10k-images-idx3-ubyte.gz"
    predicted = cli("predict", out, sample)
    assert predicted.code == 0, predicted.err
    assert predicted.out.splitlines()[0] == "index,label" and len(predicted.out.splitlines()) == 1001
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["trial"]) for r in rows] == [t["trial"] for t in report["trials"]]
    assert {"rank", "param_l2", "fold_1", "fold_2", "mean", "std", "seconds"} <= set(rows[0])


def test_results_as_json_by_extension(cli, tmp_path):
    path = tmp_path / "trials.json"
    result = cli("sweep", *SMALL, "--param", "l2=1e-4,1e-2", "--cv", "2", "--results", path)
    assert result.code == 0, result.err
    assert "Grid search: 2 of 2 trials" in result.out and "best: trial" in result.out
    saved = json.loads(path.read_text())
    assert len(saved["trials"]) == 2 and saved["best"]["rank"] == 1


def test_a_40_column_table_prints_every_figure_in_full(cli, tmp_path, monkeypatch):
    from mnistlr.cli.tables import format_value

    monkeypatch.setenv("COLUMNS", "40")
    path = tmp_path / "trials.json"
    result = cli("sweep", *SMALL, "--param", "l2=1e-4,1e-2", "--cv", "3", "--results", path)
    assert result.code == 0, result.err
    *table, best = result.out.splitlines()
    assert "…" not in result.out and max(map(len, table)) <= 40 and best.startswith("best: trial")
    words = result.out.split()
    for trial in json.loads(path.read_text())["trials"]:
        figures = [f"{s:.4f}" for s in trial["fold_scores"]] + [format_value(trial[k]) for k in ("mean", "std")]
        assert set(figures) <= set(words)
    assert {"rank", "trial", "l2", "fold", "scores", "mean", "std", "seconds"} <= set(words)


@pytest.mark.parametrize("quiet", [False, True])
def test_the_files_written_are_notes_on_stderr_and_quiet_silences_them(cli, tmp_path, quiet):
    args = ["--param", "l2=1e-4,1e-2", "--cv", "2", "--results", tmp_path / "t.csv", "-o", tmp_path / "m.joblib"]
    result = cli("sweep", *SMALL, *args, *(["-q"] if quiet else []))
    assert result.code == 0, result.err
    assert "written to" not in result.out and "saved to" not in result.out and "best: trial" in result.out
    notes = ("every trial written to", "images and saved to")
    assert all((note in result.err) != quiet for note in notes), result.err
    assert (tmp_path / "t.csv").exists() and (tmp_path / "m.joblib").exists()


@pytest.mark.parametrize("args, fragment", [
    (("--param", "gamma=1:2"), "'gamma' is not a searchable"),
    (("--param", "l2=log:1:0.1"), "must be below"),
    (("--cv", "21"), "--cv 21 is more than the 20 image(s)"),
    (("--per-class", "1"), "--cv 5 is more than the 1 image(s) of class 0 (give every class 2 images or more"),
    (("--refit",), "--refit needs -o"),
    (("--backend", "dask"), "--backend dask needs --scheduler"),
    (("--scheduler", "tcp://127.0.0.1:8786"), "--scheduler is for --backend dask"),
    (("--metric", "auc"), "auc"),
    (("--budget", "0"), "--budget must be a positive"),
    (("-m", "ridge", "--param", "l1=0.1,0.2"), "--l1 does not apply to ridge"),
    (("--nested", "1"), "nested"),
    # searched values the solver never reads: every trial was the same fit
    (("--param", "lr=0.01,0.1,1"), "parameters lr=0.01: --lr 0.01 is read by --solver gd and sgd only, not by lbfgs"),
    (("--solver", "gd", "--param", "batch_size=1,16"), "--batch-size 1 is read by --solver sgd only, not by gd"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, args, fragment):
    other_solver = "ridge" in args or "--solver" in args
    small = SMALL[:4] if other_solver else SMALL   # --max-iter is lbfgs's
    result = cli("sweep", *small, *args, "-o", tmp_path / "m.joblib") if args == ("--cv", "21") else \
        cli("sweep", *small, *args)
    assert result.code == 2
    assert result.out == "" and len(result.err.strip().splitlines()) == 1
    assert fragment in result.err and "Traceback" not in result.err
    assert not (tmp_path / "m.joblib").exists()


def test_options_of_every_searched_solver_are_taken(cli):
    # --epochs beside solver=gd,sgd: every trial reads it (the base, lbfgs by default, is never fitted)
    result = cli("sweep", *SMALL[:4], "--param", "solver=gd,sgd", "--epochs", "2", "--cv", "2", "--json")
    assert result.code == 0, result.err
    assert sorted(t["params"]["solver"] for t in json.loads(result.out)["trials"]) == ["gd", "sgd"]



def test_a_fixed_solver_option_goes_to_the_trials_whose_solver_reads_it(cli):
    # solver=lbfgs,sgd with --max-iter 20 (lbfgs's) and --epochs 2 (sgd's): each trial takes its own
    def fold_scores(*args):
        result = cli("sweep", *SMALL[:4], *args, "--cv", "2", "--json")
        assert result.code == 0, result.err
        return {t["params"]["solver"]: t["fold_scores"] for t in json.loads(result.out)["trials"]}

    mixed = fold_scores("--param", "solver=lbfgs,sgd", "--max-iter", "20", "--epochs", "2")
    assert mixed["lbfgs"] == fold_scores("--param", "solver=lbfgs", "--max-iter", "20")["lbfgs"]
    assert mixed["sgd"] == fold_scores("--param", "solver=sgd", "--epochs", "2")["sgd"]
    assert mixed["sgd"] != fold_scores("--param", "solver=sgd")["sgd"]      # 2 epochs, not the default
    # an option none of the searched solvers reads is still refused, before any work
    refused = cli("sweep", *SMALL[:4], "--param", "solver=lbfgs,gd", "--batch-size", "16", "--cv", "2")
    assert refused.code == 2 and refused.out == ""
    assert ("--batch-size 16 is read by --solver sgd only, by none of the searched solvers (lbfgs, gd)"
            in refused.err)


def test_missing_cluster_extra(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = cli("sweep", *SMALL, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.code == 1 and "pip install 'mnistlr[cluster]'" in result.err


def test_help_ends_with_examples(cli):
    result = cli("sweep", "--help")
    assert result.code == 0
    tail = result.out.rstrip().splitlines()[-8:]
    assert sum("mnistlr sweep" in line for line in tail) >= 2


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                                  host="127.0.0.1", protocol="tcp") as local:
        yield local


def test_dask_backend_on_a_local_cluster(cli, cluster, monkeypatch):
    import distributed

    scattered = []
    original = distributed.Client.scatter

    def spy(self, data, *args, **kwargs):
        scattered.append([getattr(d, "shape", None) for d in data] if isinstance(data, list) else None)
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "scatter", spy)
    args = ("--param", "l2=1e-4,1e-2", "--cv", "3")
    report = run_json(cli, *args, "--backend", "dask", "--scheduler", cluster.scheduler_address)
    assert report["backend"] == "dask" and report["n_jobs"] == 2
    assert scattered[0] == [(200, 28, 28), (200,)]          # the data went out once, up front
    assert len(scattered) == 1
    assert scores(report) == scores(run_json(cli, *args, "-j", "1"))


def test_sweep_over_feature_pipelines_and_a_gamma_range(cli, tmp_path):
    report = run_json(cli, "--param", "features=deskew,rff:200:log:0.005:0.05|pca:int:8:16",
                      "--param", "l2=log:1e-5:1e-3", "--n-iter", "3", "--cv", "2", "-o", tmp_path / "best.joblib")
    assert report["mode"] == "random" and len(report["trials"]) == 3
    assert report["space"][0] == "features=deskew,rff:200:log:0.005:0.05|pca:int:8:16"
    for trial in report["trials"]:
        spec = trial["params"]["features"]
        if spec.startswith("deskew"):
            gamma = float(spec.split(":")[-1])
            assert spec.startswith("deskew,rff:200:") and 0.005 <= gamma <= 0.05
        else:
            assert 8 <= int(spec.split(":")[1]) <= 16
    best = load_model(tmp_path / "best.joblib")
    assert best.features.spec == report["best"]["params"]["features"]
    grid = run_json(cli, "--param", "features=deskew|deskew,pca:10", "--cv", "2")
    assert grid["mode"] == "grid" and {t["params"]["features"] for t in grid["trials"]} == {"deskew", "deskew,pca:10"}


def test_sweep_refuses_a_bad_pipeline_before_any_fit(cli):
    result = cli("sweep", *SMALL, "--param", "features=deskew|rff:log:1:2", "--cv", "2")
    assert result.code == 2 and "rff" in result.err and "integer" in result.err
