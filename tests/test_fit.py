"""mnistlr.learn.fit: option checks, subsetting, stratified hold-out, C conversion, the data hash."""

from __future__ import annotations

import contextlib
import math
import re

import numpy as np
import pytest

from mnistlr.errors import DataError, TrainingError, UsageError
from mnistlr.learn.data_record import class_means, data_record, data_sha256
from mnistlr.learn.fit import fit_model, prepare
from mnistlr.learn.options import TrainOptions, resolve_l2
from mnistlr.learn.splits import stratified_split


def toy(n=120, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n // n_classes)
    images = rng.integers(0, 256, size=(len(labels), 4, 4)).astype(np.uint8)
    return images, labels


@pytest.mark.parametrize(("options", "message"), [
    (TrainOptions(l2=-1.0), "--l2 must be a finite number"),
    (TrainOptions(l2=math.nan), "--l2 must be a finite number"),
    (TrainOptions(lr=0.0, solver="gd"), "--lr must be > 0"),
    (TrainOptions(lr=math.inf, solver="gd"), "--lr must be a finite number"),
    (TrainOptions(epochs=0, solver="gd"), "--epochs must be a whole number from 1 to 1,000,000"),
    (TrainOptions(batch_size=0, solver="sgd"), "--batch-size must be a whole number from 1"),
    (TrainOptions(model="ridge", l1=1e-3), "--l1 does not apply to ridge"),
    (TrainOptions(l2="auto", solver="sgd"), "--l2 auto runs a path"),
    (TrainOptions(C="auto", l2=1e-3), "give only one"),
    (TrainOptions(l2="strong"), "--l2 must be a finite number"),
    (TrainOptions(l2="auto", path_metric="f1"), "--path-metric 'f1' is not one of"),
    (TrainOptions(model="ridge", solver="gd"), "closed form"),
    (TrainOptions(solver="closed"), "ridge only"),
    (TrainOptions(l2=1e-3, C=1.0), "give only one"),
    (TrainOptions(classes=[3]), "at least two distinct labels"),
    (TrainOptions(val_fraction=1.5), "between 0 and 1"),
    (TrainOptions(accel="nesterov"), "--accel nesterov is momentum for --solver gd, not lbfgs"),
    (TrainOptions(accel="nesterov", solver="sgd"), "not sgd"),
    (TrainOptions(accel="heavy-ball", solver="gd"), "--accel 'heavy-ball' is not one of none, nesterov"),
])
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError) as info:
        options.validate()
    assert message in info.value.for_command_line()


@pytest.mark.parametrize(("options", "message"), [
    (TrainOptions(epochs=5), "--epochs 5 is read by --solver gd and sgd only, not by lbfgs (drop --epochs, or use --solver gd)"),
    (TrainOptions(lr=0.1), "--lr 0.1 is read by --solver gd and sgd only, not by lbfgs"),
    (TrainOptions(anneal=2.0), "--anneal 2 is read by"),
    (TrainOptions(patience=1), "--patience 1 is read by"),
    (TrainOptions(batch_size=1, solver="gd"), "--batch-size 1 is read by --solver sgd only, not by gd"),
    (TrainOptions(max_iter=3, solver="gd"), "--max-iter 3 is read by --solver lbfgs only, not by gd"),
    (TrainOptions(tol=0.5, solver="sgd"), "--tol 0.5 is read by --solver lbfgs only, not by sgd"),
    (TrainOptions(model="ridge", init="normal"), "--init normal is read by --solver lbfgs, gd and sgd only; ridge is "
                                                 "solved in closed form (drop --init, or train --model softmax"),
    (TrainOptions(model="ridge", epochs=3), "--epochs 3 is read by --solver gd and sgd only; ridge"),
    (TrainOptions(path_metric="accuracy"), "--path-metric accuracy picks the penalty of --l2 auto"),
])
def test_an_option_the_solver_does_not_read_is_a_usage_error(options, message):
    # each was silently ignored: `--epochs 5` trained lbfgs to convergence
    with pytest.raises(UsageError) as info:
        options.validate()
    assert message in info.value.for_command_line()


