"""Classification metrics, computed with vectorised NumPy (scikit-learn is only the tests' reference).

Conventions: K classes; `y` holds class *indices* 0..K−1 (n_samples,) int; `P` holds class
probabilities (n_samples, K) in the order of the model's `classes`. Definitions follow
scikit-learn so the numbers agree with it: undefined precision/recall/F1 are 0, ROC AUC
counts ties as one half, log-loss clips at the probabilities' own float epsilon, and the
Brier score is Σ_k (p_k − y_k)² averaged over samples (halved for two classes), and the macro
averages run over the classes in the true labels or the predictions (scikit-learn's `labels=None`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnistlr.errors import DataError

ECE_BINS = 15


def label_indices(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Map labels (n,) to indices into sorted *classes* (K,); DataError for unknown labels."""
    labels = np.asarray(labels).astype(np.int64, copy=False)
    classes = np.asarray(classes, np.int64)
    idx = np.searchsorted(classes, labels)
    idx_clipped = np.minimum(idx, len(classes) - 1)
    unknown = classes[idx_clipped] != labels
    if unknown.any():
        bad = np.unique(labels[unknown])
        shown = ", ".join(map(str, bad[:10].tolist())) + (", ..." if len(bad) > 10 else "")
        raise DataError(f"{int(unknown.sum()):,} labels ({shown}) are not among the model's classes "
                        f"({', '.join(map(str, classes.tolist()))})",
                        "evaluate on data of the model's classes, or add `only_model_classes`")
    return idx_clipped


def model_class_rows(labels: np.ndarray, classes: np.ndarray, only_model_classes: bool = False) -> np.ndarray:
    """Indices (m,) int64 of the *labels* (n,) that are among the model's *classes*: every one,
    or, with *only_model_classes*, those left after dropping the others (a DataError naming them
    otherwise, and when none is left). The one rule of `evaluate` and `show --errors`."""
    labels = np.asarray(labels)
    known = np.isin(labels, classes)
    n_out = int((~known).sum())
    names = ", ".join(map(str, np.asarray(classes).tolist()))
    if n_out and not only_model_classes:
        extra = ", ".join(map(str, np.unique(labels[~known]).tolist()))
        raise DataError(f"{n_out:,} image{' has' if n_out == 1 else 's have'} labels ({extra}) the model "
                        f"does not know (its classes: {names})",
                        f"add `only_model_classes` to use only the images labelled {names}")
    if not known.any():
        raise DataError("no images of the model's classes in the data", f"use data with labels {names}")
    return np.flatnonzero(known)


