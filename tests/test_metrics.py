"""mnistlr.evaluation.metrics against scikit-learn (the reference) and naive loops, on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from mnistlr.errors import DataError
from mnistlr.evaluation import metrics


def synthetic(n=3000, n_classes=10, seed=0, dtype=np.float32, decimals=1):
    """Labels (n,), probabilities (n, K) with many exact ties (rounded scores), predictions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    S = rng.normal(size=(n, n_classes))
    S[np.arange(n), y] += 1.5
    S = np.round(S, decimals) * 4
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P = (P / P.sum(axis=1, keepdims=True)).astype(dtype)
    return y, P, P.argmax(axis=1)


def naive_ece(y, P, n_bins=15):
    """Textbook ECE with a loop over bins (lo, hi]."""
    conf, correct = P.max(axis=1).astype(np.float64), P.argmax(axis=1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        members = (conf > lo) & (conf <= hi)
        if members.any():
            total += members.mean() * abs(correct[members].mean() - conf[members].mean())
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_report_agrees_with_sklearn(dtype):
    y, P, y_pred = synthetic(dtype=dtype)
    labels = np.arange(10)
    r = metrics.classification_report(y, P, labels)
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y, y_pred), abs=1e-12)
    assert r["log_loss"] == pytest.approx(sk.log_loss(y, P, labels=labels), abs=1e-6)
    assert r["brier"] == pytest.approx(sk.brier_score_loss(y, P, labels=labels), abs=1e-6)
    for avg in ("macro", "weighted"):
        p, rc, f, _ = sk.precision_recall_fscore_support(y, y_pred, labels=labels, average=avg, zero_division=0)
        assert (r[f"precision_{avg}"], r[f"recall_{avg}"], r[f"f1_{avg}"]) == pytest.approx((p, rc, f), abs=1e-12)
        auc = sk.roc_auc_score(y, P, multi_class="ovr", average=avg, labels=labels)
        assert r[f"roc_auc_ovr_{avg}"] == pytest.approx(auc, abs=1e-12)
    p, rc, f, support = sk.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    per_class = r["per_class"]
    assert [c["support"] for c in per_class] == support.tolist()
    np.testing.assert_allclose([c["precision"] for c in per_class], p, atol=1e-12)
    np.testing.assert_allclose([c["recall"] for c in per_class], rc, atol=1e-12)
    np.testing.assert_allclose([c["f1"] for c in per_class], f, atol=1e-12)
    np.testing.assert_allclose([c["roc_auc"] for c in per_class],
                               [sk.roc_auc_score(y == k, P[:, k]) for k in labels], atol=1e-12)
    np.testing.assert_array_equal(r["confusion_matrix"], sk.confusion_matrix(y, y_pred, labels=labels))
    assert r["ece"] == pytest.approx(naive_ece(y, P), abs=1e-12)


def test_log_loss_clips_at_float64_epsilon_for_any_dtype_like_sklearn_on_the_written_probabilities():
    y = np.array([0, 1, 2, 0, 1])
    # one sure miss (p_true = 0) and one true-class probability far below float32's ε
    P = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0.5, 0.5, 0], [1 - 1e-10, 1e-10, 0]], np.float32)
    expected = sk.log_loss(y, P.astype(np.float64), labels=[0, 1, 2])
    for dtype in (np.float32, np.float64):
        assert metrics.log_loss(y, P.astype(dtype)) == pytest.approx(expected, rel=1e-6)
    # float32's own ε would cap the last image's loss at −log(1.2e-7) = 15.9 instead of 23.0
    assert metrics.log_loss(y[4:], P[4:]) == pytest.approx(-np.log(np.float64(P[4, 1])), rel=1e-6)


def test_binary_brier_and_auc_follow_sklearn_binary_definitions():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.65, 500), 0, 1).round(2)
    P = np.column_stack([1 - p1, p1])
    r = metrics.classification_report(y, P, np.array([0, 1]))
    assert r["brier"] == pytest.approx(sk.brier_score_loss(y, p1), abs=1e-12)
    assert r["roc_auc_ovr_macro"] == pytest.approx(sk.roc_auc_score(y, p1), abs=1e-12)
    assert [c["roc_auc"] for c in r["per_class"]] == pytest.approx([sk.roc_auc_score(y, p1)] * 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60))