@pytest.mark.parametrize("options", [
    TrainOptions(epochs=100, lr=None, batch_size=256),            # the defaults, given or not
    TrainOptions(solver="sgd", epochs=5, lr=0.1, anneal=2.0, patience=1, batch_size=1, init="normal"),
    TrainOptions(solver="gd", epochs=5, lr=0.1, anneal=2.0, patience=1, init="ridge"),
    TrainOptions(tol=0.5, max_iter=3, init="normal"),
    TrainOptions(l2="auto", path_metric="accuracy"),
])
def test_options_the_solver_reads_are_taken(options):
    options.validate()


def test_lr_auto_is_the_default_step_in_python_too():
    # the command line's --lr auto: mnistlr.train(..., lr="auto") and the estimators' lr="auto" were
    # refused ("lr must be a finite number ≥ 0, got auto")
    options = TrainOptions(solver="gd", lr="auto")
    options.validate()
    assert options.lr is None
    images, y = toy()
    assert np.array_equal(fit_model(images, y, TrainOptions(solver="sgd", lr="auto", epochs=2)).W,
                          fit_model(images, y, TrainOptions(solver="sgd", epochs=2)).W)


@pytest.mark.parametrize(("options", "python", "command_line"), [
    (TrainOptions(l2=-1.0), "l2 must be a finite number ≥ 0", "--l2 must be a finite number ≥ 0"),
    (TrainOptions(batch_size=0, solver="sgd"), "batch_size must be a whole number from 1", "--batch-size must be a whole number from 1"),
    (TrainOptions(solver="closed"), "(use solver=lbfgs, gd or sgd)", "(use --solver lbfgs, gd or sgd)"),
])
def test_messages_name_options_as_python_keywords_and_as_flags(options, python, command_line):
    """One message: str() spells the keyword (for Python callers), the CLI the flag."""
    with pytest.raises(UsageError) as info:
        options.validate()
    assert python in str(info.value) and "--" not in str(info.value)
    assert command_line in info.value.for_command_line()


def test_c_is_converted_as_scikit_learn_defines_it():
    assert resolve_l2(TrainOptions(C=2.0), 500) == pytest.approx(1.0 / 1000)
    assert resolve_l2(TrainOptions(l2=0.25), 500) == 0.25


def test_stratified_split_keeps_class_shares_and_is_seeded():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    train, val = stratified_split(y, 10, np.random.default_rng(4))
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(y)
    again = stratified_split(y, 10, np.random.default_rng(4))[1]
    np.testing.assert_array_equal(val, again)


def test_prepare_subsets_in_order_limit_classes_per_class():
    images, labels = toy(n=300, n_classes=3)
    shuffled = np.random.default_rng(1).permutation(len(labels))
    images, labels = images[shuffled], labels[shuffled]
    options = TrainOptions(train_limit=200, classes=[0, 2], per_class=20, val_size=8)
    data = prepare(images, labels, options)
    assert data.classes.tolist() == [0, 2]
    assert len(data.y_train) + len(data.y_val) == 40
    assert np.bincount(data.y_val, minlength=3).tolist() == [4, 0, 4]
    first = set(map(bytes, images[:200].reshape(200, -1)))
    assert all(bytes(row) in first for row in data.X_train)


def test_gd_holds_out_a_tenth_by_default_lbfgs_none():
    images, labels = toy()
    assert len(prepare(images, labels, TrainOptions(solver="gd")).y_val) == 12
    assert prepare(images, labels, TrainOptions()).y_val is None


@pytest.mark.parametrize("options", [TrainOptions(solver="gd"), TrainOptions(val_fraction=0.001),
                                     TrainOptions(l2="auto")])
def test_a_share_that_rounds_to_no_image_holds_out_one(options):
    # 0.1 of 4 images (or 0.001 of 120) rounded to 0: gd ran without early stopping, l2=auto crashed
    images, labels = toy(n=120 if options.val_fraction else 4, n_classes=2)
    assert len(prepare(images, labels, options).y_val) == 1


