"""`make bench`: mnistlr against scikit-learn on real digits, plus predict, CLI, sweep and memory figures.

    python bench/run.py                 # everything; Markdown on stdout, progress on stderr
    python bench/run.py --write         # ... and refresh the generated part of BENCHMARKS.md
    python bench/run.py --quick         # CI-sized smoke run on the bundled mnist-sample
    python bench/run.py --no-fashion --no-sweep --repeat 2

The results go to stdout as Markdown; `--write` replaces only the block between the
`<!-- bench:start -->` / `<!-- bench:end -->` markers in BENCHMARKS.md, so the prose
around it (analysis, profiles) stays.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import peers  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import scale  # noqa: E402
from fits import (  # noqa: E402
    REPEAT_UNDER,
    Dataset,
    contest,
    converged_contender,
    gd_contenders,
    mnistlr_contenders,
    penalty_contenders,
    sklearn_contenders,
)

REPO = HERE.parent
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
BENCHMARKS = REPO / "BENCHMARKS.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: bundled mnist-sample, 100k predict rows, one round")
    p.add_argument("--no-fashion", action="store_true", help="skip Fashion-MNIST (60,000/10,000)")
    p.add_argument("--no-peers", action="store_true", help="fit mnistlr only (no scikit-learn)")
    p.add_argument("--no-predict", action="store_true", help="skip in-process predict throughput")
    p.add_argument("--no-kernel", action="store_true", help="skip the loss+gradient pass vs GEMM peak figures")
    p.add_argument("--no-cli", action="store_true", help="skip the CLI process timings")
    p.add_argument("--no-sweep", action="store_true", help="skip the 5-fold × 8-trial sweep")
    p.add_argument("--no-penalties", action="store_true",
                   help="skip the L1 (vs saga) and --l2 auto (vs LogisticRegressionCV) rows")
    p.add_argument("--no-memory", action="store_true", help="skip peak memory of training on 60,000 images")
    p.add_argument("--no-csv", action="store_true", help="skip reading a 60,000-row MNIST CSV")
    p.add_argument("--no-fast-peers", action="store_true",
                   help="skip scikit-learn-intelex, JAX and PyTorch (run from bench/.venv-peers: make bench-peers)")
    p.add_argument("--no-sklearn", action="store_true",
                   help="skip scikit-learn's own classifiers (keep mnistlr and the fast peers)")
    p.add_argument("--no-shifted", action="store_true",
                   help="skip the 300,000- and 1,200,000-image sets (Fashion shifted by 1 and 2 pixels)")
    p.add_argument("--no-features", action="store_true",
                   help="skip the feature pipelines (deskew, rff vs scikit-learn's RBFSampler; several minutes)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of fits; best time kept (default 3)")
    p.add_argument("--repeat-under", type=float, default=REPEAT_UNDER,
                   help=f"repeat only fits whose first run took less than this many seconds (default {REPEAT_UNDER:g})")
    p.add_argument("--predict-rows", type=int, default=1_000_000, help="rows for in-process predict")
    p.add_argument("--mnist-dir", type=Path, default=MNIST_DIR, help="real MNIST files (train-head-*, t10k-*)")
    p.add_argument("--fashion-dir", type=Path, default=FASHION_DIR, help="Fashion-MNIST IDX files")
    p.add_argument("--write", nargs="?", const=BENCHMARKS, type=Path, default=None, metavar="PATH",
                   help="also write the results into PATH (default BENCHMARKS.md) between the markers")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat, args.predict_rows, args.no_fashion = 1, min(args.predict_rows, 100_000), True
        args.no_features = True
    if args.no_fashion:
        args.no_shifted = True
    return args


# ---------------------------------------------------------------------------- data


def idx_files(folder: Path, train: str, test: str = "t10k") -> dict[str, Path]:
    return {"train-images": folder / f"{train}-images-idx3-ubyte.gz",
            "train-labels": folder / f"{train}-labels-idx1-ubyte.gz",
            "test-images": folder / f"{test}-images-idx3-ubyte.gz",
            "test-labels": folder / f"{test}-labels-idx1-ubyte.gz"}


def load(name: str, files: dict[str, Path]) -> Dataset:
    from mnistlr.io.idx import read_images, read_labels

    started = time.perf_counter()
    data = Dataset(name, read_images(files["train-images"]), read_labels(files["train-labels"]),
                   read_images(files["test-images"]), read_labels(files["test-labels"]))
    log(f"{name}: {len(data.X_train):,} train / {len(data.X_test):,} test images "
        f"read in {time.perf_counter() - started:.2f} s")
    return data


def datasets(args: argparse.Namespace) -> list[tuple[Dataset, dict[str, Path]]]:
    """(data, its IDX files) for MNIST (head, or the bundled sample with --quick) and Fashion-MNIST."""
    import mnistlr.data.sample

    out = []
    if args.quick or not (args.mnist_dir / "train-head-images-idx3-ubyte.gz").is_file():
        if not args.quick:
            log(f"real MNIST files not found in {args.mnist_dir}; using the bundled mnist-sample")
        folder = Path(mnistlr.data.sample.__file__).parent
        files = idx_files(folder, "mnist-sample-train", "mnist-sample-t10k")
        out.append((load("mnist-sample", files), files))
    else:
        files = idx_files(args.mnist_dir, "train-head")
        out.append((load("MNIST 22,699", files), files))
    fashion = idx_files(args.fashion_dir, "train")
    if not args.no_fashion:
        if all(p.is_file() for p in fashion.values()):
            out.append((load("Fashion 60,000", fashion), fashion))
        else:
            log(f"Fashion-MNIST not found in {args.fashion_dir}; skipped (apt-get install dataset-fashion-mnist)")
    return out


# ---------------------------------------------------------------------------- sections


def fast_peers(args) -> tuple[list, dict]:
    """The fast peers as contenders (same penalty, tol and max_iter as mnistlr's defaults) with mnistlr run to
    convergence beside them, and which ran."""
    from mnistlr.learn.options import TrainOptions, resolve_l2

    if args.no_peers or args.no_fast_peers:
        return [], {"ran": [], "absent": [], "skipped": True}
    options = TrainOptions()
    contenders, ran, absent = peers.contenders(resolve_l2(options, 1), options.tol, options.max_iter)
    log(f"fast peers: {', '.join(ran) or 'none'} ran; absent: {', '.join(absent) or 'none'}")
    # beside them, what the objective's minimiser scores (their log-loss clause follows where each stops)
    contenders += [converged_contender()] if contenders else []
    return contenders, {"ran": ran, "absent": absent, "skipped": False}


def section_fits(args, loaded) -> tuple[list[report.FitResult], dict, dict]:
    contenders = mnistlr_contenders() + ([] if args.no_peers or args.no_sklearn else sklearn_contenders())
    # the penalty rows on the first dataset only (MNIST): saga and LogisticRegressionCV take minutes there
    penalties = [] if args.no_penalties else penalty_contenders(peers=not args.no_peers)
    penalties += gd_contenders()     # gd with its defaults, on the first dataset too (~6 s in 3 rounds)
    fast, peer_info = fast_peers(args)
    results, models = [], {}
    for i, (data, _) in enumerate(loaded):
        log(f"fitting on {data.name} ({args.repeat} round(s), interleaved)")
        found, fitted = contest(data, contenders + (penalties if i == 0 else []) + fast, args.repeat,
                                args.repeat_under, log)
        results += found
        models[data.name] = fitted
    fashion = next((d for d, _ in loaded if d.name.startswith("Fashion")), None)
    if fashion is not None and not args.no_shifted:
        softmax = mnistlr_contenders(("softmax",))
        for n_copies, rivals, rounds in ((5, fast, min(args.repeat, 2)), (20, [], 1)):
            data = scale.shifted(fashion, n_copies)
            if n_copies == 20:
                peer_info["big"] = data     # its fit: the memory section's child `train`
                break
            log(f"fitting on {data.name} ({rounds} round(s))")
            found, _ = contest(data, softmax + rivals, rounds, args.repeat_under, log)
            results += found
    peers.ARRAYS.cleanup()
    return results, models, peer_info


def section_predict(model, X_test: np.ndarray, n_rows: int) -> list[tuple[str, float]]:
    """Images/s of LinearModel.predict (and of the CLI's chunked scoring) on n_rows uint8 images in memory."""
    X = np.tile(X_test, (-(-n_rows // len(X_test)), 1, 1))[:n_rows]
    log(f"predict: {len(X):,} images of {X.shape[1]}×{X.shape[2]} uint8 ({X.nbytes / 2**20:.0f} MiB)")
    paths = [("LinearModel.predict", model.predict)]
    try:
        from mnistlr.api.predict import scores
    except ImportError:   # api/predict.py is still changing; its chunked path is optional here
        scores = None
    if scores is not None:
        paths.append(("api.predict.scores (chunked) + argmax",
                      lambda A: model.classes[np.argmax(scores(model, A), axis=1)]))
    figures = []
    for name, fn in paths:
        fn(X[:1000])
        best = min(_timed(fn, X) for _ in range(2))
        figures.append((name, len(X) / best))
        log(f"  {name}: {len(X) / best:,.0f} images/s")
    return figures


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def section_kernel(data: Dataset) -> list[tuple[str, str]]:
    """One fused softmax loss+gradient pass over the training images vs this machine's float32 GEMM rate."""
    try:
        from mnistlr.learn.kernels.fused import softmax_cross_entropy
    except ImportError:
        return []
    # the raw uint8 pixels, as training reads them (1/255 folded into W)
    X = np.ascontiguousarray(data.X_train.reshape(len(data.X_train), -1))
    y = np.searchsorted(np.unique(data.y_train), data.y_train)
    n_samples, n_features = X.shape
    W = np.random.default_rng(0).normal(scale=0.01 / 255, size=(n_features, 10))
    b = np.zeros(10)
    softmax_cross_entropy(X, y, W, b)
    best = min(_timed(softmax_cross_entropy, X, y, W, b) for _ in range(10))
    # forward x·W and backward xᵀr: 2 multiply-adds per pixel and class
    gflops = 4 * n_samples * n_features * 10 / best / 1e9
    A = np.random.default_rng(1).random((2048, 2048), dtype=np.float32)
    A @ A
    peak = 2 * 2048 ** 3 / min(_timed(np.matmul, A, A) for _ in range(3)) / 1e9
    log(f"kernel: {best * 1e3:.1f} ms per pass ({gflops:.0f} GFLOP/s); float32 GEMM {peak:.0f} GFLOP/s")
    return [(f"fused softmax loss+gradient pass, {n_samples:,} uint8 rows (best of 10)",
             f"{best * 1e3:.1f} ms = {gflops:.0f} GFLOP/s"),
            ("float32 GEMM 2048³ on this machine (NumPy's BLAS)", f"{peak:.0f} GFLOP/s")]


def section_cli(model_path: Path, files: dict[str, Path], work: Path) -> dict[str, object]:
    """Process wall times of `mnistlr --help`, `predict` (cold, warm), `evaluate`, and a second `train`'s compilations."""
    mnistlr = procs.mnistlr_command()
    out: dict[str, object] = {}
    log("CLI: mnistlr --help")
    helps = procs.best_of([*mnistlr, "--help"], 5)   # the first renders it, the others replay it
    out["help"] = min(r.seconds for r in helps)
    rendered = procs.best_of([*mnistlr, "--help"], 3, procs.child_env(MNISTLR_HELP_CACHE=""))
    out["help_rendered"] = min(r.seconds for r in rendered)
    heavy = procs.help_imports() & {"numpy", "numba", "scipy", "sklearn", "matplotlib", "llvmlite"}
    out["help_imports"] = sorted(heavy)
    log("CLI: mnistlr predict (first run, then warm runs)")
    predict_cmd = [*mnistlr, "predict", str(model_path), str(files["test-images"]), "-o", str(work / "x.csv")]
    runs = procs.best_of(predict_cmd, 3)
    out["predict_first"], out["predict_warm"] = runs[0].seconds, min(r.seconds for r in runs[1:])
    log("CLI: mnistlr evaluate")
    evaluate_cmd = [*mnistlr, "evaluate", str(model_path), "--images", str(files["test-images"]),
                    "--labels", str(files["test-labels"])]
    out["evaluate_warm"] = min(r.seconds for r in procs.best_of(evaluate_cmd, 2)[1:] or [None])
    log("CLI: mnistlr train twice, counting Numba compilations")
    train_args = ["train", "--train-images", str(files["train-images"]), "--train-labels",
                  str(files["train-labels"]), "-q", "-o", str(work / "again.joblib")]
    procs.count_compiles(train_args, work)
    compiled, result = procs.count_compiles(train_args, work)
    out["second_train_compiles"], out["second_train_seconds"] = compiled, result.seconds
    out["numba_cache"] = procs.numba_cache_dirs()
    return out


def section_evaluate_api(model_path: Path, files: dict[str, Path]) -> float:
    from mnistlr.api.evaluate import evaluate

    times = []
    for _ in range(2):
        started = time.perf_counter()
        evaluate(model_path, images=files["test-images"], labels=files["test-labels"])
        times.append(time.perf_counter() - started)
    return min(times)


def section_sweep(files: dict[str, Path]) -> dict[str, object]:
    """A 5-fold × 8-trial random search over l2 (softmax, defaults otherwise) through api.sweep."""
    from mnistlr.api.sweep import sweep
    from mnistlr.learn.options import TrainOptions

    log("sweep: 8 trials × 5 folds")
    started = time.perf_counter()
    result = sweep(TrainOptions(), params=["l2=log:1e-6:1e-2"], n_iter=8, cv=5,
                   train_images=files["train-images"], train_labels=files["train-labels"])
    return {"seconds": time.perf_counter() - started, "n_train": result["n_train"], "n_jobs": result["n_jobs"],
            "best": result["best"]}


def section_memory(files: dict[str, Path], work: Path) -> dict[str, float]:
    """Peak RSS and wall time of a child `mnistlr train` (softmax, defaults) on *files*."""
    log(f"memory: mnistlr train on {files['train-images'].name}")
    cmd = [*procs.mnistlr_command(), "train", "--train-images", str(files["train-images"]),
           "--train-labels", str(files["train-labels"]), "-q", "-o", str(work / "mem.joblib")]
    result = procs.run_checked(cmd)
    return {"max_rss_mib": result.max_rss_mib, "seconds": result.seconds}


def write_mnist_csv(files: dict[str, Path], path: Path, n_rows: int) -> None:
    """A headerless mnist_train.csv-style file (label, 784 pixels) of *n_rows* real images (repeated)."""
    from mnistlr.io.idx import read_images, read_labels

    X, y = read_images(files["train-images"]), read_labels(files["train-labels"])
    with open(path, "w") as handle:
        for start in range(0, n_rows, 5000):
            rows = np.arange(start, min(start + 5000, n_rows)) % len(X)
            np.savetxt(handle, np.column_stack([y[rows], X[rows].reshape(len(rows), -1)]), fmt="%d",
                       delimiter=",")


def section_csv(files: dict[str, Path], work: Path, n_rows: int) -> dict[str, dict]:
    """Reading an MNIST CSV of *n_rows* rows in a fresh process: mnistlr (pandas' C parser),
    pyarrow.csv as a peer, and mnistlr again through its content-keyed cache."""
    path, cache = work / "mnist_train.csv", work / "csv-cache"
    log(f"CSV: writing {n_rows:,} rows")
    write_mnist_csv(files, path, n_rows)
    script = str(HERE / "csvread.py")
    out: dict[str, dict] = {"file": {"bytes": path.stat().st_size, "rows": n_rows}}
    for how in ("mnistlr", "pyarrow", "fill-cache", "mnistlr-cached"):
        log(f"CSV: {how}")
        record = work / f"csv-{how}.json"
        mode = "mnistlr-cached" if how == "fill-cache" else how
        procs.run_checked([sys.executable, script, mode, str(path), str(record), str(cache)])
        out[how] = json.loads(record.read_text())
    return out


# ---------------------------------------------------------------------------- assembling


def run(args: argparse.Namespace) -> str:
    from mnistlr.learn.persistence import save_model

    machine = report.machine_info()
    procs.compile_package()
    loaded = datasets(args)
    results, models, peer_info = section_fits(args, loaded)
    big_data = peer_info.pop("big", None)
    first, files = loaded[0]
    softmax = models[first.name]["mnistlr softmax"]
    parts = {"machine": machine, "results": results, "first": first.name, "peers": peer_info}
    with tempfile.TemporaryDirectory(prefix="mnistlr-bench-") as tmp:
        work = Path(tmp)
        model_path = work / "model.joblib"
        save_model(softmax, model_path)
        if not args.no_kernel:
            parts["kernel"] = section_kernel(first)
        if not args.no_predict:
            parts["predict"] = section_predict(softmax, first.X_test, args.predict_rows)
        if not args.no_cli:
            parts["cli"] = section_cli(model_path, files, work)
            parts["evaluate_api"] = section_evaluate_api(model_path, files)
        if not args.no_sweep:
            parts["sweep"] = section_sweep(files)
        if not args.no_csv:
            parts["csv"] = section_csv(files, work, 5_000 if args.quick else 60_000)
        if not args.no_memory:
            big = next(((d, f) for d, f in loaded if d.name.startswith("Fashion")), loaded[0])
            parts["memory"] = section_memory(big[1], work) | {"n": len(big[0].X_train), "dataset": big[0].name}
            if big_data is not None:
                parts["memory_big"] = scale.memory_at_scale(big_data, work, log)
        if not args.no_cli:
            parts["train_overhead"] = [scale.train_overhead(d.name, f, work, log) for d, f in loaded]
        if not args.no_features:
            from features import section_features

            parts["features"] = section_features(loaded, work, peers=not args.no_peers)
    return render(parts, args)


def render(parts: dict, args: argparse.Namespace) -> str:
    """The Markdown block: machine, fit table, other figures, target checks."""
    from render import render_document

    return render_document(parts, quick=args.quick)


def splice(document: str, block: str) -> str:
    """*document* with the text between START and END replaced by *block* (appended when absent)."""
    body = f"{START}\n{block.rstrip()}\n{END}"
    if START in document and END in document:
        head, _, rest = document.partition(START)
        _, _, tail = rest.partition(END)
        return head + body + tail
    return document.rstrip() + ("\n\n" if document.strip() else "") + body + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    block = run(args)
    print(block)
    if args.write is not None:
        from mnistlr.io.atomic import write_text_atomic

        old = args.write.read_text() if args.write.exists() else ""
        write_text_atomic(args.write, splice(old, block))
        log(f"wrote {args.write}")
    log(f"benchmark finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
