"""Hyperparameter search: parameter specs, stratified K-fold, trials, nested CV.

A search fits every candidate (a dict of TrainOptions overrides) on the training
part of each fold and scores it on the held-out part. Work is cut into fold fits
(`FoldTask`s) run by a runner (`mnistlr.api.sweep.Runner`: joblib, loky or Dask) in waves,
so a time budget can stop it between waves. Every seed derives from the base seed
and the fold index, so the numbers never depend on how many workers ran them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mnistlr.errors import MnistlrError, TrainingError, UsageError
from mnistlr.training import SOLVERS, TrainOptions

SCALE_PARAMS = ("l2", "l1", "C", "lr", "tol")
FLOAT_PARAMS = ("l2", "l1", "C", "lr", "anneal", "tol")
INT_PARAMS = ("epochs", "batch_size", "patience", "max_iter")
CHOICE_PARAMS = {"solver": SOLVERS, "init": ("zeros", "normal"),
                 "preprocess": ("scale", "standardize", "center")}
SEARCHABLE = FLOAT_PARAMS + INT_PARAMS + tuple(CHOICE_PARAMS)
FIXED_PARAMS = ("model", "classes", "train_limit", "per_class", "val_size", "val_fraction", "seed")
SPEC_FORMS = ("NAME=log:LOW:HIGH, NAME=uniform:LOW:HIGH, NAME=int:LOW:HIGH, NAME=logint:LOW:HIGH, "
              "NAME=LOW:HIGH or NAME=V1,V2,...; e.g. --param l2=log:1e-6:1e-1")
# metric name → True when a higher score is better
METRICS = {"accuracy": True, "log_loss": False, "f1_macro": True, "roc_auc": True}


# ---------------------------------------------------------------- parameter specs

@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One searched parameter: a list of values, or a range sampled as `kind` says."""

    name: str
    kind: str                      # list | log | uniform | int | logint
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "list":
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "log":
            # log-uniform: exp(U(log a, log b))
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        # logint: round(exp(U(log(a − ½), log(b + ½)))) clipped to [a, b]
        draw = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
        return int(min(max(round(draw), self.low), self.high))

    def describe(self) -> str:
        if self.kind == "list":
            return f"{self.name}={','.join(map(str, self.values))}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}"


def _bad_spec(text: str, why: str) -> UsageError:
    return UsageError(f"--param '{text}': {why}", f"accepted forms: {SPEC_FORMS}")


def _number(text: str, raw: str, integer: bool) -> float | int:
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise _bad_spec(text, f"'{raw}' is not {kind}") from None
    if not math.isfinite(value):
        raise _bad_spec(text, f"'{raw}' is not a finite number")
    return value


def parse_param(text: str) -> ParamSpec:
    """Parse one --param value 'NAME=SPEC' (see SPEC_FORMS); UsageError naming the spec otherwise."""
    name, sep, spec = (part.strip() for part in text.partition("="))
    if not sep or not name or not spec:
        raise _bad_spec(text, "expected NAME=SPEC")
    if name in FIXED_PARAMS:
        flag = "--" + name.replace("_", "-")
        raise _bad_spec(text, f"'{name}' shapes the data or the run and is fixed for every trial; pass it as {flag}")
    if name not in SEARCHABLE:
        raise _bad_spec(text, f"'{name}' is not a searchable training option; use one of {', '.join(SEARCHABLE)}")
    if name in CHOICE_PARAMS:
        values = tuple(v.strip() for v in spec.split(","))
        bad = [v for v in values if v not in CHOICE_PARAMS[name]]
        if bad:
            raise _bad_spec(text, f"'{bad[0]}' is not one of {', '.join(CHOICE_PARAMS[name])}")
        return ParamSpec(name, "list", values)
    integer = name in INT_PARAMS
    prefix, _, rest = spec.partition(":")
    if prefix in ("log", "uniform", "int", "logint"):
        kind, bounds = prefix, rest.split(":")
    elif ":" in spec:
        kind, bounds = ("int" if integer else "log" if name in SCALE_PARAMS else "uniform"), spec.split(":")
    else:
        values = tuple(_number(text, v.strip(), integer) for v in spec.split(","))
        if any(v < 0 for v in values):
            raise _bad_spec(text, "values must be ≥ 0")
        return ParamSpec(name, "list", tuple(dict.fromkeys(values)))
    return _range_spec(text, name, kind, bounds, integer)


