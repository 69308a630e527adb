"""The fit contest: mnistlr's `fit_model` and scikit-learn's classifiers on the same data, interleaved.

mnistlr gets the raw uint8 images (its preprocessing is part of its time); scikit-learn
gets what it would be handed in practice, x/255 as float64, prepared outside its timing.
Rounds run every contender once in turn, so a busy spell on a shared machine hits all
of them; cheap fits are repeated and the best time kept.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from report import FitResult

REPEAT_UNDER = 20.0   # seconds: fits faster than this are repeated and their best time kept (--repeat-under)


@dataclasses.dataclass
class Dataset:
    """Train and test images (n, rows, cols) uint8 with labels (n,)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def scaled(self, X: np.ndarray) -> np.ndarray:
        """x/255 as float64 (n, rows·cols): the input scikit-learn gets."""
        return X.reshape(len(X), -1) / 255.0


@dataclasses.dataclass
class Contender:
    """name; family: the mnistlr model a peer is compared with; fit(data) → fitted classifier."""

    name: str
    family: str
    is_mnistlr: bool
    fit: Callable[[Any], Any]
    probabilistic: bool = True
    min_runs: int = 1        # fits always repeated this often (rounds permitting), however slow
    # a peer fitted in another process (bench/peers.py): external(data) → {"seconds", "cpu_seconds",
    # "n_iter", "accuracy", "log_loss"}, its own warm-up and timing inside; fit is then unused
    external: Callable[[Any], dict] | None = None


def mnistlr_contenders(models: tuple[str, ...] = ("softmax", "ridge")) -> list[Contender]:
    """mnistlr with default options: `fit_model(images, labels, TrainOptions(model=...))`."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    def fitter(model: str):
        return lambda d: fit_model(d.X_train, d.y_train, TrainOptions(model=model))

    return [Contender(f"mnistlr {m}", "ridge" if m == "ridge" else "softmax", True, fitter(m),
                      probabilistic=m != "ridge") for m in models]


def sklearn_contenders() -> list[Contender]:
    """The peers, with scikit-learn's defaults (SGD seeded so runs agree)."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier

    return [
        Contender("LogisticRegression()", "softmax", False,
                  lambda d: LogisticRegression().fit(d.X64, d.y_train), min_runs=2),
        Contender('LogisticRegression(solver="newton-cg")', "softmax", False,
                  lambda d: LogisticRegression(solver="newton-cg").fit(d.X64, d.y_train)),
        Contender("RidgeClassifier()", "ridge", False,
                  lambda d: RidgeClassifier().fit(d.X64, d.y_train), probabilistic=False, min_runs=2),
        Contender('SGDClassifier(loss="log_loss")', "softmax", False,
                  lambda d: SGDClassifier(loss="log_loss", random_state=0).fit(d.X64, d.y_train)),
    ]


# The penalty rows (issue 15): pure L1 at l1 = 1e-4 on the mean loss, i.e. scikit-learn's C = 1/(l1·n)
# on its summed loss; and the penalty chosen automatically, by mnistlr's path or by LogisticRegressionCV.
# The peers' iteration caps and tolerances are scikit-learn's defaults, stated so the rows say where they
# stopped: saga at most 100 epochs (tol 1e-4 on the weights' change), LogisticRegressionCV's lbfgs at most
# 100 iterations per fold and C (tol 1e-4), 10 Cs × 3 folds + one refit, one process (n_jobs=None).
L1 = 1e-4
SAGA_MAX_ITER, CV_MAX_ITER, PEER_TOL = 100, 100, 1e-4


def penalty_contenders(peers: bool = True) -> list[Contender]:
    """mnistlr `--l1 1e-4 --l2 0` vs saga at the same penalty, `--l2 auto` vs LogisticRegressionCV(Cs=10, cv=3)."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    out = [Contender("mnistlr softmax --l1 1e-4 --l2 0", "l1", True,
                     lambda d: fit_model(d.X_train, d.y_train, TrainOptions(l1=L1, l2=0.0))),
           Contender("mnistlr softmax --l2 auto", "auto-l2", True,
                     lambda d: fit_model(d.X_train, d.y_train, TrainOptions(l2="auto")))]
    if not peers:
        return out
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    return out + [
        Contender('LogisticRegression(penalty="l1", solver="saga")', "l1", False,
                  # sklearn: C·Σ CE + ‖W‖₁ ≡ mean CE + l1‖W‖₁ with C = 1/(l1·n)
                  lambda d: LogisticRegression(penalty="l1", solver="saga", C=1.0 / (L1 * len(d.y_train)),
                                               max_iter=SAGA_MAX_ITER, tol=PEER_TOL,
                                               random_state=0).fit(d.X64, d.y_train)),
        Contender("LogisticRegressionCV(Cs=10, cv=3)", "auto-l2", False,
                  lambda d: LogisticRegressionCV(Cs=10, cv=3, solver="lbfgs", max_iter=CV_MAX_ITER,
                                                 tol=PEER_TOL).fit(d.X64, d.y_train)),
    ]


def gd_contenders() -> list[Contender]:
    """`train --solver gd` with its defaults (issue 15's target ≥ 0.915; --accel nesterov, 100 annealed epochs, ~3.5 CPU s)."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    return [Contender("mnistlr softmax --solver gd", "gd", True,
                      lambda d: fit_model(d.X_train, d.y_train, TrainOptions(solver="gd")))]


