"""`sweep`: random or grid search with (nested) stratified K-fold CV; returns every trial and the best."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistlr.errors import MnistlrError, UsageError
from mnistlr.io.json_values import json_ready
from mnistlr.learn.options import TrainOptions
from mnistlr.tuning.runner import BACKENDS, Runner


def _check_outputs(output: Path | None, results: Path | None, inputs: list[Path]) -> None:
    """Fail before the search, not after it, when --output or --results cannot be written, or are one file."""
    from mnistlr.api.export import refuse_export_name
    from mnistlr.io.atomic import check_output

    if output is not None:
        refuse_export_name(output)
    targets = [check_output(path, inputs + ([Path(output)] if path is results and output is not None else []))[0]
               for path in (output, results) if path is not None]
    if len(targets) == 2 and targets[0] == targets[1]:   # a file yet to be written
        raise UsageError(f"--output and --results are the same file ({results}): the results would "
                         "replace the model", "give them different names")


def _check_fixed(options: TrainOptions, specs) -> None:
    """UsageError for fixed options no trial can take. With the solver searched, each solver option
    must be read by one of its values (an --epochs beside solver=lbfgs,sgd is for the sgd trials),
    the rest are checked for its first value here and with each candidate's by check_candidates."""
    from mnistlr.tuning import spaces

    solver = next((spec for spec in specs if spec.name == "solver"), None)
    if solver is None or options.solver is not None:   # (fixed and searched: check_candidates says so)
        options.validate()
    else:
        spaces.unread_by_every_solver(options, solver.values)
        spaces.apply_params(options, {"solver": solver.values[0]}).validate()


def _check_run(n_iter: int, cv: int, nested: int | None, n_jobs: int | None, budget: float | None,
               backend: str, scheduler: str | None) -> None:
    if cv < 2:
        raise UsageError(f"--cv must be at least 2, got {cv}", "e.g. --cv 5")
    if nested is not None and nested < 2:
        raise UsageError(f"--nested must be at least 2, got {nested}", "e.g. --nested 3")
    if n_jobs is not None and n_jobs < 1:
        raise UsageError(f"-j must be at least 1, got {n_jobs}", "e.g. -j 2")
    if budget is not None and not budget > 0:
        raise UsageError(f"--budget must be a positive number of seconds, got {budget}", "e.g. --budget 600")
    if backend not in BACKENDS:
        raise UsageError(f"--backend '{backend}' is not one of {', '.join(BACKENDS)}", "use local or dask")
    if backend == "dask" and not scheduler:
        raise UsageError("--backend dask needs --scheduler", "e.g. --scheduler tcp://10.0.0.5:8786")
    if backend != "dask" and scheduler:
        raise UsageError("--scheduler is for --backend dask", "add --backend dask, or drop --scheduler")
    if n_iter < 1:
        raise UsageError(f"--n-iter must be at least 1, got {n_iter}", "e.g. --n-iter 20")


