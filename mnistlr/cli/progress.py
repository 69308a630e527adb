"""The one progress display on stderr (Rich), and the three ways commands use it.

`ProgressDisplay` is shown only on a terminal and never with -q (`show_progress`); it can wait
until a run has taken a moment before it appears, and it holds one Rich task per name.
`TrainingProgress` (train: epoch, loss, hold-out accuracy, rate), `PredictProgress` (predict:
images done) and `FetchProgress` (fetch: bytes per file, or plain lines when not on a terminal)
are built on it.
"""

from __future__ import annotations

import time
from typing import Any

from mnistlr.cli.base import show_progress, stderr_console

# Predict's display appears once a run has taken this long (large inputs only).
PROGRESS_AFTER_SECONDS = 0.5


class ProgressDisplay:
    """Rich progress columns on stderr; `update(name, **fields)` creates the task *name* on first use."""

    def __init__(self, quiet: bool, columns: tuple, *, enabled: bool = True, after: float = 0.0,
                 transient: bool = True):
        self.enabled = enabled and show_progress(quiet)
        self.columns, self.after, self.transient = columns, after, transient
        self.started = time.perf_counter()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self):
        if self.enabled and self.after <= 0:
            self._start()
        return self

    def _start(self) -> None:
        from rich.progress import Progress

        self._progress = Progress(*self.columns(), console=stderr_console(), transient=self.transient)
        self._progress.start()

    @property
    def console(self):
        """Where lines printed alongside the display go (above it, when it is live)."""
        return self._progress.console if self._progress is not None else stderr_console()

    def update(self, name: str, **fields: Any) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if time.perf_counter() - self.started < self.after:
                return
            self._start()
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(fields.pop("description", name),
                                                        total=fields.pop("total", None))
        self._progress.update(self._tasks[name], **fields)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


def _training_columns():
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    return SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()


class TrainingProgress(ProgressDisplay):
    """Its `update(record)` is the training callback: epoch, loss, hold-out accuracy and rate."""

    def __init__(self, quiet: bool):
        super().__init__(quiet, _training_columns)

    def update(self, record: dict[str, Any]) -> None:
        parts = [f"epoch {record.get('epoch')}"]
        for key, label in (("train_loss", "loss"), ("val_accuracy", "hold-out acc"), ("lr", "lr")):
            value = record.get(key)
            if value is not None:
                parts.append(f"{label} {value:.4g}")
        super().update("training", description="  ".join(parts), advance=1)


def _predict_columns():
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()


class PredictProgress(ProgressDisplay):
    """callback(done, total): images done, once the run is not instant (not over scrolling rows)."""

    def __init__(self, quiet: bool, to_terminal: bool = False):
        super().__init__(quiet, _predict_columns, enabled=not to_terminal, after=PROGRESS_AFTER_SECONDS)

    def __call__(self, done: int, total: int | None) -> None:
        self.update("predicting", total=total, completed=done)


def _fetch_columns():
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn())


class FetchProgress(ProgressDisplay):
    """Turns fetch's progress events into byte bars, or plain lines on stderr when no bar shows."""

    def __init__(self, quiet: bool):
        super().__init__(quiet, _fetch_columns, transient=False)
        self.quiet = quiet

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, soft_wrap=True)

    def __call__(self, event) -> None:
        label = f"{event.dataset}/{event.file}"
        if event.kind == "advance":
            short = label.removesuffix(".gz").removesuffix("-ubyte")
            self.update(label, description=short, total=event.total, completed=event.done)
        elif event.kind == "start" and not self.enabled:
            self._say(f"{label}: from {event.message}")
        elif event.kind == "done" and not self.enabled:
            self._say(f"{label}: verified ({event.done:,} bytes)")
        elif event.kind in ("skip", "retry", "fallback"):
            self._say(f"{label}: {event.message}")
