"""Cross-validation runs of a search: fold tasks, waves under a budget, trials, nested CV.

Work is cut into fold fits (`FoldTask`s) run by a runner (`mnistlr.api.sweep.Runner`:
joblib, loky or Dask) in waves, so a time budget can stop it between waves; each
candidate's fold scores become a `Trial`, and trials are ranked by the search metric.
Every seed derives from the base seed and the fold index (`mnistlr.tuning.spaces.derive_seed`),
so the numbers never depend on how many workers ran them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mnistlr.errors import MnistlrError, TrainingError
from mnistlr.learn.options import TrainOptions
from mnistlr.tuning.spaces import (
    METRICS,
    apply_params,
    check_cv,
    derive_seed,
    score,
    stratified_kfold,
)

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
    from mnistlr.learn.kernels.setup import set_num_threads

    if n_threads is None:
        import joblib

        try:
            from distributed import get_worker

            n_threads = max(1, joblib.cpu_count() // get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            n_threads = 1
    set_num_threads(n_threads)


def run_fold(images: np.ndarray, labels: np.ndarray, task: FoldTask,
             n_threads: int | None) -> dict[str, Any]:
    """Worker body: fit and score one fold; a training failure is returned, not raised."""
    from mnistlr.learn.fit import fit_model

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
    if deadline is None:  # one wave of everything keeps every worker busy to the end
        _run_wave(runner, groups, range(len(groups)), on_group)
        return False
    index, last_wave = 0, 0.0
    while index < len(groups):
        if index and time.perf_counter() + last_wave > deadline:
            return True
        wave: list[int] = []
        while index < len(groups) and (not wave or sum(len(groups[g]) for g in wave) < runner.n_slots):
            wave.append(index)
            index += 1
        started = time.perf_counter()
        _run_wave(runner, groups, wave, on_group)
        last_wave = time.perf_counter() - started
    return False


def _run_wave(runner, groups: Sequence[list[FoldTask]], wave: Sequence[int],
              on_group: Callable[[int, list[dict]], None]) -> None:
    """Run the groups *wave* (indices into *groups*); each group's tasks are made as the runner
    asks for them (joblib dispatches a few ahead), and dropped once its results are in."""
    made: list[tuple[int, int]] = []   # (group, tasks) in dispatch order, not yet reported

    def tasks():
        for g in wave:
            group = groups[g]
            made.append((g, len(group)))
            yield from group

    buffer: list[dict] = []
    for result in runner.run(tasks()):
        buffer.append(result)
        if len(buffer) == made[0][1]:
            on_group(made.pop(0)[0], buffer)
            buffer = []


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
    candidates: Sequence[dict[str, Any]]   # a lazy spaces.Candidates in a sweep
    cv: int
    metric: str
    seed: int


def prepare_data(images, labels, base: TrainOptions) -> tuple[np.ndarray, np.ndarray, TrainOptions]:
    """Apply --train-limit/--classes/--per-class once, exactly as `train` does.

    Returns images (n, rows, cols), labels (n,) and the options with the subsetting cleared.
    """
    from mnistlr.errors import DataError
    from mnistlr.learn.fit import subset

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"training images {images.shape} and labels {labels.shape} do not fit",
                        "give an IDX images file (n, rows, cols) and its labels file")
    images, labels = subset(images, labels, base, np.random.default_rng(base.seed))
    if len(np.unique(labels)) < 2:
        raise TrainingError("the training data holds a single class", "check `classes` and the labels file")
    cleared = dataclasses.replace(base, train_limit=None, classes=None, per_class=None)
    return np.ascontiguousarray(images), np.ascontiguousarray(labels), cleared


class TrialGroups(Sequence):
    """The fold tasks of every candidate on the samples of each part (one part per outer fold):
    group g is candidate g % n_candidates on part g // n_candidates, made when asked for (a search
    of 10⁸ candidates holds only the groups running). Fold splits and seeds are shared by all trials."""

    def __init__(self, setup: SearchSetup, labels: np.ndarray, parts: list[tuple[int, np.ndarray]]):
        self.setup, self.per_part = setup, len(setup.candidates)
        self.parts = []
        for outer, part in parts:
            splits = [(part[tr], part[te]) for tr, te in
                      stratified_kfold(labels[part], setup.cv, derive_seed(setup.seed, 2, outer))]
            seeds = [derive_seed(setup.seed, 3, outer, f) for f in range(setup.cv)]
            self.parts.append((outer, splits, seeds))

    def __len__(self) -> int:
        return self.per_part * len(self.parts)

    def owner(self, g: int) -> tuple[int, int]:
        """(outer fold, trial) of group *g*."""
        return self.parts[g // self.per_part][0], g % self.per_part

    def __getitem__(self, g: int) -> list[FoldTask]:
        outer, splits, seeds = self.parts[g // self.per_part]
        t = g % self.per_part
        params = self.setup.candidates[t]
        return [FoldTask((outer, t, f), apply_params(self.setup.base, params, seeds[f]), tr, te, self.setup.metric)
                for f, (tr, te) in enumerate(splits)]


def cross_validate(runner, setup: SearchSetup, labels: np.ndarray, deadline: float | None = None,
                   callback: Callable[[dict], None] | None = None) -> tuple[list[Trial], bool]:
    """Every candidate's K-fold scores on all of *labels*' samples: (ranked trials, budget_stopped)."""
    groups = TrialGroups(setup, labels, [(0, np.arange(len(labels)))])
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
    groups = TrialGroups(setup, labels, [(o, train_part) for o, (train_part, _) in enumerate(outer, 1)])
    inner: dict[int, list[Trial]] = {o: [] for o in range(1, n_outer + 1)}

    def done(g: int, results: list[dict]) -> None:
        o, t = groups.owner(g)
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
