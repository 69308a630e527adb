"""Training and data options shared by `train` and `sweep`: one definition, derived from TrainOptions.

`training_options` adds one Typer option per `TrainOptions` field to a command (defaults taken
from the dataclass) and hands the command a validated-on-use `TrainOptions` as `options`.
Adding a training option: a field in `mnistlr.learn.options`, its solver, and one line in OPTIONS.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli.base import choices
from mnistlr.learn.options import (
    ACCELS,
    AUTO,
    INITS,
    LOSS_SCALES,
    MODELS,
    PATH_METRICS,
    PREPROCESSING,
    SOLVERS,
    TrainOptions,
)

ModelKind = choices("ModelKind", MODELS)


Solver = choices("Solver", SOLVERS)


Init = choices("Init", INITS)


Preprocess = choices("Preprocess", PREPROCESSING)


PathMetric = choices("PathMetric", PATH_METRICS)


LossScale = choices("LossScale", LOSS_SCALES)


Accel = choices("Accel", ACCELS)


def parse_number_or_auto(option: str, auto: str | None = None):
    """A parser for an option taking a number or 'auto' (→ *auto*)."""

    def parse(value: str | None) -> float | str | None:
        if value is None:
            return None
        if value.strip().lower() == "auto":
            return auto
        try:
            number = float(value)
        except ValueError:
            raise typer.BadParameter(f"'{value}' is neither a number nor auto", param_hint=f"'{option}'") from None
        if number < 0:
            raise typer.BadParameter(f"{value} is not in the range x>=0.", param_hint=f"'{option}'")
        return number

    return parse


def parse_classes(value: str | None) -> list[int] | None:
    """'3,8' → [3, 8]."""
    if value is None:
        return None
    try:
        classes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a comma-separated list of labels, e.g. 3,8",
                                 param_hint="'--classes'") from None
    if len(set(classes)) < 2:
        raise typer.BadParameter(f"'{value}' names fewer than two distinct labels; e.g. 3,8",
                                 param_hint="'--classes'")
    return classes


_T = "Training"
_D = "Data"
DATA_PANEL = _D
ModelOpt = Annotated[ModelKind, typer.Option("--model", "-m", help="Model to train.", rich_help_panel=_T)]
SolverOpt = Annotated[Solver | None, typer.Option(
    "--solver", help="Solver (default: closed for ridge, lbfgs otherwise).", rich_help_panel=_T)]
L2Opt = Annotated[str | None, typer.Option(
    "--l2", help="L2 penalty: (l2/2)·‖W‖² on the mean loss; γ for ridge. (default: softmax 2e-4, logistic 1e-4, "
    "ridge 1.0). auto: chosen on a warm-started path of 16 values, 1e-1 → 1e-6, scored on a stratified hold-out "
    "(--val-fraction, default 0.1; --path-metric), then refitted on all the training images.",
    rich_help_panel=_T)]
L1Opt = Annotated[float, typer.Option(
    "--l1", min=0, help="L1 penalty l1·‖W‖₁ (exact zeros; lbfgs by split variables, gd/sgd by a prox step).",
    rich_help_panel=_T)]
COpt = Annotated[str | None, typer.Option(
    "--C", "-C", help="scikit-learn's inverse penalty; converted as l2 = 1/(C·n_train); auto as for --l2.",
    rich_help_panel=_T)]
LossScaleOpt = Annotated[LossScale, typer.Option(
    "--loss-scale", help="sum: --lr, --l2 and --l1 as course write-ups give them, for Σ loss + λ‖W‖² + λ₁‖W‖₁ "
    "(converted: l2 = 2λ/n, l1 = λ₁/n, lr = n·η for gd, batch-size·η for sgd; ridge's γ is λ as given).", rich_help_panel=_T)]
PathCvOpt = Annotated[int | None, typer.Option(
    "--cv", "--path-cv", min=1, help="--l2 auto: score the path on K stratified folds (seeded by --seed; each "
    "fold's path warm-started, strongest penalty first) by the mean fold score, then refit on all the training "
    "images; without it, on the hold-out. (sweep: --path-cv, its --cv being the search's folds.)",
    rich_help_panel=_T, show_default=False)]
PathMetricOpt = Annotated[PathMetric, typer.Option(
    "--path-metric", help="The hold-out score that picks --l2 auto's penalty (log_loss: lower is better).",
    rich_help_panel=_T)]
LrOpt = Annotated[str | None, typer.Option(
    "--lr", help="Initial learning rate η₀ (gd/sgd), or auto (the default): gd searches η₀ at the first epoch "
    "(backtracking; halved later if a step fails), sgd takes 0.5.", rich_help_panel=_T, show_default="auto")]
AnnealOpt = Annotated[float, typer.Option(
    "--anneal", help="T > 0 in the annealed rate η(t)=η₀/(1+t/T), t in epochs (gd/sgd).", rich_help_panel=_T)]
AccelOpt = Annotated[Accel | None, typer.Option(
    "--accel", help="gd's momentum. nesterov (gd's default): FISTA, each step (the same --lr and --anneal "
    "schedule) taken from the point extrapolated along the last move, the momentum restarted when a step turns "
    "back (O'Donoghue & Candès); on MNIST it ends 100 annealed epochs at a far lower objective than plain gd. "
    "none: plain proximal gradient descent, the textbook method.",
    rich_help_panel=_T, show_default="nesterov for gd")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Most epochs (gd/sgd).", rich_help_panel=_T)]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Mini-batch size (sgd).", rich_help_panel=_T)]
PatienceOpt = Annotated[int, typer.Option(
    "--patience", min=1, help="Stop after this many epochs without hold-out improvement (gd/sgd).",
    rich_help_panel=_T)]
TolOpt = Annotated[float, typer.Option("--tol", help="Stop lbfgs when the objective falls by less than this (> 0, relative) per iteration (a tenth of it with --l1).", rich_help_panel=_T)]
MaxIterOpt = Annotated[int, typer.Option("--max-iter", min=1, help="Most iterations (lbfgs).", rich_help_panel=_T)]
InitOpt = Annotated[Init, typer.Option("--init", help="Initial weights.", rich_help_panel=_T)]
PreprocessOpt = Annotated[Preprocess, typer.Option(
    "--preprocess", help="Pixel preprocessing, fitted on the training part and stored in the model.",
    rich_help_panel=_T)]
FeaturesOpt = Annotated[str | None, typer.Option(
    "--features", help="Feature pipeline before the model, fitted on the training part and stored in it: "
    "comma-separated deskew, hog[:cell[:bins]], pca:K, poly2 (after pca), rff:D[:gamma] or nystroem:D[:gamma] "
    "(last), e.g. deskew,hog or deskew,pca:50,rff:5000.",
    rich_help_panel=_T)]
# The formats every labelled-data option reads (mnistlr.io.labelled), for --help.
SOURCE_FORMATS = ("IDX (raw or .gz), .npy, .npz (Keras' mnist.npz: x_train/y_train for train and "
                  "sweep, x_test/y_test for evaluate and show), CSV (raw or .gz; label column by "
                  "header name label/class/y/target, else first), Parquet (Hugging Face layout), "
                  "a folder DIR/<label>/*.png, or '-' for stdin")
LABELS_HELP = "Labels (IDX or .npy), needed only when the images source holds none."
TrainImagesOpt = Annotated[Path | None, typer.Option(
    "--train-images", metavar="SOURCE", help=f"Training images and labels instead of --dataset: {SOURCE_FORMATS}.",
    rich_help_panel=_D)]
TrainLabelsOpt = Annotated[Path | None, typer.Option(
    "--train-labels", metavar="SOURCE", help=LABELS_HELP, rich_help_panel=_D)]
ImagesOpt = Annotated[Path | None, typer.Option(
    "--images", metavar="SOURCE", help=f"Images and labels instead of a dataset: {SOURCE_FORMATS}.")]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", metavar="SOURCE", help=LABELS_HELP)]
OnlyModelClassesOpt = Annotated[bool, typer.Option(
    "--only-model-classes", metavar="",
    help="Leave out images whose label is not one of the model's classes (without it, they are an error).")]
ClassesOpt = Annotated[str | None, typer.Option(
    "--classes", help="Keep only these labels, e.g. 3,8 (two labels: a binary model).", rich_help_panel=_D)]
TrainLimitOpt = Annotated[int | None, typer.Option(
    "--train-limit", min=1, help="Keep the first N training images.", rich_help_panel=_D)]
PerClassOpt = Annotated[int | None, typer.Option(
    "--per-class", min=1, help="Seeded stratified subsample of N images per class.", rich_help_panel=_D)]
ValSizeOpt = Annotated[int | None, typer.Option(
    "--val-size", min=1, help="Hold out N training images (stratified, seeded).", rich_help_panel=_D)]
ValFractionOpt = Annotated[float | None, typer.Option(
    "--val-fraction", min=0, max=1, help="Hold out this share (0 < x < 1) of the training images "
    "(default: 0.1 for gd/sgd, none otherwise).", rich_help_panel=_D)]

# TrainOptions field → its option (the command's parameter has the field's name and default).
OPTIONS = {
    "model": ModelOpt, "solver": SolverOpt, "l2": L2Opt, "l1": L1Opt, "C": COpt, "lr": LrOpt,
    "anneal": AnnealOpt, "accel": AccelOpt, "epochs": EpochsOpt, "batch_size": BatchOpt, "patience": PatienceOpt,
    "tol": TolOpt, "max_iter": MaxIterOpt, "init": InitOpt, "preprocess": PreprocessOpt,
    "features": FeaturesOpt, "classes": ClassesOpt, "train_limit": TrainLimitOpt, "per_class": PerClassOpt,
    "val_size": ValSizeOpt, "val_fraction": ValFractionOpt,
    "path_metric": PathMetricOpt, "path_cv": PathCvOpt, "loss_scale": LossScaleOpt,
}
# Fields whose command-line text is parsed before it reaches TrainOptions.
PARSERS = {"classes": parse_classes, "lr": parse_number_or_auto("--lr"),
           "l2": parse_number_or_auto("--l2", AUTO), "C": parse_number_or_auto("--C", AUTO)}
# Options given by each command itself (shared with other commands), passed on to TrainOptions.
SHARED = ("seed",)


def _cli_default(field: dataclasses.Field, annotation) -> object:
    """The field's default as the option's type holds it (an Enum member for choices)."""
    kind = annotation.__origin__ if hasattr(annotation, "__origin__") else annotation
    if isinstance(kind, type) and issubclass(kind, enum.Enum) and field.default is not None:
        return kind(field.default)
    return field.default


def _option_names(annotation) -> tuple[str, ...]:
    """The flags ("--cv", "-j", ...) an Annotated[type, typer.Option(...)] declares."""
    info = next((m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, typer.models.OptionInfo)), None)
    if info is None:
        return ()
    # in Annotated form Typer reads a str default as the first flag
    return ((info.default,) if isinstance(info.default, str) else ()) + tuple(info.param_decls)


def _without_flags(annotation, taken: set[str]):
    """*annotation* with the flags in *taken* (the command's own) dropped from its option."""
    names = _option_names(annotation)
    kept = [n for n in names if n not in taken]
    if len(kept) == len(names):
        return annotation
    info = copy.copy(annotation.__metadata__[0])
    info.default, info.param_decls = kept[0], tuple(kept[1:])
    return Annotated[annotation.__origin__, info]


def training_options(func):
    """Give *func* one option per TrainOptions field; it receives them as `options: TrainOptions`.

    A flag the command declares itself (sweep's --cv) is left to the command: the training
    option keeps its other flags (--path-cv).
    """
    fields = {f.name: f for f in dataclasses.fields(TrainOptions)}
    hints = typing.get_type_hints(func, include_extras=True)
    own = [p.replace(annotation=hints[name]) for name, p in inspect.signature(func).parameters.items()
           if name != "options"]
    taken = {flag for p in own for flag in _option_names(p.annotation)}
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=_without_flags(annotation, taken),
                               default=_cli_default(fields[name], annotation))
             for name, annotation in OPTIONS.items()]

    @functools.wraps(func)
    def command(**kwargs):
        values = {name: kwargs.pop(name) for name in OPTIONS}
        values = {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
        values |= {name: parse(values[name]) for name, parse in PARSERS.items()}
        values |= {name: kwargs[name] for name in SHARED if name in kwargs}
        return func(options=TrainOptions(**values), **kwargs)

    del command.__wrapped__   # Typer must read the new signature, not the wrapped one
    command.__signature__ = inspect.Signature(own + added)
    command.__annotations__ = {p.name: p.annotation for p in own + added}
    return command
