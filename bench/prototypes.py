"""Measured prototypes of the fixes BENCHMARKS.md proposes, next to what mnistlr does today.

    python bench/prototypes.py            # MNIST head (../shared) and Fashion-MNIST when present

1. ridge: the Gram matrix of uint8 images, exact, from float32 GEMMs on blocks of 256 rows
   (every partial sum is an integer below 2²⁴), centred afterwards in float64 — versus
   `kernels.centered_cross_products` on the float32 copy x/255.
2. softmax: L-BFGS on the same objective with the intercept re-parametrised as
   b' = b + x̄W (an exact change of variables: same optimum, centred features, better
   conditioned) — versus `solvers.fit_lbfgs`, both stopped by the same tol rule.
3. predict: scores of uint8 rows from a Numba kernel, each row summed in a fixed order
   (the same scores for any batch size) — versus `LinearModel.predict`.

Nothing here is used by mnistlr. All three have since been taken into mnistlr (the exact uint8
Gram as `kernels.centered_cross_products` on X − 128 in 1,024-row blocks, the centred intercept in
`solvers.fit_lbfgs`, uint8 scoring as `kernels.scores_uint8`), so the "today" column now measures
the older float paths for ridge and softmax, but the new kernel for predict.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

HERE = Path(__file__).resolve().parent
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
GRAM_BLOCK = 256           # 256 · 255² < 2²⁴: float32 sums of this many products are exact


# ---------------------------------------------------------------------------- 1. ridge Gram


def gram_uint8(X8: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`kernels.centered_cross_products(X8/255, Y)` from uint8 pixels X8 (n, d) and one-hot Y (n, k):
    (XcᵀXc, XcᵀYc, x̄, ȳ), float64."""
    n_samples, n_features = X8.shape
    gram = np.zeros((n_features, n_features))
    cross = np.zeros((n_features, Y.shape[1]))
    Y = np.asarray(Y, np.float32)
    for start in range(0, n_samples, GRAM_BLOCK):
        B = X8[start:start + GRAM_BLOCK].astype(np.float32)
        # Σ_blocks BᵀB and BᵀY: exact integers in float32 per block, summed in float64
        gram += B.T @ B
        cross += B.T @ Y[start:start + GRAM_BLOCK]
    x_mean = X8.sum(axis=0, dtype=np.float64) / n_samples
    y_mean = Y.mean(axis=0, dtype=np.float64)
    # XcᵀXc = XᵀX − n x̄x̄ᵀ and XcᵀYc = XᵀY − n x̄ȳᵀ, scaled for x/255
    gram = (gram - n_samples * np.outer(x_mean, x_mean)) / 255.0 ** 2
    cross = (cross - n_samples * np.outer(x_mean, y_mean)) / 255.0
    return gram, cross, x_mean / 255.0, y_mean


# ---------------------------------------------------------------------------- 2. centred L-BFGS


def fit_softmax_centered(X, y, n_classes: int, l2: float, tol: float = 1e-4, max_iter: int = 100,
                         window: int = 5):
    """Softmax regression by L-BFGS-B in the variables (W, b' = b + x̄W); returns (W, b, iterations, evaluations).

    X (n, d) float32 preprocessed; the objective and stopping rule are those of `solvers.fit_lbfgs`.
    """
    from scipy.optimize import minimize

    from mnistlr.losses import objective

    n_features = X.shape[1]
    x_mean = X.mean(axis=0, dtype=np.float64)
    counts = {"evaluations": 0}
    values: list[float] = []

    def weights(v):
        W = v[: n_features * n_classes].reshape(n_features, n_classes)
        # b = b' − x̄W
        return W, v[n_features * n_classes:] - x_mean @ W

    def fun(v):
        counts["evaluations"] += 1
        obj = objective(X, y, *weights(v), "softmax", l2=l2)
        # chain rule: ∂f/∂W|_{b'} = ∇_W f − x̄ᵀ∇_b f; ∂f/∂b' = ∇_b f
        grad_W = obj.grad_W - np.outer(x_mean, obj.grad_b)
        return obj.value, np.concatenate([grad_W.ravel(), obj.grad_b])

    def stop(intermediate_result):
        values.append(intermediate_result.fun)
        if len(values) > window and values[-1 - window] - values[-1] <= window * tol * abs(values[-1]):
            raise StopIteration

    res = minimize(fun, np.zeros(n_features * n_classes + n_classes), jac=True, method="L-BFGS-B",
                   callback=stop, options={"maxiter": max_iter, "maxcor": 50, "gtol": 1e-10, "ftol": 1e-15})
    W, b = weights(res.x)
    return W, b, len(values), counts["evaluations"]


# ---------------------------------------------------------------------------- 3. uint8 scoring


@njit(cache=True, fastmath=FASTMATH)
def _score_row(x, WT, b, out):
    for c in range(WT.shape[0]):
        w = WT[c]
        acc = np.float32(0.0)
        for j in range(w.size):
            # s_c = Σ_j x_j·W_jc, vectorised over j: the order depends on j only, never on the batch
            acc += np.float32(x[j]) * w[j]
        out[c] = acc + b[c]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _scores_uint8(X, WT, b, S):
    for i in prange(X.shape[0]):
        _score_row(X[i], WT, b, S[i])


