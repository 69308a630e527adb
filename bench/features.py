"""Beyond raw pixels: feature pipelines in front of softmax, and scikit-learn's RBFSampler pipeline.

- in-process: raw-pixel softmax vs `--features deskew` (fit time ratio, test accuracy);
- `mnistlr train --features deskew,pca:50,rff:5000` as a whole process (wall, peak RSS), on
  MNIST and (without deskew, which suits digits, not clothes) on Fashion-MNIST;
- `rff:D:gamma` softmax vs ``make_pipeline(RBFSampler(n_components=D, gamma=gamma),
  LogisticRegression())`` at the same D and gamma (gamma: mnistlr's median heuristic), both
  given the same training images (scikit-learn x/255 float64, prepared outside its timing);
- `mnistlr predict` with the MNIST feature model on the 10,000 test images (process wall).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import procs

D = 5000
MNIST_PIPELINE = f"deskew,pca:50,rff:{D}"
FASHION_PIPELINE = f"pca:50,rff:{D}"


def log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _accuracy(model, data) -> float:
    return float((model.predict(data.X_test) == data.y_test).mean())


def _timed_fit(data, **options):
    from mnistlr.learn.fit import fit_model
    from mnistlr.learn.options import TrainOptions

    started = time.perf_counter()
    model = fit_model(data.X_train, data.y_train, TrainOptions(**options))
    return model, time.perf_counter() - started


def deskew_rows(data) -> dict:
    """Raw softmax and deskew softmax fitted in turn (twice each, best time kept)."""
    _timed_fit(data.__class__(data.name, data.X_train[:500], data.y_train[:500], data.X_test, data.y_test),
               features="deskew")   # warm-up: loads the kernels
    times = {"raw": [], "deskew": []}
    models = {}
    for _ in range(2):
        for key, options in (("raw", {}), ("deskew", {"features": "deskew"})):
            model, seconds = _timed_fit(data, **options)
            times[key].append(seconds)
            models[key] = model
    log(f"features: raw {min(times['raw']):.2f} s, deskew {min(times['deskew']):.2f} s")
    return {"raw_seconds": min(times["raw"]), "deskew_seconds": min(times["deskew"]),
            "raw_accuracy": _accuracy(models["raw"], data), "deskew_accuracy": _accuracy(models["deskew"], data)}


def train_process(files: dict[str, Path], pipeline: str, output: Path) -> dict:
    """`mnistlr train --features PIPELINE` in a child process: wall and peak RSS, then its test accuracy."""
    from mnistlr.io.idx import read_images, read_labels
    from mnistlr.learn.persistence import load_model

    log(f"features: mnistlr train --features {pipeline} on {files['train-images'].name}")
    cmd = [*procs.mnistlr_command(), "train", "--train-images", str(files["train-images"]),
           "--train-labels", str(files["train-labels"]), "--features", pipeline, "-q", "-o", str(output)]
    result = procs.run_checked(cmd)
    model = load_model(output)
    X_test, y_test = read_images(files["test-images"]), read_labels(files["test-labels"])
    accuracy = float((model.predict(X_test) == y_test).mean())
    log(f"  {result.seconds:.1f} s, {result.max_rss_mib:.0f} MiB, accuracy {accuracy:.4f}")
    return {"pipeline": pipeline, "seconds": result.seconds, "max_rss_mib": result.max_rss_mib,
            "accuracy": accuracy, "fit_seconds": model.meta["seconds"]}


def rbf_sampler_rows(data, n_components: int = D) -> dict:
    """mnistlr `rff:D:gamma` softmax vs scikit-learn's RBFSampler + LogisticRegression, same D and gamma."""
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    probe, _ = _timed_fit(data.__class__(data.name, data.X_train[:1000], data.y_train[:1000], data.X_test,
                                         data.y_test), features=f"rff:{n_components}")
    gamma = float(f"{probe.features.steps[0].gamma:.4g}")   # the median heuristic on 1,000 images
    model, mine = _timed_fit(data, features=f"rff:{n_components}:{gamma}")
    log(f"features: mnistlr rff:{n_components}:{gamma} {mine:.1f} s; scikit-learn's pipeline next")
    X64, X_test64 = data.scaled(data.X_train), data.scaled(data.X_test)
    peer = make_pipeline(RBFSampler(n_components=n_components, gamma=gamma, random_state=0), LogisticRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning at max_iter
        started = time.perf_counter()
        peer.fit(X64, data.y_train)
        theirs = time.perf_counter() - started
    peer_accuracy = float((peer.predict(X_test64) == data.y_test).mean())
    log(f"  scikit-learn {theirs:.1f} s")
    return {"D": n_components, "gamma": gamma, "mnistlr_seconds": mine, "sklearn_seconds": theirs,
            "mnistlr_accuracy": _accuracy(model, data), "sklearn_accuracy": peer_accuracy}


def predict_process(model_path: Path, files: dict[str, Path], work: Path) -> dict:
    """`mnistlr predict` of the 10,000 test images with a feature model (first run, then best of 2 warm)."""
    cmd = [*procs.mnistlr_command(), "predict", str(model_path), str(files["test-images"]), "-o",
           str(work / "features.csv")]
    runs = procs.best_of(cmd, 3)
    return {"first": runs[0].seconds, "warm": min(r.seconds for r in runs[1:])}


def section_features(loaded: list, work: Path, peers: bool = True) -> dict:
    """Every measurement of this section (a plain dict for render.py)."""
    (mnist, mnist_files), *rest = loaded
    out = {"dataset": mnist.name, "deskew": deskew_rows(mnist)}
    out["train"] = [train_process(mnist_files, MNIST_PIPELINE, work / "features.joblib")]
    out["predict"] = predict_process(work / "features.joblib", mnist_files, work)
    fashion = next(((d, f) for d, f in rest if d.name.startswith("Fashion")), None)
    if fashion is not None:
        out["train"].append(train_process(fashion[1], FASHION_PIPELINE, work / "fashion-features.joblib")
                            | {"dataset": fashion[0].name})
    out["train"][0]["dataset"] = mnist.name
    if peers:
        out["rbf"] = rbf_sampler_rows(mnist)
    return out


# ---------------------------------------------------------------------------- rendering

DESKEW_ACCURACY, DESKEW_RATIO = 0.950, 2.0
MNIST_ACCURACY, MNIST_SECONDS, MNIST_MEMORY_GB = 0.985, 60.0, 2.5
FASHION_ACCURACY, FASHION_SECONDS = 0.890, 120.0
RBF_RATIO = 10.0
PREDICT_RATE = 20_000


def rows(part: dict) -> list[tuple[str, str]]:
    d = part["deskew"]
    out = [(f"softmax on raw pixels ({part['dataset']}): fit / test accuracy",
            f"{d['raw_seconds']:.2f} s / {d['raw_accuracy']:.4f}"),
           ("softmax `--features deskew`: fit / test accuracy", f"{d['deskew_seconds']:.2f} s / {d['deskew_accuracy']:.4f}")]
    for t in part["train"]:
        out.append((f"`mnistlr train --features {t['pipeline']}` on {t['dataset']}: process wall / fit / peak RSS "
                    "/ test accuracy", f"{t['seconds']:.1f} s / {t['fit_seconds']:.1f} s / "
                    f"{t['max_rss_mib'] * 2**20 / 1e9:.2f} GB / {t['accuracy']:.4f}"))
    p = part["predict"]
    out.append((f"`mnistlr predict` 10k IDX → CSV with the {MNIST_PIPELINE} model, first / warm",
                f"{p['first']:.2f} s / {p['warm']:.2f} s ({10_000 / p['warm']:,.0f} images/s)"))
    r = part.get("rbf")
    if r:
        out.append((f"`rff:{r['D']}:{r['gamma']}` softmax vs make_pipeline(RBFSampler(n_components={r['D']}, "
                    f"gamma={r['gamma']}), LogisticRegression()): fit / test accuracy",
                    f"{r['mnistlr_seconds']:.1f} s / {r['mnistlr_accuracy']:.4f} vs "
                    f"{r['sklearn_seconds']:.1f} s / {r['sklearn_accuracy']:.4f}"))
    return out


def checks(part: dict) -> list:
    from report import Check

    d, out = part["deskew"], []
    ratio = d["deskew_seconds"] / d["raw_seconds"]
    out.append(Check("`--features deskew` softmax ≥ 0.950, fit ≤ 2× raw",
                     f"{d['deskew_accuracy']:.4f}, {ratio:.2f}×",
                     d["deskew_accuracy"] >= DESKEW_ACCURACY and ratio <= DESKEW_RATIO))
    for t in part["train"]:
        fashion = t["dataset"].startswith("Fashion")
        accuracy, seconds = (FASHION_ACCURACY, FASHION_SECONDS) if fashion else (MNIST_ACCURACY, MNIST_SECONDS)
        gb = t["max_rss_mib"] * 2**20 / 1e9
        ok = t["accuracy"] >= accuracy and t["seconds"] <= seconds and (fashion or gb <= MNIST_MEMORY_GB)
        memory = "" if fashion else f", ≤ {MNIST_MEMORY_GB} GB"
        out.append(Check(f"`--features {t['pipeline']}` on {t['dataset']} ≥ {accuracy}, ≤ {seconds:g} s{memory}",
                         f"{t['accuracy']:.4f}, {t['seconds']:.1f} s" + (f", {gb:.2f} GB" if not fashion else ""), ok))
    rate = 10_000 / part["predict"]["warm"]
    out.append(Check("`mnistlr predict` with a feature model ≥ 20,000 images/s (10k file, whole process)",
                     f"{rate:,.0f} images/s", rate >= PREDICT_RATE))
    r = part.get("rbf")
    if r:
        ratio = r["sklearn_seconds"] / r["mnistlr_seconds"]
        out.append(Check(f"rff:{r['D']} ≥ 10× RBFSampler + LogisticRegression, accuracy no lower",
                         f"{ratio:.1f}×, {r['mnistlr_accuracy']:.4f} vs {r['sklearn_accuracy']:.4f}",
                         ratio >= RBF_RATIO and r["mnistlr_accuracy"] >= r["sklearn_accuracy"]))
    return out
