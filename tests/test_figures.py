"""mnistlr.evaluation.figures: each figure shows what it claims (checked on the Figure objects), atomic files."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mnistlr.errors import MissingExtraError
from mnistlr.evaluation import figures

PNG = b"\x89PNG\r\n\x1a\n"


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts] + ([fig._suptitle.get_text()] if fig._suptitle else [])
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts] + [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def test_confusion_heatmap_is_row_normalised_with_counts_written():
    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 5, 5]])
    fig = figures.confusion_figure(cm, [3, 5, 8])
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), cm / cm.sum(axis=1, keepdims=True))
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in cm.ravel() if v)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3", "5", "8"]
    assert "accuracy 73.33%" in ax.get_title()


def test_roc_figure_has_one_curve_per_class_with_its_auc_in_the_legend():
    curves = [{"label": str(k), "fpr": np.array([0, 0.1, 1.0]), "tpr": np.array([0, 0.9, 1.0]),
               "auc": 0.9 + k / 100} for k in range(3)]
    fig = figures.roc_figure(curves)
    full, zoom = fig.axes[:2]
    assert len([line for line in full.lines if line.get_label() != "chance (AUC 0.5)"]) == 3
    legend = [t.get_text() for t in zoom.get_legend().get_texts()]
    assert legend == ["0 (AUC 0.9000)", "1 (AUC 0.9100)", "2 (AUC 0.9200)"]
    np.testing.assert_allclose(full.lines[1].get_xydata(), [[0, 0], [0.1, 0.9], [1, 1]])


def test_learning_curves_plot_the_history_for_both_parts():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
                "val_accuracy": 1 - 0.6 / e} for e in range(1, 6)]
    fig = figures.learning_curves_figure(history, best_epoch=4)
    loss_ax, acc_ax = fig.axes[:2]
    data = {line.get_label(): line.get_xydata() for line in loss_ax.lines}
    np.testing.assert_allclose(data["training"][:, 1], [1 / e for e in range(1, 6)])
    np.testing.assert_allclose(data["hold-out"][:, 1], [1.2 / e for e in range(1, 6)])
    assert {"training", "hold-out", "best epoch (4)"} <= {line.get_label() for line in acc_ax.lines}


@pytest.mark.parametrize("history", [None, [], [{"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.9}]])
def test_learning_curves_say_so_when_there_is_no_history(history):
    fig = figures.learning_curves_figure(history)
    text = " ".join(_texts(fig))
    assert "no learning curves" in text
    assert not any(ax.lines for ax in fig.axes)
    if history:
        assert "training accuracy: 0.9000" in text


def test_weights_figure_shows_each_weight_image_beside_its_class_mean():
    rng = np.random.default_rng(0)
    weights = [(str(k), rng.normal(size=(4, 4))) for k in range(3)]
    means = [(str(k), rng.uniform(0, 255, (4, 4))) for k in range(3)]
    fig = figures.weights_figure(weights, means)
    shown = {ax.get_title(): ax.images[0] for ax in fig.axes if ax.images}
    vmax = max(np.abs(w).max() for _, w in weights)
    for k in range(3):
        w_image, m_image = shown[f"weights {k}"], shown[f"mean image {k}"]
        np.testing.assert_allclose(w_image.get_array(), weights[k][1])
        assert w_image.get_clim() == pytest.approx((-vmax, vmax))
        assert w_image.get_cmap().name == "RdBu_r"
        np.testing.assert_allclose(m_image.get_array(), means[k][1])


def test_binary_weights_sit_between_the_two_class_means():
    fig = figures.weights_figure([("8 vs 3", np.ones((4, 4)))], [("3", np.zeros((4, 4))), ("8", np.ones((4, 4)))])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["mean image 3", "weights 8 vs 3", "mean image 8"]


def test_weights_figure_without_means_says_so():
    fig = figures.weights_figure([("0", np.eye(3)), ("1", -np.eye(3))])
    assert "no class means" in " ".join(_texts(fig))


def test_write_figures_writes_four_pngs_and_creates_the_folder(tmp_path):
    out = tmp_path / "new" / "figs"
    paths = figures.write_figures(
        out, confusion={"cm": np.eye(2, dtype=int), "labels": [0, 1]},
        roc={"curves": [{"label": "1", "fpr": np.array([0.0, 1.0]), "tpr": np.array([0.0, 1.0]), "auc": 0.5}]},
        learning_curves={"history": []}, weights={"weights": [("1 vs 0", np.eye(3))]})
    assert sorted(paths) == sorted(figures.FIGURES)
    for name, path in paths.items():
        assert path == out / f"{name}.png" and path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in figures.FIGURES)


def test_a_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    fig = figures.confusion_figure(np.eye(2, dtype=int), [0, 1])

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError):
        figures.save_figure(fig, tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_is_a_missing_extra_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError) as info:
        figures.require_matplotlib()
    assert "mnistlr[plot]" in str(info.value)


def test_learning_curves_draw_the_test_part_the_learning_rate_and_a_log_axis_for_a_spike():
    history = [{"epoch": e, "train_loss": 50.0 if e == 1 else 1 / e, "val_loss": 1.2 / e, "test_loss": 1.3 / e,
                "train_accuracy": 1 - 0.5 / e, "val_accuracy": 1 - 0.6 / e, "test_accuracy": 1 - 0.7 / e,
                "lr": 0.5 / (1 + (e - 1) / 2)} for e in range(1, 6)]
    fig = figures.learning_curves_figure(history)
    loss_ax, acc_ax, lr_ax = fig.axes[:3]
    accuracy = {line.get_label(): line.get_xydata()[:, 1] for line in acc_ax.lines}
    np.testing.assert_allclose(accuracy["test"], [100 * (1 - 0.7 / e) for e in range(1, 6)])
    assert {"training", "hold-out", "test"} <= set(accuracy)
    assert loss_ax.get_yscale() == "log"                       # 50 → 0.2: the spike would flatten the rest
    np.testing.assert_allclose(lr_ax.lines[0].get_xydata()[:, 1], [r["lr"] for r in history])
    assert "never used for stopping or selection" in " ".join(_texts(fig))
    calm = figures.learning_curves_figure([r | {"train_loss": 1 / r["epoch"], "lr": None} for r in history])
    assert calm.axes[0].get_yscale() == "linear" and len([ax for ax in calm.axes if ax.lines]) == 2


def test_weights_figure_shows_exact_zeros_in_their_own_colour():
    import matplotlib.colors

    w = np.array([[0.0, 0.5], [-0.5, 0.0]])
    fig = figures.weights_figure([("0", w), ("1", -w)])
    image = next(ax.images[0] for ax in fig.axes if ax.images)
    np.testing.assert_array_equal(np.ma.getmaskarray(image.get_array()), w == 0)
    assert image.get_cmap().get_bad() == pytest.approx(matplotlib.colors.to_rgba(figures.ZERO_COLOUR))
    assert "yellow: exactly 0 (50%)" in " ".join(_texts(fig))


def test_path_figure_marks_the_chosen_penalty():
    points = [{"l2": l2, "val_log_loss": loss, "val_accuracy": acc}
              for l2, loss, acc in ((1e-1, 0.6, 0.88), (1e-2, 0.4, 0.91), (1e-3, 0.45, 0.90))]
    fig = figures.path_figure({"points": points, "chosen": 1, "metric": "log_loss", "n_fit": 90, "n_val": 10})
    loss_ax, acc_ax = fig.axes[:2]
    assert loss_ax.get_xscale() == "log"
    np.testing.assert_allclose(loss_ax.lines[0].get_xydata(), [[1e-1, 0.6], [1e-2, 0.4], [1e-3, 0.45]])
    np.testing.assert_allclose(acc_ax.lines[1].get_xydata(), [[1e-2, 91.0]])
    assert "chosen l2 = 0.01" in [t.get_text() for t in loss_ax.get_legend().get_texts()]


def test_a_cv_path_figure_draws_the_fold_means_with_their_standard_errors():
    points = [{"l2": l2, "val_log_loss": loss, "val_accuracy": acc, "val_log_loss_se": 0.02, "val_accuracy_se": 0.01}
              for l2, loss, acc in ((1e-1, 0.6, 0.88), (1e-2, 0.4, 0.91))]
    fig = figures.path_figure({"points": points, "chosen": 1, "metric": "log_loss", "n_fit": 80, "n_val": 20,
                               "cv": 5})
    loss_ax, acc_ax = fig.axes[:2]
    bars = loss_ax.collections[0].get_segments()     # one vertical segment per point: value ± se
    np.testing.assert_allclose([seg[:, 1] for seg in bars], [[0.58, 0.62], [0.38, 0.42]])
    np.testing.assert_allclose([seg[:, 1] for seg in acc_ax.collections[0].get_segments()], [[87, 89], [90, 92]])
    assert "5 folds, mean log-loss" in loss_ax.get_ylabel() and "on 5 stratified folds of 100 images" in fig._suptitle.get_text()
