"""Training orchestration shared by `train` and `sweep`: data subsetting, fitting, final metrics.

`fit_model(images, labels, options)` turns raw images (n, rows, cols) uint8 and
labels (n,) into a fitted `LinearModel`: it selects classes, subsamples, splits a
stratified hold-out, fits the preprocessing on the training part only, and runs
the chosen solver.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mnistlr.errors import TrainingError, UsageError
from mnistlr.learn.data_record import data_record
from mnistlr.learn.fit_metrics import accuracy_and_log_loss, final_metrics
from mnistlr.learn.kernels.threads import in_background
from mnistlr.learn.options import (
    DEFAULT_VAL_FRACTION,
    TrainOptions,
    on_mean_scale,
    resolve_l2,
    summed_rows,
)


@dataclasses.dataclass
class Prepared:
    """The training and hold-out parts after subsetting; images flat (n, n_features) uint8."""

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    classes: Any
    image_shape: tuple[int, int]


def limited(images, labels, options: TrainOptions) -> tuple[Any, Any]:
    """Apply --train-limit, then --classes: the rows --per-class samples from (images may be None)."""
    import numpy as np

    if options.train_limit is not None:
        images = None if images is None else images[: options.train_limit]
        labels = labels[: options.train_limit]
    if options.classes is not None:
        present = set(np.unique(labels).tolist())
        missing = sorted(set(options.classes) - present)
        if missing:
            raise UsageError(f"`classes`: label(s) {', '.join(map(str, missing))} do not occur in the training data",
                             f"choose among {', '.join(map(str, sorted(present)))}")
        keep = np.isin(labels, options.classes)
        images, labels = None if images is None else images[keep], labels[keep]
    return images, labels


def subset(images, labels, options: TrainOptions, rng) -> tuple[Any, Any]:
    """Apply --train-limit, --classes and --per-class (in that order)."""
    import numpy as np

    images, labels = limited(images, labels, options)
    if options.per_class is not None:
        picked = [rng.permutation(np.flatnonzero(labels == c))[: options.per_class]
                  for c in np.unique(labels)]
        idx = np.sort(np.concatenate(picked))
        images, labels = images[idx], labels[idx]
    return images, labels


def _n_val(options: TrainOptions, n_samples: int) -> int:
    fraction = options.val_fraction
    needs_val = options.resolved_solver() in ("gd", "sgd") or (options.auto_l2() and options.path_cv is None)
    if options.val_size is None and fraction is None and needs_val:
        fraction = DEFAULT_VAL_FRACTION
    n_val = options.val_size if options.val_size is not None else round((fraction or 0) * n_samples)
    if fraction and not n_val:
        # a share of a few images rounds to none: hold out one (else gd/sgd silently ran without
        # early stopping and `l2=auto` had no hold-out to score its path on)
        n_val = 1
    if n_val >= n_samples:
        given = f"val_size={n_val}" if options.val_size is not None else f"val_fraction={fraction:g}"
        raise UsageError(f"`{given}` leaves no training data ({n_samples} images after subsetting)",
                         f"give a hold-out smaller than {n_samples} images")
    return int(n_val)


def _no_hold_out(options: TrainOptions, labels) -> UsageError:
    """Every class has one image: none can be held out (each keeps one to train on)."""
    why = ("`l2=auto` scores its path on a hold-out" if options.auto_l2() else
           f"`solver={options.resolved_solver()}` stops early on a hold-out"
           if options.resolved_solver() in ("gd", "sgd") else "a hold-out was asked for")
    given = f"`per_class={options.per_class}`" if options.per_class is not None else "the training data"
    return UsageError(f"{given} leaves {len(labels):,} images, one per class: none can be held out, "
                      f"and {why}", "give `per_class=2` or more, or more training images")


# Above this many classes, fewer than two images a class is taken for labels that are IDs.
MANY_CLASSES = 1000


def prepare(images, labels, options: TrainOptions) -> Prepared:
    """Check and subset the data, then split a stratified hold-out (seeded)."""
    import numpy as np

    from mnistlr.errors import DataError
    from mnistlr.learn.splits import stratified_split

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3:
        raise DataError(f"training images must be (n, rows, cols), got shape {images.shape}",
                        "give an IDX images file")
    if len(images) != len(labels):
        raise DataError(f"{len(images)} training images but {len(labels)} labels",
                        "give the labels file that belongs to the images")
    _check_range(images)
    rng = np.random.default_rng(options.seed)
    images, labels = subset(images, labels, options, rng)
    # (with return_counts np.unique sorts, where it would otherwise import numpy.ma to look for a mask)
    classes = np.unique(labels, return_counts=True)[0]
    if len(classes) < 2:
        raise TrainingError(f"the training data holds a single class ({classes.tolist()})",
                            "a classifier needs at least two classes; check `classes` and the labels file")
    if len(classes) > MANY_CLASSES and 2 * len(classes) > len(labels):
        # a pass costs n·k·d: one class per image (IDs given as labels) grows with n², for hours
        raise TrainingError(f"the labels name {len(classes):,} classes for {len(labels):,} images, fewer than "
                            "two images a class: are they IDs rather than classes?",
                            "give the class labels file, or keep a few classes (`classes`)")
    n_val = _n_val(options, len(labels))
    train_idx, val_idx = stratified_split(labels, n_val, rng)
    if n_val and not len(val_idx):
        raise _no_hold_out(options, labels)
    flat = images.reshape(len(images), -1)
    classes, shape = classes.astype(np.int64), (int(images.shape[1]), int(images.shape[2]))
    if not n_val:
        # nothing held out: the training part is all of it, no copy
        return Prepared(flat, labels, None, None, classes, shape)
    return Prepared(flat[train_idx], labels[train_idx], flat[val_idx], labels[val_idx], classes, shape)


def _check_range(images) -> None:
    """DataError unless float inputs are finite and within float32's range (kernels, class means and
    the model's weights are float32)."""
    import numpy as np

    from mnistlr.errors import DataError

    if images.dtype.kind != "f" or not images.size:
        return
    top = float(np.abs(images).max())
    if not top <= float(np.finfo(np.float32).max):
        what = "NaN or an infinite value" if not np.isfinite(top) else f"|x| = {top:.3g}, beyond float32's range"
        raise DataError(f"the training inputs hold {what}", "give finite inputs, scaled to a moderate range")


