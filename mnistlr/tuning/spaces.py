"""Hyperparameter search: parameter specs and sampling, stratified K-fold, scoring.

A search fits every candidate (a dict of TrainOptions overrides) on the training
part of each fold and scores it on the held-out part. This module holds what a
search is made of: the --param specs and the candidates drawn from them, seeds
derived from the base seed, stratified folds and the scoring metrics; running the
fits (fold tasks, waves under a budget, trials, nested CV) is in `mnistlr.tuning.cv`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnistlr.errors import UsageError
from mnistlr.learn.options import (
    INITS,
    MAX_BATCH,
    MAX_L2,
    MAX_STEPS,
    PREPROCESSING,
    READ_BY,
    SOLVERS,
    TrainOptions,
    option_default,
    read_by_text,
)
from mnistlr.learn.splits import check_cv, derive_seed, stratified_kfold  # noqa: F401  (the search's folds)

SCALE_PARAMS = ("l2", "l1", "C", "lr", "tol")
FLOAT_PARAMS = ("l2", "l1", "C", "lr", "anneal", "tol")
INT_PARAMS = ("epochs", "batch_size", "patience", "max_iter")
CHOICE_PARAMS = {"solver": SOLVERS, "init": INITS, "preprocess": PREPROCESSING}
SEARCHABLE = FLOAT_PARAMS + INT_PARAMS + tuple(CHOICE_PARAMS) + ("features",)
FIXED_PARAMS = ("model", "classes", "train_limit", "per_class", "val_size", "val_fraction", "seed")
SPEC_FORMS = ("NAME=log:LOW:HIGH, NAME=uniform:LOW:HIGH, NAME=int:LOW:HIGH, NAME=logint:LOW:HIGH, "
              "NAME=LOW:HIGH or NAME=V1,V2,...; e.g. --param l2=log:1e-6:1e-1; "
              "features=PIPELINE|PIPELINE... where a step's number may be a range, "
              "e.g. features=deskew,rff:4000:log:0.005:0.05")
RANGE_KINDS = ("log", "uniform", "int", "logint")
# The largest value an integer parameter (or a feature step's whole number) may be searched up to.
INT_LIMITS = {"epochs": MAX_STEPS, "max_iter": MAX_STEPS, "patience": MAX_STEPS, "batch_size": MAX_BATCH}
# The most candidates a search may have (a grid's combinations, --n-iter): far more than can run,
# so a sweep is stopped by its --budget; candidates are made one at a time, never all at once.
MAX_CANDIDATES = 10**12
# metric name → True when a higher score is better
METRICS = {"accuracy": True, "log_loss": False, "f1_macro": True, "roc_auc": True}


# ---------------------------------------------------------------- parameter specs

@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One searched parameter: a list of values, or a range sampled as `kind` says."""

    name: str
    kind: str                      # list | log | uniform | int | logint | pipelines
    values: tuple = ()             # pipelines: templates ((step name, (argument, ...)), ...)
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "pipelines":
            template = self.values[int(rng.integers(len(self.values)))]
            return _fill(template, rng)
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
        if self.kind == "pipelines":
            return f"{self.name}={'|'.join(_template_text(t) for t in self.values)}"
        if self.kind == "list":
            separator = "|" if self.name == "features" else ","
            return f"{self.name}={separator.join(map(str, self.values))}"
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
    if name == "features":
        return _features_spec(text, spec)
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
        _check_most(text, name, max(values), integer)
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
    _check_most(text, name, high, integer)
    return ParamSpec(name, kind, (), low, high)


def _check_most(text: str, name: str, value: float | int, integer: bool) -> None:
    """Refuse a value past what the parameter can take (before any draw: numpy's integers are
    64-bit, and a `features` step's whole number is capped too)."""
    from mnistlr.learn.features import MAX_FEATURES, MAX_GAMMA
    from mnistlr.learn.nystroem import MAX_LANDMARKS

    step_most = MAX_LANDMARKS if name == "nystroem" else MAX_FEATURES
    float_most = {"l2": MAX_L2, "l1": MAX_L2, "rff": MAX_GAMMA, "nystroem": MAX_GAMMA}
    most = INT_LIMITS.get(name, step_most) if integer else float_most.get(name)
    if most is None or value <= most:
        return
    if integer:
        raise _bad_spec(text, f"{value:,} is more than {name} can be ({most:,})")
    what, why = ((f"{name}'s gamma", "the kernel would be 0 between images") if name in ("rff", "nystroem")
                 else (name, "every weight would be 0"))
    raise _bad_spec(text, f"{value:g} is more than {what} can be ({most:g}: {why})")


# ---------------------------------------------------------------- feature pipelines


