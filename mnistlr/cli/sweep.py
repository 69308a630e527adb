"""`mnistlr sweep`: random or grid search with stratified K-fold (or nested) cross-validation."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mnistlr.cli import options as o
from mnistlr.cli.base import (
    DataDirOpt,
    DatasetOpt,
    JsonOpt,
    QuietOpt,
    SeedOpt,
    choices,
    command,
    echo,
    print_note,
    report_stream,
)
from mnistlr.cli.tables import format_param, format_value
from mnistlr.learn.options import TrainOptions
from mnistlr.tuning.runner import BACKENDS

_S = "Search"


Metric = choices("Metric", ("accuracy", "log_loss", "f1_macro", "roc_auc"))
Backend = choices("Backend", BACKENDS)


ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="A searched training option, repeatable: NAME=log:LOW:HIGH, NAME=uniform:LOW:HIGH, "
    "NAME=int:LOW:HIGH, NAME=logint:LOW:HIGH, NAME=LOW:HIGH (log-uniform for l2, l1, C, lr, tol) or "
    "NAME=V1,V2,... (only lists: a grid search).", rich_help_panel=_S)]
NIterOpt = Annotated[int, typer.Option("--n-iter", min=1, help="Random draws (ignored by a grid search).",
                                       rich_help_panel=_S)]
CvOpt = Annotated[int, typer.Option("--cv", min=2, help="Stratified folds per candidate.", rich_help_panel=_S)]
NestedOpt = Annotated[int | None, typer.Option(
    "--nested", min=2, help="Nested CV with this many outer folds (an inner --cv search in each).",
    rich_help_panel=_S)]
MetricOpt = Annotated[Metric, typer.Option("--metric", help="Score to rank by (log_loss: lower is better).",
                                           rich_help_panel=_S)]
JobsOpt = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, help="Parallel fits (default: all cores; with dask: all worker threads).",
    rich_help_panel=_S)]
BudgetOpt = Annotated[float | None, typer.Option(
    "--budget", help="Stop launching trials after this many seconds; report what finished.", rich_help_panel=_S)]
RefitOpt = Annotated[bool, typer.Option(
    "--refit", help="Train the best parameters on the whole training split and save to -o.", rich_help_panel=_S, metavar="")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Where --refit writes the model (implies --refit).", rich_help_panel=_S)]
ResultsOpt = Annotated[Path | None, typer.Option(
    "--results", help="Write every trial to this file: CSV, or JSON when it ends in .json.", rich_help_panel=_S)]
BackendOpt = Annotated[Backend, typer.Option(
    "--backend", help="Where trials run: local processes, or a Dask cluster (needs the 'cluster' extra).",
    rich_help_panel=_S)]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", envvar="DASK_SCHEDULER_ADDRESS", show_envvar=True,
    help="Dask scheduler address for --backend dask, e.g. tcp://10.0.0.5:8786.", rich_help_panel=_S)]


@command(
    "sweep",
    ("random search over 6 log-uniform L2 penalties, 3-fold cross-validation",
     "mnistlr sweep -d mnist-sample --param l2=log:1e-6:1e-1 --n-iter 6 --cv 3"),
    ("nested 3×3 cross-validation of a grid over scikit-learn's C",
     "mnistlr sweep -d mnist-sample --param C=0.01,0.1,1 --nested 3 --cv 3"),
    ("SGD learning rates for at most 2 minutes; refit the best on all the data and save it",
     "mnistlr sweep -d mnist-sample --solver sgd --param lr=log:0.05:1 --budget 120 -o best.joblib"),
)
@o.training_options
def sweep_command(
    param: ParamOpt = None,
    n_iter: NIterOpt = 10,
    cv: CvOpt = 5,
    nested: NestedOpt = None,
    metric: MetricOpt = Metric.accuracy,
    jobs: JobsOpt = None,
    budget: BudgetOpt = None,
    refit: RefitOpt = False,
    output: OutputOpt = None,
    results: ResultsOpt = None,
    backend: BackendOpt = Backend.local,
    scheduler: SchedulerOpt = None,
    dataset: DatasetOpt = None,
    train_images: o.TrainImagesOpt = None,
    train_labels: o.TrainLabelsOpt = None,
    data_dir: DataDirOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    options: TrainOptions = None,
) -> None:
    """Tune training options by cross-validated random or grid search.

    Each --param is searched; every other training and data option is fixed for all trials
    (with --param solver=…, a solver's own options, such as --epochs, for the trials of the
    solvers that read them). Only lists: a grid search; any range: --n-iter random draws. --nested K adds an outer
    K-fold around the whole search, the honest estimate of the tuned model's score. A live
    table of finished trials goes to stderr, the ranked table to stdout.
    """
    from mnistlr.api.sweep import sweep
    from mnistlr.errors import UsageError

    if refit and output is None:
        raise UsageError("--refit needs -o PATH for the model", "e.g. --refit -o best.joblib")
    with LiveTrials(quiet) as live:
        report = sweep(options, params=param or [], n_iter=n_iter, cv=cv, nested=nested,
                       metric=metric.value, n_jobs=jobs, budget=budget, backend=backend.value,
                       scheduler=scheduler, output=output, results=results, dataset=dataset,
                       train_images=train_images, train_labels=train_labels, data_dir=data_dir,
                       callback=live.update)
    if json_out and report["budget_stopped"]:
        echo(f"mnistlr: the --budget of {budget:g} s ended the search after "
             f"{report['n_completed']} finished trial(s)", err=True)
    with report_stream(output, results):   # -o or --results /dev/stdout: that file alone on stdout
        if json_out:
            typer.echo(json.dumps(report))
        else:
            render(report)
    if not quiet:   # the files written: notes on stderr, as predict's and export's
        if report["refit"]:
            print_note(f"refitted on {report['n_train']} images and saved to {report['refit']['output']}")
        if report["results"]:
            print_note(f"every trial written to {report['results']}")


# ---------------------------------------------------------------- rendering

def fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_param(v)}" for k, v in params.items()) or "(fixed options)"


def trials_table(trials: list[dict[str, Any]], title: str, caption: str | None = None):
    """Ranked trials: rank, trial, each parameter, fold scores, mean ± std, seconds."""
    from rich import box
    from rich.table import Table

    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, title_justify="left",
                  caption_justify="left")
    for column in ("rank", "trial", *names, "fold scores", "mean", "std", "seconds"):
        table.add_column(column, justify="left" if column == "fold scores" else "right")
    for t in trials:
        folds = " ".join(f"{s:.4f}" for s in t["fold_scores"]) if t["error"] is None else f"failed: {t['error']}"
        table.add_row(format_value(t["rank"]), str(t["trial"]), *(format_param(t["params"].get(n)) for n in names), folds,
                      format_value(t["mean"]), format_value(t["std"]), f"{t['seconds']:.2f}")
    return table


def nested_table(nested: dict[str, Any], metric: str):
    from rich import box
    from rich.table import Table

    table = Table(title=f"Nested CV: {nested['outer_folds']} outer folds", box=box.SIMPLE_HEAD,
                  title_justify="left")
    for column in ("outer fold", "chosen trial", "parameters", f"inner {metric}", f"outer {metric}"):
        table.add_column(column, justify="left" if column == "parameters" else "right")
    for f in nested["folds"]:
        table.add_row(str(f["outer_fold"]), str(f["trial"]), fmt_params(f["params"]),
                      f"{format_value(f['inner_mean'])} ± {format_value(f['inner_std'])}", format_value(f["outer_score"]))
    return table


def render(report: dict[str, Any]) -> None:
    """The ranked table(s) and the headline lines on stdout."""
    from mnistlr.cli.tables import print_stdout

    metric = report["metric"]
    direction = "higher" if report["greater_is_better"] else "lower"
    caption = f"{metric}, {direction} is better; {report['cv']}-fold stratified CV, seed {report['seed']}"
    lines = []
    if report["budget_stopped"]:
        lines.append(f"the --budget of {report['budget']:g} s ended the search after "
                     f"{report['n_completed']} finished trial(s)")
    if report["nested"]:
        n = report["nested"]
        print_stdout(nested_table(n, metric))
        agree = n["agreement"]
        lines.append(f"outer {metric}: {format_value(n['mean'])} ± {format_value(n['std'])} over {len(n['outer_scores'])} folds")
        if agree["count"] > 1 or agree["of"] == 1:
            lines.append(f"{agree['count']} of {agree['of']} outer folds chose trial {agree['trial']} "
                         f"({fmt_params(agree['params'])})")
        else:
            lines.append(f"each of the {agree['of']} outer folds chose different parameters")
    if report["trials"]:
        title = f"{report['mode'].capitalize()} search: {len(report['trials'])} of {report['n_candidates']} trials"
        print_stdout(trials_table(report["trials"], title, caption))
        best = report["best"]
        lines.append(f"best: trial {best['trial']} ({fmt_params(best['params'])}): "
                     f"{metric} {format_value(best['mean'])} ± {format_value(best['std'])}")
    for line in lines:
        echo(line)


class LiveTrials:
    """A live Rich table of finished trials on stderr (only on a terminal and without -q)."""

    def __init__(self, quiet: bool, shown: int = 12):
        from mnistlr.cli.base import show_progress

        self.enabled, self.shown = show_progress(quiet), shown
        self.rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=shown)  # the last few
        self.finished = 0
        self._live = None

    def __enter__(self) -> LiveTrials:
        if self.enabled:
            from rich.live import Live

            from mnistlr.cli.base import stderr_console

            self._live = Live(self._table(), console=stderr_console(), transient=True,
                              refresh_per_second=4)
            self._live.start()
        return self

    def _table(self):
        from rich.table import Table

        table = Table(title=f"{self.finished:,} trials finished", title_justify="left")
        for column in ("outer", "trial", "parameters", "fold scores", "mean", "seconds"):
            table.add_column(column)
        for r in self.rows:
            scores = " ".join(f"{s:.4f}" for s in r.get("fold_scores", []))
            if r["stage"] == "outer":
                scores = f"outer score {format_value(r['outer_score'])}"
            table.add_row(format_value(r.get("outer_fold")), str(r["trial"]), fmt_params(r["params"]), scores,
                          format_value(r.get("mean")), f"{r['seconds']:.2f}")
        return table

    def update(self, event: dict[str, Any]) -> None:
        if event["stage"] == "note":  # one line, shown with -q too: an option was not taken as given
            self.note(f"mnistlr: {event['message']}")
            return
        self.finished += 1
        if self._live is not None:
            self.rows.append(event)
            self._live.update(self._table())

    def note(self, text: str) -> None:
        """One line on stderr, above the live table when there is one."""
        if self._live is not None:
            self._live.console.print(text, markup=False, soft_wrap=True)
        else:
            echo(text, err=True)

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