def test_l2_auto_on_a_hold_out_of_a_few_images_trains_or_says_why():
    images, labels = toy(n=120, n_classes=2)
    model = fit_model(images, labels, TrainOptions(l2="auto", val_fraction=0.001))
    assert model.meta["l2_path"]["n_val"] == 1
    with pytest.raises(UsageError, match="one per class: none can be held out"):
        fit_model(images[[0, -1]], labels[[0, -1]], TrainOptions(l2="auto"))


def test_val_size_larger_than_data_is_a_usage_error():
    images, labels = toy()
    with pytest.raises(UsageError, match="val_size=500 leaves no training data") as info:
        prepare(images, labels, TrainOptions(val_size=500))
    assert "--val-size 500 leaves no training data" in info.value.for_command_line()
    with pytest.raises(UsageError) as info:   # the option given is the one named
        prepare(images, labels, TrainOptions(val_fraction=0.9999))
    assert "--val-fraction 0.9999 leaves no training data" in info.value.for_command_line()


def test_unknown_classes_are_named():
    images, labels = toy()
    with pytest.raises(UsageError, match="label.s. 7 do not occur"):
        prepare(images, labels, TrainOptions(classes=[1, 7]))


def test_single_class_and_mismatched_counts():
    images, labels = toy()
    with pytest.raises(TrainingError, match="single class"):
        prepare(images, np.zeros_like(labels), TrainOptions())
    with pytest.raises(DataError, match="120 training images but 119 labels"):
        prepare(images, labels[:-1], TrainOptions())


def test_labels_that_are_ids_are_refused_before_training():
    images = np.zeros((3000, 4, 4), np.uint8)
    with pytest.raises(TrainingError, match="the labels name 3,000 classes for 3,000 images.*IDs rather than"):
        prepare(images, np.arange(3000), TrainOptions())
    prepare(np.zeros((2002, 4, 4), np.uint8), np.arange(2002) % 1001, TrainOptions())   # two images a class: fine


def test_in_background_gives_the_result_or_the_error():
    from mnistlr.learn.kernels.threads import in_background

    X = np.arange(2 * 5000, dtype=np.uint32).astype(np.uint8).reshape(2, 5000)   # above hashlib's GIL threshold
    y = np.arange(2, dtype=np.uint8)
    assert in_background(data_sha256, X, y)() == data_sha256(X, y)

    class Unreadable:
        def __array__(self, *args, **kwargs):
            raise OSError("the labels cannot be read")

    with pytest.raises(OSError, match="cannot be read"):    # the thread's error, in the caller
        in_background(data_sha256, X, Unreadable())()


