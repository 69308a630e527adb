"""`mnistlr export`: ONNX graphs checked with onnxruntime against `predict --proba` on the
10,000 real test images, the .npz read back into an equal Model, the .csv weights, errors."""

from __future__ import annotations

import csv
import gzip
import sys

import numpy as np
import pytest

import mnistlr
from mnistlr.data.registry import load_dataset
from mnistlr.io.idx import read_images
from mnistlr.learn.fit import fit_model
from mnistlr.learn.options import TrainOptions
from mnistlr.learn.persistence import load_model, save_model

KINDS = {
    "softmax": TrainOptions(max_iter=40),
    "logistic-binary": TrainOptions(model="logistic", classes=[3, 8], max_iter=40),
    "logistic-ovr": TrainOptions(model="logistic", max_iter=30, preprocess="standardize"),
    "ridge": TrainOptions(model="ridge", preprocess="center"),
}


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    """One model file per kind, trained on the bundled sample."""
    X, y = load_dataset("mnist-sample", "train")
    folder = tmp_path_factory.mktemp("export-models")
    paths = {}
    for name, options in KINDS.items():
        paths[name] = folder / f"{name}.joblib"
        save_model(fit_model(X, y, options, dataset="mnist-sample"), paths[name])
    return paths


def read_predictions(path):
    """(labels (n,), probabilities (n, k)) of a `predict --proba` CSV."""
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, 1].astype(np.int64), table[:, 2:]


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_matches_predict_on_the_real_test_images(kind, model_paths, shared_mnist, cli, tmp_path):
    import onnxruntime

    images_path = shared_mnist / "t10k-images-idx3-ubyte.gz"
    predicted = tmp_path / "pred.csv"
    assert cli("predict", model_paths[kind], images_path, "--proba", "-q", "-o", predicted).code == 0
    labels, P = read_predictions(predicted)
    X = read_images(images_path)
    assert X.shape == (10000, 28, 28)
    runs = {"uint8 images": ([], X),
            "float32 flat [0, 1]": (["--input-type", "float32", "--input-layout", "flat"],
                                    (X.reshape(len(X), -1) / 255.0).astype(np.float32)),
            "float32 images 0-255": (["--input-type", "float32"], X.astype(np.float32))}
    for what, (args, inputs) in runs.items():
        graph = tmp_path / "model.onnx"
        result = cli("export", model_paths[kind], "-o", graph, *args)
        assert result.code == 0, result.err
        session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
        onnx_labels, onnx_P = session.run(None, {"images": inputs})
        assert onnx_labels.dtype == np.int64 and onnx_P.dtype == np.float32
        assert np.array_equal(onnx_labels, labels), what
        assert np.abs(onnx_P - P).max() <= 1e-5, what


def test_npz_is_plain_numpy_and_loads_back_equal(model_paths, tmp_path, cli):
    path = tmp_path / "model.npz"
    assert cli("export", model_paths["logistic-binary"], "-o", path, "-q").code == 0
    model = load_model(model_paths["logistic-binary"])
    with np.load(path, allow_pickle=False) as data:
        fields = {name: data[name] for name in data.files}
    assert str(fields["format"]) == "mnistlr-npz" and str(fields["kind"]) == "logistic"
    assert fields["classes"].tolist() == [3, 8] and fields["image_shape"].tolist() == [28, 28]
    assert np.array_equal(fields["W"], model.W) and fields["W"].shape == (784, 1)
    # scores = x·W_raw + b_raw on raw pixels: what predict computes
    X, _ = load_dataset("mnist-sample", "test")
    flat = X.reshape(len(X), -1).astype(np.float64)
    scores = flat @ fields["W_raw"].astype(np.float64) + fields["b_raw"]
    assert np.allclose(scores, model.raw_scores(X), atol=1e-4)
    back = mnistlr.load(path)
    assert back == mnistlr.Model(model)
    assert np.array_equal(back.predict_proba(X), mnistlr.Model(model).predict_proba(X))
    assert back.meta["n_train"] == model.meta["n_train"]


