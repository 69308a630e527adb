"""A Rich progress line on stderr for training: epoch, loss, hold-out accuracy, rate, elapsed."""

from __future__ import annotations

from typing import Any

from mnistlr.cli.base import show_progress, stderr_console


class TrainingProgress:
    """Context manager whose `update(record)` is the training callback; silent when quiet or piped."""

    def __init__(self, quiet: bool, total: int | None = None):
        self.enabled = show_progress(quiet)
        self.total = total
        self._progress = None
        self._task = None

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=stderr_console(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("training", total=self.total)
        return self

    def update(self, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        parts = [f"epoch {record.get('epoch')}"]
        for key, label in (("train_loss", "loss"), ("val_accuracy", "hold-out acc"), ("lr", "lr")):
            value = record.get(key)
            if value is not None:
                parts.append(f"{label} {value:.4g}")
        self._progress.update(self._task, description="  ".join(parts), advance=1)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