class _SlowSource:
    """An iterator of n items, each made slowly, that records whether close() met a read under way."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at, self.made, self.reading, self.closed, self.overlap = n, fail_at, 0, False, 0, False

    def __iter__(self):
        return self

    def __next__(self):
        import time

        self.reading = True
        time.sleep(0.002)
        try:
            if self.made == self.fail_at:
                raise OSError("the source broke")
            if self.made == self.n:
                raise StopIteration
            self.made += 1
            return self.made - 1
        finally:
            self.reading = False

    def close(self):
        self.overlap |= self.reading
        self.closed += 1


@pytest.mark.parametrize("stop_after", [0, 1, 2, 5, None])
def test_read_ahead_closes_its_source_once_after_the_last_read(stop_after):
    import threading

    from mnistlr.learn.kernels.threads import read_ahead

    threads = threading.active_count()
    source = _SlowSource(6)
    seen = []
    with pytest.raises(KeyboardInterrupt) if stop_after is not None else contextlib.nullcontext():
        for item in read_ahead(source, source.close):
            if len(seen) == stop_after:
                raise KeyboardInterrupt   # as a signal's exception in the caller
            seen.append(item)
    assert seen == list(range(6 if stop_after is None else stop_after))
    assert source.closed == 1 and not source.overlap and threading.active_count() == threads
    assert source.made <= len(seen) + 2   # at most one item read ahead of the caller (and the one it left)


def test_read_ahead_starts_one_reader_for_all_items(monkeypatch):
    # a thread started per item left a window, between its start and the caller's note of it, where a
    # signal's exception orphaned a read that close() then met ("generator already executing")
    import threading

    from mnistlr.learn.kernels.threads import read_ahead

    started = []
    original = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self), original(self))[1])
    source = _SlowSource(20)
    assert list(read_ahead(source, source.close)) == list(range(20))
    assert len(started) == 1


def test_read_ahead_hands_the_sources_error_to_the_caller():
    from mnistlr.learn.kernels.threads import read_ahead

    source = _SlowSource(6, fail_at=3)
    seen = []
    with pytest.raises(OSError, match="the source broke"):
        for item in read_ahead(source, source.close):
            seen.append(item)
    assert seen == [0, 1, 2] and source.closed == 1


@pytest.mark.parametrize("l2", [1e-3, "auto"])
def test_the_model_records_the_hash_of_the_data_it_was_fitted_on(l2):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(90, 4, 4)).astype(np.uint8)
    labels = np.repeat(np.arange(3, dtype=np.uint8), 30)
    options = TrainOptions(l2=l2, val_size=30, max_iter=5)
    model = fit_model(images, labels, options)
    data = prepare(images, labels, options)
    # with l2=auto the model is refitted on the hold-out too
    X, y = ((np.concatenate([data.X_train, data.X_val]), np.concatenate([data.y_train, data.y_val]))
            if l2 == "auto" else (data.X_train, data.y_train))
    assert model.meta["data_sha256"] == data_sha256(X, y) and model.meta["n_train"] == len(y)
    # the class means too (computed beside the fit by NumPy, or after it)
    means = class_means(X.reshape(len(X), -1), np.searchsorted(model.classes, y), 3)
    assert np.array_equal(model.meta["class_means"], means)


def test_class_means_in_blocks_and_by_the_kernel_are_the_same(monkeypatch):
    import sys

    import mnistlr.learn.kernels.setup  # noqa: F401  (the kernel path needs Numba imported)
    from mnistlr.learn import data_record as record
    from mnistlr.learn.kernels import class_sums

    rng = np.random.default_rng(6)
    X, y = rng.integers(0, 256, (1000, 30), dtype=np.uint8), rng.integers(0, 5, 1000)
    whole = class_means(X, y, 5, kernel=False)
    monkeypatch.setattr(record, "MEANS_BLOCK_ROWS", 7)          # 143 blocks, the last one short
    assert np.array_equal(class_means(X, y, 5, kernel=False), whole)
    calls = []
    real = class_sums.class_pixel_sums
    monkeypatch.setattr(class_sums, "class_pixel_sums", lambda *a: calls.append(1) or real(*a))
    assert np.array_equal(class_means(X, y, 5), whole) and calls == [1]     # the kernel
    assert data_record(prepare(X.reshape(1000, 5, 6), y, TrainOptions()))["class_means"].shape == (5, 30)
    assert calls == [1, 1]
    monkeypatch.delitem(sys.modules, "mnistlr.learn.kernels.setup")   # Numba not imported (yet): NumPy
    assert np.array_equal(class_means(X, y, 5), whole) and calls == [1, 1]


def test_data_sha256_sees_bytes_and_shape():
    X = np.arange(24, dtype=np.uint8).reshape(4, 6)
    y = np.arange(4, dtype=np.uint8)
    base = data_sha256(X, y)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert data_sha256(X.copy(), y.copy()) == base
    assert data_sha256(X.reshape(4, 3, 2), y) != base
    X2 = X.copy()
    X2[0, 0] = 1
    assert data_sha256(X2, y) != base
    assert data_sha256(X, y[::-1].copy()) != base


def test_the_model_records_the_hash_of_the_training_part_it_used():
    """Hold-out images are not training data: two fits that train on the same part share the hash."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(60, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)
    options = TrainOptions(max_iter=3, val_size=6, seed=1)
    model = fit_model(images, labels, options)
    data = prepare(images, labels, options)
    assert model.meta["data_sha256"] == data_sha256(data.X_train, data.y_train)
    other = fit_model(images, labels, TrainOptions(max_iter=3, val_size=6, seed=2))
    assert other.meta["data_sha256"] != model.meta["data_sha256"]   # another split, other data


