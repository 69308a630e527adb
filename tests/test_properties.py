"""Properties and fuzzing (hypothesis): malformed bytes only ever raise the project's
errors; softmax, sigmoid and the losses stay finite and correct at extreme values;
gradients match finite differences; predictions do not depend on the batch size."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnistlr.errors import DataError, MnistlrError, ModelFileError
from mnistlr.io.idx import IDX_TYPES, encode_idx, parse_idx, read_idx, read_images, read_labels
from mnistlr.learn.model import LinearModel, Preprocessor

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMERIC = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- byte strategies

def _valid_arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, size=(3, 4, 5)).astype(np.uint8),   # images
        np.arange(7, dtype=np.uint8),                           # labels
        rng.integers(-99, 99, size=(2, 3)).astype(np.int16),
        rng.normal(size=(4,)).astype(np.float32),
        rng.normal(size=(2, 2, 2)).astype(np.float64),
        rng.integers(-9, 9, size=(5,)).astype(np.int32),
    ]


VALID = [encode_idx(a) for a in _valid_arrays()]


@st.composite
def mutated(draw, originals=tuple(VALID)) -> bytes:
    """A valid encoding after a few byte flips, cuts, insertions and extensions."""
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "extend", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "truncate":
            del data[pos:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
    return bytes(data)


@st.composite
def idx_like(draw) -> bytes:
    """Random bytes behind a plausible header (00 00 TYPE NDIM DIMS...), to get past the magic."""
    code = draw(st.sampled_from([*IDX_TYPES, 0x00, 0x07, 0xFF]))
    ndim = draw(st.integers(0, 4))
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 2**31, 2**32 - 1]), min_size=ndim, max_size=ndim))
    head = bytes([0, 0, code, ndim]) + np.asarray(dims, ">u4").tobytes()
    return head + draw(st.binary(max_size=80))


ANY_BYTES = st.one_of(st.binary(max_size=200), idx_like(), mutated())


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@st.composite
def gzip_variants(draw) -> bytes:
    """gzip of malformed bytes, or a valid gzip file with its compressed bytes mutated."""
    if draw(st.booleans()):
        return gz(draw(ANY_BYTES))
    return draw(mutated(tuple(gz(v) for v in VALID)))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ---------------------------------------------------------------- IDX fuzzing

@FUZZ
@given(data=ANY_BYTES)
def test_parse_idx_raises_only_data_error(data):
    try:
        array = parse_idx(data, "fuzz.idx")
    except DataError as exc:
        assert str(exc).startswith("fuzz.idx: ") and "\n" not in str(exc)
        return
    # whatever parses must be exactly what the header promised
    assert encode_idx(array) == data


@FUZZ
@given(data=st.one_of(ANY_BYTES, gzip_variants()))
def test_read_idx_images_and_labels_raise_only_data_error(data, scratch):
    path = scratch / "fuzz.gz"
    path.write_bytes(data)
    for read in (read_idx, read_images, read_labels):
        try:
            read(path)
        except DataError:
            pass


# ---------------------------------------------------------------- predict inputs and model files

@pytest.fixture(scope="module")
def model8() -> LinearModel:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(40, 64)).astype(np.uint8)
    return LinearModel("softmax", np.arange(3), (8, 8), Preprocessor.fit("standardize", X),
                       rng.normal(size=(64, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32))


def _image_encodings() -> list[bytes]:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 8, 8)).astype(np.uint8)
    npy = io.BytesIO()
    np.save(npy, images.astype(np.float32) / 255)
    csv = "\n".join(",".join(map(str, row)) for row in images.reshape(3, 64)).encode() + b"\n"
    return [encode_idx(images), npy.getvalue(), csv]


@FUZZ
@given(data=st.one_of(mutated(tuple(_image_encodings())), gzip_variants(), ANY_BYTES), stdin=st.booleans())
def test_predict_on_malformed_input_raises_only_project_errors(data, stdin, model8, scratch):
    """Mutated IDX, .npy and CSV bytes (raw or gzip), from a file or standard input."""
    from mnistlr.api.predict import predict

    path = scratch / "input.bin"
    path.write_bytes(data)
    out = io.BytesIO()
    try:
        if stdin:
            predict(model8, ["-"], stdin=io.BytesIO(data), stdout=out)
        else:
            predict(model8, [str(path)], stdout=out)
    except MnistlrError as exc:
        assert "\n" not in str(exc)
        assert type(exc).__name__ in ("DataError", "UsageError"), repr(exc)


@pytest.fixture(scope="module")
def model_bytes(model8, tmp_path_factory) -> bytes:
    from mnistlr.learn.persistence import save_model

    path = tmp_path_factory.mktemp("model") / "m.joblib"
    save_model(model8, path)
    return path.read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_model_file_is_refused_or_unchanged(data, model_bytes, model8, scratch):
    from mnistlr.learn.persistence import load_model

    mutant = data.draw(mutated((model_bytes,)))
    path = scratch / "mutant.joblib"
    path.write_bytes(mutant)
    try:
        loaded = load_model(path)
    except ModelFileError as exc:
        assert "mutant.joblib" in str(exc) and "\n" not in str(exc)
        return
    # a mutation the format tolerates (e.g. trailing bytes) must not change the model
    np.testing.assert_array_equal(loaded.W, model8.W)
    np.testing.assert_array_equal(loaded.b, model8.b)
    np.testing.assert_array_equal(loaded.classes, model8.classes)


# ---------------------------------------------------------------- probabilities from scores

def _logits(dtype, min_cols: int = 1, max_cols: int = 12) -> st.SearchStrategy:
    # ±1e30 fits float32 (max 3.4e38); infinities are excluded
    top = float(np.float32(1e30)) if dtype == np.float32 else 1e30
    width = 32 if dtype == np.float32 else 64
    values = st.one_of(st.floats(-top, top, width=width), st.sampled_from([-top, top, 0.0, -0.0]))
    shapes = st.tuples(st.integers(1, 12), st.integers(min_cols, max_cols))
    return hnp.arrays(dtype, shapes, elements=values)


def _proba(kind: str, S: np.ndarray) -> np.ndarray:
    """LinearModel.proba_from_scores (what predict_proba, evaluate and predict use) for scores S."""
    n_outputs = S.shape[1]
    classes = np.array([3, 8]) if n_outputs == 1 else np.arange(n_outputs)
    model = LinearModel(kind, classes, (1, 1), Preprocessor.fit("scale", np.zeros((1, 1), np.uint8)),
                        np.zeros((1, n_outputs), np.float32), np.zeros(n_outputs, np.float32))
    return model.proba_from_scores(S)


@NUMERIC
@given(S=st.one_of(_logits(np.float32, min_cols=2), _logits(np.float64, min_cols=2)))
def test_softmax_rows_are_distributions_at_extreme_logits(S):
    P = _proba("softmax", S)
    # float64 scores (the scikit-learn estimators) keep float64, all others give float32
    assert P.dtype == (np.float64 if S.dtype == np.float64 else np.float32) and P.shape == S.shape
    assert np.isfinite(P).all()
    assert (P >= 0).all() and (P <= 1).all()
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=4 * eps * S.shape[1])
    # the largest logit keeps the largest probability
    rows = np.arange(len(S))
    assert (P[rows, S.argmax(axis=1)] == P.max(axis=1)).all()


@NUMERIC
@given(S=st.one_of(_logits(np.float32, max_cols=1), _logits(np.float64, max_cols=1)))
def test_sigmoid_is_in_unit_interval_and_monotone(S):
    P = _proba("logistic", S)  # binary: columns 1 − σ(s), σ(s)
    sigma = P[:, 1]
    assert np.isfinite(P).all() and ((sigma >= 0) & (sigma <= 1)).all()
    order = np.argsort(S[:, 0], kind="stable")
    assert (np.diff(sigma[order]) >= 0).all()
    # σ(−s) = 1 − σ(s)
    np.testing.assert_allclose(_proba("logistic", -S)[:, 1], 1 - sigma, atol=2 * np.finfo(np.float32).eps)


# ---------------------------------------------------------------- losses

@st.composite
def problems(draw, scale_max: float = 3.0):
    """(X, y, W, b, kind, l2): a small random linear-classification problem, float64."""
    kind = draw(st.sampled_from(["softmax", "ovr"]))
    n_outputs = draw(st.integers(2 if kind == "softmax" else 1, 4))
    n_classes = 2 if n_outputs == 1 else n_outputs
    n_samples, n_features = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.floats(1e-3, scale_max))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = rng.integers(0, n_classes, size=n_samples)
    W = rng.normal(size=(n_features, n_outputs)) * scale
    b = rng.normal(size=n_outputs) * scale
    l2 = draw(st.sampled_from([0.0, 1e-3, 0.5]))
    return X, y, W, b, kind, l2


@NUMERIC
@given(problem=problems(scale_max=1e4))
def test_losses_are_finite_and_non_negative(problem):
    from mnistlr.learn.objective import objective

    X, y, W, b, kind, l2 = problem
    for dtype in (np.float64, np.float32):
        result = objective(X.astype(dtype), y, W, b, kind, l2=l2)
        assert np.isfinite(result.loss) and result.loss >= 0
        assert np.isfinite(result.value) and result.value >= result.loss - 1e-12
        assert 0 <= result.accuracy <= 1
        assert np.isfinite(result.grad_W).all() and np.isfinite(result.grad_b).all()


@NUMERIC
@given(problem=problems())
def test_gradient_matches_finite_differences(problem):
    from mnistlr.learn.centred import CentredObjective
    from mnistlr.learn.objective import pack

    X, y, W, b, kind, l2 = problem
    w = pack(W, b)
    loss_gradient = CentredObjective(X, y, kind, W.shape[1], l2, None).fun
    f0, g = loss_gradient(w)
    assert np.isfinite(f0) and f0 >= 0
    h = 1e-6
    numeric = np.empty_like(w)
    for j in range(len(w)):
        step = np.zeros_like(w)
        step[j] = h
        # central difference: (f(w + h e_j) − f(w − h e_j)) / 2h
        numeric[j] = (loss_gradient(w + step)[0] - loss_gradient(w - step)[0]) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- batch-size invariance

@st.composite
def models_and_images(draw):
    kind = draw(st.sampled_from(["softmax", "logistic", "ridge"]))
    n_classes = draw(st.integers(2, 5))
    n_outputs = 1 if kind == "logistic" and n_classes == 2 and draw(st.booleans()) else n_classes
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X_fit = rng.integers(0, 256, size=(20, rows * cols)).astype(np.uint8)
    model = LinearModel(kind, np.sort(rng.choice(10, n_classes, replace=False)), (rows, cols),
                        Preprocessor.fit(draw(st.sampled_from(["scale", "standardize", "center"])), X_fit),
                        rng.normal(size=(rows * cols, n_outputs)).astype(np.float32),
                        rng.normal(size=n_outputs).astype(np.float32))
    X = rng.integers(0, 256, size=(draw(st.integers(1, 60)), rows, cols)).astype(np.uint8)
    return model, X, draw(st.integers(1, 61))


@NUMERIC
@given(case=models_and_images())
def test_predict_does_not_depend_on_the_batch_size(case):
    model, X, batch = case
    whole = model.predict(X)
    chunked = np.concatenate([model.predict(X[i:i + batch]) for i in range(0, len(X), batch)])
    np.testing.assert_array_equal(chunked, whole)
    assert set(whole.tolist()) <= set(model.classes.tolist())
    P = model.predict_proba(X)
    P_chunked = np.concatenate([model.predict_proba(X[i:i + batch]) for i in range(0, len(X), batch)])
    np.testing.assert_allclose(P_chunked, P, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """A class-means softmax model on the bundled digits, its file, and 1,000 test images as IDX."""
    from mnistlr.data.registry import load_dataset
    from mnistlr.io.idx import write_idx
    from mnistlr.learn.persistence import save_model

    X, y = load_dataset("mnist-sample", "train")
    X_test, _ = load_dataset("mnist-sample", "test")
    flat = X.reshape(len(X), -1).astype(np.float32) / 255
    means = np.stack([flat[y == c].mean(axis=0) for c in range(10)])
    # w_c = μ_c − mean_k μ_k, b_c = −½‖w_c‖²: a nearest-class-mean classifier
    W = (means - means.mean(axis=0)).T.astype(np.float32)
    model = LinearModel("softmax", np.arange(10), (28, 28), Preprocessor.fit("scale", flat),
                        W * 10, (-5 * (W ** 2).sum(axis=0)).astype(np.float32))
    d = tmp_path_factory.mktemp("sample-model")
    save_model(model, d / "means.joblib")
    write_idx(d / "test.gz", X_test)
    return d / "means.joblib", d / "test.gz"


def test_cli_predict_output_does_not_depend_on_the_batch_size(sample_model, cli):
    model, images = sample_model
    outputs = {}
    for batch in (1, 7, 1000):
        result = cli("predict", model, images, "--batch-size", batch, "--proba", "--top-k", 2)
        assert result.code == 0, result.err
        outputs[batch] = result.out
    assert outputs[1].count("\n") == 1001
    assert outputs[1] == outputs[7] == outputs[1000]


def test_cli_predict_matches_model_predict(sample_model, cli):
    from mnistlr.io.idx import read_images
    from mnistlr.learn.persistence import load_model

    model, images = sample_model
    result = cli("predict", model, images, "--batch-size", 333)
    assert result.code == 0, result.err
    labels = np.array([int(line.split(",")[1]) for line in result.out.splitlines()[1:]])
    expected = load_model(model).predict(read_images(images))
    np.testing.assert_array_equal(labels, expected)
