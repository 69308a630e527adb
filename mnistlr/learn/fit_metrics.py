"""The accuracy and log-loss a fit reports of its training and hold-out parts (exact scores, in row blocks)."""

from __future__ import annotations

from typing import Any

# rows per block of the metrics' scoring (equal blocks of METRICS_BLOCK to 2·METRICS_BLOCK rows)
METRICS_BLOCK = 16384


def accuracy_and_log_loss(model, X, y, inputs=None) -> tuple[float | None, float | None]:
    """(accuracy, log-loss) of *model* on raw pixels X (n, n_features) with labels y (n,); Nones for X None.

    inputs: the model inputs of X already computed (a feature model's features), scored directly.
    """
    import numpy as np

    from mnistlr.evaluation.metrics import log_loss

    if X is None:
        return None, None
    idx = np.searchsorted(model.classes, y)
    n_correct, loss_sum = 0, 0.0
    # equal blocks of METRICS_BLOCK to 2·METRICS_BLOCK rows (the scoring kernel runs on both cores
    # from 16,384 rows): a float32 copy of all of X would be the peak of the whole run
    n_blocks = max(1, len(idx) // METRICS_BLOCK)
    block = max(1, -(-len(idx) // n_blocks))    # ⌈n / n_blocks⌉
    for start in range(0, len(idx), block):
        rows = slice(start, start + block)
        if inputs is None:
            P = model.proba_from_scores(model.raw_scores(X[rows]))
        else:
            P = model.proba_from_scores(model.scores_of_inputs(inputs[rows]))
        n_correct += int((P.argmax(1) == idx[rows]).sum())
        # Σ_block −log p_{i,y_i} = n_block · (mean cross-entropy of the block)
        loss_sum += log_loss(idx[rows], P) * len(P)
    # accuracy; mean cross-entropy −(1/n)Σ log p_{i,y_i}
    return n_correct / len(idx), loss_sum / len(idx)


def final_metrics(model, data: Any, inputs=None) -> dict[str, float | None]:
    """Accuracy and log-loss of *model* on the training and hold-out parts of `fit.Prepared` *data*.

    inputs: optional (training, hold-out) model inputs already computed (a feature model's
    features), scored directly instead of recomputing them from the pixels.
    """
    given = inputs or (None, None)
    train_accuracy, train_loss = accuracy_and_log_loss(model, data.X_train, data.y_train, given[0])
    val_accuracy, val_loss = accuracy_and_log_loss(model, data.X_val, data.y_val, given[1])
    return {"train_accuracy": train_accuracy, "train_loss": train_loss,
            "val_accuracy": val_accuracy, "val_loss": val_loss}
