"""`export`: write a model in another format, told by the output's extension."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mnistlr.errors import UsageError

FORMATS = {".onnx": "ONNX graph", ".npz": "NumPy arrays", ".csv": "CSV weights"}


def export_format(output: str | os.PathLike) -> str:
    """The suffix of *output* when it names an export format (a UsageError otherwise)."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        named = f"'{suffix}'" if suffix else "no extension"
        raise UsageError(f"{output}: {named} is not an export format",
                         "end the output name in " + ", ".join(FORMATS))
    return suffix


def export(model: Any, output: str | os.PathLike, *, input_type: str = "uint8",
           input_layout: str = "images") -> dict[str, Any]:
    """Write *model* (a LinearModel or a model file) to *output*, atomically, in the format its
    extension names: .onnx (input_type "uint8" or "float32", input_layout "images" (n, rows,
    cols) or "flat" (n, rows·cols)), .npz or .csv. Returns a summary."""
    from mnistlr.learn import export as formats
    from mnistlr.learn.model import LinearModel
    from mnistlr.learn.persistence import load_model

    suffix = export_format(output)
    if not isinstance(model, LinearModel):
        model = load_model(model)
    if suffix == ".onnx":
        from mnistlr.learn.onnx_graph import write_onnx

        write_onnx(model, output, input_type, input_layout)
    elif suffix == ".npz":
        formats.write_npz(model, output)
    else:
        formats.write_csv(model, output)
    return {"output": str(output), "format": FORMATS[suffix], "kind": model.kind,
            "classes": model.classes.tolist(), "bytes": Path(output).stat().st_size,
            "input": f"{input_type} {input_layout}" if suffix == ".onnx" else None}