def _initial_weights(options: TrainOptions, n_features: int, n_outputs: int):
    import numpy as np

    if options.init == "normal":
        rng = np.random.default_rng([options.seed, 1])
        return rng.standard_normal((n_features, n_outputs)).astype(np.float32)
    return np.zeros((n_features, n_outputs), np.float32)


def _run_solver(options: TrainOptions, X, y, X_val, y_val, n_classes: int, l2: float, callback, affine=None,
                start=None, track=None):
    """Dispatch to the solver; returns a solvers.FitResult. X: raw pixels, affine: (scale, shift);
    start: (W0, b0) to warm-start from instead of --init; track: (X_test, y_test) for the records."""
    import numpy as np

    from mnistlr.learn import descent, solvers

    solver = options.resolved_solver()
    if solver == "closed":
        return solvers.fit_closed_ridge(X, y, n_classes=n_classes, l2=l2, affine=affine, track=track)
    kind = "softmax" if options.model == "softmax" else "ovr"
    n_outputs = 1 if (kind == "ovr" and n_classes == 2) else n_classes
    if start is None and options.init == "ridge":
        start = solvers.ridge_start(X, y, kind, n_outputs, affine)
    W0, b0 = (_initial_weights(options, X.shape[1], n_outputs), None) if start is None else start
    common = dict(kind=kind, n_outputs=n_outputs, l2=l2, W0=W0, b0=b0,
                  X_val=X_val, y_val=y_val, callback=callback, affine=affine, track=track)
    if solver == "lbfgs":
        return solvers.fit_lbfgs(X, y, tol=options.tol, max_iter=options.max_iter, l1=options.l1, **common)
    schedule = dict(l1=options.l1, lr=options.lr, anneal=options.anneal,
                    epochs=options.epochs, patience=options.patience)
    if solver == "gd":
        return descent.fit_gd(X, y, accel=options.resolved_accel(), **schedule, **common)
    rng = np.random.default_rng([options.seed, 2])
    return descent.fit_sgd(X, y, batch_size=options.batch_size, rng=rng, **schedule, **common)