def _range_spec(text: str, name: str, kind: str, bounds: list[str], integer: bool) -> ParamSpec:
    if len(bounds) != 2:
        raise _bad_spec(text, f"a {kind} range needs exactly LOW:HIGH")
    if integer != (kind in ("int", "logint")):
        use = "int: or logint:" if integer else "log: or uniform:"
        raise _bad_spec(text, f"'{name}' is {'an integer' if integer else 'a real'} parameter; use {use}")
    low, high = (_number(text, b.strip(), integer) for b in bounds)
    if not low < high:
        raise _bad_spec(text, f"LOW ({low:g}) must be below HIGH ({high:g})")
    if kind in ("log", "logint") and low <= 0:
        raise _bad_spec(text, "a log range needs LOW > 0")
    if low < 0:
        raise _bad_spec(text, "values must be ≥ 0")
    return ParamSpec(name, kind, (), low, high)


def parse_params(texts: list[str]) -> list[ParamSpec]:
    """Parse every --param; a name given twice is a UsageError."""
    specs = [parse_param(t) for t in texts]
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--param {twice[0]} is given more than once", "give each parameter once")
    return specs


def candidates(specs: list[ParamSpec], n_iter: int, seed: int) -> tuple[str, list[dict[str, Any]]]:
    """('grid', every combination) when all specs are lists, else ('random', n_iter seeded draws)."""
    if all(s.kind == "list" for s in specs):
        combos = itertools.product(*(s.values for s in specs))
        return "grid", [dict(zip((s.name for s in specs), combo, strict=True)) for combo in combos]
    if n_iter < 1:
        raise UsageError(f"--n-iter must be at least 1, got {n_iter}", "e.g. --n-iter 20")
    rng = np.random.default_rng(derive_seed(seed, 0))
    return "random", [{s.name: s.sample(rng) for s in specs} for _ in range(n_iter)]


def apply_params(base: TrainOptions, params: dict[str, Any], seed: int | None = None) -> TrainOptions:
    """TrainOptions with *params* applied (searching C clears l2 and vice versa)."""
    changes = dict(params)
    if "C" in params:
        changes.setdefault("l2", None)
    if "l2" in params:
        changes.setdefault("C", None)
    if seed is not None:
        changes["seed"] = seed
    return dataclasses.replace(base, **changes)


def check_candidates(base: TrainOptions, cands: list[dict[str, Any]]) -> None:
    """Validate every candidate's options before any work (UsageError naming the parameters)."""
    for params in cands:
        try:
            apply_params(base, params).validate()
        except UsageError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "the fixed options"
            raise UsageError(f"parameters {shown}: {exc.message}", exc.hint) from None


def derive_seed(*keys: int) -> int:
    """A 32-bit seed determined by *keys* (base seed, stage, fold, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


# ---------------------------------------------------------------- stratified folds

def check_cv(y: np.ndarray, n_splits: int, option: str = "--cv") -> None:
    """UsageError unless 2 ≤ n_splits ≤ the smallest class count of labels y (n,)."""
    if n_splits < 2:
        raise UsageError(f"{option} must be at least 2, got {n_splits}", f"e.g. {option} 5")
    labels, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min())
    if n_splits > smallest:
        label = labels[int(np.argmin(counts))]
        raise UsageError(f"{option} {n_splits} is more than the {smallest} image(s) of class {label}",
                         f"use {option} {smallest} or fewer, or more training data")


def stratified_kfold(y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold: [(train_idx, test_idx)] with sorted int64 indices.

    Each class's samples are shuffled and dealt round-robin (continuing across classes),
    so per-class counts differ by at most one between folds, and so do fold sizes.
    """
    y = np.asarray(y)
    check_cv(y, n_splits)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])
    fold_of = np.empty(len(y), np.int64)
    fold_of[order] = np.arange(len(y)) % n_splits
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(n_splits)]