def confusion_matrix(y: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (K, K) int64: rows = true class index, columns = predicted class index."""
    # C[t, p] = #{i : y_i = t, ŷ_i = p}
    flat = np.asarray(y, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def row_shares(cm: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix (n_classes, n_classes) as shares of its true label's images (0 for an empty row)."""
    cm = np.asarray(cm, np.int64)
    # r_tp = cm_tp / Σ_p cm_tp
    return cm / np.maximum(cm.sum(axis=1), 1)[:, None]


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den elementwise, 0 where den = 0 (scikit-learn's zero_division default)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def precision_recall_f1(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (K,) float64 and support (K,) int64 from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    # precision = tp/(tp+fp), recall = tp/(tp+fn), F1 = 2tp/(2tp+fp+fn)
    return {"precision": _safe_ratio(tp, predicted), "recall": _safe_ratio(tp, support),
            "f1": _safe_ratio(2 * tp, predicted + support), "support": support.astype(np.int64)}


def _midranks(sorted_scores: np.ndarray) -> np.ndarray:
    """1-based ranks of ascending *sorted_scores*, tied runs sharing their mean rank."""
    n = len(sorted_scores)
    new_run = np.empty(n, bool)
    new_run[:1] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n)
    # a run occupying 0-based positions [s, e) has mean 1-based rank (s + 1 + e)/2
    return ((starts + ends + 1) / 2.0)[np.cumsum(new_run) - 1]


def binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of *score* (n,) for boolean *positive* (n,); NaN when one class is absent.

    One argsort: AUC = (R₊ − n₊(n₊+1)/2)/(n₊n₋), R₊ the sum of positives' mid-ranks
    (the Mann–Whitney U; ties count one half, as scikit-learn's trapezoids do).
    """
    positive = np.asarray(positive, bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ranks = _midranks(np.asarray(score)[order])
    rank_sum = float(ranks[positive[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc_ovr(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per class (K,) float64 (NaN for a class absent or alone in y)."""
    n_classes = P.shape[1]
    if n_classes == 2:
        # binary: class 0's curve mirrors class 1's; score both on p₁ (1 − p₁ would round ties in)
        auc = binary_roc_auc(y == 1, P[:, 1])
        return np.array([auc, auc])
    return np.array([binary_roc_auc(y == k, P[:, k]) for k in range(n_classes)])


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (m,) for thresholds at each distinct score, from (0, 0).

    Collinear points are dropped (they do not change the curve), as scikit-learn does.
    """
    positive = np.asarray(positive, bool)
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    s, hit = np.asarray(score)[order], positive[order]
    last_of_threshold = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1)
    tps = np.cumsum(hit)[last_of_threshold].astype(np.float64)
    fps = (last_of_threshold + 1) - tps
    keep = np.ones(len(tps), bool)   # the first and last points always; one threshold: the one point
    keep[1:-1] = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
    tps, fps = np.r_[0.0, tps[keep]], np.r_[0.0, fps[keep]]
    return _safe_ratio(fps, np.full_like(fps, fps[-1])), _safe_ratio(tps, np.full_like(tps, tps[-1]))


def log_loss(y: np.ndarray, P: np.ndarray) -> float:
    """Mean cross-entropy −(1/n) Σ log p_{i,y_i}, p clipped to [ε, 1−ε] with float64's ε.

    float64's ε whatever P's dtype: scikit-learn clips at the ε of the probabilities it is given,
    and float32's (1.2e-7) would cap each image's loss at 15.9, below what the same probabilities
    written out (`predict --proba`) and read back as float64 give.
    """
    eps = np.finfo(np.float64).eps
    p_true = np.clip(P[np.arange(len(y)), y].astype(np.float64), eps, 1 - eps)
    return float(-np.log(p_true).mean())


def brier_score(y: np.ndarray, P: np.ndarray) -> float:
    """Mean over samples of Σ_k (p_k − [y = k])²; halved when K = 2 (scikit-learn's 'auto')."""
    P = np.asarray(P, np.float64)
    # Σ_k (p_k − y_k)² = Σ_k p_k² − 2 p_y + 1
    per_sample = np.einsum("ij,ij->i", P, P) - 2.0 * P[np.arange(len(y)), y] + 1.0
    score = float(per_sample.mean())
    return score / 2.0 if P.shape[1] == 2 else score


def calibration_bins(y: np.ndarray, P: np.ndarray, y_pred: np.ndarray | None = None,
                     n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Confidence histogram: per equal-width bin (lo, hi] of max-probability confidence,
    count (n_bins,) int64, mean confidence and accuracy (n_bins,) float64 (0 when empty)."""
    confidence = P.max(axis=1).astype(np.float64)
    y_pred = P.argmax(axis=1) if y_pred is None else y_pred
    correct = (y_pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; confidence 0 joins bin 0
    b = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(b, minlength=n_bins)
    return {"edges": edges, "count": count,
            "confidence": _safe_ratio(np.bincount(b, confidence, n_bins), count),
            "accuracy": _safe_ratio(np.bincount(b, correct, n_bins), count)}


def expected_calibration_error(y: np.ndarray, P: np.ndarray, y_pred: np.ndarray | None = None,
                               n_bins: int = ECE_BINS) -> float:
    """ECE = Σ_b (n_b/n)·|accuracy_b − confidence_b| over equal-width confidence bins."""
    bins = calibration_bins(y, P, y_pred, n_bins)
    weight = bins["count"] / max(len(y), 1)
    return float(np.sum(weight * np.abs(bins["accuracy"] - bins["confidence"])))


def top_confusions(cm: np.ndarray, classes: np.ndarray, top: int = 5) -> list[dict[str, Any]]:
    """The *top* most frequent off-diagonal cells: [{true, predicted, count, rate}], rate = count/support."""
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    support = cm.sum(axis=1)
    pairs = []
    for flat in order:
        t, p = divmod(int(flat), cm.shape[1])
        if off[t, p] == 0:
            break
        pairs.append({"true": int(classes[t]), "predicted": int(classes[p]), "count": int(off[t, p]),
                      "rate": float(off[t, p] / support[t])})
    return pairs


def present_classes(cm: np.ndarray) -> np.ndarray:
    """Which classes (K,) bool occur among the true labels or the predictions (y_true ∪ y_pred):
    the labels scikit-learn's averages run over by default (`labels=None`)."""
    return (cm.sum(axis=0) + cm.sum(axis=1)) > 0


def averages(cm: np.ndarray) -> dict[str, float]:
    """Macro (plain mean) and weighted (by support) precision, recall and F1 from a confusion
    matrix (K, K), over the classes in the true labels or the predictions, as scikit-learn's
    default (`labels=None`) does: a class of the model absent from both does not pull the macro
    average down (and weighs nothing in the weighted one)."""
    per_class = precision_recall_f1(cm)
    present = present_classes(cm)
    support = per_class["support"].astype(np.float64)
    weights = support / support.sum() if support.sum() > 0 else np.zeros_like(support)
    out: dict[str, float] = {}
    for name in ("precision", "recall", "f1"):
        out[f"{name}_macro"] = float(per_class[name][present].mean()) if present.any() else 0.0
        out[f"{name}_weighted"] = float(np.dot(weights, per_class[name]))
    return out


def auc_averages(auc: np.ndarray, support: np.ndarray) -> dict[str, float | None]:
    """Macro and support-weighted averages of the one-vs-rest ROC AUCs (K,) over the classes where
    it is defined (present in the true labels, and not alone); None where none is. The macro one
    is what scikit-learn gives for the binarised labels of those classes (with `labels=classes`
    it is NaN once a class is absent); the weighted one equals its `labels=classes` value."""
    defined = ~np.isnan(auc)
    w = np.asarray(support, np.float64)[defined]
    return {"roc_auc_ovr_macro": float(auc[defined].mean()) if defined.any() else None,
            "roc_auc_ovr_weighted": float(np.dot(w, auc[defined]) / w.sum()) if w.sum() > 0 else None}


def classification_report(labels: np.ndarray, P: np.ndarray, classes: np.ndarray,
                          y_pred: np.ndarray | None = None, top: int = 5) -> dict[str, Any]:
    """Every metric `evaluate` reports, as plain JSON-ready data.

    labels: (n,) true labels (values of *classes*); P: (n, K) probabilities in *classes* order;
    y_pred: (n,) predicted labels (default: the most probable class).
    """
    classes = np.asarray(classes, np.int64)
    P = np.asarray(P)
    if P.ndim != 2 or P.shape != (len(labels), len(classes)):
        raise DataError(f"probabilities of shape {P.shape} do not fit {len(labels)} labels "
                        f"and {len(classes)} classes")
    if len(labels) == 0:
        raise DataError("no samples to evaluate", "give a non-empty images/labels pair")
    y = label_indices(labels, classes)
    y_hat = P.argmax(axis=1) if y_pred is None else label_indices(y_pred, classes)
    cm = confusion_matrix(y, y_hat, len(classes))
    per_class = precision_recall_f1(cm)
    auc = roc_auc_ovr(y, P)
    report: dict[str, Any] = {
        "n_samples": int(len(y)), "labels": classes.tolist(),
        "accuracy": float(np.trace(cm) / len(y)), "log_loss": log_loss(y, P),
        "brier": brier_score(y, P), "ece": expected_calibration_error(y, P, y_hat),
    }
    report |= averages(cm) | auc_averages(auc, per_class["support"])
    present = present_classes(cm)
    report["average_labels"] = classes[present].tolist()

    def score(name: str, k: int) -> float | None:   # undefined for a class absent from both
        return float(per_class[name][k]) if present[k] else None

    report["per_class"] = [
        {"label": int(c), "precision": score("precision", k), "recall": score("recall", k),
         "f1": score("f1", k), "support": int(per_class["support"][k]),
         "roc_auc": None if np.isnan(auc[k]) else float(auc[k])}
        for k, c in enumerate(classes)]
    report["confusion_matrix"] = cm.tolist()
    report["top_confusions"] = top_confusions(cm, classes, top)
    return report
