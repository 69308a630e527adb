"""Training options: `TrainOptions`, its choices and defaults, and their checks (one home for all)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Set
from typing import Any

from mnistlr.errors import UsageError

MODELS = ("softmax", "logistic", "ridge")
SOLVERS = ("lbfgs", "gd", "sgd", "closed")
INITS = ("zeros", "normal", "ridge")
PREPROCESSING = ("scale", "standardize", "center")   # of pixels 0–255 (the command line's choices)
# "none": general features, taken as they are (the scikit-learn estimators' default)
PREPROCESS_KINDS = PREPROCESSING + ("none",)
DEFAULT_SOLVER = {"softmax": "lbfgs", "logistic": "lbfgs", "ridge": "closed"}
PATH_METRICS = ("log_loss", "accuracy")
LOSS_SCALES = ("mean", "sum")
ACCELS = ("none", "nesterov")          # gd's: proximal gradient, or FISTA (mnistlr.learn.descent)
# nesterov for gd: under the annealed schedule it reaches a far lower training objective in the same
# epochs (measured in BENCHMARKS.md, issue 15)
DEFAULT_ACCEL = {"gd": "nesterov"}
AUTO = "auto"
# TrainOptions fields that only some solvers read (shown only where they applied): ridge's closed
# form is L2 only, with no starting point and no steps.
SOLVER_PARAMS = {
    "lbfgs": ("l1", "init", "tol", "max_iter"),
    "gd": ("l1", "init", "lr", "anneal", "accel", "epochs", "patience"),
    "sgd": ("l1", "init", "lr", "anneal", "epochs", "batch_size", "patience"),
    "closed": (),
}


def applies(name: str, solver: str | None) -> bool:
    """Whether the fit with *solver* reads the solver-specific option *name* (unknown solver: yes)."""
    return solver not in SOLVER_PARAMS or name in SOLVER_PARAMS[solver]


# Bounds beyond which a value is a typo, not a setting: a run of more epochs or iterations never
# ends; an L2 penalty (mean-loss scale; ridge's γ) above MAX_L2 pins every weight to 0 and then
# overflows the objective; seeds are 32-bit, as every seed derived from them.
MAX_STEPS = 1_000_000       # epochs, max_iter, patience
MAX_BATCH = 2**31 - 1
MAX_L2 = 1e10
MAX_SEED = 2**32 - 1


@dataclasses.dataclass
class TrainOptions:
    """Every knob of a training run (plain values, so it can be saved in a model)."""

    model: str = "softmax"
    solver: str | None = None          # None: DEFAULT_SOLVER[model]
    l2: float | str | None = None      # None: the model's default (see DEFAULT_L2); "auto": chosen on a path
    l1: float = 0.0
    C: float | str | None = None       # scikit-learn's C: l2 = 1/(C·n_train); "auto" as for l2
    lr: float | None = None            # η₀ for gd/sgd; None (or "auto"): gd searches its step, sgd takes 0.5
    anneal: float = 10.0               # T in η(t) = η₀/(1 + t/T), t in epochs
    accel: str | None = None           # gd: nesterov (FISTA with adaptive restart) | none; None: DEFAULT_ACCEL
    epochs: int = 100                  # cap for gd/sgd
    batch_size: int = 256              # sgd
    patience: int = 3                  # early stopping (gd/sgd), epochs without hold-out improvement
    tol: float = 1e-3                  # lbfgs: stop when f fell < tol (relative) per iteration over 5
    max_iter: int = 100                # lbfgs
    init: str = "zeros"                # zeros | normal
    preprocess: str = "scale"          # scale | standardize | center | none
    features: str | None = None        # feature pipeline before the model, e.g. "deskew,pca:50,rff:5000"
    classes: list[int] | None = None   # keep only these labels
    train_limit: int | None = None     # keep the first N images
    per_class: int | None = None       # seeded stratified subsample of N per class
    val_size: int | None = None        # hold-out images (stratified, seeded)
    val_fraction: float | None = None
    path_metric: str = "log_loss"      # --l2 auto: the hold-out score that picks the penalty
    path_cv: int | None = None         # --l2 auto: K stratified folds score the path instead of the hold-out
    loss_scale: str = "mean"           # sum: lr, l2, l1 as course write-ups give them (Σ ℓ + λ‖W‖² + λ₁‖W‖₁)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.lr, str) and self.lr == AUTO:   # as the command line's --lr auto (the default)
            self.lr = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_solver(self) -> str:
        return self.solver or DEFAULT_SOLVER[self.model]

    def resolved_accel(self) -> str:
        return self.accel or DEFAULT_ACCEL.get(self.resolved_solver(), "none")

    def auto_l2(self) -> bool:
        """True when the L2 penalty is to be chosen on a regularisation path (--l2 auto / --C auto)."""
        return AUTO in (self.l2, self.C)

    def validate(self) -> None:
        """Raise UsageError for any bad value or combination (before touching data)."""
        _check_choice("model", self.model, MODELS)
        solver = self.resolved_solver()
        _check_choice("solver", solver, SOLVERS)
        if solver == "closed" and self.model != "ridge":
            raise UsageError(f"`solver=closed` is for ridge only, not {self.model}",
                             "use `solver=lbfgs`, gd or sgd")
        if self.model == "ridge" and solver != "closed":
            raise UsageError("ridge is solved in closed form", "drop `solver` or use `solver=closed`")
        self._check_numbers()
        _check_choice("accel", self.resolved_accel(), ACCELS)
        if self.resolved_accel() != "none" and solver != "gd":
            raise UsageError(f"`accel={self.accel}` is momentum for `solver=gd`, not {solver}",
                             "add `solver=gd`, or drop `accel`")
        if self.l2 is not None and self.C is not None:
            raise UsageError("`l2` and `C` both set the L2 penalty", "give only one of them")
        if self.auto_l2() and solver != "lbfgs":
            name = "l2" if self.l2 == AUTO else "C"
            if self.model == "ridge":
                raise UsageError(f"`{name}=auto` runs a path of L-BFGS fits; ridge is solved in closed form",
                                 f"give `{name}` a number, or tune it with a sweep")
            raise UsageError(f"`{name}=auto` runs a path of L-BFGS fits, not {solver}",
                             "drop `solver`, or give a number")
        _check_choice("path_metric", self.path_metric, PATH_METRICS)
        if self.path_metric != option_default("path_metric") and not self.auto_l2():
            raise UsageError(f"`path_metric={self.path_metric}` picks the penalty of `l2=auto` (or `C=auto`)",
                             "add `l2=auto`, or drop `path_metric`")
        self._check_path_cv()
        _check_choice("loss_scale", self.loss_scale, LOSS_SCALES)
        if self.loss_scale == "sum" and self.C is not None:
            raise UsageError("`C` is scikit-learn's inverse penalty on the summed loss already; "
                             "`loss_scale=sum` takes `l2` as λ in Σ ℓ + λ‖W‖²", "give `l2` or drop `loss_scale`")
        self._check_whole_numbers()
        if self.l1 > 0 and solver == "closed":
            raise UsageError("`l1` does not apply to ridge's closed form",
                             "use `model=softmax` or logistic with `l1`")
        self._check_read_by_solver()
        self._check_data_options()

    def _check_read_by_solver(self) -> None:
        """UsageError for an option set (away from its default) that the solver never reads: an
        `epochs` for lbfgs, a `tol` for sgd, a `batch_size` for gd, ... (it was silently ignored)."""
        solver = self.resolved_solver()
        for name, readers in READ_BY.items():
            value = getattr(self, name)
            if solver in readers or value == option_default(name):
                continue
            if solver == "closed":
                raise UsageError(f"{read_by_text(name, value)}; ridge is solved in closed form",
                                 f"drop `{name}`, or train `model=softmax` or logistic")
            raise UsageError(f"{read_by_text(name, value)}, not by {solver}",
                             f"drop `{name}`, or use `solver={readers[0]}`")

    def _check_numbers(self) -> None:
        # each number's rule, as its message states it: (what it must be, the fix)
        rules = {"l2": ("a finite number ≥ 0", "give a non-negative value"),
                 "l1": ("a finite number ≥ 0", "give a non-negative value"),
                 "val_fraction": ("a finite number strictly between 0 and 1", "e.g. `val_fraction=0.1`")}
        for name in ("l2", "l1", "C", "lr", "anneal", "tol", "val_fraction"):
            value = getattr(self, name)
            if name in ("l2", "C") and isinstance(value, str) and value == AUTO:
                continue
            if value is not None and (not is_real(value) or not math.isfinite(value) or value < 0):
                rule, fix = rules.get(name, ("a finite number > 0", "give a positive value"))
                raise UsageError(f"`{name}` must be {rule}, got {value}", fix)
        for name in ("lr", "anneal", "C", "tol"):
            if getattr(self, name) == 0:
                raise UsageError(f"`{name}` must be > 0", "give a positive value")
        for name in ("l2", "l1"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value > MAX_L2:
                raise UsageError(f"`{name}` {value:g} is more than {MAX_L2:g}: every weight would be 0",
                                 f"give a smaller `{name}`, e.g. `{name}=1e-4`")

    def _check_whole_numbers(self) -> None:
        limits = {"epochs": MAX_STEPS, "max_iter": MAX_STEPS, "patience": MAX_STEPS, "batch_size": MAX_BATCH}
        for name, most in limits.items():
            value = getattr(self, name)
            if not is_whole(value) or not 1 <= value <= most:
                raise UsageError(f"`{name}` must be a whole number from 1 to {most:,}, got {value}",
                                 f"e.g. `{name}={getattr(TrainOptions, name)}`")
            setattr(self, name, int(value))   # NumPy's int16 would overflow in index arithmetic
        for name in ("train_limit", "per_class", "val_size"):
            value = getattr(self, name)
            if value is not None and (not is_whole(value) or value < 1):
                raise UsageError(f"`{name}` must be a whole number ≥ 1, got {value}", "or leave it out")
            setattr(self, name, None if value is None else int(value))
        if not is_whole(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"`seed` must be a whole number from 0 to {MAX_SEED:,} (32 bits), got {self.seed}",
                             "e.g. `seed=0`")

    def _check_path_cv(self) -> None:
        if self.path_cv is None:
            return
        if not self.auto_l2():
            raise UsageError("`path_cv` scores the path of `l2=auto` (or `C=auto`) on folds",
                             "add `l2=auto`, or drop `path_cv`")
        if not is_whole(self.path_cv) or self.path_cv < 2:
            raise UsageError(f"`path_cv` must be a whole number of folds ≥ 2, got {self.path_cv}", "e.g. `path_cv=5`")

    def _check_data_options(self) -> None:
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise UsageError(f"`val_fraction` must be strictly between 0 and 1, got {self.val_fraction}",
                             "e.g. `val_fraction=0.1`")
        if self.val_size is not None and self.val_fraction is not None:
            raise UsageError("`val_size` and `val_fraction` both set the hold-out", "give only one")
        if self.classes is not None:
            # a set or mapping is no list: not selected by (np.isin takes a set as one object), nor saved
            if isinstance(self.classes, (str, bytes, Set, Mapping)) or not hasattr(self.classes, "__len__") \
                    or not all(is_whole(c) for c in self.classes):
                raise UsageError(f"`classes` must be a list of whole-number labels, got {self.classes!r}",
                                 "e.g. `classes=[3, 8]`")
            if len(set(self.classes)) < 2:
                raise UsageError("`classes` needs at least two distinct labels", "e.g. `classes=3,8`")
        _check_choice("init", self.init, INITS)
        _check_choice("preprocess", self.preprocess, PREPROCESS_KINDS)
        if self.features is not None:
            from mnistlr.learn.features import SPEC_EXAMPLE, parse

            if not isinstance(self.features, str):
                raise UsageError(f"`features` must be a text spec, got {self.features!r}",
                                 f"e.g. `features='{SPEC_EXAMPLE}'`")

            parse(self.features)


# Options that only some solvers read (option → those solvers, from SOLVER_PARAMS); set for another, they are refused.
READ_BY = {name: tuple(solver for solver, names in SOLVER_PARAMS.items() if name in names)
           for name in ("lr", "anneal", "epochs", "patience", "batch_size", "tol", "max_iter", "init")}


def option_default(name: str) -> Any:
    """The default of TrainOptions field *name*."""
    return TrainOptions.__dataclass_fields__[name].default


def read_by_text(name: str, value: Any) -> str:
    """'`epochs=5` is read by `solver=gd` and sgd only': the solvers that read option *name* (READ_BY)."""
    readers = READ_BY[name]
    shown = f"{value:g}" if isinstance(value, float) else value
    named = [f"`solver={readers[0]}`", *readers[1:]]
    users = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return f"`{name}={shown}` is read by {users} only"


def is_real(value: Any) -> bool:
    """A real number (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)   # NumPy's bool is not Real


