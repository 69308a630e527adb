"""`mnistlr predict`: labels for images from IDX, NumPy, CSV or image files, streamed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mnistlr.cli.base import (
    ModelArg,
    OutputFormat,
    QuietOpt,
    command,
    print_note,
    silence_stdout,
)

INPUT_HELP = ("IDX image files (raw or gzip), .npy/.npz arrays (uint8 0–255, or floats in [0, 1] or 0–255), "
              "CSV files (one image per row; optional header and leading label column), image files "
              "or folders of them (PNG, JPEG, ...; converted like MNIST), or '-' for standard input.")


class _TextAdapter:
    """A binary-stream face for a text-only stdout (e.g. a StringIO put there by a caller)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data.decode())

    def flush(self) -> None:
        self._stream.flush()


def _binary_stdout() -> Any:
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else _TextAdapter(sys.stdout)


@command(
    "predict",
    ("labels for IDX images, CSV on stdout",
     "mnistlr predict sample.joblib t10k-images-idx3-ubyte.gz > predictions.csv"),
    ("from standard input, with one probability column per class",
     "zcat t10k-images-idx3-ubyte.gz | mnistlr predict sample.joblib - --proba | head"),
    ("PNG/JPEG files and folders of them, the 3 best labels, as JSON lines",
     "mnistlr predict sample.joblib digits/ photo.png --top-k 3 -o top3.jsonl"),
)
def predict_command(
    model: ModelArg,
    inputs: Annotated[list[str], typer.Argument(help=INPUT_HELP, metavar="INPUT",
                                                show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the predictions to this file, atomically (default, or '-': stdout).",
        show_default=False)] = None,
    fmt: Annotated[OutputFormat | None, typer.Option(
        "--format", "-f", help="Output format (default: told by the -o suffix .jsonl/.ndjson, .json, "
        ".tsv, else csv; a binary name such as .parquet or .npy needs --format); json: one JSON array of the jsonl objects; kaggle: ImageId,Label with 1-based ids, for Kaggle's digit recognizer.",
        show_default=False)] = None,
    proba: Annotated[bool, typer.Option(
        "--proba", help="Add one probability column per class (p0 … p9).", metavar="")] = False,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", "-k", min=1, help="Add the K most probable labels with their probabilities.",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=1_000_000, help="Images read and predicted at a time.")] = 8192,
    quiet: QuietOpt = False,
) -> None:
    """Predict the label of every image in the inputs; CSV, TSV, JSON lines or JSON, streamed.

    Columns: index (position in its input; 0 for image files) and label, after the
    source when there are several input files; --proba adds p<class> columns and
    --top-k K adds top1,p_top1,... Output is streamed batch by batch, so it works
    on inputs of any size and with '| head'.
    """
    from mnistlr.api.predict import predict
    from mnistlr.cli.progress import PredictProgress
    from mnistlr.errors import OutputClosed

    output = None if output == Path("-") else output  # "-o -": standard output
    try:
        sys.stdout.flush()
        with PredictProgress(quiet, to_terminal=output is None and sys.stdout.isatty()) as progress:
            summary = predict(model, inputs, output=output, fmt=fmt.value if fmt else None,
                              proba=proba, top_k=top_k, batch_size=batch_size,
                              stdout=_binary_stdout(), callback=progress)
    except OutputClosed:
        silence_stdout()
        raise
    if output is not None and not quiet:
        print_note(f"wrote {summary['images']:,} predictions to {output}")
