"""Feature maps (deskew, pca, poly2, rff) against NumPy/SciPy references; parsing; persistence."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlr.errors import UsageError
from mnistlr.learn import features
from mnistlr.learn.features import FeaturePipeline
from mnistlr.learn.kernels.deskew import deskew_images
from mnistlr.learn.kernels.projection import project
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


def test_deskew_is_the_same_alone_and_in_a_parallel_batch(digits):
    X, _ = digits
    many = np.concatenate([X] * 8)               # above the parallel threshold
    np.testing.assert_array_equal(deskew_images(many)[:300], deskew_images(X))
    np.testing.assert_array_equal(deskew_images(X[7:8])[0], deskew_images(X)[7])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_projection_kernel_matches_numpy(digits, dtype):
    X = digits[0].reshape(300, -1)[:40].astype(dtype)
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.2, size=(784, 300)).astype(np.float32)    # two column chunks, the second partial
    b = rng.uniform(0, 2 * np.pi, 300).astype(np.float32)
    linear = project(X, W, b, 1 / 255)
    np.testing.assert_allclose(linear, (X.astype(np.float64) / 255) @ W + b, rtol=1e-5, atol=2e-5)
    rff = project(X, W, b, 1 / 255, cosine_norm=np.sqrt(2 / 300))
    np.testing.assert_allclose(rff, reference.random_fourier_features(X, W, b, 1 / 255), atol=1e-6)


def test_projection_of_a_row_does_not_depend_on_its_batch(digits):
    X = np.concatenate([digits[0].reshape(300, -1)] * 3)          # 900 rows: the parallel kernel
    W = np.random.default_rng(2).normal(size=(784, 50)).astype(np.float32)
    b = np.zeros(50, np.float32)
    block = project(X, W, b, 1 / 255, cosine_norm=0.2)
    for i in (0, 17, 899):
        np.testing.assert_array_equal(project(X[i:i + 1], W, b, 1 / 255, cosine_norm=0.2)[0], block[i])


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


@pytest.mark.parametrize("spec, message", [
    ("", "empty step"), ("deskew,,rff:10", "empty step"), ("sharpen", "unknown step 'sharpen'"),
    ("pca", "should read pca:K"), ("pca:0", "from 1 to 65,536, got 0"), ("rff:65537", "from 1 to 65,536, got 65,537"),
        ("pca:361,poly2", "more than 65,536 features"), ("pca:x", "whole number"),
    ("rff:100:-1", "finite number > 0"), ("rff:100:1:2", "should read rff:D"),
    ("pca:10,deskew", "deskew cannot follow pca"), ("rff:10,pca:5", "pca cannot follow rff"),
    ("poly2", "needs pca:K"), ("pca:5,poly2,rff:10", "not both"), ("deskew,deskew", "twice"),
])
def test_bad_specs_are_usage_errors_naming_the_problem(spec, message):
    with pytest.raises(UsageError, match=message):
        features.parse(spec)


def test_pca_with_more_components_than_inputs_is_a_usage_error(digits):
    with pytest.raises(UsageError, match="more components than the 784 inputs"):
        FeaturePipeline.from_spec("pca:785", (28, 28)).fit_transform(digits[0].reshape(300, -1), 0)


def test_pipeline_state_is_plain_arrays_and_round_trips(digits):
    X = digits[0].reshape(300, -1)
    pipeline = FeaturePipeline.from_spec("deskew,pca:10,rff:40", (28, 28))
    F = pipeline.fit_transform(X, seed=0)
    state = pipeline.to_dict()
    for step in state["steps"]:
        for value in step.values():
            assert isinstance(value, (str, int, float, bool)) or (
                isinstance(value, np.ndarray) and value.dtype == np.float32)
    again = FeaturePipeline.from_dict(state)
    np.testing.assert_array_equal(again.transform(X), F)
    state["steps"][2]["weights"] = state["steps"][2]["weights"][:5]
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
