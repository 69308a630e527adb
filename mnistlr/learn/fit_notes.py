"""What `train`, `mnistlr.train` and the estimators warn of after a fit: one line each, or None.

`weak_fit_note` (the fit learnt nothing usable), `short_classes_note` (`per_class` asked more
images than a class holds) and `capped_fit_note` (L-BFGS stopped by max_iter).
"""

from __future__ import annotations

from mnistlr.learn.fit import limited
from mnistlr.learn.options import TrainOptions


def weak_fit_note(model, labels) -> str | None:
    """What to warn of when the fit learnt nothing usable (else None): every weight zero, or a
    training accuracy no better than always answering the most common of the model's classes in
    *labels* (n,), the labels it was given."""
    import numpy as np

    accuracy = model.meta["metrics"]["train_accuracy"]
    if not np.any(model.W):
        return (f"every weight is zero: the model gives every image the same class (training accuracy "
                f"{accuracy:.4f}); lower the penalty (--l1, --l2) or check the labels")
    counts = np.unique(np.asarray(labels)[np.isin(labels, model.classes)], return_counts=True)[1]
    if len(counts) < 2 or accuracy > counts.max() / counts.sum():
        return None
    majority = counts.max() / counts.sum()
    return (f"training accuracy {accuracy:.4f} is no better than always answering the most common class "
            f"({majority:.4f}); check --lr, the penalties (--l1, --l2) and the labels")


def short_classes_note(options: TrainOptions, labels) -> str | None:
    """What to warn of when `per_class` asks more images than a class of *labels* (n,), the labels
    given, holds (else None): all of that class are taken, and the sample is not balanced."""
    import numpy as np

    if options.per_class is None:
        return None
    values, counts = np.unique(limited(None, np.asarray(labels), options)[1], return_counts=True)
    short = [(v, c) for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c < options.per_class]
    if not short:
        return None
    shown = ", ".join(f"{v} ({c:,})" for v, c in short[:5]) + (", …" if len(short) > 5 else "")
    return (f"--per-class {options.per_class}: {len(short)} of {len(values)} classes hold fewer images, all "
            f"of them taken: {shown}; for balanced classes give --per-class {min(c for _, c in short)}")


def capped_fit_note(model, options: TrainOptions) -> str | None:
    """What to warn of when L-BFGS stopped at max_iter before tol was met (else None)."""
    if model.meta.get("stop_reason") != "max_iter":
        return None
    return (f"L-BFGS reached max_iter={options.max_iter} before tol={options.tol:g} was met; "
            "increase max_iter, or scale the inputs")