def _features_spec(text: str, spec: str) -> ParamSpec:
    """features=PIPELINE|PIPELINE...: a list (a grid) of pipelines, or templates with ranges to draw."""
    from mnistlr.learn.features import ARGUMENT_KINDS

    templates = []
    for pipeline in spec.split("|"):
        steps = []
        for part in pipeline.split(","):
            name, *tokens = part.strip().split(":")
            kinds, args = ARGUMENT_KINDS.get(name, ()), []
            while tokens:
                integer = len(args) < len(kinds) and kinds[len(args)] is int
                if tokens[0] in RANGE_KINDS:
                    args.append(_range_spec(text, f"{name}", tokens[0], tokens[1:3], integer))
                    tokens = tokens[3:]
                else:
                    args.append(tokens.pop(0))
            steps.append((name, tuple(args)))
        templates.append(tuple(steps))
    if all(isinstance(a, str) for t in templates for _, args in t for a in args):
        return ParamSpec("features", "list", tuple(dict.fromkeys(_template_text(t) for t in templates)))
    return ParamSpec("features", "pipelines", tuple(templates))


def _template_text(template: tuple, values: list | None = None) -> str:
    """The pipeline text of a template, its ranges written out (or replaced by *values* in order)."""
    values = list(values) if values is not None else None
    parts = []
    for name, args in template:
        shown = []
        for arg in args:
            if isinstance(arg, ParamSpec):
                shown.append(f"{values.pop(0):.6g}" if values is not None else f"{arg.kind}:{arg.low:g}:{arg.high:g}")
            else:
                shown.append(arg)
        parts.append(":".join([name, *shown]))
    return ",".join(parts)


def _fill(template: tuple, rng: np.random.Generator) -> str:
    """A concrete pipeline from a template: each range replaced by a seeded draw."""
    draws = [arg.sample(rng) for _, args in template for arg in args if isinstance(arg, ParamSpec)]
    return _template_text(template, draws)


def parse_params(texts: list[str]) -> list[ParamSpec]:
    """Parse every --param; a name given twice is a UsageError."""
    specs = [parse_param(t) for t in texts]
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--param {twice[0]} is given more than once", "give each parameter once")
    return specs


class Candidates(Sequence):
    """The candidates of a search, each made when asked for, so none is held that is not in use.

    grid: candidate i is the i-th combination of the lists (the last parameter varies fastest,
    as itertools.product); random: candidate i is drawn from its own seed, derive_seed(seed, 0, i),
    so it is the same whichever candidates were made before it and whoever asks.
    """

    def __init__(self, specs: list[ParamSpec], mode: str, n: int, seed: int):
        self.specs, self.mode, self.n, self.seed = list(specs), mode, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        if self.mode == "grid":
            picks = []
            for spec in reversed(self.specs):
                i, k = divmod(i, len(spec.values))
                picks.append(spec.values[k])
            return dict(zip((s.name for s in self.specs), reversed(picks), strict=True))
        rng = np.random.default_rng(derive_seed(self.seed, 0, i))
        return {s.name: s.sample(rng) for s in self.specs}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Candidates | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Candidates({self.mode}, {self.n:,})"


def candidates(specs: list[ParamSpec], n_iter: int, seed: int) -> tuple[str, Candidates]:
    """('grid', every combination) when all specs are lists, else ('random', n_iter seeded draws);
    either way a lazy `Candidates`, at most MAX_CANDIDATES long."""
    if all(s.kind == "list" for s in specs):
        n = math.prod(len(s.values) for s in specs)
        if n > MAX_CANDIDATES:
            raise UsageError(f"the grid has {n:,} combinations, more than {MAX_CANDIDATES:,}",
                             "search fewer values, or give ranges and --n-iter")
        return "grid", Candidates(specs, "grid", n, seed)
    if n_iter < 1 or n_iter > MAX_CANDIDATES:
        raise UsageError(f"--n-iter must be from 1 to {MAX_CANDIDATES:,}, got {n_iter:,}", "e.g. --n-iter 20")
    return "random", Candidates(specs, "random", n_iter, seed)


def apply_params(base: TrainOptions, params: dict[str, Any], seed: int | None = None) -> TrainOptions:
    """TrainOptions with *params* applied (searching C clears l2 and vice versa). With the solver
    searched, a fixed option its trial's solver does not read is left at its default there: an
    --epochs beside solver=lbfgs,sgd is for the sgd trials (`unread_by_every_solver` refuses one
    that no searched solver reads)."""
    changes = dict(params)
    if "C" in params:
        changes.setdefault("l2", None)
    if "l2" in params:
        changes.setdefault("C", None)
    if "solver" in params:
        solver = dataclasses.replace(base, solver=params["solver"]).resolved_solver()
        for name, readers in READ_BY.items():
            if solver not in readers:
                changes.setdefault(name, option_default(name))
    if seed is not None:
        changes["seed"] = seed
    return dataclasses.replace(base, **changes)


