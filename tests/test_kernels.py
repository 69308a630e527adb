"""Every kernel against its naive reference (tests/reference.py), in float32 and float64."""

from __future__ import annotations

import sys

import numba
import numpy as np
import pytest
import reference as ref

from mnistlr.learn.kernels import fused, fused_blocks, prox, scoring, setup
from mnistlr.learn.kernels.gram import centered_cross_products

DTYPES = [np.float32, np.float64]
# float32 logits and chunk sums: ~1e-6 relative; compare loosely. float64: tight.
RTOL = {np.float32: 2e-4, np.float64: 1e-10}


def problem(dtype, n_samples, n_features, n_outputs, seed=0, scale=1.0, binary=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    W = (scale * rng.normal(size=(n_features, n_outputs))).astype(dtype)
    b = rng.normal(size=n_outputs)
    y = rng.integers(0, 2 if binary else n_outputs, size=n_samples)
    return X, y, W, b


def assert_matches_reference(got, want, dtype) -> None:
    """A fused LossGrad against the reference's (loss_sum, n_correct, grad_W, grad_b)."""
    loss, correct, G, gb = want
    assert got.n_correct == correct
    np.testing.assert_allclose(got.loss_sum, loss, rtol=RTOL[dtype])
    np.testing.assert_allclose(got.grad_W, G, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(G).max())
    np.testing.assert_allclose(got.grad_b, gb, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(gb).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("n_samples", [7, 301])      # a ragged last group of 4 rows; several chunks
def test_softmax_cross_entropy_matches_reference(dtype, n_classes, n_samples):
    X, y, W, b = problem(dtype, n_samples, 13, n_classes, seed=n_classes)
    got = fused.softmax_cross_entropy(X, y, W, b)
    assert_matches_reference(got, ref.softmax_cross_entropy(X, y, W, b), dtype)
    assert got.grad_W.dtype == np.float64 and got.grad_W.shape == W.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_outputs", [1, 3, 10])
def test_ovr_cross_entropy_matches_reference(dtype, n_outputs):
    X, y, W, b = problem(dtype, 103, 11, n_outputs, seed=n_outputs, binary=n_outputs == 1)
    got = fused.ovr_cross_entropy(X, y, W, b)
    assert_matches_reference(got, ref.ovr_cross_entropy(X, y, W, b), dtype)


@pytest.mark.parametrize("fused", [fused.softmax_cross_entropy, fused.ovr_cross_entropy])
def test_rows_select_a_batch_without_copying(fused):
    X, y, W, b = problem(np.float64, 50, 6, 4, seed=5)
    rows = np.array([49, 3, 3, 17, 0])
    got = fused(X, y, W, b, rows=rows)
    want = fused(X[rows], y[rows], W, b)
    assert got.n_correct == want.n_correct
    np.testing.assert_allclose(got.loss_sum, want.loss_sum, rtol=1e-12)
    np.testing.assert_allclose(got.grad_W, want.grad_W, rtol=1e-12, atol=1e-12)


def test_without_grad_gives_the_same_loss():
    X, y, W, b = problem(np.float32, 64, 9, 10)
    full = fused.softmax_cross_entropy(X, y, W, b)
    bare = fused.softmax_cross_entropy(X, y, W, b, grad=False)
    assert bare.grad_W is None and bare.grad_b is None
    assert bare.loss_sum == full.loss_sum and bare.n_correct == full.n_correct


@pytest.mark.parametrize("kind", ["softmax", "ovr"])
def test_huge_logits_stay_finite(kind):
    X, y, W, b = problem(np.float32, 40, 5, 3, scale=1e4)
    S = X.astype(np.float64) @ W.astype(np.float64) + b
    if kind == "softmax":
        got = fused.softmax_cross_entropy(X, y, W, b)
        # ℓ = logsumexp(s) − s_y
        want = np.sum(np.logaddexp.reduce(S, axis=1) - S[np.arange(40), y])
    else:
        got = fused.ovr_cross_entropy(X, y, W, b)
        # ℓ = Σ_c log(1 + e^{s_c}) − t_c s_c
        want = np.sum(np.logaddexp(0, S) - np.eye(3)[y] * S)
    assert np.isfinite(got.loss_sum) and np.all(np.isfinite(got.grad_W))
    np.testing.assert_allclose(got.loss_sum, want, rtol=1e-4)


def test_results_do_not_depend_on_the_thread_count():
    X, y, W, b = problem(np.float32, 2000, 30, 10)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fused.softmax_cross_entropy(X, y, W, b)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = fused.softmax_cross_entropy(X, y, W, b)
    finally:
        numba.set_num_threads(before)
    assert one.loss_sum == many.loss_sum
    np.testing.assert_array_equal(one.grad_W, many.grad_W)


@pytest.mark.parametrize("bad", [
    dict(y=np.array([0, 1, 5])),                     # label past the last class
    dict(y=np.array([0, -1, 1])),
    dict(W=np.zeros((4, 3))),                        # wrong n_features
    dict(b=np.zeros(2)),
    dict(X=np.zeros((3, 5), np.int64)),
    dict(rows=np.array([0, 3])),
])
def test_fused_wrapper_rejects_bad_input(bad):
    args = dict(X=np.zeros((3, 5), np.float32), y=np.array([0, 1, 2]), W=np.zeros((5, 3)), b=np.zeros(3)) | bad
    with pytest.raises(ValueError):
        fused.softmax_cross_entropy(**args)


def test_binary_ovr_needs_labels_0_1():
    with pytest.raises(ValueError):
        fused.ovr_cross_entropy(np.zeros((2, 3)), np.array([0, 2]), np.zeros((3, 1)), np.zeros(1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_threshold_matches_reference_with_exact_zeros(dtype):
    W = np.random.default_rng(2).normal(size=(20, 3)).astype(dtype)
    got = prox.soft_threshold(W, 0.5)
    assert got.dtype == dtype and got.shape == W.shape
    np.testing.assert_allclose(got, ref.soft_threshold(W, 0.5), rtol=1e-6)
    assert np.array_equal(got == 0, np.abs(W) <= 0.5)
    np.testing.assert_array_equal(prox.soft_threshold(W, 0.0), W)
    with pytest.raises(ValueError):
        prox.soft_threshold(W, -1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_centered_cross_products_match_a_float64_computation(dtype):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(250, 7)) + 5).astype(dtype)
    Y = np.eye(3)[rng.integers(0, 3, 250)]
    gram, cross, x_mean, y_mean = centered_cross_products(X, Y, block_rows=64)
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    np.testing.assert_allclose(gram, Xc.T @ Xc, rtol=1e-10)
    np.testing.assert_allclose(cross, Xc.T @ Yc, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(x_mean, X.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(y_mean, Y.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("n_samples", [1, 300, 1024, 2500])
def test_centered_cross_products_of_uint8_are_exact(n_samples):
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, size=(n_samples, 9)).astype(np.uint8)
    X[:, 0] = 255                                     # extremes: products of ±128 and 127
    X[:, 1] = 0
    X[::3, 2] = 0
    y = rng.integers(0, 3, n_samples)
    for Y in (np.eye(3, dtype=np.float32)[y], rng.normal(size=(n_samples, 2))):
        gram, cross, x_mean, y_mean = centered_cross_products(X, Y)
        want = ref.centered_cross_products(X, Y)
        np.testing.assert_allclose(gram, want[0], rtol=1e-12, atol=1e-9 * np.abs(want[0]).max())
        np.testing.assert_allclose(cross, want[1], rtol=1e-12, atol=1e-9 * np.abs(want[1]).max())
        np.testing.assert_allclose(x_mean, want[2], rtol=1e-14)
        np.testing.assert_allclose(y_mean, want[3], rtol=1e-14)


@pytest.mark.parametrize("n_outputs", [1, 3, 10])
def test_scores_uint8_match_reference_and_do_not_depend_on_the_batch(n_outputs):
    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, size=(70, 33)).astype(np.uint8)
    W = rng.normal(scale=0.01, size=(33, n_outputs)).astype(np.float32)
    b = rng.normal(size=n_outputs).astype(np.float32)
    S = scoring.scores_uint8(X, W, b)
    assert S.dtype == np.float32 and S.shape == (70, n_outputs)
    np.testing.assert_allclose(S, ref.scores(X, W, b), rtol=1e-5, atol=1e-5)
    one_by_one = np.concatenate([scoring.scores_uint8(X[i:i + 1], W, b) for i in range(len(X))])
    np.testing.assert_array_equal(one_by_one, S)
    with pytest.raises(ValueError):
        scoring.scores_uint8(X.astype(np.float32), W, b)


@pytest.mark.parametrize("block_rows", [2, 4])             # the AVX2 and the AVX-512 register blocks
@pytest.mark.parametrize("n_features,n_classes", [(1, 4), (784, 4), (784, 10), (5000, 12)])
def test_integer_weights_give_exact_sums_on_both_paths(n_features, n_classes, block_rows, monkeypatch):
    monkeypatch.setattr("mnistlr.learn.kernels.integer_scores._BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(12)
    X = rng.integers(0, 256, size=(603, n_features)).astype(np.uint8)   # not a multiple of 4 rows
    X[0] = 255                                        # the largest sums the bound allows
    # 4: the 4 × 1 blocks only; 10: the 4 × 5 blocks only; 12: both
    W = rng.normal(scale=0.05, size=(n_features, n_classes)).astype(np.float32)
    W[:, 1] *= 1e-6                                   # columns of very different sizes
    W[:, 2] = 0.0                                     # and an empty one
    K, unit = scoring.integer_weights(W)
    # the grid: integers, at most 2^53 / (255 d), close to W
    assert np.array_equal(K, np.rint(K)) and (255 * n_features * np.abs(K).max(axis=0) < 2.0 ** 53).all()
    np.testing.assert_allclose(K * unit, W, rtol=0, atol=2.0 ** -30 * np.abs(W).max())
    # int64 products and sums are exact: both paths must match them bit for bit
    exact = (X.astype(np.int64) @ K.astype(np.int64)).astype(np.float64)
    np.testing.assert_array_equal(scoring._integer_sums_blas(X, K), exact)
    from mnistlr.learn.kernels.integer_scores import integer_sums

    np.testing.assert_array_equal(integer_sums(X, np.ascontiguousarray(K.T)), exact)
    monkeypatch.setattr("mnistlr.learn.kernels.integer_scores._PARALLEL_MIN_ROWS", 1)   # the parallel kernel
    np.testing.assert_array_equal(integer_sums(X, np.ascontiguousarray(K.T)), exact)
    monkeypatch.delitem(sys.modules, "numba")                                           # as in predict
    np.testing.assert_array_equal(scoring._integer_sums_blas(X, K), exact)
    b = rng.normal(size=n_classes).astype(np.float32)
    blas = scoring.scores_uint8(X, W, b)             # no numba in sys.modules: the BLAS path
    monkeypatch.setattr(scoring, "NUMBA_MIN_ROWS", 1)
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    np.testing.assert_allclose(blas, ref.scores(X, W, b), rtol=1e-6, atol=1e-6 * np.abs(blas).max())


def test_scores_uint8_takes_the_numba_kernel_only_when_loaded_or_ready_for_many_rows(monkeypatch):
    from mnistlr.learn.kernels import integer_scores

    rng = np.random.default_rng(13)
    X = rng.integers(0, 256, size=(300, 784)).astype(np.uint8)
    W = rng.normal(scale=0.05, size=(784, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    blas = scoring.scores_uint8(X, W, b)
    integer_scores.integer_sums(X[:5], np.zeros((3, 784)))
    assert integer_scores.loaded()                   # a call leaves a specialization behind
    kernel_calls = []
    real = integer_scores.integer_sums
    monkeypatch.setattr(integer_scores, "integer_sums", lambda *a: kernel_calls.append(1) or real(*a))
    monkeypatch.setattr(integer_scores, "loaded", lambda: False)
    # numba is imported, but loading the kernel would cost more than the BLAS path: not loaded
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    assert kernel_calls == []
    monkeypatch.setattr(scoring, "NUMBA_MIN_ROWS", 300)
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    assert kernel_calls == [1]
    monkeypatch.setattr(scoring, "NUMBA_MIN_ROWS", 301)
    monkeypatch.setattr(integer_scores, "loaded", lambda: True)
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    assert kernel_calls == [1, 1]
    # Numba's kernels set up (training): the kernel from NUMBA_READY_MIN_ROWS rows on
    monkeypatch.setattr(integer_scores, "loaded", lambda: False)
    monkeypatch.setattr(scoring, "NUMBA_READY_MIN_ROWS", 300)
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    assert kernel_calls == [1, 1, 1]
    monkeypatch.delitem(sys.modules, "mnistlr.learn.kernels.setup")   # as in predict
    np.testing.assert_array_equal(scoring.scores_uint8(X, W, b), blas)
    assert kernel_calls == [1, 1, 1]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("kind,n_outputs", [("softmax", 10), ("softmax", 7), ("ovr", 1), ("ovr", 6)])
def test_fused_losses_of_raw_pixels_match_reference(dtype, kind, n_outputs):
    rng = np.random.default_rng(9)
    X = rng.integers(0, 256, size=(131, 20)).astype(dtype)
    y = rng.integers(0, 2 if n_outputs == 1 else n_outputs, 131)
    W = rng.normal(scale=0.01, size=(20, n_outputs))
    b = rng.normal(size=n_outputs)
    fn, reference = ((fused.softmax_cross_entropy, ref.softmax_cross_entropy) if kind == "softmax"
                     else (fused.ovr_cross_entropy, ref.ovr_cross_entropy))
    got = fn(X, y, W, b)
    loss, correct, G, gb = reference(X, y, W, b)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    assert got.n_correct == correct
    np.testing.assert_allclose(got.loss_sum, loss, rtol=rtol)
    np.testing.assert_allclose(got.grad_W, G, rtol=rtol, atol=rtol * np.abs(G).max())
    np.testing.assert_allclose(got.grad_b, gb, rtol=rtol, atol=rtol * np.abs(gb).max())


@pytest.mark.parametrize(("env", "writable", "expected"), [
    ({"NUMBA_CACHE_DIR": "/set"}, set(), None),                 # the user's choice stands
    ({}, {"/pkg/__pycache__"}, None),                            # next to the module
    ({}, {"/home/u/.cache"}, None),                              # Numba falls back to ~/.cache itself
    ({"XDG_CACHE_HOME": "/xdg"}, {"/xdg"}, None),
    ({"XDG_CACHE_HOME": "/xdg"}, {"/home/u/.cache"}, "/tmp/mnistlr-numba-1000"),   # XDG wins over ~/.cache
    ({}, set(), "/tmp/mnistlr-numba-1000"),                      # read-only install and HOME
])
def test_numba_cache_fallback_decision(env, writable, expected):
    got = setup.numba_cache_fallback(env, "/pkg/__pycache__", "/home/u", "/tmp", 1000,
                                       writable=lambda path: path in writable)
    assert got == expected


def test_writable_looks_at_the_nearest_existing_folder(tmp_path):
    assert setup._writable(str(tmp_path / "not" / "yet"))


@pytest.mark.parametrize("with_numba", [True, False])
def test_class_means_match_masked_means(with_numba, monkeypatch):
    import numba  # noqa: F401  (the one-pass kernel runs when numba is loaded)

    from mnistlr.learn.data_record import class_means
    from mnistlr.learn.kernels.class_sums import class_pixel_sums

    rng = np.random.default_rng(4)
    X = rng.integers(0, 256, size=(1001, 37)).astype(np.uint8)
    X[:5] = 255
    y = rng.integers(0, 5, size=1001)
    y[y == 3] = 4                                   # an empty class
    sums = class_pixel_sums(X, y, 6)
    assert sums.dtype == np.uint32
    np.testing.assert_array_equal(sums, [X[y == c].astype(np.int64).sum(axis=0) for c in range(6)])
    if not with_numba:
        monkeypatch.delitem(sys.modules, "numba")   # the masked path
    means = class_means(X, y, 6)
    reference = np.zeros((6, 37), np.float32)
    for c in (0, 1, 2, 4):
        reference[c] = X[y == c].mean(axis=0)       # float64 mean of the members, rounded once
    np.testing.assert_array_equal(means, reference)
    np.testing.assert_array_equal(class_means(X.astype(np.float32), y, 6), reference)
    with pytest.raises(ValueError, match="class indices"):
        class_pixel_sums(X, np.full(1001, 6), 6)


def pixels_problem(n_samples, n_features, n_outputs, binary, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n_samples, n_features)).astype(np.uint8)
    y = rng.integers(0, 2 if binary else n_outputs, n_samples)
    W = rng.normal(scale=1 / (32 * np.sqrt(n_features)), size=(n_features, n_outputs))   # logits of a few units
    return X, y, W, rng.normal(size=n_outputs)


# uint8 X takes the slice-blocked kernel (fused_blocks): ragged blocks of 64 rows and groups of 4 and 8,
# one or two feature slices (1001 features, 10 classes: slices of 512, zero past feature 1001),
# classes not a multiple of the 5-class or 2-class register blocks, one class, one-vs-rest.
@pytest.mark.parametrize("kind,n_outputs", [("softmax", 1), ("softmax", 2), ("softmax", 3), ("softmax", 7),
                                            ("softmax", 10), ("softmax", 11), ("ovr", 1), ("ovr", 5)])
@pytest.mark.parametrize("n_samples,n_features", [(5, 20), (130, 20), (130, 1001)])
@pytest.mark.parametrize("logit_rows", [2, 4])         # the AVX2 and the AVX-512 register blocks
def test_blocked_uint8_kernel_matches_reference(kind, n_outputs, n_samples, n_features, logit_rows, monkeypatch):
    monkeypatch.setattr(fused, "_LOGIT_ROWS", logit_rows)
    X, y, W, b = pixels_problem(n_samples, n_features, n_outputs, binary=kind == "ovr" and n_outputs == 1)
    fn, reference = ((fused.softmax_cross_entropy, ref.softmax_cross_entropy) if kind == "softmax"
                     else (fused.ovr_cross_entropy, ref.ovr_cross_entropy))
    got = fn(X, y, W, b)
    assert got.grad_W.shape == W.shape and got.grad_W.dtype == np.float64
    assert_matches_reference(got, reference(X, y, W, b), np.float32)


@pytest.mark.parametrize("n_features,n_outputs", [(784, 10), (784, 1), (1001, 10), (3072, 10), (784, 47), (20, 3)])
def test_block_shape_fills_whole_vectors_within_the_cache_budgets(n_features, n_outputs):
    n_slices, width, rows = fused_blocks.block_shape(n_features, n_outputs, 4)
    assert width % 16 == 0 and rows % 8 == 0 and 8 <= rows <= fused_blocks.MAX_BLOCK_ROWS
    assert n_slices * width >= n_features > (n_slices - 1) * width
    assert n_outputs * width * 4 <= max(fused_blocks.SLICE_BYTES, 16 * n_outputs * 4)
    assert rows * n_slices * width * 4 <= max(fused_blocks.BLOCK_BYTES, 8 * n_slices * width * 4)
    if n_outputs * n_features * 4 <= fused_blocks.SLICE_BYTES and n_features % 16 == 0:
        assert (n_slices, width) == (1, n_features)       # 10 × 784 pixels: one slice, no padding


def test_blocked_kernel_with_several_blocks_per_chunk_and_threads():
    X, y, W, b = pixels_problem(1100, 37, 10, binary=False)     # 16 chunks of 68–69 rows: 2 blocks each
    rows = np.random.default_rng(4).integers(0, 1100, 1500)      # repeated rows, in any order
    want = ref.softmax_cross_entropy(X[rows], y[rows], W, b)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fused.softmax_cross_entropy(X, y, W, b, rows=rows)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = fused.softmax_cross_entropy(X, y, W, b, rows=rows)
    finally:
        numba.set_num_threads(before)
    assert_matches_reference(many, want, np.float32)
    assert one.loss_sum == many.loss_sum and one.n_correct == many.n_correct
    np.testing.assert_array_equal(one.grad_W, many.grad_W)
    np.testing.assert_array_equal(one.grad_b, many.grad_b)


def test_vectorised_exp_matches_numpy_within_a_few_ulps():
    from mnistlr.learn.kernels.expf import exp_nonpositive

    x = np.concatenate([np.linspace(-87, 0, 200_001, dtype=np.float32), np.float32([0.0, -0.0, -1e-8, -86.99])])
    got, bits = x.copy(), np.empty(x.size, np.int32)
    exp_nonpositive(got, x.size, bits)
    exact = np.exp(x.astype(np.float64))
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float32))
    assert ulps.max() <= 5 and np.median(ulps) <= 1
    assert got[-4] == 1.0 and got[-3] == 1.0
    # below the floor: e^−87, not 0 or a subnormal; NaN goes through; only the first n values change
    low = np.float32([-88.0, -1e4, -np.inf, np.nan, -1.0])
    exp_nonpositive(low, 4, np.empty(4, np.int32))
    np.testing.assert_allclose(low[:3], np.exp(np.float32(-87.0)), rtol=1e-6)
    assert np.isnan(low[3]) and low[4] == -1.0


def test_softmax_block_residuals_match_the_row_residuals():
    from mnistlr.learn.kernels.residuals import block_residuals, softmax_block_residuals

    rng = np.random.default_rng(5)
    S = (rng.standard_normal((64, 10)) * 8).astype(np.float32)
    S[3, 4] = S[3, 7] = S[3].max() + 1         # a tie: the first maximum is the prediction
    S[9] = -1e4                                # one class far ahead: the others' e^{s − max} fall below e^−87
    S[9, 2] = 0.0
    y, rows = rng.integers(0, 10, 200), rng.permutation(200)[:64]
    want, got = S.copy(), S.copy()
    want_sums = block_residuals(want, 61, y, rows, 0, 0, 0.5, 3)
    got_sums = softmax_block_residuals(got, 61, y, rows, 0, 0.5, 3, np.empty(640, np.int32), np.empty(64))
    assert got_sums[1] == want_sums[1]
    np.testing.assert_allclose(got_sums[0], want_sums[0], rtol=1e-6)
    np.testing.assert_allclose(got[:61], want[:61], rtol=1e-5, atol=1e-7)
    assert np.array_equal(got[61:], S[61:])     # rows past m untouched


def test_vector_registers_follow_the_cpu_numba_targets(monkeypatch):
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "skylake-avx512")
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+avx512f,+fma")
    assert setup.vector_registers() == 32
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-avx512f,+fma")
    assert setup.vector_registers() == 16
    monkeypatch.setattr(config, "CPU_FEATURES", "")
    assert setup.vector_registers() == 16      # a named CPU without its features: the safe reading


def test_register_block_rows_follow_the_vector_registers(monkeypatch):
    from mnistlr.learn.kernels import dots

    monkeypatch.setattr(dots, "vector_registers", lambda: 32)
    assert dots.block_rows() == 4              # AVX-512: 4 × 5 logits, 8-row gradient blocks
    monkeypatch.setattr(dots, "vector_registers", lambda: 16)
    assert dots.block_rows() == 2              # AVX2: 2 × 5 logits, 4-row gradient blocks


def test_prefetch_is_a_hint_that_reaches_the_machine_code():
    @setup.njit
    def touch_every_line(a):
        for i in range(0, a.size + 64, 16):           # past the end too: a prefetch never faults
            setup.prefetch(a, i)
        return a.sum()

    a = np.arange(100, dtype=np.float32)
    assert touch_every_line(a) == a.sum()
    asm = touch_every_line.inspect_asm(touch_every_line.signatures[0])
    assert "prefetch" in asm or "prfm" in asm         # x86 prefetcht1, or ARM's prfm