def sweep(options: TrainOptions, *, params: list[str] | tuple[str, ...] = (), n_iter: int = 10,
          cv: int = 5, nested: int | None = None, metric: str = "accuracy", n_jobs: int | None = None,
          budget: float | None = None, backend: str = "local", scheduler: str | None = None,
          output: Path | None = None, results: Path | None = None, dataset: str | None = None,
          train_images: Path | None = None, train_labels: Path | None = None,
          data_dir: Path | None = None,
          callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Search the parameter space *params* (--param specs) with *options* fixed.

    output: refit the best parameters on the whole training split and save the model there.
    results: also write every trial as CSV (JSON when the name ends in .json).
    callback(event): called per finished trial ({"stage": "trial", ...}) and outer fold.
    """
    from mnistlr.api.train import load_training_data, training_inputs
    from mnistlr.tuning import spaces
    from mnistlr.tuning.cv import SearchSetup, prepare_data

    specs = spaces.parse_params(list(params))
    _check_fixed(options, specs)
    _check_run(n_iter, cv, nested, n_jobs, budget, backend, scheduler)
    spaces.check_metric(metric)
    mode, candidates = spaces.candidates(specs, n_iter, options.seed)
    spaces.check_candidates(options, candidates, specs)
    inputs = training_inputs(dataset, train_images, train_labels, data_dir)
    _check_outputs(output, results, inputs)
    images, labels = load_training_data(dataset, train_images, train_labels, data_dir)
    X, y, base = prepare_data(images, labels, options)
    spaces.check_cv(y, cv)
    # the smallest training part of a fold (of an inner fold with --nested) sets the largest penalty
    n_fold = len(y) * (nested - 1) // nested if nested else len(y)
    spaces.check_penalties(base, candidates, specs, n_fold * (cv - 1) // cv)
    setup = SearchSetup(base, candidates, cv, metric, options.seed)
    report = {"mode": mode, "metric": metric, "greater_is_better": spaces.METRICS[metric],
              "cv": cv, "space": [s.describe() for s in specs], "n_candidates": len(candidates),
              "n_train": int(len(y)), "seed": options.seed, "backend": backend, "budget": budget}
    started = time.perf_counter()
    deadline = None if budget is None else started + budget
    # fold fits that can run at once: every candidate's folds (in each outer fold)
    n_tasks = len(candidates) * cv * (nested or 1)
    with Runner(X, y, n_jobs, backend, scheduler, n_tasks=n_tasks) as runner:
        report["n_jobs"] = runner.n_slots
        report["notes"] = [runner.note] if runner.note else []
        if runner.note and callback:
            callback({"stage": "note", "message": runner.note})
        report |= _run(runner, setup, y, nested, output is not None, deadline, callback)
    report["seconds"] = time.perf_counter() - started
    report["refit"] = None
    if output is not None:
        report["refit"] = _refit(images, labels, options, report, output, dataset, train_images, inputs)
    report["results"] = None if results is None else str(results)
    report = json_ready(report)
    if results is not None:
        write_results(report, Path(results), inputs)
    return report


def _run(runner, setup, y, nested: int | None, refit: bool, deadline, callback) -> dict[str, Any]:
    """The searches: nested CV when asked; a plain CV search unless nested without a refit."""
    from mnistlr.tuning.cv import cross_validate, nested_cross_validate

    out: dict[str, Any] = {"nested": None, "trials": [], "best": None, "budget_stopped": False}
    if nested is not None:
        out["nested"] = nested_cross_validate(runner, setup, y, nested, deadline, callback)
        out["budget_stopped"] = out["nested"]["budget_stopped"]
    if nested is None or refit:
        trials, stopped = cross_validate(runner, setup, y, deadline, callback)
        if not trials or trials[0].mean is None:
            first = next((t.error for t in trials if t.error), "no trial finished")
            raise MnistlrError(f"no trial of the sweep succeeded: {first}",
                               "check the fixed options and the parameter ranges")
        out["trials"] = [t.to_dict() for t in trials]
        out["best"] = out["trials"][0]
        out["budget_stopped"] = out["budget_stopped"] or stopped
    out["n_completed"] = len(out["trials"]) if out["trials"] else sum(
        len(f["trials"]) for f in out["nested"]["folds"])
    return out


def _refit(images, labels, options: TrainOptions, report: dict[str, Any], output: Path,
           dataset: str | None, train_images: Path | None, inputs: list[Path]) -> dict[str, Any]:
    """Train on the whole training split with the best parameters; meta["sweep"] keeps the CV results."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.persistence import save_model
    from mnistlr.tuning import spaces

    best = report["best"]
    name = None if train_images is not None else (dataset or "mnist")
    model = fit_model(images, labels, spaces.apply_params(options, best["params"]), dataset=name)
    model.meta["sweep"] = {key: report[key] for key in (
        "mode", "metric", "greater_is_better", "cv", "space", "n_candidates", "seed", "best",
        "trials", "nested", "budget_stopped")}
    save_model(model, output, inputs=inputs)
    return {"output": str(output), "params": best["params"],
            "train_accuracy": model.meta["metrics"]["train_accuracy"]}


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per trial (per outer fold and trial in nested mode)."""
    def flat(trial: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        row = extra | {"rank": trial["rank"], "trial": trial["trial"]}
        row |= {f"param_{k}": v for k, v in trial["params"].items()}
        row |= {f"fold_{i}": s for i, s in enumerate(trial["fold_scores"], 1)}
        return row | {"mean": trial["mean"], "std": trial["std"], "seconds": round(trial["seconds"], 4),
                      "error": trial["error"] or ""}

    rows = [flat(t, {"outer_fold": ""} if report["nested"] else {}) for t in report["trials"]]
    for fold in (report["nested"] or {}).get("folds", []):
        for t in fold["trials"]:
            chosen = t["trial"] == fold["trial"]
            rows.append(flat(t, {"outer_fold": fold["outer_fold"], "chosen": chosen,
                                 "outer_score": fold["outer_score"] if chosen else ""}))
    return rows


def write_results(report: dict[str, Any], path: Path, inputs: list[Path] | tuple = ()) -> None:
    """Every trial as CSV (JSON when *path* ends in .json), written atomically."""
    from mnistlr.io.atomic import write_text_atomic

    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps(report, indent=2) + "\n", inputs=inputs)
        return
    rows = _rows(report)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue(), inputs=inputs)
