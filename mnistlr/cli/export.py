"""`mnistlr export`: a model as ONNX, NumPy arrays or CSV weights, told by the extension."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mnistlr.cli.base import JsonOpt, ModelArg, QuietOpt, choices, command, echo
from mnistlr.io.onnx_graph import INPUT_LAYOUTS, INPUT_TYPES

InputType = choices("InputType", INPUT_TYPES)
InputLayout = choices("InputLayout", INPUT_LAYOUTS)


@command(
    "export",
    ("an ONNX graph taking uint8 images", "mnistlr export sample.joblib -o sample.onnx"),
    ("an ONNX graph taking float32 rows of 784 pixels",
     "mnistlr export sample.joblib -o sample.onnx --input-type float32 --input-layout flat"),
    ("the arrays, for NumPy alone", "mnistlr export sample.joblib -o sample.npz"),
    ("the weights, for a spreadsheet", "mnistlr export sample.joblib -o weights.csv"),
)
def export_command(
    model: ModelArg,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The file to write: .onnx, .npz or .csv (the format).", metavar="FILE")],
    input_type: Annotated[InputType | None, typer.Option(
        "--input-type", help="ONNX only: the element type of the graph's input (default: uint8).",
        show_default=False)] = None,
    input_layout: Annotated[InputLayout | None, typer.Option(
        "--input-layout", help="ONNX only: images (n, rows, cols; the default) or flat rows (n, rows·cols).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a model in another format, told by the output's extension (written atomically).

    .onnx: one graph (the onnx extra), input `images` (n, rows, cols) or with --input-layout
    flat (n, rows·cols), uint8 or with --input-type float32 floats in [0, 1] or 0–255, outputs `label` (int64) and `probabilities` (float32), preprocessing folded in; a feature pipeline of pca, poly2, rff and nystroem steps is part of
    the graph (deskew and hog are not exported). --input-type and --input-layout apply to .onnx only.
    .npz: every array and the metadata as JSON text, for np.load(..., allow_pickle=False).
    .csv: the weights on raw pixels, a header row of class labels and an intercept row.
    """
    from mnistlr.api.export import export, export_format

    given = {"input_type": input_type and input_type.value, "input_layout": input_layout and input_layout.value}
    export_format(output, **given)   # refuse an unknown extension, or ONNX options elsewhere, before reading the model
    summary = export(model, output, **given)
    if json_out:
        typer.echo(json.dumps(summary))
    elif not quiet:   # plain: a path must not be wrapped
        size = "" if summary["bytes"] is None else f", {summary['bytes']:,} bytes"
        echo(f"wrote {summary['output']} ({summary['format']}{size})", err=True)