# ---------------------------------------------------------------- scoring

def score(model, X: np.ndarray, y: np.ndarray, metric: str) -> float:
    """*metric* of *model* on raw images X (n, ...) with labels y (n,)."""
    from mnistlr import metrics

    idx = metrics.label_indices(y, model.classes)
    if metric == "accuracy":
        return float((model.predict(X) == y).mean())
    if metric == "f1_macro":
        y_hat = metrics.label_indices(model.predict(X), model.classes)
        cm = metrics.confusion_matrix(idx, y_hat, model.n_classes)
        return float(metrics.precision_recall_f1(cm)["f1"].mean())
    P = model.predict_proba(X)
    if metric == "log_loss":
        return metrics.log_loss(idx, P)
    auc = metrics.roc_auc_ovr(idx, P)
    return float(np.nanmean(auc))


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UsageError(f"--metric '{metric}' is not one of {', '.join(METRICS)}",
                         f"use one of {', '.join(METRICS)}")


# ---------------------------------------------------------------- fold tasks

@dataclasses.dataclass(frozen=True)
class FoldTask:
    """Fit `options` on images[train_idx], score on images[test_idx]; key = (outer, trial, fold)."""

    key: tuple[int, int, int]
    options: TrainOptions
    train_idx: np.ndarray
    test_idx: np.ndarray
    metric: str


def _set_numba_threads(n_threads: int | None) -> None:
    """Numba threads for this worker: given, or the machine's cores ÷ this Dask worker's threads."""
    import numba

    if n_threads is None:
        import joblib

        try:
            from distributed import get_worker

            n_threads = max(1, joblib.cpu_count() // get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            n_threads = 1
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))