def unread_by_every_solver(base: TrainOptions, solvers: Sequence[Any]) -> None:
    """UsageError for a fixed solver option (an --epochs, a --tol) that none of the searched *solvers* reads."""
    searched = [dataclasses.replace(base, solver=s).resolved_solver() for s in solvers]
    for name, readers in READ_BY.items():
        value = getattr(base, name)
        if value == option_default(name) or set(readers) & set(searched):
            continue
        raise UsageError(f"{read_by_text(name, value)}, by none of the searched solvers "
                         f"({', '.join(dict.fromkeys(searched))})",
                         f"drop `{name}`, or search `solver={readers[0]}` too")


# check_candidates validates at most this many candidates one by one (and every spec's extremes).
CHECKED_CANDIDATES = 1000


def check_candidates(base: TrainOptions, cands: Sequence[dict[str, Any]],
                     specs: Sequence[ParamSpec] = ()) -> None:
    """Validate the candidates' options before any work (UsageError naming the parameters): each
    spec's every listed value and both ends of its range with the others at their first value,
    then the first CHECKED_CANDIDATES candidates as they are. A later candidate that still fails
    (a combination no extreme shows) fails as its trial, with the same message."""
    defaults = TrainOptions()
    for spec in specs:   # a searched option given a fixed value too: one of the two would be dropped
        if getattr(base, spec.name) != getattr(defaults, spec.name):
            raise UsageError(f"`{spec.name}` is fixed at {getattr(base, spec.name)} and searched by "
                             f"--param {spec.name}=… at once", "drop one of the two")
    first = cands[0] if len(cands) else {}
    for spec in specs:
        for value in _extremes(spec):
            _check_one(base, first | {spec.name: value})
    for i in range(min(len(cands), CHECKED_CANDIDATES)):
        _check_one(base, cands[i])


def check_penalties(base: TrainOptions, cands: Sequence[dict[str, Any]], specs: Sequence[ParamSpec],
                    n_train: int) -> None:
    """With the data known: the L2 penalty of each spec's extremes and of the first candidate on
    *n_train* images (the smallest training part of a fold), e.g. a `C` whose 1/(C·n) overflows."""
    from mnistlr.learn.options import on_mean_scale, resolve_l2

    first = cands[0] if len(cands) else {}
    for params in [first] + [first | {spec.name: v} for spec in specs for v in _extremes(spec)]:
        options = apply_params(base, params)
        if not options.auto_l2():
            _check_one(base, params, lambda o: resolve_l2(on_mean_scale(o, n_train), n_train))


def _extremes(spec: ParamSpec) -> list[Any]:
    if spec.kind == "list":
        return list(spec.values)
    if spec.kind == "pipelines":
        return [_template_text(t, [a.low for _, args in t for a in args if isinstance(a, ParamSpec)])
                for t in spec.values] + [
                _template_text(t, [a.high for _, args in t for a in args if isinstance(a, ParamSpec)])
                for t in spec.values]
    cast = int if spec.kind in ("int", "logint") else float
    return [cast(spec.low), cast(spec.high)]


def _check_one(base: TrainOptions, params: dict[str, Any], check=TrainOptions.validate) -> None:
    try:
        check(apply_params(base, params))
    except UsageError as exc:
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "the fixed options"
        raise UsageError(f"parameters {shown}: {exc.message}", exc.hint) from None


# ---------------------------------------------------------------- scoring

def score(model, X: np.ndarray, y: np.ndarray, metric: str) -> float:
    """*metric* of *model* on raw images X (n, ...) with labels y (n,)."""
    from mnistlr.evaluation import metrics

    idx = metrics.label_indices(y, model.classes)
    if metric == "accuracy":
        return float((model.predict(X) == y).mean())
    if metric == "f1_macro":
        y_hat = metrics.label_indices(model.predict(X), model.classes)
        cm = metrics.confusion_matrix(idx, y_hat, model.n_classes)
        return metrics.averages(cm)["f1_macro"]
    P = model.predict_proba(X)
    if metric == "log_loss":
        return metrics.log_loss(idx, P)
    macro = metrics.auc_averages(metrics.roc_auc_ovr(idx, P),
                                 np.bincount(idx, minlength=model.n_classes))["roc_auc_ovr_macro"]
    return float("nan") if macro is None else macro


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UsageError(f"--metric '{metric}' is not one of {', '.join(METRICS)}",
                         f"use one of {', '.join(METRICS)}")