def fit_model(images, labels, options: TrainOptions, callback=None, dataset: str | None = None, test=None):
    """Fit a LinearModel on raw images (n, rows, cols) uint8 and labels (n,).

    callback(record: dict) is called after each epoch/iteration with the history record.
    test: (images, labels) of a test set whose loss and accuracy every record also carries
    (test_loss, test_accuracy) — for learning curves only, never for stopping or selection.
    """
    import time

    import numpy as np

    from mnistlr.learn.model import LinearModel, Preprocessor

    options.validate()
    data = prepare(images, labels, options)
    # the record of the data (hash, class means) on a thread beside the fit, which first imports
    # Numba on one core; the path (l2=auto) refits on the hold-out too: its record comes after
    record = None if options.auto_l2() else in_background(data_record, data)
    started = time.perf_counter()
    features, X, X_val = _features(options, data)
    preprocessor = Preprocessor.fit(options.preprocess, X, unit=255.0 if features is None else features.unit)
    # the solvers read the raw pixels (or features) and fold the preprocessing into the weights
    X, X_val = _pixels(X), _pixels(X_val)
    y = np.searchsorted(data.classes, data.y_train)
    y_val = np.searchsorted(data.classes, data.y_val) if data.y_val is not None else None
    given, options = options, on_mean_scale(options, len(y))
    track, path = _track(test, data, features), None
    if options.auto_l2():
        fitted = _fit_on_path(options, data, (X, y, X_val, y_val), features, preprocessor, callback, track)
        result, l2, path, data, X = fitted
        y = np.searchsorted(data.classes, data.y_train)
        if data.y_val is None:   # refitted on the hold-out too
            X_val, y_val = None, None
    else:
        l2 = resolve_l2(options, len(y))
        try:
            result = _run_solver(options, X, y, X_val, y_val, len(data.classes), l2, callback,
                                 preprocessor.affine(), track=track)
        except TrainingError as exc:
            raise _in_given_units(exc, given, len(y)) from None
    params = options.to_dict() | {"solver": options.resolved_solver(), "l2": l2, "accel": options.resolved_accel()}
    if options.C is not None:
        # C = 1/(l2·n_train), also when chosen on the path
        params["C"] = 1.0 / (l2 * len(y))
    if given.loss_scale == "sum":
        # lr, l2, l1 as given (summed loss); params hold the mean-loss values trained with
        params["given"] = {"lr": given.lr, "l2": given.l2, "l1": given.l1}
    model = LinearModel(options.model, data.classes, data.image_shape, preprocessor,
                        result.W, result.b, params=params, features=features)
    model.meta = {
        "dataset": dataset, "n_train": int(len(y)), "n_val": int(0 if y_val is None else len(y_val)),
        "seed": options.seed, "history": result.history, "stop_reason": result.stop_reason,
        "best_epoch": result.best_epoch, "n_iter": result.n_iter, "subsampled_phases": result.phases,
        "seconds": time.perf_counter() - started,
        **(data_record(data) if record is None else record()),   # data_sha256, class_means
        "metrics": final_metrics(model, data, (X, X_val) if features is not None else None),
    }
    if path is not None:
        model.meta["l2_path"] = path
    return model


def _in_given_units(error, given: TrainOptions, n_train: int):
    """A divergence error whose safe step is shown in the units `lr` was given in (loss_scale=sum)."""
    safe = getattr(error, "safe_lr", None)
    if given.loss_scale != "sum" or safe is None:
        return error
    # a step lr on the mean is a step lr/rows on the summed loss
    rows = summed_rows(given, n_train)
    return TrainingError(error.message, f"use `lr` ≤ {safe / rows:.2g} on the summed loss, the estimated safe "
                                        "step, or `lr=auto`")


def _features(options: TrainOptions, data: Prepared):
    """(fitted FeaturePipeline or None, training inputs, hold-out inputs): features fitted on the training part."""
    if options.features is None:
        return None, data.X_train, data.X_val
    from mnistlr.learn.features import FeaturePipeline

    pipeline = FeaturePipeline.from_spec(options.features, data.image_shape)
    if options.resolved_solver() != "closed":
        # the iterative solvers import Numba for their kernels anyway: first, so the features take
        # Numba's kernels too (deskew's; the sparse rff projection of digits, `kernels.sparse_sums`)
        import mnistlr.learn.kernels.setup  # noqa: F401
    X = pipeline.fit_transform(data.X_train, options.seed)
    return pipeline, X, None if data.X_val is None else pipeline.transform(data.X_val)


