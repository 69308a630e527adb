"""The public Python API (`import mnistlr`): train, Model, load, evaluate, load_dataset,
the one pixel rule shared with the command line, and the errors it gives."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import mnistlr
from mnistlr.learn.persistence import load_model

LIMIT = 1000   # training images of the sample used here (a second per fit)


@pytest.fixture(scope="module")
def sample():
    X, y = mnistlr.load_dataset("mnist-sample")
    Xt, yt = mnistlr.load_dataset("mnist-sample", split="test")
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def model(sample):
    X, y, _, _ = sample
    return mnistlr.train(X, y, model="softmax", train_limit=LIMIT, l2=1e-3)


def test_import_loads_neither_numba_nor_scipy():
    code = ("import sys, mnistlr; mnistlr.Model; mnistlr.load_dataset('mnist-sample'); "
            "print(sorted(m for m in ('numba', 'scipy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_are_listed_and_documented():
    for name in mnistlr.__all__:
        obj = getattr(mnistlr, name)
        assert name == "__version__" or obj.__doc__, name
    assert {"train", "load", "evaluate", "load_dataset", "Model"} <= set(mnistlr.__all__)
    with pytest.raises(AttributeError):
        mnistlr.no_such_name  # noqa: B018


def test_train_gives_the_cli_weights(sample, model, cli, tmp_path):
    path = tmp_path / "m.joblib"
    assert cli("train", "--dataset", "mnist-sample", "--train-limit", LIMIT, "--l2", "1e-3",
               "-o", path, "-q").code == 0
    cli_model = load_model(path)
    assert np.array_equal(model.linear.W, cli_model.W) and np.array_equal(model.linear.b, cli_model.b)
    assert model == mnistlr.load(path)


def test_flat_rows_and_images_train_alike(sample, model):
    X, y, _, _ = sample
    flat = mnistlr.train(X.reshape(len(X), -1), y, train_limit=LIMIT, l2=1e-3)
    assert flat == model and flat.image_shape == (28, 28)


def test_one_pixel_rule_for_every_scale(sample, model):
    _, _, Xt, yt = sample
    expected = model.predict(Xt)
    for X in (Xt / 255.0, (Xt / 255.0).astype(np.float32), Xt.astype(np.float64),
              Xt.reshape(len(Xt), -1).astype(np.int64)):
        assert np.array_equal(model.predict(X), expected)
        # the learning layer's own model reads floats by the same rule (once 8 % on X / 255)
        assert np.array_equal(model.linear.predict(X), expected)
    assert np.allclose(model.predict_proba(Xt / 255.0), model.predict_proba(Xt), atol=1e-5)
    assert model.score(Xt / 255.0, yt) == model.score(Xt, yt) > 0.85


def test_model_methods_shapes_and_repr(sample, model):
    _, _, Xt, yt = sample
    P = model.predict_proba(Xt[:7])
    S = model.decision_function(Xt[:7])
    assert P.shape == S.shape == (7, 10) and np.allclose(P.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(model.predict(Xt[:7]), model.classes_[S.argmax(axis=1)])
    assert model.classes_.tolist() == list(range(10))
    assert repr(model).startswith("mnistlr.Model(kind='softmax', classes=[0..9], image_shape=(28, 28)")
    assert model.score(Xt, yt) == float((model.predict(Xt) == yt).mean())


def test_save_and_load_round_trip(model, tmp_path, sample):
    _, _, Xt, _ = sample
    path = model.save(tmp_path / "m.joblib")
    back = mnistlr.load(path)
    assert back == model and back is not model
    assert np.array_equal(back.predict_proba(Xt), model.predict_proba(Xt))


def test_a_features_model_saves_and_loads(sample, tmp_path):
    # preprocess="none": the columns as given (general features), no pixel rule
    X, y, _, _ = sample
    Z = X[:300].reshape(300, -1) / 255.0 * 7.5 - 2.0
    model = mnistlr.train(Z, y[:300], preprocess="none", image_shape=(1, 784), max_iter=20)
    back = mnistlr.load(model.save(tmp_path / "f.joblib"))
    assert back == model and np.array_equal(back.predict(Z), model.predict(Z))
    assert back == mnistlr.load(model.export(tmp_path / "f.npz"))


def test_evaluate_has_the_keys_of_evaluate_json(sample, model, cli, tmp_path):
    _, _, Xt, yt = sample
    path = model.save(tmp_path / "m.joblib")
    result = cli("evaluate", path, "--dataset", "mnist-sample", "--json", "-q")
    assert result.code == 0, result.err
    from_cli = json.loads(result.out)
    report = mnistlr.evaluate(model, Xt, yt)
    assert set(report) == set(from_cli)
    for key in ("accuracy", "log_loss", "n_samples"):
        assert report[key] == pytest.approx(from_cli[key]), key
    assert report["confusion_matrix"] == from_cli["confusion_matrix"]
    assert mnistlr.evaluate(path, Xt / 255.0, yt)["accuracy"] == report["accuracy"]


def test_binary_logistic_and_ridge(sample):
    X, y, Xt, yt = sample
    binary = mnistlr.train(X, y, model="logistic", classes=[3, 8])
    keep = np.isin(yt, [3, 8])
    assert binary.decision_function(Xt[keep]).shape == (keep.sum(), 1)
    assert binary.score(Xt[keep], yt[keep]) > 0.9
    ridge = mnistlr.train(X / 255.0, y, model="ridge", train_limit=LIMIT)
    assert ridge.score(Xt, yt) > 0.75


def test_load_dataset_from_a_pair_of_files(shared_mnist):
    X, y = mnistlr.load_dataset((shared_mnist / "t10k-images-idx3-ubyte.gz",
                                 shared_mnist / "t10k-labels-idx1-ubyte.gz"))
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8 and y.shape == (10000,)


def test_load_dataset_reads_the_command_lines_sources(sample, tmp_path):
    X, y, _, _ = sample
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=X[:50], y_train=y[:50], x_test=X[50:60], y_test=y[50:60])
    X2, y2 = mnistlr.load_dataset(path)
    assert np.array_equal(X2, X[:50]) and np.array_equal(y2, y[:50])
    Xt, yt = mnistlr.load_dataset(str(path), split="test")
    assert np.array_equal(Xt, X[50:60]) and np.array_equal(yt, y[50:60])


@pytest.mark.parametrize("call, error, words", [
    (lambda X, y: mnistlr.train(X, y, l3=1.0), mnistlr.UnknownOptionError, "'l3'"),
    (lambda X, y: mnistlr.train(X, y, lr_=1.0), TypeError, "did you mean 'lr'"),
    (lambda X, y: mnistlr.train(X, y, model="tree"), mnistlr.UsageError, "'tree'"),
    (lambda X, y: mnistlr.train(X, y, l2=-1.0), ValueError, "l2 must be a finite number"),
    (lambda X, y: mnistlr.train(X[:, :5], y), mnistlr.DataError, "not a square image"),
    (lambda X, y: mnistlr.train(X.reshape(len(X), -1), y, image_shape=(5, 5)), ValueError, "does not hold 784"),
    (lambda X, y: mnistlr.train(X, y[:-1]), ValueError, "but labels of shape"),
    (lambda X, y: mnistlr.train(X, y.astype(str)), TypeError, "(text), not integers (give integer codes"),
    (lambda X, y: mnistlr.train(X, np.where(y == y[7], 1e20, y)), ValueError, "label 7 (1e+20) is out of range"),
    (lambda X, y: mnistlr.train(X.astype(str), y), mnistlr.InputTypeError, "not numbers"),
    (lambda X, y: mnistlr.train(X[0, 0], y[:1]), ValueError, "images are (n, rows, cols)"),
    (lambda X, y: mnistlr.train(np.where(X > 0, np.nan, 0.0), y), ValueError, "holds NaN"),
    (lambda X, y: mnistlr.train(X, y, classes=[3]), ValueError, "at least two distinct labels"),
    (lambda X, y: mnistlr.load_dataset("no-such-set"), ValueError, "unknown dataset"),
    (lambda X, y: mnistlr.load_dataset(42), TypeError, "not int"),
    (lambda X, y: mnistlr.train(X, y, max_iter=3).save("/no/such/dir/m.joblib"), OSError,
     "directory /no/such/dir does not exist"),
    (lambda X, y: mnistlr.evaluate(mnistlr.train(X, y, max_iter=3), X, y, top=-1), mnistlr.UsageError,
     "top must be a whole number from 0 to 100, got -1"),
    (lambda X, y: mnistlr.train(X, y, features=5), mnistlr.UsageError, "features must be a text spec, got 5"),
    (lambda X, y: mnistlr.train(X, y, features=b"pca:5"), mnistlr.UsageError, "features must be a text spec"),
    (lambda X, y: mnistlr.train(X, y, l2=[1]), mnistlr.UsageError, "l2 must be a finite number ≥ 0, got [1]"),
    (lambda X, y: mnistlr.train(X, y, tol="1e-3"), mnistlr.UsageError, "tol must be a finite number"),
    (lambda X, y: mnistlr.train(X, y, classes="3,8"), mnistlr.UsageError, "classes must be a list of whole-number"),
    (lambda X, y: mnistlr.train(X, y, classes=3), mnistlr.UsageError, "classes must be a list"),
    # a set selected no image ("a single class ([])"), and a model saved with it could not be loaded
    (lambda X, y: mnistlr.train(X, y, classes={3, 8}), mnistlr.UsageError, "classes must be a list"),
    (lambda X, y: mnistlr.train(X.reshape(len(X), -1), y, image_shape="28x28"), mnistlr.UsageError,
     "image_shape must be two whole numbers (rows, cols), got '28x28'"),
    # images (n, rows, cols) already have a shape: another one given is not silently dropped
    (lambda X, y: mnistlr.train(X, y, image_shape=(14, 56)), mnistlr.DataError,
     "image_shape 14×56 contradicts X's images of 28×28 (drop image_shape, or give X as rows"),
    (lambda X, y: mnistlr.train(X, y, image_shape="28x28"), mnistlr.UsageError, "image_shape must be two whole"),
])
def test_bad_input_gives_the_projects_error(sample, call, error, words):
    X, y, _, _ = sample
    with pytest.raises(error) as info:
        call(X[:200].reshape(200, -1) if "square" in words else X[:200], y[:200])
    assert isinstance(info.value, mnistlr.MnistlrError)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_an_iteration_cap_is_a_convergence_warning_and_a_converged_fit_is_quiet(sample):
    import warnings

    X, y, _, _ = sample
    with pytest.warns(mnistlr.ConvergenceWarning, match="reached max_iter=3 before tol=0.001"):
        capped = mnistlr.train(X[:300], y[:300], max_iter=3)
    assert capped.meta["stop_reason"] == "max_iter"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mnistlr.train(X[:300], y[:300]).meta["stop_reason"] == "converged"


def test_numpy_numbers_are_options_like_python_ones(sample):
    X, y, _, _ = sample
    given = mnistlr.train(X[:200], y[:200], solver="gd", epochs=np.int64(3), seed=np.int64(4), l2=np.float32(1e-3),
                          classes=np.array([3, 8]))
    plain = mnistlr.train(X[:200], y[:200], solver="gd", epochs=3, seed=4, l2=float(np.float32(1e-3)), classes=[3, 8])
    np.testing.assert_array_equal(given.predict(X[:50]), plain.predict(X[:50]))


def test_numpy_strings_as_options_save_a_model_that_loads(sample, tmp_path):
    # e.g. `for kind in np.array(["ridge", "softmax"])`: np.str_ pickled as a NumPy scalar, refused on load
    X, y, _, _ = sample
    model = mnistlr.train(X[:200], y[:200], model=np.str_("ridge"), preprocess=np.str_("center"))
    back = mnistlr.load(model.save(tmp_path / "s.joblib"))
    assert back == model and back.kind == "ridge" and type(back.kind) is str


@pytest.mark.parametrize("X, error, words", [
    (np.zeros((3, 20, 20), np.uint8), mnistlr.DataError, "input images are 20×20"),
    (np.full((3, 784), 1.5), ValueError, "float pixels are either in [0, 1]"),
    (np.full((3, 784), -1.0), ValueError, "negative pixel value"),
    (np.full((3, 784), 300.0), ValueError, "above 255"),
    (np.full((3, 784), np.inf), ValueError, "infinite value"),
    (np.array([["a"] * 784]), TypeError, "not numbers"),
    (np.zeros(784, np.uint8), ValueError, "x[None]"),
    (np.zeros((28, 28), np.uint8), ValueError, "28 rows of 28 values, but the model expects images of 28×28 (for one image x, give x[None])"),
])
def test_bad_prediction_input(model, X, error, words):
    with pytest.raises(error) as info:
        model.predict(X)
    assert words in str(info.value)
    assert isinstance(info.value, mnistlr.MnistlrError)


def test_images_divided_by_255_or_cast_to_float_give_the_same_bits(tmp_path):
    X, y = mnistlr.load_dataset("mnist-sample")
    model = mnistlr.train(X[:600], y[:600], max_iter=30)
    P = model.predict_proba(X[600:900])
    for same in (X[600:900] / 255.0, (X[600:900] / 255.0).astype(np.float32), X[600:900].astype(np.float64)):
        assert np.array_equal(model.predict_proba(same), P)
    assert mnistlr.train((X[:600] / 255.0).astype(np.float32), y[:600], max_iter=30) == model


def test_a_fit_that_learnt_nothing_warns(sample):
    X, y = sample[0][:400], sample[1][:400]
    with pytest.warns(UserWarning, match="every weight is zero"):
        mnistlr.train(X, y, l1=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mnistlr.train(X, y)


@pytest.mark.parametrize("name", ["m.onnx", "m.NPZ", "weights.csv"])
def test_save_under_an_export_name_points_to_export(model, tmp_path, name):
    # save writes joblib whatever the name: m.onnx would be no graph
    with pytest.raises(mnistlr.UsageError, match=r"names an export .*joblib's format") as raised:
        model.save(tmp_path / name)
    assert "model.export(" in raised.value.hint and not (tmp_path / name).exists()