def test_rank_auc_equals_sklearn_with_heavy_ties(pairs):
    positive = np.array([p for p, _ in pairs])
    score = np.array([s for _, s in pairs], np.float64)
    auc = metrics.binary_roc_auc(positive, score)
    if positive.all() or not positive.any():
        assert np.isnan(auc)
    else:
        assert auc == pytest.approx(sk.roc_auc_score(positive, score), abs=1e-12)


def test_auc_extremes():
    y = np.array([0, 0, 1, 1])
    assert metrics.binary_roc_auc(y == 1, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.binary_roc_auc(y == 1, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.binary_roc_auc(y == 1, np.full(4, 0.5)) == 0.5


def test_roc_curve_matches_sklearn_points():
    y, P, _ = synthetic(n=2000, decimals=2)
    for k in (0, 7):
        fpr, tpr = metrics.roc_curve(y == k, P[:, k])
        sk_fpr, sk_tpr, _ = sk.roc_curve(y == k, P[:, k])
        np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
        np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)


@pytest.mark.parametrize("positive, score", [
    ([False, True, True, False], [0.5, 0.5, 0.5, 0.5]),   # one threshold (identical images)
    ([False, True], [0.2, 0.7]),                          # two thresholds
    ([True, False, True], [0.3, 0.3, 0.9]),
])
def test_roc_curve_with_one_or_two_thresholds_matches_sklearn(positive, score):
    fpr, tpr = metrics.roc_curve(np.array(positive), np.array(score))
    sk_fpr, sk_tpr, _ = sk.roc_curve(positive, score, drop_intermediate=True)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)


def test_roc_curve_of_a_single_image_is_its_two_end_points():
    fpr, tpr = metrics.roc_curve(np.array([True]), np.array([0.9]))   # `evaluate --plot` on one image
    assert len(fpr) == len(tpr) == 2 and tpr[-1] == 1.0


def test_ece_bins_put_confidence_on_the_upper_edge_into_the_lower_bin():
    # confidence exactly 1/3 belongs to the bin (4/15, 5/15]; exactly 1 to the last bin
    P = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.6, 0.4, 0.0]])
    y = np.array([0, 0, 1])
    bins = metrics.calibration_bins(y, P)
    assert bins["count"].sum() == 3 and bins["count"][4] == 1 and bins["count"][14] == 1
    assert metrics.expected_calibration_error(y, P) == pytest.approx(naive_ece(y, P), abs=1e-12)


def test_absent_class_gets_undefined_auc_and_zero_scores():
    y = np.array([0, 0, 1, 1, 0])
    P = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])
    r = metrics.classification_report(y, P, np.array([0, 1, 2]))
    absent = r["per_class"][2]
    assert absent["roc_auc"] is None and absent["support"] == 0 and absent["recall"] == 0
    assert r["roc_auc_ovr_macro"] == pytest.approx(np.mean([c["roc_auc"] for c in r["per_class"][:2]]))