def test_csv_has_labels_intercepts_and_raw_weights(model_paths, tmp_path, cli):
    path = tmp_path / "weights.csv"
    assert cli("export", model_paths["softmax"], "-o", path, "-q").code == 0
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["feature"] + [str(c) for c in range(10)]
    assert rows[1][0] == "intercept" and rows[2][0] == "pixel_0" and len(rows) == 2 + 784
    W_raw, b_raw = load_model(model_paths["softmax"]).effective_weights()
    assert np.array_equal(np.array(rows[1][1:], np.float32), b_raw)
    assert np.array_equal(np.array([r[1:] for r in rows[2:]], np.float32), W_raw)


def test_python_export_and_load(model_paths, tmp_path):
    model = mnistlr.load(model_paths["ridge"])
    written = model.export(tmp_path / "r.npz")
    assert mnistlr.load(written) == model
    with pytest.raises(mnistlr.UsageError, match="'.txt' is not an export format"):
        model.export(tmp_path / "r.txt")
    with pytest.raises(mnistlr.UsageError, match="^input_layout applies to .onnx exports only"):
        model.export(tmp_path / "r.npz", input_layout="images")


def test_help_names_every_feature_map_the_graph_exports(cli):
    import re

    from mnistlr.learn.features import NAMES

    text = " ".join(cli("export", "--help").out.split())
    listed = re.search(r"a feature pipeline of (.*?) steps is part of the graph", text).group(1)
    assert set(re.split(r", | and ", listed)) == set(NAMES) - {"deskew", "hog"}


@pytest.mark.parametrize("args, code, words", [
    (["-o", "{t}/m.txt"], 2, "'.txt' is not an export format (end the output name in .onnx, .npz, .csv)"),
    (["-o", "{t}/m"], 2, "no extension is not an export format"),
    (["-o", "-"], 2, "an export is written to a file, not to standard output ('-') (name a file ending in .onnx"),
    (["-o", "{t}/absent/m.onnx"], 1, "does not exist"),
    (["-o", "{t}/m.onnx", "--input-type", "int16"], 2, "'int16' is not one of"),
    (["-o", "{t}/m.onnx", "--input-layout", "cube"], 2, "'cube' is not one of"),
    (["-o", "{t}/m.csv", "--input-type", "uint8"], 2,
     "--input-type applies to .onnx exports only, not to .csv (drop it, or export to .onnx)"),
    (["-o", "{t}/m.npz", "--input-layout", "flat", "--input-type", "float32"], 2,
     "--input-type and --input-layout apply to .onnx exports only, not to .npz (drop them, or export to .onnx)"),
])
def test_bad_exports_one_line(model_paths, tmp_path, cli, args, code, words):
    result = cli("export", model_paths["softmax"], *[a.format(t=tmp_path) for a in args])
    assert result.code == code and words in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not any(p.name.startswith(("m", ".m")) for p in tmp_path.iterdir())


def test_not_a_model_and_missing_onnx(model_paths, tmp_path, cli, monkeypatch):
    fake = tmp_path / "fake.joblib"
    fake.write_bytes(gzip.compress(b"not a model"))
    result = cli("export", fake, "-o", tmp_path / "x.npz")
    assert result.code == 1 and "fake.joblib" in result.err
    kept = tmp_path / "kept.onnx"
    kept.write_bytes(b"old")
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = cli("export", model_paths["softmax"], "-o", kept)
    assert result.code == 1 and "pip install 'mnistlr[onnx]'" in result.err
    assert kept.read_bytes() == b"old"   # nothing clobbered


FEATURE_SPECS = ("pca:30,rff:600", "pca:12,poly2", "rff:400", "pca:20,nystroem:300")


@pytest.fixture(scope="module")
def feature_model_paths(tmp_path_factory):
    """One softmax model file per deskew-free pipeline, trained on the bundled sample."""
    X, y = load_dataset("mnist-sample", "train")
    folder = tmp_path_factory.mktemp("feature-models")
    paths = {}
    for spec in FEATURE_SPECS:
        paths[spec] = folder / f"{spec.replace(':', '-').replace(',', '_')}.joblib"
        save_model(fit_model(X, y, TrainOptions(features=spec, max_iter=60), dataset="mnist-sample"), paths[spec])
    return paths


