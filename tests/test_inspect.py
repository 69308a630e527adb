"""`mnistlr inspect`: the model card, its JSON, and the terminal pictures of mnistlr.cli.render."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from mnistlr.cli import render
from mnistlr.data.registry import load_dataset
from mnistlr.learn.fit import fit_model
from mnistlr.learn.options import TrainOptions
from mnistlr.learn.persistence import load_model, save_model


@pytest.fixture(scope="module")
def softmax_path(tmp_path_factory):
    """Softmax on the bundled sample; gd with a hold-out, so the history has hold-out curves."""
    X, y = load_dataset("mnist-sample", "train")
    options = TrainOptions(solver="gd", epochs=15, l2=1e-3, val_size=400)
    path = tmp_path_factory.mktemp("models") / "softmax.joblib"
    save_model(fit_model(X, y, options, dataset="mnist-sample"), path)
    return path


def console(width=80, color=False):
    return Console(width=width, record=True, force_terminal=color, no_color=not color,
                   color_system="truecolor" if color else None, file=open("/dev/null", "w"))


def test_card_shows_what_the_model_is_and_how_it_was_trained(cli, softmax_path):
    result = cli("inspect", softmax_path)
    assert result.code == 0 and result.err == ""
    model = load_model(softmax_path)
    out = result.out
    for text in ("softmax (gd)", "l2", "0.0010", "preprocessing", "scale", model.meta["data_sha256"][:16],
                 "3,600 training, 400 hold-out", model.meta["stop_reason"], "format version",
                 "numpy", "train accuracy", "val accuracy"):
        assert text in out, text
    loss_line = next(line for line in out.splitlines() if "training loss" in line)
    spark = "".join(ch for ch in loss_line if ch in render.SPARKS)
    assert len(spark) == len(model.meta["history"]) and spark[0] == "█"  # loss falls from its maximum
    assert "\x1b[" not in out


def test_card_names_the_options_each_solver_used(cli, tmp_path):
    sample = ["--dataset", "mnist-sample", "--train-limit", "600", "-q"]
    for args, shown, hidden in [(["--l1", "1e-4", "--l2", "0", "--max-iter", "5"], {"l1": 1e-4, "tol": 1e-3}, {"lr"}),
                                (["--model", "ridge"], {"l2": 1.0}, {"l1", "init", "tol"}),
                                (["--classes", "3,8"], {"init": "zeros"}, {"classes"})]:
        path = tmp_path / "m.joblib"
        assert cli("train", *sample, *args, "-o", path).code == 0
        hyper = json.loads(cli("inspect", path, "--json").out)["hyperparameters"]
        assert {k: hyper.get(k) for k in shown} == shown and not hidden & hyper.keys(), hyper


def test_card_json_summarises_arrays(cli, softmax_path):
    result = cli("inspect", softmax_path, "--json")
    card = json.loads(result.out)
    model = load_model(softmax_path)
    assert card["kind"] == "softmax" and card["solver"] == "gd" and card["classes"] == list(range(10))
    lr0 = model.meta["history"][0]["lr"]   # the step the search chose, shown beside "auto"
    assert card["hyperparameters"]["l2"] == pytest.approx(1e-3)
    assert card["hyperparameters"]["lr"] == f"auto (η₀ = {lr0:.3g})"
    assert card["weights"]["shape"] == [784, 10]
    assert card["weights"]["max_abs"] == pytest.approx(float(np.abs(model.W).max()))
    assert card["n_train"] == 3600 and card["n_val"] == 400 and card["format_version"] == 2
    assert len(card["history"]) == len(model.meta["history"])
    assert "class_means" not in json.dumps(card) and len(result.out) < 20_000  # no big arrays


def test_inspect_missing_file_is_one_line(cli, tmp_path):
    result = cli("inspect", tmp_path / "nope.joblib")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1 and "nope.joblib" in result.err


def test_weights_plain_shows_ten_labelled_images(cli, softmax_path):
    result = cli("inspect", softmax_path, "--weights")
    assert result.code == 0
    part = result.out.split("Weight images")[1]
    assert "▀" not in part  # NO_COLOR: characters, not colour blocks
    titles = [line.split() for line in part.splitlines() if line.split() and all(t.isdigit() for t in line.split())]
    assert sorted(int(t) for row in titles for t in row) == list(range(10))
    assert set(render.POSITIVE_RAMP) & set(part) and set(render.NEGATIVE_RAMP) & set(part)


@pytest.mark.parametrize("color", [False, True])
def test_weight_grid_fits_80_columns_in_three_rows(softmax_path, color):
    from mnistlr.api.inspect import inspect
    from mnistlr.cli.inspect import _print_weights

    c = console(80, color)
    _print_weights(c, inspect(softmax_path, weights=True).weights)
    lines = c.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    title_rows = [line for line in lines if line.split() and all(t.isdigit() for t in line.split())]
    assert len(title_rows) == 3


def decode(text, rows):
    """Signed values back from a diverging colour image: red − blue of each half-block colour."""
    values = np.zeros((rows, len(text.plain.split("\n")[0])))
    col = row = 0
    for span_text, style in [(text.plain[s.start:s.end], s.style) for s in text.spans]:
        assert span_text == "▀"
        for r, colour in ((row, style.color), (row + 1, style.bgcolor)):
            if colour is not None and r < rows:
                red, _, blue = colour.get_truecolor()
                values[r, col] = red - blue
        col += 1
        if col == values.shape[1]:
            col, row = 0, row + 2
    return values


def test_drawn_weight_templates_look_like_their_digits(softmax_path):
    """Decode the colour pictures and match them to the class mean images: each of the ten
    drawn templates must resemble its own digit's mean more than any other digit's."""
    model = load_model(softmax_path)
    means = model.meta["class_means"].reshape(10, 28, 28).astype(np.float64)
    centred = means - means.mean(axis=0)
    vmax = float(np.abs(model.W).max())
    drawn = [decode(render.image_lines(model.W[:, k].reshape(28, 28), diverging=True, vmax=vmax), 28)
             for k in range(10)]
    corr = np.corrcoef([d.ravel() for d in drawn] + [m.ravel() for m in centred])[:10, 10:]
    assert (corr.argmax(axis=1) == np.arange(10)).all(), np.round(corr, 2)


def test_image_lines_half_blocks_carry_both_pixel_rows():
    img = np.array([[0, 255], [128, 64], [255, 0]], np.uint8)
    text = render.image_lines(img)
    assert text.plain == "▀▀\n▀▀"
    styles = [s.style for s in text.spans]
    assert styles[0].color.get_truecolor() == (0, 0, 0) and styles[0].bgcolor.get_truecolor()[0] in (127, 128)
    assert styles[1].color.get_truecolor() == (255, 255, 255)
    assert styles[2].color.get_truecolor() == (255, 255, 255) and styles[2].bgcolor is None  # odd last row


def test_diverging_colours_are_blue_white_red():
    text = render.image_lines(np.array([[-2.0, 0.0, 2.0]]), diverging=True)
    (neg, zero, pos) = [s.style.color.get_truecolor() for s in text.spans]
    assert neg[2] > neg[0] + 100 and pos[0] > pos[2] + 100 and min(zero) > 240


def test_plain_fallback_shows_magnitude_and_sign():
    text = render.image_lines(np.array([[-1.0, -0.5, 0.0, 0.5, 1.0], [-1.0, -0.5, 0.0, 0.5, 1.0]]),
                              diverging=True, color=False)
    assert not text.spans
    neg_strong, neg_weak, zero, pos_weak, pos_strong = text.plain
    assert zero == " " and {neg_strong, neg_weak} <= set(render.NEGATIVE_RAMP)
    assert {pos_weak, pos_strong} <= set(render.POSITIVE_RAMP)
    assert render.POSITIVE_RAMP.index(pos_strong) > render.POSITIVE_RAMP.index(pos_weak)
    grey = render.image_lines(np.array([[0, 255], [0, 255]], np.uint8), color=False).plain
    assert grey == " @"


def test_image_grid_lays_images_side_by_side_within_the_width():
    imgs = [np.full((4, 10), v, np.uint8) for v in (0, 100, 200, 255, 50)]
    c = console(34)
    c.print(render.image_grid(imgs, ["a", "b", "c", "d", "e"], color=False, width=34))
    lines = [line.rstrip() for line in c.export_text().splitlines()]
    assert max(map(len, lines)) <= 34
    assert lines[0].split() == ["a", "b", "c"] and any(line.split() == ["d", "e"] for line in lines)


def test_sparkline():
    assert render.sparkline([7, 3, 0]) == "█▄▁"
    assert render.sparkline([1, None, float("nan"), 1]) == "▅▅"
    assert len(render.sparkline(range(500), width=40)) == 40 and render.sparkline([]) == ""


def test_resize_area_averages_and_crop_box_trims_blank_borders():
    img = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(render.resize(img, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert render.resize(np.ones((28, 28)), 18, 18) == pytest.approx(np.ones((18, 18)))
    a = np.zeros((6, 6))
    a[2, 1] = a[3, 4] = 1
    assert render.crop_box([a, -a]) == (slice(2, 4), slice(1, 5))
    assert render.fit_size(10, 28, width=80) == 18 and render.fit_size(1, 28, width=80) == 28


def test_help_ends_with_examples(cli):
    out = cli("inspect", "--help").out.rstrip().splitlines()[-6:]
    assert sum("mnistlr inspect" in line for line in out) >= 2


def test_card_of_a_model_without_training_meta(cli, tmp_path):
    from mnistlr.learn.model import LinearModel, Preprocessor

    model = LinearModel("logistic", np.array([3, 8]), (28, 28), Preprocessor.fit("scale", np.zeros((2, 784))),
                        np.ones((784, 1), np.float32), np.zeros(1, np.float32))
    save_model(model, tmp_path / "bare.joblib")
    result = cli("inspect", tmp_path / "bare.joblib", "--weights")
    assert result.code == 0, result.err
    assert "logistic" in result.out and "none recorded" in result.out and "8 vs 3" in result.out
    assert "evidence for 8" in result.out
    assert json.loads(cli("inspect", tmp_path / "bare.joblib", "--json").out)["n_train"] is None