@pytest.mark.parametrize("options", [TrainOptions(solver="gd", epochs=8, val_size=60),
                                     TrainOptions(max_iter=8), TrainOptions(model="ridge"),
                                     TrainOptions(l2="auto", max_iter=8)])
def test_a_tracked_test_set_is_recorded_and_changes_nothing(options):
    from mnistlr.data.registry import load_dataset

    X, y = load_dataset("mnist-sample", "train")
    X_test, y_test = load_dataset("mnist-sample", "test")
    X, y = X[:600], y[:600]
    plain = fit_model(X, y, options)
    tracked = fit_model(X, y, options, test=(X_test, y_test))
    np.testing.assert_array_equal(plain.W, tracked.W)      # never used for stopping or selection
    history = tracked.meta["history"]
    assert all({"test_loss", "test_accuracy"} <= set(r) for r in history)
    assert not any("test_loss" in r for r in plain.meta["history"])
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in plain.meta["history"]]
    if options.resolved_solver() != "gd":          # gd returns its best epoch, not the last
        assert history[-1]["test_accuracy"] == pytest.approx(float(np.mean(tracked.predict(X_test) == y_test)))


def test_a_test_set_of_another_shape_is_a_data_error():
    images, y = toy()
    with pytest.raises(DataError, match="test images"):
        fit_model(images, y, TrainOptions(max_iter=3), test=(np.zeros((5, 3, 3), np.uint8), np.zeros(5, int)))


@pytest.mark.parametrize("solver", ["gd", "sgd", "lbfgs"])
def test_sum_loss_scale_converts_lr_l2_l1_to_the_mean_objective(solver):
    images, y = toy(n=150)
    extra = {} if solver == "lbfgs" else {"epochs": 4, "val_size": 30}
    # the course's Σ ℓ + λ‖W‖² + λ₁‖W‖₁ with step η; 120 training images after the hold-out
    n_train = 150 - extra.get("val_size", 0)
    lam, lam1, eta = 0.001, 0.002, 0.004
    lr = None if solver == "lbfgs" else eta
    summed = fit_model(images, y, TrainOptions(solver=solver, loss_scale="sum", l2=lam, l1=lam1, lr=lr, **extra))
    rows = 256 if solver == "sgd" else n_train                 # sgd: the mini-batch's sum (batch_size 256)
    mean = fit_model(images, y, TrainOptions(solver=solver, l2=2 * lam / n_train, l1=lam1 / n_train,
                                             lr=None if lr is None else eta * rows, **extra))
    np.testing.assert_array_equal(summed.W, mean.W)
    assert summed.params["l2"] == pytest.approx(2 * lam / n_train)
    assert summed.params["given"] == {"lr": lr, "l2": lam, "l1": lam1} and "given" not in mean.params


@pytest.mark.parametrize("options", [TrainOptions(l2=1e9), TrainOptions(C=1e-12)])
def test_an_l2_penalty_too_large_for_a_first_step_is_named(options):
    # it blamed the pixels ("the inputs reach |x| = 255"), which the preprocessing had scaled to 1
    images, y = toy()
    with pytest.raises(TrainingError) as info:
        fit_model(images, y, options)
    line = info.value.for_command_line()
    assert "the L2 penalty" in line and "give a smaller --l2 or a larger --C" in line and "|x|" not in line


def test_sum_loss_scale_leaves_ridges_gamma_as_given():
    # ridge minimises ½‖XW − Y‖² + (γ/2)‖W‖², the summed loss: Σ‖xW − y‖² + λ‖W‖² is γ = λ (it was 2λ/n)
    images, y = toy(n=150)
    summed = fit_model(images, y, TrainOptions(model="ridge", loss_scale="sum", l2=5.0))
    np.testing.assert_array_equal(summed.W, fit_model(images, y, TrainOptions(model="ridge", l2=5.0)).W)
    assert summed.params["l2"] == 5.0


