"""mnistlr.tuning.cv: trials from fold results, ranking by the metric's direction, budget waves."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from mnistlr.tuning import cv, spaces

# ---------------------------------------------------------------- trials and ranking

def _trial(i, mean, error=None):
    return cv.Trial(i, {"l2": i}, [mean] * 2, None if error else mean, None if error else 0.0, 0.1, error)


def test_ranking_follows_the_metric_direction():
    trials = [_trial(0, 0.3), _trial(1, 0.1, error="diverged"), _trial(2, 0.2), _trial(3, 0.2)]
    best_high = cv.rank_trials(trials, greater_is_better=True)
    assert [t.trial for t in best_high] == [0, 2, 3, 1] and best_high[-1].rank is None
    best_low = cv.rank_trials(trials, greater_is_better=False)
    assert [t.trial for t in best_low] == [2, 3, 0, 1] and [t.rank for t in best_low[:3]] == [1, 2, 3]


def test_trial_from_results_mean_std_and_failures():
    ok = cv.Trial.from_results(4, {"l2": 1}, [{"score": s, "error": None, "seconds": 0.5} for s in (0.8, 0.9)])
    assert ok.mean == pytest.approx(0.85) and ok.std == pytest.approx(0.05) and ok.seconds == 1.0
    bad = cv.Trial.from_results(5, {}, [{"score": 0.9, "error": None, "seconds": 0},
                                            {"score": float("nan"), "error": "diverged", "seconds": 0}])
    assert bad.mean is None and bad.error == "diverged" and bad.fold_scores == [0.9, None]


class _SleepyRunner:
    """Stands in for Runner: each task sleeps, results come back in task order."""

    n_slots = 2

    def __init__(self, seconds):
        self.seconds, self.waves = seconds, []

    def run(self, tasks):
        tasks = list(tasks)  # the runner gets an iterable (made lazily); count this wave's tasks
        self.waves.append(len(tasks))
        for task in tasks:
            time.sleep(self.seconds)
            yield {"key": task, "score": 1.0, "error": None, "seconds": self.seconds}


def test_run_groups_waves_and_budget():
    groups = [[(t, f) for f in range(3)] for t in range(40)]
    seen = []
    runner = _SleepyRunner(0.02)
    started = time.perf_counter()
    stopped = cv.run_groups(runner, groups, started + 0.5, lambda g, r: seen.append((g, len(r))))
    elapsed = time.perf_counter() - started
    assert stopped and 0 < len(seen) < 40
    assert seen == [(g, 3) for g in range(len(seen))]        # whole trials, in order
    assert set(runner.waves) == {3}                          # ≥ n_slots tasks, whole trials
    assert elapsed <= 0.5 * 1.2
    runner = _SleepyRunner(0.0)
    assert not cv.run_groups(runner, groups[:5], None, lambda g, r: None)
    assert runner.waves == [15]                              # no budget: a single wave


def test_the_first_wave_always_runs():
    seen = []
    assert cv.run_groups(_SleepyRunner(0.0), [[1], [2], [3]], time.perf_counter() - 1,
                             lambda g, r: seen.append(g))
    assert seen == [0, 1]                                    # one wave of ≥ 2 tasks, then the budget


def test_fixed_param_values_are_not_nan():
    spec = spaces.parse_param("tol=log:1e-6:1e-2")
    rng = np.random.default_rng(0)
    assert all(math.isfinite(spec.sample(rng)) for _ in range(100))