@pytest.mark.parametrize("spec", FEATURE_SPECS)
def test_onnx_of_a_feature_model_matches_predict_on_the_real_test_images(spec, feature_model_paths, shared_mnist,
                                                                         cli, tmp_path):
    import onnxruntime

    images_path = shared_mnist / "t10k-images-idx3-ubyte.gz"
    predicted = tmp_path / "pred.csv"
    assert cli("predict", feature_model_paths[spec], images_path, "--proba", "-q", "-o", predicted).code == 0
    labels, P = read_predictions(predicted)
    X = read_images(images_path)
    graph = tmp_path / "features.onnx"
    result = cli("export", feature_model_paths[spec], "-o", graph, "--input-type", "float32", "--input-layout", "flat")
    assert result.code == 0, result.err
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    onnx_labels, onnx_P = session.run(None, {"images": (X.reshape(len(X), -1) / 255.0).astype(np.float32)})
    assert np.array_equal(onnx_labels, labels)
    # predict's CSV carries 6 significant digits; the graph sums in float64 where the model's
    # kernel sums the projections in float32
    assert np.abs(onnx_P - P).max() <= 2e-5


@pytest.mark.parametrize("spec, step, shown, other", [("deskew,pca:5", "deskew", "deskew,pca:5", ".npz"),
                                                      ("hog:7", "hog", "hog:7:12", ".csv")])
def test_a_model_with_a_step_onnx_cannot_express_is_refused_in_one_line(tmp_path, cli, spec, step, shown, other):
    path = tmp_path / "m.joblib"
    X, y = load_dataset("mnist-sample", "train")
    save_model(fit_model(X[:500], y[:500], TrainOptions(features=spec, max_iter=5)), path)
    result = cli("export", path, "-o", tmp_path / "m.onnx")
    assert result.code == 2 and f"cannot express the {step} step of --features {shown}" in result.err
    assert result.err.count("\n") == 1 and not (tmp_path / "m.onnx").exists()
    result = cli("export", path, "-o", tmp_path / f"m{other}")
    assert result.code == 2 and f"retrain without {step} and export to .onnx: ONNX cannot express {step}" in result.err


def test_npz_that_is_not_an_export_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(mnistlr.ModelFileError, match="not a mnistlr export"):
        mnistlr.load(path)


def test_every_command_reads_an_npz_export_as_its_model(model_paths, tmp_path, cli):
    exported = tmp_path / "softmax.npz"
    assert cli("export", model_paths["softmax"], "-o", exported, "-q").code == 0
    X, y = load_dataset("mnist-sample", "test")
    images = tmp_path / "images.npy"
    np.save(images, X[:200])
    labels = tmp_path / "labels.npy"
    np.save(labels, y[:200])
    for source in (model_paths["softmax"], exported):
        assert cli("predict", source, images, "-o", tmp_path / f"{source.suffix[1:]}.csv", "-q").code == 0
        result = cli("evaluate", source, "--images", images, "--labels", labels, "--json")
        assert result.code == 0, result.err
        assert cli("inspect", source).code == 0
        assert cli("export", source, "-o", tmp_path / f"again-{source.suffix[1:]}.onnx", "-q").code == 0
    assert (tmp_path / "joblib.csv").read_text() == (tmp_path / "npz.csv").read_text()


def test_an_onnx_export_given_as_the_model_is_named(model_paths, tmp_path, cli):
    graph = tmp_path / "m.onnx"
    assert cli("export", model_paths["softmax"], "-o", graph, "-q").code == 0
    result = cli("inspect", graph)
    assert result.code == 1 and result.err.count("\n") == 1
    assert "an ONNX export, which mnistlr does not read back" in result.err
    assert "give the .joblib model it was exported from" in result.err


def test_an_npz_export_that_would_expand_past_the_cap_is_refused_before_reading(tmp_path):
    import zipfile

    from mnistlr.learn.unpickle import MAX_MODEL_BYTES

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        # 300 MiB of zeros, deflated to ~300 KB
        with archive.open("W.npy", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range((MAX_MODEL_BYTES >> 20) + 44):
                member.write(block)
    with pytest.raises(mnistlr.ModelFileError, match="expands to .* more than any mnistlr export"):
        mnistlr.load(path)