def scores_uint8(X8: np.ndarray, W_raw: np.ndarray, b_raw: np.ndarray) -> np.ndarray:
    """Scores (n, k) float32 of uint8 rows X8 (n, d) for weights acting on raw pixels (LinearModel.effective_weights)."""
    WT = np.ascontiguousarray(W_raw.T, dtype=np.float32)
    S = np.empty((len(X8), WT.shape[0]), np.float32)
    _scores_uint8(np.ascontiguousarray(X8), WT, np.asarray(b_raw, np.float32), S)
    return S


# ---------------------------------------------------------------------------- measuring


def best_time(fn, *args, repeat: int = 3):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def compare_gram(name: str, X8, y) -> None:
    from mnistlr.kernels import centered_cross_products

    Y = np.eye(int(y.max()) + 1, dtype=np.float32)[y]
    truth = centered_cross_products(X8.astype(np.float64) / 255.0, Y)
    now, ref = best_time(lambda: centered_cross_products(X8.astype(np.float32) * np.float32(1 / 255), Y))
    new, got = best_time(gram_uint8, X8, Y)

    def error(parts):
        # largest error relative to the largest entry, over the Gram matrix and the cross products
        return max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(parts[:2], truth[:2], strict=True))

    print(f"| {name} | ridge Gram + cross products (x/255 float32 copy + centered_cross_products → exact "
          f"uint8 blocks) | {now:.3f} s, error {error(ref):.0e} | {new:.3f} s, error {error(got):.0e} "
          f"| error vs float64 x/255 |")


def compare_softmax(name: str, X8, y, X8_test, y_test) -> None:
    from sklearn.metrics import log_loss
    from threadpoolctl import threadpool_limits

    from mnistlr.kernels import softmax_rows
    from mnistlr.solvers import fit_lbfgs

    X = X8.astype(np.float32) * np.float32(1 / 255)
    X_test = X8_test.astype(np.float32) * np.float32(1 / 255)

    def test_scores(W, b):
        P = softmax_rows(X_test @ np.asarray(W, np.float32) + np.asarray(b, np.float32)).astype(np.float64)
        P /= P.sum(axis=1, keepdims=True)
        return f"acc {np.mean(P.argmax(1) == y_test):.4f}, log-loss {log_loss(y_test, P):.4f}"

    for tol in (1e-4, 5e-4):
        now, fit = best_time(lambda t=tol: fit_lbfgs(X, y, "softmax", 10, l2=1e-4, tol=t, max_iter=100), repeat=1)
        with threadpool_limits(limits=1, user_api="blas"):   # as fit_lbfgs does
            new, (W, b, n_iter, n_eval) = best_time(lambda t=tol: fit_softmax_centered(X, y, 10, 1e-4, t), repeat=1)
        print(f"| {name} | softmax L-BFGS, l2 1e-4, tol {tol:g} (plain → centred intercept) | {now:.2f} s, "
              f"{fit.n_iter} it, {test_scores(fit.W, fit.b)} | {new:.2f} s, {n_iter} it / {n_eval} evaluations, "
              f"{test_scores(W, b)} | same objective |")


def compare_predict(name: str, X8, y) -> None:
    from mnistlr.models import LinearModel, Preprocessor

    means = np.stack([X8[y == c].mean(axis=0) for c in range(10)]) / 255.0
    # a decent linear classifier from class means: W = centred means, b = −½‖μ_c‖²
    model = LinearModel("softmax", np.arange(10), (28, 28), Preprocessor.fit("scale", X8[:100]),
                        (means - means.mean(0)).T.astype(np.float32), (-0.5 * (means ** 2).sum(1)).astype(np.float32))
    X = np.tile(X8, (-(-1_000_000 // len(X8)), 1))[:1_000_000]
    W_raw, b_raw = model.effective_weights()
    scores_uint8(X[:10], W_raw, b_raw)
    now, labels = best_time(model.predict, X, repeat=2)
    new, S = best_time(scores_uint8, X, W_raw, b_raw, repeat=2)
    same = np.mean(model.classes[S.argmax(1)] == labels)
    one_by_one = np.stack([scores_uint8(X[i:i + 1], W_raw, b_raw)[0] for i in range(256)])
    print(f"| {name} | predict 1,000,000 uint8 images (LinearModel.predict → uint8 kernel) "
          f"| {len(X) / now:,.0f} images/s | {len(X) / new:,.0f} images/s | labels agree {same:.4%}; "
          f"row-by-row = block scores: {np.array_equal(one_by_one, S[:256])} |")


def main() -> int:
    sys.path.insert(0, str(HERE))
    from run import FASHION_DIR, MNIST_DIR, idx_files

    from mnistlr.idx import read_images, read_labels

    print("| data | what | today | prototype | check |\n| :-- | :-- | --: | --: | :-- |")
    for name, folder, train in (("MNIST 22,699", MNIST_DIR, "train-head"), ("Fashion 60,000", FASHION_DIR, "train")):
        files = idx_files(folder, train)
        if not all(p.is_file() for p in files.values()):
            continue
        X8, y = read_images(files["train-images"]), read_labels(files["train-labels"]).astype(np.int64)
        X8_test, y_test = read_images(files["test-images"]), read_labels(files["test-labels"])
        X8, X8_test = X8.reshape(len(X8), -1), X8_test.reshape(len(X8_test), -1)
        compare_gram(name, X8, y)
        compare_softmax(name, X8, y, X8_test, y_test)
        if name.startswith("MNIST"):
            compare_predict(name, X8_test, y_test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