def test_averages_on_data_of_some_classes_agree_with_sklearn_defaults():
    # a 10-class model scored on images of 0-4 that it only ever labels 0-4 (scikit-learn's
    # labels=None averages over y_true ∪ y_pred; over all ten classes the macro F1 would halve)
    y, P, _ = synthetic(n=2000, n_classes=5, seed=4)
    P = np.hstack([P, np.zeros((len(y), 5), P.dtype)])
    y_pred = P.argmax(axis=1)
    assert set(y_pred) == set(y) == set(range(5))
    r = metrics.classification_report(y, P, np.arange(10))
    for avg in ("macro", "weighted"):
        p, rc, f, _ = sk.precision_recall_fscore_support(y, y_pred, average=avg, zero_division=0)
        assert (r[f"precision_{avg}"], r[f"recall_{avg}"], r[f"f1_{avg}"]) == pytest.approx((p, rc, f), abs=1e-12)
    assert r["average_labels"] == [0, 1, 2, 3, 4]
    # ROC AUC: weighted as sklearn's labels=classes; macro over the classes where it is defined
    # (sklearn gives NaN with labels=classes, and needs as many columns as classes without)
    assert r["roc_auc_ovr_weighted"] == pytest.approx(
        sk.roc_auc_score(y, P, multi_class="ovr", average="weighted", labels=np.arange(10)), abs=1e-12)
    Y = np.eye(10)[y][:, :5]
    assert r["roc_auc_ovr_macro"] == pytest.approx(sk.roc_auc_score(Y, P[:, :5], average="macro"), abs=1e-12)
    # rows for every class of the model; scores undefined (None) for the classes absent from both
    p, rc, f, support = sk.precision_recall_fscore_support(y, y_pred, labels=np.arange(10), zero_division=0)
    rows = r["per_class"]
    assert [c["label"] for c in rows] == list(range(10)) and [c["support"] for c in rows] == support.tolist()
    np.testing.assert_allclose([c["f1"] for c in rows[:5]], f[:5], atol=1e-12)
    assert all(c[k] is None for c in rows[5:] for k in ("precision", "recall", "f1", "roc_auc"))


def test_a_class_predicted_but_absent_from_the_labels_counts_in_the_macro_average_as_in_sklearn():
    y = np.array([0, 0, 1, 1, 0, 1])
    P = np.array([[0.8, 0.1, 0.1, 0], [0.3, 0.2, 0.5, 0], [0.2, 0.7, 0.1, 0], [0.3, 0.6, 0.1, 0],
                  [0.5, 0.2, 0.3, 0], [0.1, 0.1, 0.8, 0]])
    y_pred = P.argmax(axis=1)
    r = metrics.classification_report(y, P, np.arange(4))
    assert r["average_labels"] == [0, 1, 2]
    for avg in ("macro", "weighted"):
        p, rc, f, _ = sk.precision_recall_fscore_support(y, y_pred, average=avg, zero_division=0)
        assert (r[f"precision_{avg}"], r[f"recall_{avg}"], r[f"f1_{avg}"]) == pytest.approx((p, rc, f), abs=1e-12)
    assert r["per_class"][2]["precision"] == 0.0 and r["per_class"][3]["precision"] is None


def test_top_confusions_are_off_diagonal_and_sorted():
    cm = np.array([[50, 3, 0], [7, 40, 1], [0, 0, 9]])
    pairs = metrics.top_confusions(cm, np.array([2, 5, 8]), top=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [(5, 2, 7), (2, 5, 3), (5, 8, 1)]
    assert pairs[0]["rate"] == pytest.approx(7 / 48)
    assert metrics.top_confusions(np.eye(3, dtype=int) * 5, np.arange(3)) == []


def test_labels_outside_the_classes_are_a_data_error():
    with pytest.raises(DataError, match="not among the model's classes") as info:
        metrics.label_indices(np.array([3, 8, 5]), np.array([3, 8]))
    # the fix as each side spells it: the keyword in Python, the flag on the command line
    assert "add only_model_classes" in str(info.value) and "--only-model-classes" in info.value.for_command_line()
    np.testing.assert_array_equal(metrics.label_indices(np.array([8, 3]), np.array([3, 8])), [1, 0])


def test_report_refuses_empty_or_misshapen_input():
    with pytest.raises(DataError):
        metrics.classification_report(np.array([], int), np.empty((0, 2)), np.array([0, 1]))
    with pytest.raises(DataError):
        metrics.classification_report(np.array([0, 1]), np.ones((2, 3)) / 3, np.array([0, 1]))


def test_row_shares_are_scikit_learns_normalize_true():
    from sklearn.metrics import confusion_matrix as sk_confusion

    rng = np.random.default_rng(4)
    y, y_pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    cm = metrics.confusion_matrix(y, y_pred, 4)
    np.testing.assert_allclose(metrics.row_shares(cm), sk_confusion(y, y_pred, normalize="true"))
    # a class with no images: its row is 0, not nan
    assert metrics.row_shares(np.array([[2, 1], [0, 0]])).tolist() == [[2 / 3, 1 / 3], [0.0, 0.0]]
