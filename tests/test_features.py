"""Feature maps (deskew, hog, pca, poly2, rff, nystroem) against NumPy/SciPy references; parsing; persistence."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mnistlr.errors import UsageError
from mnistlr.learn import features
from mnistlr.learn.features import FeaturePipeline
from mnistlr.learn.kernels.deskew import deskew_images
from mnistlr.learn.kernels.hog import hog_features, hog_size
from mnistlr.learn.kernels.projection import (
    float32_row_bits,
    grid_exponents,
    on_float32_grid,
    project,
    snap_to_float32_grid,
)
from tests import reference


@pytest.fixture(scope="module")
def digits():
    """300 bundled training digits (n, 28, 28) uint8 and their labels."""
    from mnistlr.data.registry import load_dataset

    X, y = load_dataset("mnist-sample", "train")
    return X[:300], y[:300]


def test_deskew_matches_scipy_affine_transform(digits):
    X, _ = digits
    expected = np.stack([reference.deskew_image(image) for image in X])
    np.testing.assert_array_equal(deskew_images(X), expected)


def test_deskew_makes_a_slanted_stroke_upright_and_leaves_blank_images_alone():
    image = np.zeros((1, 28, 28), np.uint8)
    for r in range(4, 24):
        image[0, r, 8 + r // 2] = 255           # a stroke leaning right by 1/2 column per row
    upright = deskew_images(image)[0].astype(np.float64)
    r, c = np.mgrid[:28, :28]
    total = upright.sum()
    r_mean, c_mean = (r * upright).sum() / total, (c * upright).sum() / total
    slope = ((r - r_mean) * (c - c_mean) * upright).sum() / ((r - r_mean) ** 2 * upright).sum()
    assert abs(slope) < 0.05 and abs(c_mean - 13.5) < 0.5
    np.testing.assert_array_equal(deskew_images(np.zeros((2, 5, 7), np.uint8)), 0)


@pytest.mark.parametrize("numba", [True, False])
def test_deskew_is_the_same_alone_and_in_a_parallel_batch(digits, numba):
    X, _ = digits
    many = np.concatenate([X] * 8)               # above the parallel threshold, several NumPy blocks
    np.testing.assert_array_equal(deskew_images(many, numba)[:300], deskew_images(X, numba))
    np.testing.assert_array_equal(deskew_images(X[7:8], numba)[0], deskew_images(X, numba)[7])


def test_deskew_numpy_path_gives_the_kernels_bits(digits):
    rng = np.random.default_rng(5)
    sparse = ((rng.random((400, 28, 28)) < 0.2) * rng.integers(0, 256, (400, 28, 28))).astype(np.uint8)
    sparse[:3] = 0                               # blank
    sparse[3:6] = 0
    sparse[3:6, 4, :] = 200                      # one row of ink: var(r) = 0
    sparse[6:9] = 0
    sparse[6:9, 5:9, 3] = 90                     # a short vertical bar near the edge: large shears
    for images in (digits[0], sparse, rng.integers(0, 256, (30, 5, 7)).astype(np.uint8),
                   rng.integers(0, 256, (30, 1, 1)).astype(np.uint8)):
        np.testing.assert_array_equal(deskew_images(images, numba=False), deskew_images(images, numba=True))


def _projection_case(digits, path):
    """(X, W, b, scale) for each exact path of `kernels.projection`: uint8 rows with W snapped to its
    float32 grid (sgemm), uint8 rows with any W (float64), float rows with W snapped to their float32
    grid (50 inputs, as after pca:50: sgemm), float rows with any W (float64, rows on grids)."""
    X = digits[0].reshape(300, -1)
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.2, size=(784, 300)).astype(np.float32)
    b = rng.uniform(0, 2 * np.pi, 300).astype(np.float32)
    if path == "float32 grid":
        W = snap_to_float32_grid(W)
    elif path.startswith("float rows"):
        X = (X.astype(np.float32) / 255 - 0.1) * np.float32(3.7)
        W = W[:, :300] * np.float32(2.5)
    if path == "float rows, float32 grid":
        X = np.ascontiguousarray(X[:, 300:350])
        W = snap_to_float32_grid(W[300:350], pixels=False)
    assert on_float32_grid(W, X.dtype == np.uint8) == (path in ("float32 grid", "float rows, float32 grid"))
    return X, W, b, (1 / 255 if X.dtype == np.uint8 else 1.0)


PROJECTION_PATHS = ["float32 grid", "any W", "float rows, float32 grid", "float rows"]


@pytest.mark.parametrize("cell,bins", [(4, 12), (7, 9), (3, 5), (5, 1)])
def test_hog_matches_the_pixel_by_pixel_reference(digits, cell, bins):
    X = digits[0][:40]
    # odd sizes leave rows and columns past the last whole cell out
    for images in (X, np.ascontiguousarray(X[:, 1:, :-3])):
        expected = np.stack([reference.hog_image(image, cell, bins) for image in images])
        got = hog_features(images, cell, bins)
        assert got.dtype == np.float32 and got.shape == (len(images), hog_size(*images.shape[1:], cell, bins))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_hog_of_edges_blank_and_flat_images():
    # a vertical edge: every gradient points along +x, so all of a block's votes are in bin 0
    edge = np.zeros((1, 12, 12), np.uint8)
    edge[:, :, 6:] = 200
    F = hog_features(edge, 4, 8).reshape(2, 2, 4, 8)
    assert np.all(F[..., 1:] == 0) and F[..., 0].max() > 0
    # blank and flat images have no gradient: all zeros, no division by zero
    for value in (0, 255):
        assert not hog_features(np.full((2, 12, 12), value, np.uint8), 4, 8).any()
    with pytest.raises(ValueError, match="fewer than 2 × 2 cells"):
        hog_features(edge, 7, 8)


def test_hog_of_an_image_does_not_depend_on_its_batch_or_threads(digits, monkeypatch):
    X = digits[0]
    whole = hog_features(X, 4, 12)
    np.testing.assert_array_equal(hog_features(X[17:18], 4, 12), whole[17:18])
    from mnistlr.learn.kernels import threads

    monkeypatch.setattr(threads, "n_threads", lambda: 1)
    np.testing.assert_array_equal(hog_features(X, 4, 12), whole)


def test_hog_in_a_pipeline_after_deskew_and_before_pca(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("deskew,hog:4:12,pca:20", (28, 28))
    assert pipeline.steps[1].n_out(784) == 6 * 6 * 4 * 12 == 1728 and pipeline.n_out == 20
    F = pipeline.fit_transform(X, seed=0)
    hogs = hog_features(deskew_images(digits[0]), 4, 12)
    np.testing.assert_allclose(F, (hogs - pipeline.steps[2].mean) @ pipeline.steps[2].components, atol=1e-4)
    assert FeaturePipeline.from_spec("hog", (28, 28)).spec == "hog:4:12"
    assert "1,728 features" in FeaturePipeline.from_spec("hog:4", (28, 28)).describe()[0]
    with pytest.raises(UsageError, match="28×28 images hold fewer than 2 × 2 cells of 15 × 15 pixels"):
        FeaturePipeline.from_spec("hog:15", (28, 28))
    none, why = features.pixel_weights(FeaturePipeline.from_spec("hog", (28, 28)), np.zeros((1728, 10)))
    assert none is None and "histograms of gradient orientations" in why


@pytest.mark.parametrize("path", PROJECTION_PATHS)
def test_projection_matches_numpy_in_float64(digits, path):
    X, W, b, scale = _projection_case(digits, path)
    X = X[:60]
    X64, W64 = X.astype(np.float64) * scale, W.astype(np.float64)
    expected = X64 @ W64 + b
    # the grids (x to 22 bits of its row's largest, or 12 on the float32 path for float rows; W to
    # 31 bits of its column's Σ|W_jk|) and float32's rounding of the result bound the error
    row_error = 2.0 ** -(float32_row_bits(50) if path == "float rows, float32 grid" else 20)
    bound = row_error * np.abs(X64).max(axis=1, keepdims=True) * np.abs(W64).sum(axis=0) + 2.0 ** -23 * np.abs(expected)
    assert (np.abs(project(X, W, b, scale) - expected) <= bound).all()
    norm = np.sqrt(2 / 300)
    rff = project(X, W, b, scale, cosine_norm=norm)
    # |Δcos(z)| ≤ |Δz|, plus float32's rounding of z and of cos
    assert (np.abs(rff - reference.random_fourier_features(X, W, b, scale))
            <= norm * (bound + 2.0 ** -23 * np.abs(expected) + 2.0 ** -22)).all()


@pytest.mark.parametrize("path", ["float32 grid", "float rows, float32 grid"])
def test_float32_projections_are_exact_integer_sums_rounded_once(digits, path):
    X, W, b, scale = _projection_case(digits, path)
    X = X[:60]
    # W = K·2^−e per column; float rows x = q·2^−a per row (q = round-to-even of x·2^a, |q| ≤ 2^B)
    e = grid_exponents(W, 255.0 if X.dtype == np.uint8 else 2.0 ** float32_row_bits(50), 24)
    K = np.ldexp(W.astype(np.float64), e).astype(np.int64)
    if X.dtype == np.uint8:
        q, a = X.astype(np.int64), np.zeros((len(X), 1), np.int64)
    else:
        a = float32_row_bits(50) - np.frexp(np.abs(X).max(axis=1, keepdims=True).astype(np.float64))[1]
        q = np.rint(np.ldexp(X.astype(np.float64), a)).astype(np.int64)
    # Σ_j q_ij·K_jk in int64, then ·2^−(a_i + e_k): exact in float32, scaled and shifted in float32
    z = np.ldexp((q @ K).astype(np.float64), -(a + e)).astype(np.float32)
    if X.dtype == np.uint8:
        z = z * np.float32(scale)
    np.testing.assert_array_equal(project(X, W, b, scale), z + b)


def test_snapping_to_the_float32_grid_moves_weights_by_a_small_step():
    W = np.random.default_rng(3).normal(0, 0.16, size=(784, 400)).astype(np.float32)
    snapped = snap_to_float32_grid(W)
    # steps of at most σ/40 (σ = 0.16): the same Gaussian kernel for distances that occur
    assert 0 < np.abs(snapped - W).max() <= 0.16 / 80
    assert not on_float32_grid(W) and on_float32_grid(snapped)
    # for float rows of 50 inputs (rff after pca:50): steps of at most σ/20; none past 128 inputs
    rows = snap_to_float32_grid(W[:50], pixels=False)
    assert 0 < np.abs(rows - W[:50]).max() <= 0.16 / 40
    assert on_float32_grid(rows, pixels=False) and not on_float32_grid(W[:50], pixels=False)
    with pytest.raises(ValueError, match="129 inputs"):
        snap_to_float32_grid(W[:129], pixels=False)


def test_rff_after_pca_draws_weights_on_the_float_rows_grid(digits):
    X = digits[0].reshape(300, -1)
    for spec, on_grid in (("pca:20,rff:50", True), ("pca:200,rff:50", False)):
        pipeline = FeaturePipeline.from_spec(spec, (28, 28))
        pipeline.fit_transform(X, seed=0)
        assert on_float32_grid(pipeline.steps[1].weights, pixels=False) == on_grid


def _float64_grid_reference(W, shift, input_max):
    """(K·2^−e as float32, whether W is on the grid) computed in float64 (the reference of the float32 paths)."""
    W = np.asarray(W, np.float64)
    column_sums = np.abs(W).sum(axis=0)
    room = 2.0 ** 24 / input_max - W.shape[0]
    e = np.where(column_sums > 0, np.floor(np.log2(room / np.where(column_sums > 0, column_sums, 1.0))), 0)
    K = np.ldexp(W, e.astype(np.int64) - shift)
    return np.ldexp(np.rint(K), -(e.astype(np.int64) - shift)).astype(np.float32), bool(np.array_equal(K, np.rint(K)))


@pytest.mark.parametrize("pixels", [True, False])
@pytest.mark.parametrize("scale", [1e-30, 1e-3, 0.16, 40.0, 1e25])
def test_float32_grid_gives_the_float64_computations_bits(scale, pixels):
    from mnistlr.learn.kernels.projection import float32_row_bits

    rng = np.random.default_rng(11)
    W = (rng.standard_normal((300 if pixels else 50, 17)) * scale).astype(np.float32)
    W[:, 0], W[0, 1:] = 0, np.float32(1e-41)   # a zero column and subnormal weights
    input_max = 255.0 if pixels else 2.0 ** float32_row_bits(len(W))
    snapped = snap_to_float32_grid(W, pixels=pixels)
    assert np.array_equal(snapped.view(np.uint32), _float64_grid_reference(W, 1, input_max)[0].view(np.uint32))
    for M in (W, snapped, snapped * np.float32(1 + 2 ** -20)):
        assert on_float32_grid(M, pixels=pixels) == _float64_grid_reference(M, 0, input_max)[1]


@pytest.mark.parametrize("path", PROJECTION_PATHS)
def test_projection_of_a_row_does_not_depend_on_its_batch(digits, path):
    X, W, b, scale = _projection_case(digits, path)
    X = np.concatenate([X] * 4)                  # 1,200 rows: three blocks, on two threads
    block = project(X, W, b, scale, cosine_norm=0.2)
    for i in (0, 17, 513, 1199):
        np.testing.assert_array_equal(project(X[i:i + 1], W, b, scale, cosine_norm=0.2)[0], block[i])
    order = np.random.default_rng(4).permutation(len(X))
    np.testing.assert_array_equal(project(X[order], W, b, scale, cosine_norm=0.2), block[order])
    for size in (7, 256, 700):
        np.testing.assert_array_equal(project(X[100:100 + size], W, b, scale), project(X, W, b, scale)[100:100 + size])


def test_thread_blocks_run_every_block_once_reraise_errors_and_do_not_nest():
    from mnistlr.learn.kernels.threads import run_blocks

    seen, pairs = [], []

    def outer(i):
        seen.append(i)
        here = threading.get_ident()
        run_blocks(range(3), lambda j: pairs.append((here, threading.get_ident())))

    run_blocks(range(10), outer)
    # every block once; a call from inside a worker stays on that worker's thread
    assert sorted(seen) == list(range(10)) and len(pairs) == 30 and all(a == b for a, b in pairs)

    def fail(i):
        if i == 5:
            raise ValueError("block 5")

    with pytest.raises(ValueError, match="block 5"):
        run_blocks(range(8), fail)


def test_blas_is_limited_once_by_the_outermost_context_for_every_thread(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from mnistlr.learn.kernels.blas import blas_on_one_thread

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}

    limits = []
    real = threadpoolctl.threadpool_limits
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda **kw: limits.append(kw) or real(**kw))
    seen = []

    def inner():
        with blas_on_one_thread():
            seen.append(blas_threads())

    with real(limits=2, user_api="blas"):
        with blas_on_one_thread():
            worker = threading.Thread(target=inner)   # a block of rows on another thread
            worker.start()
            worker.join()
            inner()
            seen.append(blas_threads())
        seen.append(blas_threads())
    # one limit set (threadpoolctl scans the loaded libraries each time), held until the outer exit
    assert limits == [{"limits": 1, "user_api": "blas"}] and seen == [{1}, {1}, {1}, {2}]


def test_pca_matches_svd_and_transforms_like_numpy(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("pca:12", (28, 28))
    Z = pipeline.fit_transform(X, seed=0)
    pca = pipeline.steps[0]
    mean, V, variance = reference.pca_components(X / 255.0, 12)
    np.testing.assert_allclose(pca.mean, mean, atol=1e-6)
    np.testing.assert_allclose(pca.variance, variance, rtol=1e-4)
    # directions agree up to sign
    np.testing.assert_allclose(np.abs((pca.components.astype(np.float64) * V).sum(axis=0)), 1.0, atol=1e-4)
    np.testing.assert_allclose(Z, (X / 255.0 - pca.mean) @ pca.components, atol=2e-5)


def test_poly2_appends_every_pairwise_product(digits):
    X = digits[0].reshape(300, -1)[:50]
    pipeline = FeaturePipeline.from_spec("pca:6,poly2", (28, 28))
    Q = pipeline.fit_transform(X, seed=0)
    assert Q.shape == (50, 6 + 21) and pipeline.n_out == 27
    Z = FeaturePipeline([pipeline.steps[0]], (28, 28)).transform(X)
    np.testing.assert_allclose(Q, reference.pairwise_products(Z), rtol=1e-5, atol=1e-6)


def test_rff_are_the_cosines_of_their_stored_projection_and_approximate_the_kernel(digits):
    X = digits[0].reshape(300, -1)[:20]
    pipeline = FeaturePipeline.from_spec("rff:20000:0.02", (28, 28))
    F = pipeline.fit_transform(X, seed=5)
    rff = pipeline.steps[0]
    np.testing.assert_allclose(F, reference.random_fourier_features(X, rff.weights, rff.offset, 1 / 255),
                               atol=1e-6)
    x = X.astype(np.float64) / 255
    kernel = np.exp(-0.02 * ((x[:, None] - x[None]) ** 2).sum(-1))
    # E[φ(x)·φ(x′)] = exp(−γ‖x − x′‖²); D = 20,000 leaves a sampling error ~ 1/√D
    np.testing.assert_allclose(F.astype(np.float64) @ F.T.astype(np.float64), kernel, atol=0.04)


def test_default_gamma_is_one_over_the_median_squared_distance(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("rff:10", (28, 28))
    pipeline.fit_transform(X, seed=0)
    x = X.astype(np.float64) / 255
    squared = [((x[i] - x[j]) ** 2).sum() for i in range(300) for j in range(i + 1, 300)]
    assert pipeline.steps[0].gamma == pytest.approx(1 / np.median(squared), rel=1e-9)
    assert pipeline.spec == "rff:10" and "median" in pipeline.describe()[0]


def test_rff_is_seeded(digits):
    X = digits[0].reshape(300, -1)[:10]
    a, b, c = (FeaturePipeline.from_spec("rff:64", (28, 28)).fit_transform(X, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_nystroem_matches_the_eigendecomposition_reference_and_is_exact_on_its_landmarks(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("nystroem:60:0.02", (28, 28))
    F = pipeline.fit_transform(X, seed=3).astype(np.float64)
    step = pipeline.steps[0]
    x = X.astype(np.float64) / 255
    # the landmarks are 60 distinct training images (x/255)
    hits = [np.flatnonzero(np.abs(x - mark).max(axis=1) < 1e-6) for mark in step.landmarks.astype(np.float64)]
    assert all(len(h) == 1 for h in hits) and len({int(h[0]) for h in hits}) == 60
    R = reference.nystroem_features(X, step.landmarks, 0.02, 1 / 255)
    # A = C⁻ᵀ is a rotation of K_LL^(−1/2): the same inner products φ(x)·φ(x′)
    np.testing.assert_allclose(F @ F.T, R @ R.T, atol=2e-4)
    L = F[[int(h[0]) for h in hits]]
    K_LL = np.exp(-0.02 * ((step.landmarks[:, None].astype(np.float64) - step.landmarks[None]) ** 2).sum(-1))
    np.testing.assert_allclose(L @ L.T, K_LL, atol=2e-4)


def test_nystroem_is_seeded_the_same_in_any_batch_and_too_many_landmarks_is_a_usage_error(digits):
    X = digits[0].reshape(300, -1)
    a, b, c = (FeaturePipeline.from_spec("pca:10,nystroem:50", (28, 28)) for _ in range(3))
    Fa, Fb, Fc = a.fit_transform(X, 1), b.fit_transform(X, 1), c.fit_transform(X, 2)
    np.testing.assert_array_equal(Fa, Fb)
    assert not np.array_equal(Fa, Fc) and "median" in a.describe()[1] and a.spec == "pca:10,nystroem:50"
    for i in (0, 77, 299):
        np.testing.assert_array_equal(a.transform(X[i:i + 1])[0], Fa[i])
    with pytest.raises(UsageError, match="needs 301 landmark images but the training part has 300"):
        FeaturePipeline.from_spec("nystroem:301", (28, 28)).fit_transform(X, 0)


@pytest.mark.parametrize("spec, message", [
    ("", "empty step"), ("deskew,,rff:10", "empty step"), ("sharpen", "unknown step 'sharpen'"),
    ("pca", "should read pca:K"), ("pca:0", "from 1 to 65,536, got 0"), ("rff:65537", "from 1 to 65,536, got 65,537"),
        ("pca:361,poly2", "more than 65,536 features"), ("pca:x", "whole number"),
    ("rff:100:-1", "must be a number > 0"), ("rff:100:1:2", "should read rff:D"),
    ("rff:100:1e300", "at most 10000"), ("rff:100:nan", "must be a number > 0"), ("rff:100:inf", "a number > 0"),
    ("pca:\u0663", "whole number, got '\u0663'"), ("rff:1_000", "whole number"), ("rff:+100", "whole number"),
    ("rff: 100", "whole number, got ' 100'"), ("rff:100:0x10", "a number > 0"),
    ("pca:10,deskew", "deskew cannot follow pca"), ("rff:10,pca:5", "pca cannot follow rff"),
    ("poly2", "needs pca:K"), ("pca:5,poly2,rff:10", "not both"), ("deskew,deskew", "twice"),
    ("nystroem:10001", "from 1 to 10,000, got 10,001"), ("rff:10,nystroem:10", "not both rff and nystroem"),
    ("nystroem:10:0", "nystroem's gamma must be > 0 and at most"), ("nystroem", "should read nystroem:D"),
    ("nystroem:10:2e4", "at most 10000"),
    ("hog:0", "hog's cell must be from 1"), ("hog:4:0", "hog's bins must be from 1 to 360"),
    ("hog:4:361", "from 1 to 360, got 361"), ("hog:4:12:1", "should read hog, hog:cell or hog:cell:bins"),
    ("pca:10,hog", "hog cannot follow pca"), ("hog,deskew", "deskew cannot follow hog"), ("hog,hog", "twice"),
])
def test_bad_specs_are_usage_errors_naming_the_problem(spec, message):
    with pytest.raises(UsageError, match=message):
        features.parse(spec)


def test_pca_with_more_components_than_inputs_is_a_usage_error(digits):
    with pytest.raises(UsageError, match="more components than the 784 inputs"):
        FeaturePipeline.from_spec("pca:785", (28, 28)).fit_transform(digits[0].reshape(300, -1), 0)


def test_pipeline_state_is_plain_arrays_and_round_trips(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("deskew,hog:7:9,pca:10,rff:40", (28, 28))
    F = pipeline.fit_transform(X, seed=0)
    state = pipeline.to_dict()
    assert state["steps"][1] == {"name": "hog", "cell": 7, "bins": 9}
    for step in state["steps"]:
        for value in step.values():
            assert isinstance(value, (str, int, float, bool)) or (
                isinstance(value, np.ndarray) and value.dtype == np.float32)
    again = FeaturePipeline.from_dict(state)
    np.testing.assert_array_equal(again.transform(X), F)
    state["steps"][3]["weights"] = state["steps"][3]["weights"][:5]
    with pytest.raises(ValueError, match="does not fit"):
        FeaturePipeline.from_dict(state)
    nystroem = FeaturePipeline.from_spec("pca:10,nystroem:30", (28, 28))
    F = nystroem.fit_transform(X, seed=0)
    state = nystroem.to_dict()
    assert {k: type(v) for k, v in state["steps"][1].items() if isinstance(v, np.ndarray)} == {
        "landmarks": np.ndarray, "normalization": np.ndarray}
    np.testing.assert_array_equal(FeaturePipeline.from_dict(state).transform(X), F)
    state["steps"][1]["normalization"] = state["steps"][1]["normalization"][:, :29]
    with pytest.raises(ValueError, match="does not fit"):
        FeaturePipeline.from_dict(state)


def test_pixel_weights_back_project_pca_and_explain_rff(digits):
    X = digits[0].reshape(300, -1)
    pca = FeaturePipeline.from_spec("deskew,pca:8", (28, 28))
    pca.fit_transform(X, 0)
    W = np.random.default_rng(0).normal(size=(8, 10))
    back, caption = features.pixel_weights(pca, W)
    np.testing.assert_allclose(back, pca.steps[1].components.astype(np.float64) @ W, rtol=1e-5)
    assert "deskewed" in caption and "pca:8" in caption
    rff = FeaturePipeline.from_spec("rff:16", (28, 28))
    rff.fit_transform(X, 0)
    none, why = features.pixel_weights(rff, np.zeros((16, 10)))
    assert none is None and "not linear in the pixels" in why


def test_features_in_tiles_are_the_features_of_the_whole_batch(digits):
    X = digits[0].reshape(300, -1)
    for spec in ("deskew,pca:10,rff:40", "deskew", "hog"):
        pipeline = FeaturePipeline.from_spec(spec, (28, 28))
        whole = pipeline.fit_transform(X, seed=0)
        for tile_rows in (1, 7, 64, 512):
            pieces: dict[int, np.ndarray] = {}
            pipeline.transform_tiles(X, lambda start, F, into=pieces: into.setdefault(start, F.copy()), tile_rows)
            assert sorted(pieces) == list(range(0, 300, tile_rows))
            np.testing.assert_array_equal(np.concatenate([pieces[s] for s in sorted(pieces)]), whole)


def test_sparse_sums_give_the_dense_products_bits(digits, monkeypatch):
    import mnistlr.learn.kernels.setup  # noqa: F401  (Numba imported: the sparse path may run)
    from mnistlr.learn.kernels import projection, sparse_sums

    rng = np.random.default_rng(8)
    X = digits[0].reshape(300, -1).copy()
    X[5] = 0                                                   # a blank row
    X[6] = rng.integers(1, 256, 784)                           # a row with no zero
    X[7, :13] = 255                                            # 13 pixels: one group of 8 and 5 more
    X[7, 13:] = 0
    W = snap_to_float32_grid(rng.normal(0, 0.2, size=(784, 1100)).astype(np.float32))   # 3 tiles, the last partial
    # on W's float32 grid the float64 product is exact, and so is its float32 rounding
    expected = (X.astype(np.float64) @ W.astype(np.float64)).astype(np.float32)
    out = np.empty((300, 1100), np.float32)
    sparse_sums.sparse_sums(X, sparse_sums.weight_tiles(W), 1100, out)
    np.testing.assert_array_equal(out, expected)
    calls, real = [], sparse_sums.sparse_sums
    monkeypatch.setattr(sparse_sums, "sparse_sums", lambda *a: calls.append(len(a[0])) or real(*a))
    b = rng.uniform(0, 2 * np.pi, 1100).astype(np.float32)
    features = project(X, W, b, 1 / 255, cosine_norm=0.1)
    assert calls == [300]                                      # MNIST's digits: sparse enough
    monkeypatch.setattr(projection, "SPARSE_SHARE", 0.0)       # sgemm on every block
    np.testing.assert_array_equal(project(X, W, b, 1 / 255, cosine_norm=0.1), features)
    assert calls == [300]
    monkeypatch.setattr(projection, "SPARSE_SHARE", 1.01)      # the sparse sums on every block
    X2 = np.concatenate([X] * 3)                               # 900 rows: two blocks on two threads
    np.testing.assert_array_equal(project(X2, W, b, 1 / 255, cosine_norm=0.1), np.concatenate([features] * 3))
    assert sorted(calls) == [300, 388, 512]
    with pytest.raises(ValueError, match="do not fit"):
        sparse_sums.sparse_sums(X.astype(np.float32), sparse_sums.weight_tiles(W), 1100, out)
    with pytest.raises(ValueError, match="is not"):
        sparse_sums.sparse_sums(X, sparse_sums.weight_tiles(W), 1100, out[:, :1000])