def is_whole(value: Any) -> bool:
    """A whole number (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"`{option}` '{value}' is not one of {', '.join(choices)}",
                         f"use one of {', '.join(choices)}")


# Default L2 penalties (mean-loss scale for logistic/softmax; γ for ridge's Gram matrix).
# softmax 2e-4: better conditioned than 1e-4 (fewer L-BFGS iterations), and on MNIST a better
# test accuracy and log-loss (0.9216 / 0.280 against 0.9208 / 0.287).
DEFAULT_L2 = {"softmax": 2e-4, "logistic": 1e-4, "ridge": 1.0}
# gd/sgd stop early on a hold-out; without --val-size/--val-fraction they hold out this share.
DEFAULT_VAL_FRACTION = 0.1


def on_mean_scale(options: TrainOptions, n_train: int) -> TrainOptions:
    """*options* with lr, l2 and l1 given on the summed loss (`loss_scale="sum"`) turned into this
    objective's mean-loss values; unchanged for "mean". Defaults (None, auto) stay as they are.

    Σ ℓ + λ‖W‖² + λ₁‖W‖₁ = n·[(1/n) Σ ℓ + (l2/2)‖W‖² + l1‖W‖₁] with l2 = 2λ/n and l1 = λ₁/n; a step η
    on the sum's gradient is a step n·η on the mean's (gd), batch_size·η on a mini-batch's (sgd).
    Ridge's γ is on the summed loss already: Σ ‖xW − y‖² + λ‖W‖² = 2·[½ Σ ‖xW − y‖² + (γ/2)‖W‖²]
    with γ = λ, so its l2 stays as given.
    """
    if options.loss_scale == "mean" or options.model == "ridge":
        return options
    rows = summed_rows(options, n_train)
    numeric = isinstance(options.l2, (int, float))
    return dataclasses.replace(options, l2=2.0 * options.l2 / n_train if numeric else options.l2,
                               l1=options.l1 / n_train, lr=None if options.lr is None else options.lr * rows)


def summed_rows(options: TrainOptions, n_train: int) -> int:
    """The rows whose summed loss a step follows: all n_train (gd), a mini-batch (sgd)."""
    return options.batch_size if options.resolved_solver() == "sgd" else n_train


def resolve_l2(options: TrainOptions, n_train: int) -> float:
    """The L2 penalty: --l2, or scikit-learn's C converted as l2 = 1/(C·n_train), or the default."""
    if options.auto_l2():
        raise ValueError("--l2 auto / --C auto: the penalty comes from the path (mnistlr.learn.path)")
    if options.C is not None:
        # sklearn minimises C·Σ CE + ½‖W‖²; dividing by C·n gives mean CE + (l2/2)‖W‖² with l2 = 1/(C·n)
        try:
            l2 = 1.0 / (float(options.C) * n_train)
        except (ZeroDivisionError, OverflowError):
            l2 = math.inf
        if not l2 <= MAX_L2:  # inf (C·n underflowed or C is tiny) or pinning every weight to 0
            least = 1.0 / (MAX_L2 * n_train)
            raise UsageError(f"`C={options.C:g}` makes the L2 penalty 1/(C·n_train) = {l2:.3g} for "
                             f"{n_train:,} training images, more than {MAX_L2:g}: every weight would be 0",
                             f"give `C` ≥ {least:.3g}, e.g. `C=1`")
        return l2
    l2 = DEFAULT_L2[options.model] if options.l2 is None else float(options.l2)
    if not (math.isfinite(l2) and 0 <= l2 <= MAX_L2):  # `loss_scale=sum` divided a huge λ by n
        raise UsageError(f"the L2 penalty {l2:g} is not a finite number from 0 to {MAX_L2:g}",
                         "give a smaller `l2`")
    return l2