# The objective's minimiser, beside the fast peers: their target asks for a test log-loss no higher
# than the fastest peer's, and test log-loss follows where a solver stops (an early stop on the plain
# path can score lower than the exact minimiser). This row says what the minimiser itself scores.
CONVERGED_TOL, CONVERGED_MAX_ITER = 1e-7, 1000


def converged_contender() -> Contender:
    """mnistlr softmax run to the minimiser of its objective (`--tol 1e-7 --max-iter 1000`); a reference, not a rival."""
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    options = TrainOptions(tol=CONVERGED_TOL, max_iter=CONVERGED_MAX_ITER)
    tol = f"{CONVERGED_TOL:g}".replace("e-0", "e-")
    return Contender(f"mnistlr softmax --tol {tol} --max-iter {CONVERGED_MAX_ITER}", "converged", True,
                     lambda d: fit_model(d.X_train, d.y_train, options))


class _Inputs:
    """What a fit function sees: uint8 images for mnistlr, X64 = x/255 float64 for scikit-learn."""

    def __init__(self, data: Dataset):
        self.X_train, self.y_train, self._data = data.X_train, data.y_train, data
        self._X64 = None

    @property
    def X64(self) -> np.ndarray:
        """x/255 float64, made on first use (only scikit-learn's contenders need it)."""
        if self._X64 is None:
            self._X64 = self._data.scaled(self._data.X_train)
        return self._X64


def score(contender: Contender, model: Any, data: Dataset, X_test64: np.ndarray) -> tuple[float, float | None]:
    """Test accuracy and log-loss (scikit-learn's metrics) of a fitted contender."""
    from sklearn.metrics import accuracy_score, log_loss

    if contender.external is not None:     # scored by the peer's own process
        return model["accuracy"], model["log_loss"]
    X = data.X_test if contender.is_mnistlr else X_test64
    accuracy = float(accuracy_score(data.y_test, model.predict(X)))
    if not contender.probabilistic:
        return accuracy, None
    P = np.asarray(model.predict_proba(X), dtype=np.float64)
    # float32 probabilities summed in float64 can miss 1 by ~1e-7; renormalise before scoring
    P /= P.sum(axis=1, keepdims=True)
    return accuracy, float(log_loss(data.y_test, P, labels=np.asarray(model.classes_ if hasattr(model, "classes_")
                                                                       else model.classes)))


def contest(data: Dataset, contenders: list[Contender], repeat: int, repeat_under: float,
            log: Callable[[str], None]) -> tuple[list[FitResult], dict[str, Any]]:
    """Fit every contender on *data*, round-robin; returns the results and mnistlr's fitted models.

    Round 1 fits everyone; rounds 2..repeat refit only contenders whose first fit took less
    than *repeat_under* seconds. The first fit's model is the one scored.
    """
    inputs = _Inputs(data)
    X_test64 = data.scaled(data.X_test)
    warm_up(data, contenders)
    seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
    inner: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    models: dict[str, Any] = {}
    for round_no in range(repeat):
        for c in contenders:
            done = seconds[c.name]
            if round_no and done[0] >= repeat_under and len(done) >= c.min_runs:
                continue
            if c.external is not None:
                model = c.external(data)
                elapsed = model["seconds"]
                cpu[c.name].append(model["cpu_seconds"])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # scikit-learn's ConvergenceWarning at max_iter
                    started, cpu_started = time.perf_counter(), time.process_time()
                    model = c.fit(inputs)
                    elapsed = time.perf_counter() - started
                cpu[c.name].append(time.process_time() - cpu_started)
            done.append(elapsed)
            if c.is_mnistlr:
                inner[c.name].append(model.meta["seconds"])
            models.setdefault(c.name, model)
            log(f"  {data.name}: {c.name} round {round_no + 1}: {elapsed:.3f} s")
    results = []
    for c in contenders:
        accuracy, loss = score(c, models[c.name], data, X_test64)
        runs = seconds[c.name]
        # preprocessing + solver time of the fastest run (the rest: split, metrics, class means, hash)
        best = runs.index(min(runs))
        core = inner[c.name][best] if inner[c.name] else None
        f = _objective(c, models[c.name], inputs)
        results.append(FitResult(data.name, c.name, c.family, c.is_mnistlr, runs, accuracy, loss,
                                 note=_note(c, models[c.name]) + ("" if f is None else f", f {f:.5f}"),
                                 core_seconds=core, cpu_seconds=cpu[c.name][best], objective=f))
    return results, {c.name: models[c.name] for c in contenders if c.is_mnistlr}


