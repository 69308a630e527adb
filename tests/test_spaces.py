"""mnistlr.tuning.spaces: parameter specs and sampling, stratified folds, scoring against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mnistlr.errors import UsageError
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.options import TrainOptions
from mnistlr.tuning import spaces

# ---------------------------------------------------------------- specs


@pytest.mark.parametrize("text, kind, values, low, high", [
    ("l2=log:1e-6:1e-1", "log", (), 1e-6, 1e-1),
    ("lr=uniform:0.001:0.1", "uniform", (), 0.001, 0.1),
    ("l2=1e-4,1e-3,1e-2", "list", (1e-4, 1e-3, 1e-2), 0, 0),
    ("l2=1e-5:1e-1", "log", (), 1e-5, 1e-1),           # scale parameter: log-uniform by default
    ("anneal=1:20", "uniform", (), 1, 20),               # other reals: uniform by default
    ("batch_size=logint:16:512", "logint", (), 16, 512),
    ("epochs=2:9", "int", (), 2, 9),                     # integer parameter: int by default
    ("epochs=3,5", "list", (3, 5), 0, 0),
    ("solver=gd,sgd", "list", ("gd", "sgd"), 0, 0),
    (" C = log:0.1:10 ", "log", (), 0.1, 10),
])
def test_parse_param_forms(text, kind, values, low, high):
    spec = spaces.parse_param(text)
    assert (spec.kind, spec.values, spec.low, spec.high) == (kind, values, low, high)
    if spec.kind == "list" and spec.name == "epochs":
        assert all(isinstance(v, int) for v in spec.values)


@pytest.mark.parametrize("text, fragment", [
    ("l2", "NAME=SPEC"),
    ("=1e-3", "NAME=SPEC"),
    ("gamma=1:2", "'gamma' is not a searchable"),
    ("per_class=10,20", "fixed for every trial"),
    ("l2=log:0:1", "LOW > 0"),
    ("l2=log:1e-2:1e-4", "must be below"),
    ("l2=log:1e-4", "LOW:HIGH"),
    ("l2=log:a:b", "'a' is not a number"),
    ("l2=1e-3,abc", "'abc' is not a number"),
    ("l2=nan,1", "not a finite number"),
    ("l2=-1,1", "≥ 0"),
    ("epochs=uniform:1:5", "integer parameter"),
    ("epochs=1.5,2", "not a whole number"),
    ("l2=int:1:5", "real parameter"),
    ("solver=adam", "'adam' is not one of"),
    ("features=rff:100:log:0.01:1e6", "more than rff's gamma can be (10000"),
])
def test_bad_specs_name_the_spec_and_the_forms(text, fragment):
    with pytest.raises(UsageError) as info:
        spaces.parse_param(text)
    assert fragment in info.value.message and f"'{text}'" in info.value.message
    assert "NAME=log:LOW:HIGH" in info.value.hint


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(UsageError, match="more than once"):
        spaces.parse_params(["l2=1e-3,1e-2", "l2=log:1e-5:1"])


def test_grid_is_every_combination_in_order_and_ignores_n_iter():
    specs = spaces.parse_params(["l2=1e-4,1e-2", "preprocess=scale,center,standardize"])
    mode, cands = spaces.candidates(specs, n_iter=1, seed=0)
    assert mode == "grid" and len(cands) == 6
    assert cands[0] == {"l2": 1e-4, "preprocess": "scale"}
    assert cands[-1] == {"l2": 1e-2, "preprocess": "standardize"}
    assert len({tuple(c.items()) for c in cands}) == 6


def test_no_param_is_one_candidate_of_the_fixed_options():
    assert spaces.candidates([], 10, 0) == ("grid", [{}])


def test_random_draws_are_seeded_in_range_and_typed():
    specs = spaces.parse_params(["l2=log:1e-6:1e-1", "lr=uniform:0.001:0.1", "batch_size=logint:16:512",
                                 "epochs=2:4", "init=zeros,normal"])
    mode, a = spaces.candidates(specs, n_iter=200, seed=3)
    assert mode == "random" and len(a) == 200
    assert a == spaces.candidates(specs, 200, 3)[1]
    assert a != spaces.candidates(specs, 200, 4)[1]
    l2 = np.array([c["l2"] for c in a])
    assert l2.min() >= 1e-6 and l2.max() <= 1e-1
    # log-uniform: the log-median sits near the middle of [log 1e-6, log 1e-1]
    assert abs(np.median(np.log10(l2)) - (-3.5)) < 0.5
    assert all(0.001 <= c["lr"] <= 0.1 for c in a)
    assert all(isinstance(c["batch_size"], int) and 16 <= c["batch_size"] <= 512 for c in a)
    assert {c["epochs"] for c in a} == {2, 3, 4}          # both ends reachable
    assert {c["init"] for c in a} == {"zeros", "normal"}


def test_apply_params_c_and_l2_replace_each_other():
    base = TrainOptions(l2=1e-3)
    assert spaces.apply_params(base, {"C": 2.0}).l2 is None
    assert spaces.apply_params(TrainOptions(C=1.0), {"l2": 0.1}, seed=9) == TrainOptions(l2=0.1, seed=9)


@pytest.mark.parametrize("fixed, param", [({"features": "deskew"}, "features=pca:5"), ({"l2": 1e-3}, "l2=1e-4,1e-3"),
                                           ({"solver": "gd"}, "solver=gd,sgd")])
def test_an_option_both_fixed_and_searched_is_a_usage_error(fixed, param):
    specs = spaces.parse_params([param])
    _, candidates = spaces.candidates(specs, 2, 0)
    with pytest.raises(UsageError, match=f"is fixed at .* and searched by --param {specs[0].name}"):
        spaces.check_candidates(TrainOptions(**fixed), candidates, specs)
    spaces.check_candidates(TrainOptions(), candidates, specs)   # searched alone: fine


def test_check_candidates_names_the_bad_combination():
    with pytest.raises(UsageError, match="parameters l1=0.01") as info:
        spaces.check_candidates(TrainOptions(model="ridge"), [{"l1": 0.0}, {"l1": 0.01}])
    assert "--model softmax or logistic" in info.value.for_command_line()


def test_derive_seed_is_deterministic_and_distinct():
    assert spaces.derive_seed(0, 3, 1) == spaces.derive_seed(0, 3, 1)
    assert len({spaces.derive_seed(s, 3, f) for s in range(5) for f in range(5)}) == 25


# ---------------------------------------------------------------- stratified folds

@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(3, 40), min_size=2, max_size=6),
       k=st.integers(2, 3), seed=st.integers(0, 2**32 - 1))
def test_stratified_kfold_properties(counts, k, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    y = np.random.default_rng(0).permutation(y)
    folds = spaces.stratified_kfold(y, k, seed)
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(y)))           # a partition
    sizes = [len(te) for _, te in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        assert np.array_equal(np.union1d(train, test), np.arange(len(y)))
        assert not np.intersect1d(train, test).size
    per_class = np.array([np.bincount(y[te], minlength=len(counts)) for _, te in folds])
    assert (per_class.max(0) - per_class.min(0) <= 1).all()            # stratified
    again = spaces.stratified_kfold(y, k, seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_stratified_kfold_seed_changes_the_folds():
    y = np.repeat(np.arange(3), 20)
    a = spaces.stratified_kfold(y, 4, 0)
    b = spaces.stratified_kfold(y, 4, 1)
    assert any(not np.array_equal(x[1], z[1]) for x, z in zip(a, b, strict=True))


def test_cv_larger_than_smallest_class_is_a_usage_error():
    y = np.array([0] * 10 + [1] * 3)
    with pytest.raises(UsageError, match=r"--cv 4 is more than the 3 image\(s\) of class 1"):
        spaces.check_cv(y, 4)
    with pytest.raises(UsageError, match="at least 2"):
        spaces.check_cv(y, 1)
    spaces.check_cv(y, 3)


# ---------------------------------------------------------------- scoring

@pytest.fixture(scope="module")
def means_model():
    """A class-mean linear classifier on synthetic 4×4 'images' of 3 classes, and test data."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(40, 215, (3, 16))
    y = np.repeat(np.arange(3), 60) + 2               # labels 2, 3, 4
    X = np.clip(centres[y - 2] + rng.normal(0, 60, (180, 16)), 0, 255).astype(np.uint8)
    pre = Preprocessor.fit("center", X)
    Z = pre.transform(X)
    M = np.stack([Z[y == c].mean(0) for c in (2, 3, 4)])
    # s_k = 4·(z·μ_k − ½‖μ_k‖²): nearest class mean, scaled for graded probabilities
    W, b = (4 * M.T).astype(np.float32), (-2 * (M ** 2).sum(1)).astype(np.float32)
    model = LinearModel("softmax", np.array([2, 3, 4]), (4, 4), pre, W, b)
    return model, X.reshape(180, 4, 4), y


def test_scores_agree_with_scikit_learn(means_model):
    model, X, y = means_model
    P = model.predict_proba(X)
    P64 = P.astype(np.float64) / P.astype(np.float64).sum(1, keepdims=True)
    y_hat = model.predict(X)
    assert 0.5 < spaces.score(model, X, y, "accuracy") < 1.0
    assert spaces.score(model, X, y, "accuracy") == pytest.approx(skm.accuracy_score(y, y_hat))
    assert spaces.score(model, X, y, "f1_macro") == pytest.approx(skm.f1_score(y, y_hat, average="macro"))
    assert spaces.score(model, X, y, "log_loss") == pytest.approx(
        skm.log_loss(y, P64, labels=[2, 3, 4]), rel=1e-5)
    assert spaces.score(model, X, y, "roc_auc") == pytest.approx(
        skm.roc_auc_score(y, P, multi_class="ovr", average="macro", labels=[2, 3, 4]))


def test_unknown_metric_is_refused():
    with pytest.raises(UsageError, match="'auc' is not one of accuracy"):
        spaces.check_metric("auc")