def test_sum_loss_scale_refuses_C():
    with pytest.raises(UsageError, match="loss_scale=sum"):
        TrainOptions(loss_scale="sum", C=1.0).validate()


def test_a_diverging_summed_loss_step_names_the_safe_step_on_the_summed_loss():
    images, y = toy(n=150)
    options = TrainOptions(solver="gd", loss_scale="sum", lr=10.0, l2=0.0, epochs=20, val_size=30)
    with pytest.raises(TrainingError) as caught:
        fit_model(images, y, options)
    with pytest.raises(TrainingError) as mean:
        fit_model(images, y, TrainOptions(solver="gd", lr=10.0 * 120, l2=0.0, epochs=20, val_size=30))
    safe_mean = float(re.search(r"≤ (\S+),", str(mean.value)).group(1))
    safe_sum = float(re.search(r"≤ (\S+) on the summed loss", str(caught.value)).group(1))
    assert safe_sum == pytest.approx(safe_mean / 120, rel=0.05)       # 120 training images after the hold-out


def test_class_means_are_the_float64_means_of_each_class():
    rng = np.random.default_rng(5)
    X, y = rng.integers(0, 256, (600, 49), dtype=np.uint8), rng.integers(0, 4, 600)
    y[y == 3] = 0    # a class without members keeps zeros
    expected = np.zeros((4, 49), np.float32)
    for c in range(3):
        expected[c] = X[y == c].astype(np.float64).mean(axis=0)
    assert np.array_equal(class_means(X, y, 4), expected)
    assert np.array_equal(class_means(X.astype(np.float32), y, 4), expected)


FIRST_AND_SECOND_FIT = """
import numpy as np
from mnistlr.data.registry import load_dataset
from mnistlr.learn.fit import fit_model
from mnistlr.learn.options import TrainOptions
X, y = load_dataset("mnist-sample", "train")
first, second = (fit_model(X[:1000], y[:1000], TrainOptions(l1=1e-4, l2=0.0, max_iter=30)) for _ in range(2))
print(np.array_equal(first.W, second.W))
"""


def test_the_first_l1_fit_in_a_process_is_the_same_as_the_next():
    # scipy's BLAS, loaded during the first L-BFGS-B run, escaped the one-thread limit: other sums
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_AND_SECOND_FIT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("block", [1000, 7, 1])
def test_training_metrics_in_blocks_are_the_metrics_of_all_rows(block, monkeypatch):
    from mnistlr.evaluation.metrics import log_loss
    from mnistlr.learn import fit_metrics

    images, labels = toy(n=120, n_classes=3)
    model = fit_model(images, labels, TrainOptions())
    X = images.reshape(len(images), -1)
    P = model.proba_from_scores(model.raw_scores(X))
    monkeypatch.setattr(fit_metrics, "METRICS_BLOCK", block)   # 120 rows in 1, 17 (of 7 or 8 rows) or 120 blocks
    accuracy, loss = fit_metrics.accuracy_and_log_loss(model, X, labels)
    assert accuracy == np.mean(model.classes[P.argmax(1)] == labels)
    assert loss == pytest.approx(log_loss(np.searchsorted(model.classes, labels), P), rel=1e-12)


FEATURES_BEFORE_THE_SOLVER = """
import sys
from mnistlr.data.registry import load_dataset
from mnistlr.learn import fit
from mnistlr.learn.options import TrainOptions
X, y = load_dataset("mnist-sample", "train")
for options in (TrainOptions(model="ridge", features="pca:5"), TrainOptions(features="pca:5")):
    fit._features(options, fit.prepare(X[:200], y[:200], options))
    print("mnistlr.learn.kernels.setup" in sys.modules)
"""


def test_features_for_an_iterative_solver_are_made_with_numba_imported():
    # the iterative solvers import Numba anyway: the features (deskew, the sparse rff sums) may take its
    # kernels; the closed form needs none, and its features import none
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FEATURES_BEFORE_THE_SOLVER], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