def training_objective(contender: Contender, model: Any, inputs: _Inputs, l1: float = 0.0,
                       l2: float = 0.0) -> float:
    """One training objective for every fit: f = mean cross-entropy + (l2/2)·‖W‖² + l1·‖W‖₁, W on x/255, b free.

    The cross-entropy from each model's own predict_proba on its training inputs, W from its
    weights on x/255 (mnistlr's W with its default preprocessing, scale; scikit-learn's coef_);
    scikit-learn's C·Σ CE + ‖W‖₁ divided by C·n is the L1 rows' f. The fast peers compute the
    same f in their own process (bench/peer_fit.py).
    """
    if contender.is_mnistlr:
        P, W = model.predict_proba(inputs.X_train), model.W
    else:
        P, W = model.predict_proba(inputs.X64), model.coef_
    labels = np.searchsorted(np.asarray(model.classes_ if hasattr(model, "classes_") else model.classes),
                             inputs.y_train)
    return penalised_cross_entropy(P, labels, W, l1=l1, l2=l2)


def penalised_cross_entropy(P, labels, W, l1: float = 0.0, l2: float = 0.0) -> float:
    """f from probabilities P (n, n_classes) (renormalised in float64), label columns (n,) and W."""
    P, W = np.asarray(P, dtype=np.float64), np.asarray(W, dtype=np.float64)
    # f = −(1/n) Σ log p_{i,y_i} + (l2/2)‖W‖² + l1·Σ|W|
    return float(-np.mean(np.log(P[np.arange(len(labels)), labels] / P.sum(axis=1))) + 0.5 * l2 * np.vdot(W, W)
                 + l1 * np.abs(W).sum())


def _objective(contender: Contender, model: Any, inputs: _Inputs) -> float | None:
    """f of the rows that share one objective: the L1 rows, and mnistlr softmax with the fast peers."""
    if contender.external is not None:
        return model.get("objective")
    if contender.family == "l1":
        return training_objective(contender, model, inputs, l1=L1)
    if contender.is_mnistlr and contender.family in ("softmax", "converged") and model.params.get("l1", 0.0) == 0.0:
        return training_objective(contender, model, inputs, l2=float(model.params["l2"]))
    return None


def warm_up(data: Dataset, contenders: list[Contender], n: int = 2048) -> None:
    """Fit each contender once on *n* images, so one-off costs (imports, loading Numba's cache, from 1,024 rows
    the parallel kernels too) stay untimed."""
    small = _Inputs(Dataset(data.name, data.X_train[:n], data.y_train[:n], data.X_test[:0], data.y_test[:0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in contenders:
            if c.external is None:
                c.fit(small)


def _note(contender: Contender, model: Any) -> str:
    """Iterations run, when the fitted model says; the share of exact zeros of an L1 fit; a chosen penalty."""
    if contender.external is not None:
        return f"{model['n_iter']} it"
    if contender.is_mnistlr:
        n_iter = model.meta.get("n_iter")
        notes = [f"{n_iter} it" if model.params.get("solver") != "closed" and n_iter else ""]
        weights = model.W
    else:
        n_iter = getattr(model, "n_iter_", None)
        cap = getattr(model, "max_iter", None)
        # "(cap)": some fit stopped at max_iter, not by its tolerance
        notes = ["" if n_iter is None else f"{int(np.max(n_iter))} it" + (" (cap)" if cap and np.max(n_iter) >= cap
                                                                           else "")]
        weights = getattr(model, "coef_", None)
    if contender.family == "l1" and weights is not None:
        notes.append(f"{float(np.mean(np.asarray(weights) == 0)):.0%} zero")
    if contender.family == "auto-l2":
        # mnistlr's chosen l2 (on the mean loss), scikit-learn's chosen C (l2 = 1/(C·n))
        notes.append(f"l2 {model.params['l2']:.2g}" if contender.is_mnistlr else f"C {float(model.C_[0]):.3g}")
    return ", ".join(n for n in notes if n)
