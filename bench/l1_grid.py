"""L1 at a few fixed penalties: mnistlr's default solver against saga, judged by one training objective.

    python bench/l1_grid.py [L1,L1,...] [--saga-max-iter N]     # default 3e-5,1e-4,3e-4; 100 epochs

Both fits at the same penalty on the 22,699 real training images (mnistlr: `--l1 L1 --l2 0`;
saga: C = 1/(L1·n), tol 1e-4), scored on the 10,000 test images; f from `fits.training_objective`.
One JSON line per penalty on stdout (accuracy, f, share of exact zeros, iterations, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fits  # noqa: E402
import numpy as np  # noqa: E402
from run import MNIST_DIR, idx_files, load  # noqa: E402


def measured(contender: fits.Contender, inputs, data: fits.Dataset, l1: float) -> dict:
    """One fit of *contender*: test accuracy, training objective f, zeros, iterations, CPU seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # saga's ConvergenceWarning at its cap
        started = time.process_time()
        model = contender.fit(inputs)
        cpu = time.process_time() - started
    X_test = data.X_test if contender.is_mnistlr else data.scaled(data.X_test)
    W = model.W if contender.is_mnistlr else model.coef_
    n_iter = model.meta.get("n_iter") if contender.is_mnistlr else int(np.max(model.n_iter_))
    return {"accuracy": float(np.mean(model.predict(X_test) == data.y_test)),
            "f": round(fits.training_objective(contender, model, inputs, l1=l1), 6),
            "zeros": round(float(np.mean(np.asarray(W) == 0)), 4), "n_iter": n_iter, "cpu_seconds": round(cpu, 2)}


def contenders(l1: float, saga_max_iter: int) -> list[fits.Contender]:
    from sklearn.linear_model import LogisticRegression

    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    return [fits.Contender(f"mnistlr --l1 {l1:g} --l2 0", "l1", True,
                           lambda d: fit_model(d.X_train, d.y_train, TrainOptions(l1=l1, l2=0.0))),
            # sklearn: C·Σ CE + ‖W‖₁ ≡ mean CE + l1‖W‖₁ with C = 1/(l1·n)
            fits.Contender("saga", "l1", False,
                           lambda d: LogisticRegression(penalty="l1", solver="saga", C=1.0 / (l1 * len(d.y_train)),
                                                        max_iter=saga_max_iter, tol=fits.PEER_TOL,
                                                        random_state=0).fit(d.X64, d.y_train))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("penalties", nargs="?", default="3e-5,1e-4,3e-4")
    p.add_argument("--saga-max-iter", type=int, default=fits.SAGA_MAX_ITER)
    args = p.parse_args(argv)
    data = load("MNIST 22,699", idx_files(MNIST_DIR, "train-head"))
    inputs = fits._Inputs(data)
    fits.warm_up(data, contenders(1e-4, 2))
    for l1 in (float(v) for v in args.penalties.split(",")):
        row = {c.name: measured(c, inputs, data, l1) for c in contenders(l1, args.saga_max_iter)}
        print(json.dumps({"l1": l1, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