def _track(test, data: Prepared, features=None):
    """(X_test (m, n_features) model inputs before preprocessing, y_test (m,) class indices) of the test
    images whose label is one of the model's classes, or None without a test set."""
    import numpy as np

    from mnistlr.errors import DataError

    if test is None:
        return None
    images, labels = np.asarray(test[0]), np.asarray(test[1])
    if images.ndim != 3 or tuple(images.shape[1:]) != data.image_shape or len(images) != len(labels):
        raise DataError(f"the test images ({'×'.join(map(str, images.shape))}, {len(labels)} labels) do not "
                        f"match the training images ({data.image_shape[0]}×{data.image_shape[1]})",
                        "give the test split of the same dataset")
    keep = np.isin(labels, data.classes)
    if not keep.any():
        raise DataError("no test image has one of the model's classes", "give the test split of the same dataset")
    X = images[keep].reshape(int(keep.sum()), -1)
    return _pixels(X if features is None else features.transform(X)), np.searchsorted(data.classes, labels[keep])


def _fit_on_path(options: TrainOptions, data: Prepared, inputs, features, preprocessor, callback, track=None):
    """--l2 auto: the path scored on the hold-out (or, with path_cv, on K folds of the training part),
    then the chosen l2 refitted on all of it (hold-out included, unless path_cv left it out),
    warm-started. inputs: (X, y, X_val, y_val) as the solvers read them. Returns
    (FitResult, l2, path {points, chosen, metric, n_fit, n_val, cv}, Prepared fitted on, its X)."""
    import numpy as np

    from mnistlr.learn.path import run_path

    X, y, X_val, y_val = inputs
    if options.path_cv is None:
        folds = [_path_fold(options, data, preprocessor, features, (X, y), (X_val, data.y_val), callback)]
        data = Prepared(np.concatenate([data.X_train, data.X_val]), np.concatenate([data.y_train, data.y_val]),
                        None, None, data.classes, data.image_shape)
        X, y, n_fit, n_val = np.concatenate([X, X_val]), np.concatenate([y, y_val]), len(y), len(y_val)
    else:
        folds = _cv_folds(options, data, preprocessor, features, (X, y), callback)
        n_fit, n_val = len(y) - len(y) // options.path_cv, len(y) // options.path_cv
    points, best, best_fits = run_path(folds, metric=options.path_metric)
    l2 = points[best]["l2"]
    # the refit starts from the chosen point (the folds' mean solution with path_cv)
    start = (np.mean([r.W for r in best_fits], axis=0), np.mean([r.b for r in best_fits], axis=0))
    result = _run_solver(options, X, y, None, None, len(data.classes), l2, callback, preprocessor.affine(),
                         start=start, track=track)
    path = {"points": points, "chosen": best, "metric": options.path_metric, "n_fit": n_fit, "n_val": n_val,
            "cv": options.path_cv}
    return result, l2, path, data, X


def _path_fold(options: TrainOptions, data: Prepared, preprocessor, features, fit_part, score_part, callback):
    """(fit, score) of one fold of the path: fit on fit_part (X, y) as the solvers read them, score on
    score_part (model inputs, labels)."""
    from mnistlr.learn.model import LinearModel

    X, y = fit_part
    n_classes, affine = len(data.classes), preprocessor.affine()

    def fit(l2, W0, b0):
        start = None if W0 is None else (W0, b0)
        return _run_solver(options, X, y, None, None, n_classes, l2, callback, affine, start=start)

    def score(W, b):
        model = LinearModel(options.model, data.classes, data.image_shape, preprocessor, W, b, features=features)
        return accuracy_and_log_loss(model, score_part[0], score_part[1], score_part[0])

    return fit, score


def _cv_folds(options: TrainOptions, data: Prepared, preprocessor, features, fit_part, callback):
    """The path's K stratified folds of the training part (seeded by options.seed); the preprocessing
    and features stay those fitted on the whole training part."""
    from mnistlr.learn.path import fold_splits

    X, y = fit_part
    splits = fold_splits(y, options.path_cv, options.seed)
    return [_path_fold(options, data, preprocessor, features, (X[rows], y[rows]), (X[held], data.y_train[held]),
                       callback) for rows, held in splits]


def _pixels(X):
    """Raw pixels (n, n_features) as the kernels read them: uint8/float32/float64 as given, else float32."""
    import numpy as np

    if X is None:
        return None
    return np.ascontiguousarray(X, dtype=X.dtype if X.dtype in (np.uint8, np.float32, np.float64) else np.float32)
