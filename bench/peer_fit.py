"""One fast peer's softmax fit, run by the peers' own venv (`make bench-peers`), not by mnistlr's.

    bench/.venv-peers/bin/python bench/peer_fit.py PEER DATA_DIR L2 TOL MAX_ITER OUT.json

PEER: sklearnex | jax | torch. DATA_DIR holds X_train.npy (n, 784) uint8, y_train.npy, X_test.npy,
y_test.npy. Every peer gets x/255 as float32, made outside its timing, and minimises mnistlr's
objective: mean cross-entropy + (l2/2)‖W‖², intercept not penalised (scikit-learn's C = 1/(l2·n)).
JAX and PyTorch stop by mnistlr's rule (the objective fell by less than tol, relative, per
iteration over the last 5 iterations, at most MAX_ITER iterations), with 50 L-BFGS pairs like
mnistlr; scikit-learn-intelex keeps its own rule (tol 1e-4, max_iter MAX_ITER). One untimed
warm-up fit on the full data comes first (JIT compilation, thread pools), then one timed fit.
The result (seconds, iterations, test accuracy, test log-loss, training objective) goes to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from fits import penalised_cross_entropy

WINDOW = 5
MEMORY = 50


def converged(values: list[float], tol: float) -> bool:
    # (f_{k−m} − f_k) / m ≤ tol·|f_k|, m = 5
    return len(values) > WINDOW and values[-1 - WINDOW] - values[-1] <= WINDOW * tol * abs(values[-1])


def fit_sklearnex(X, y, l2, tol, max_iter):
    from sklearnex.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0 / (l2 * len(X)), max_iter=max_iter).fit(X, y)
    return (lambda Z: model.predict_proba(Z)), int(np.max(model.n_iter_)), model.coef_


def fit_jax(X, y, l2, tol, max_iter):
    import jax
    import jax.numpy as jnp
    import optax

    n_classes = int(y.max()) + 1
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(params, X, y):
        W, b = params
        # mean cross-entropy + (l2/2)‖W‖²
        return optax.softmax_cross_entropy_with_integer_labels(X @ W + b, y).mean() + 0.5 * l2 * jnp.sum(W * W)

    opt = optax.lbfgs(memory_size=MEMORY)

    @jax.jit
    def step(params, state, X, y):
        # the data are arguments, not constants of the compiled function
        def value_fn(p):
            return loss(p, X, y)

        value, grad = optax.value_and_grad_from_state(value_fn)(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=value_fn)
        return optax.apply_updates(params, updates), state, value

    params = (jnp.zeros((X.shape[1], n_classes), jnp.float32), jnp.zeros(n_classes, jnp.float32))
    state = opt.init(params)
    values: list[float] = []
    for _ in range(max_iter):
        params, state, value = step(params, state, Xj, yj)
        values.append(float(value))
        if converged(values, tol):
            break
    W, b = (np.asarray(p) for p in params)
    return (lambda Z: _softmax(Z @ W + b)), len(values), W


def fit_torch(X, y, l2, tol, max_iter):
    import torch

    torch.set_num_threads(2)
    n_classes = int(y.max()) + 1
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    W = torch.zeros(X.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    # torch's own stopping rule, |f_k − f_{k−1}| < tolerance_change: 0.3·tol is mnistlr's tol on a loss
    # of ~0.3 (its rule averages over 5 iterations); one step() runs the whole fit
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter + 20, history_size=MEMORY,
                            tolerance_grad=1e-10, tolerance_change=0.3 * tol, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        # mean cross-entropy + (l2/2)‖W‖²
        value = torch.nn.functional.cross_entropy(Xt @ W + b, yt) + 0.5 * l2 * (W * W).sum()
        value.backward()
        return value

    opt.step(closure)
    n_iter = int(opt.state[W]["n_iter"])
    Wn, bn = W.detach().numpy(), b.detach().numpy()
    return (lambda Z: _softmax(Z @ Wn + bn)), n_iter, Wn


def _softmax(S):
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


FITS = {"sklearnex": fit_sklearnex, "jax": fit_jax, "torch": fit_torch}


def main(argv: list[str]) -> int:
    peer, folder, l2, tol, max_iter, out = argv[0], Path(argv[1]), float(argv[2]), float(argv[3]), int(argv[4]), argv[5]
    arrays = {k: np.load(folder / f"{k}.npy") for k in ("X_train", "y_train", "X_test", "y_test")}
    X = arrays["X_train"].astype(np.float32) / np.float32(255.0)
    X_test = arrays["X_test"].astype(np.float32) / np.float32(255.0)
    y, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    fit = FITS[peer]
    fit(X, y, l2, tol, 2)                     # warm-up: compilation, thread pools
    started, cpu_started = time.perf_counter(), time.process_time()
    proba, n_iter, W = fit(X, y, l2, tol, max_iter)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    P = np.asarray(proba(X_test), dtype=np.float64)
    P /= P.sum(axis=1, keepdims=True)
    accuracy = float(np.mean(P.argmax(axis=1) == y_test))
    # mean −log p_{i, y_i}, probabilities clipped as scikit-learn's log_loss does
    log_loss = float(-np.mean(np.log(np.clip(P[np.arange(len(y_test)), y_test], 1e-15, 1.0))))
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "n_iter": n_iter,
                                     "accuracy": accuracy, "log_loss": log_loss,
                                     "objective": penalised_cross_entropy(proba(X), y, W, l2=l2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