def run_fold(images: np.ndarray, labels: np.ndarray, task: FoldTask,
             n_threads: int | None) -> dict[str, Any]:
    """Worker body: fit and score one fold; a training failure is returned, not raised."""
    from mnistlr.training import fit_model

    _set_numba_threads(n_threads)
    started = time.perf_counter()
    try:
        model = fit_model(images[task.train_idx], labels[task.train_idx], task.options)
        value = score(model, images[task.test_idx], labels[task.test_idx], task.metric)
        error = None if math.isfinite(value) else "the score is not finite"
    except MnistlrError as exc:
        value, error = float("nan"), str(exc)
    return {"key": task.key, "score": value, "error": error,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- waves under a budget

def run_groups(runner, groups: list[list[FoldTask]], deadline: float | None,
               on_group: Callable[[int, list[dict]], None]) -> bool:
    """Run groups of tasks (one group = one trial's folds) in waves of ≥ n_slots tasks.

    Without a deadline everything is one wave. Before each wave, stop when the clock would pass *deadline* (time.perf_counter())
    by the end of it, judging by the last wave; the first wave always runs. Calls
    on_group(index, results) as each group completes; returns True when the budget stopped it.
    """
    index, last_wave = 0, 0.0
    while index < len(groups):
        if deadline is not None and index and time.perf_counter() + last_wave > deadline:
            return True
        wave: list[int] = []
        # without a budget, one wave of everything keeps every worker busy to the end
        while index < len(groups) and (not wave or deadline is None
                                       or sum(len(groups[g]) for g in wave) < runner.n_slots):
            wave.append(index)
            index += 1
        started = time.perf_counter()
        pending, buffer = iter(wave), []
        current = next(pending)
        for result in runner.run([task for g in wave for task in groups[g]]):
            buffer.append(result)
            if len(buffer) == len(groups[current]):
                on_group(current, buffer)
                current, buffer = next(pending, -1), []
        last_wave = time.perf_counter() - started
    return False


# ---------------------------------------------------------------- trials and searches

@dataclasses.dataclass
class Trial:
    """One candidate's cross-validated scores."""

    trial: int
    params: dict[str, Any]
    fold_scores: list[float]
    mean: float | None
    std: float | None
    seconds: float
    error: str | None = None
    rank: int | None = None

    @classmethod
    def from_results(cls, trial: int, params: dict[str, Any], results: list[dict]) -> Trial:
        scores = [float(r["score"]) if math.isfinite(r["score"]) else None for r in results]
        errors = [r["error"] for r in results if r["error"]]
        seconds = float(sum(r["seconds"] for r in results))
        if errors:
            return cls(trial, params, scores, None, None, seconds, errors[0])
        # mean and (population) standard deviation over the folds, as scikit-learn reports them
        return cls(trial, params, scores, float(np.mean(scores)), float(np.std(scores)), seconds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rank_trials(trials: list[Trial], greater_is_better: bool) -> list[Trial]:
    """Trials best first (ties: lower trial index first; failed trials last), ranks set."""
    sign = -1.0 if greater_is_better else 1.0
    ordered = sorted(trials, key=lambda t: (t.mean is None, sign * (t.mean or 0.0), t.trial))
    for rank, trial in enumerate(ordered, 1):
        trial.rank = rank if trial.mean is not None else None
    return ordered


@dataclasses.dataclass
class SearchSetup:
    """What every fit of a search shares."""

    base: TrainOptions            # fixed options, data subsetting cleared (already applied)
    candidates: list[dict[str, Any]]
    cv: int
    metric: str
    seed: int


def prepare_data(images, labels, base: TrainOptions) -> tuple[np.ndarray, np.ndarray, TrainOptions]:
    """Apply --train-limit/--classes/--per-class once, exactly as `train` does.

    Returns images (n, rows, cols), labels (n,) and the options with the subsetting cleared.
    """
    from mnistlr.errors import DataError
    from mnistlr.training import subset

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"training images {images.shape} and labels {labels.shape} do not fit",
                        "give an IDX images file (n, rows, cols) and its labels file")
    images, labels = subset(images, labels, base, np.random.default_rng(base.seed))
    if len(np.unique(labels)) < 2:
        raise TrainingError("the training data holds a single class", "check --classes and the labels file")
    cleared = dataclasses.replace(base, train_limit=None, classes=None, per_class=None)
    return np.ascontiguousarray(images), np.ascontiguousarray(labels), cleared


def _trial_groups(setup: SearchSetup, labels: np.ndarray, part: np.ndarray, outer: int) -> list[list[FoldTask]]:
    """Fold tasks of every candidate on the samples *part* (indices); fold seeds shared by all trials."""
    splits = stratified_kfold(labels[part], setup.cv, derive_seed(setup.seed, 2, outer))
    seeds = [derive_seed(setup.seed, 3, outer, f) for f in range(setup.cv)]
    return [[FoldTask((outer, t, f), apply_params(setup.base, params, seeds[f]), part[tr], part[te],
                      setup.metric) for f, (tr, te) in enumerate(splits)]
            for t, params in enumerate(setup.candidates)]


def cross_validate(runner, setup: SearchSetup, labels: np.ndarray, deadline: float | None = None,
                   callback: Callable[[dict], None] | None = None) -> tuple[list[Trial], bool]:
    """Every candidate's K-fold scores on all of *labels*' samples: (ranked trials, budget_stopped)."""
    groups = _trial_groups(setup, labels, np.arange(len(labels)), 0)
    trials: list[Trial] = []

    def done(g: int, results: list[dict]) -> None:
        trials.append(Trial.from_results(g, setup.candidates[g], results))
        if callback:
            callback({"stage": "trial", "outer_fold": None, **trials[-1].to_dict()})

    stopped = run_groups(runner, groups, deadline, done)
    return rank_trials(trials, METRICS[setup.metric]), stopped


def nested_cross_validate(runner, setup: SearchSetup, labels: np.ndarray, n_outer: int,
                          deadline: float | None = None,
                          callback: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Nested CV: per outer fold, an inner K-fold search on its training part picks parameters,
    refitted on that whole part and scored on the outer test part.

    Returns {folds: [{outer_fold, trial, params, inner_mean, outer_score, trials}], outer_scores,
    mean, std, agreement: {params, count, of}, budget_stopped}. Under a budget, outer folds
    without any finished inner trial are dropped; the outer refits always run.
    """
    check_cv(labels, n_outer, "--nested")
    outer = stratified_kfold(labels, n_outer, derive_seed(setup.seed, 1))
    for train_part, _ in outer:
        check_cv(labels[train_part], setup.cv)
    groups, owner = [], []
    for o, (train_part, _) in enumerate(outer, 1):
        fold_groups = _trial_groups(setup, labels, train_part, o)
        groups += fold_groups
        owner += [(o, t) for t in range(len(fold_groups))]
    inner: dict[int, list[Trial]] = {o: [] for o in range(1, n_outer + 1)}

    def done(g: int, results: list[dict]) -> None:
        o, t = owner[g]
        inner[o].append(Trial.from_results(t, setup.candidates[t], results))
        if callback:
            callback({"stage": "trial", "outer_fold": o, **inner[o][-1].to_dict()})

    stopped = run_groups(runner, groups, deadline, done)
    folds = _outer_refits(runner, setup, outer, inner, callback)
    if not folds:
        raise TrainingError("no inner search finished a trial", "raise --budget or reduce the search")
    return _nested_summary(folds, n_outer, stopped)


def _outer_refits(runner, setup, outer, inner, callback) -> list[dict[str, Any]]:
    """Refit each outer fold's best inner candidate on its training part; score the test part."""
    chosen, tasks = [], []
    for o, (train_part, test_part) in enumerate(outer, 1):
        ranked = rank_trials(inner[o], METRICS[setup.metric])
        if not ranked or ranked[0].mean is None:
            continue
        best = ranked[0]
        options = apply_params(setup.base, best.params, derive_seed(setup.seed, 4, o))
        tasks.append(FoldTask((o, best.trial, -1), options, train_part, test_part, setup.metric))
        chosen.append((o, best, ranked))
    folds = []
    for (o, best, ranked), result in zip(chosen, list(runner.run(tasks)), strict=True):
        fold = {"outer_fold": o, "trial": best.trial, "params": best.params, "inner_mean": best.mean,
                "inner_std": best.std, "outer_score": None if result["error"] else result["score"],
                "error": result["error"], "seconds": result["seconds"],
                "trials": [t.to_dict() for t in ranked]}
        folds.append(fold)
        if callback:
            callback({"stage": "outer", **{k: v for k, v in fold.items() if k != "trials"}})
    return folds


def _nested_summary(folds: list[dict[str, Any]], n_outer: int, stopped: bool) -> dict[str, Any]:
    scores = [f["outer_score"] for f in folds if f["outer_score"] is not None]
    picks = [f["trial"] for f in folds]
    modal = max(sorted(set(picks)), key=picks.count)
    return {
        "outer_folds": n_outer, "folds": folds, "outer_scores": scores,
        # mean ± (population) std of the outer test scores
        "mean": float(np.mean(scores)) if scores else None,
        "std": float(np.std(scores)) if scores else None,
        "agreement": {"trial": modal, "params": folds[picks.index(modal)]["params"],
                      "count": picks.count(modal), "of": len(folds)},
        "budget_stopped": stopped,
    }
