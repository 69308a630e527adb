"""`export`: write a model in another format, told by the output's extension (an `.npz` export
is read back by `learn.persistence.load_model`). The formats themselves live in `mnistlr.io`
(onnx_graph, npz_export, csv_weights)."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from mnistlr.errors import UsageError

FORMATS = {".onnx": "ONNX graph", ".npz": "NumPy arrays", ".csv": "CSV weights"}


def refuse_export_name(output: str | os.PathLike, python: bool = False) -> None:
    """UsageError when a model file (train's or sweep's -o, `Model.save`) is named like an export: it is
    written in joblib's format whatever its name, so model.onnx would be no ONNX graph (nor train.csv a
    CSV). python: the fix as the Python API's (`model.export`), else the command line's."""
    suffix = Path(output).suffix.lower()
    if suffix in FORMATS:
        model = Path(output).with_suffix(".joblib").name
        fix = (f"model.export({str(output)!r}) writes the export; model.save({model!r}) the model file" if python
               else f"save it as {model}, then run: mnistlr export {model} -o {Path(output).name}")
        raise UsageError(f"{output}: '{suffix}' names an export ({FORMATS[suffix]}), but a model file is "
                         "written in joblib's format", fix)


def export_format(output: str | os.PathLike, input_type: str | None = None, input_layout: str | None = None) -> str:
    """The suffix of *output* when it names an export format and the input options given fit it
    (they shape an ONNX graph's input only); a UsageError otherwise."""
    if str(output) == "-":   # a graph or an archive is a file: no extension on stdout to tell its format
        raise UsageError("an export is written to a file, not to standard output ('-')",
                         "name a file ending in " + ", ".join(FORMATS) + ", e.g. model.onnx")
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        named = f"'{suffix}'" if suffix else "no extension"
        raise UsageError(f"{output}: {named} is not an export format",
                         "end the output name in " + ", ".join(FORMATS))
    given = [f"`{name}`" for name, value in (("input_type", input_type), ("input_layout", input_layout))
             if value is not None]
    if given and suffix != ".onnx":
        raise UsageError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to .onnx exports only, "
                         f"not to {suffix}", ("drop it" if len(given) == 1 else "drop them") + ", or export to .onnx")
    return suffix


def export(model: Any, output: str | os.PathLike, *, input_type: str | None = None,
           input_layout: str | None = None) -> dict[str, Any]:
    """Write *model* (a LinearModel or a model file) to *output*, atomically, in the format its
    extension names: .onnx (input_type "uint8" (the default) or "float32", input_layout "images"
    (n, rows, cols; the default) or "flat" (n, rows·cols)), .npz or .csv (where either input
    option is a UsageError). Returns a summary."""
    from mnistlr.learn.model import LinearModel
    from mnistlr.learn.persistence import load_model

    suffix = export_format(output, input_type, input_layout)
    input_type, input_layout = input_type or "uint8", input_layout or "images"
    if not isinstance(model, LinearModel):
        model = load_model(model)
    if model.features is not None and suffix != ".onnx":
        beyond = [step.name for step in model.features.steps if step.name in NOT_IN_ONNX]
        raise UsageError(f"a {FORMATS[suffix]} export of a model with a feature pipeline "
                         f"(`features={model.features.spec}`) is not supported",
                         f"retrain without {' and '.join(beyond)} and export to .onnx: ONNX cannot express "
                         f"{' and '.join(beyond)}" if beyond else "export it to .onnx")
    W_raw, b_raw = model.effective_weights()
    if suffix == ".onnx":
        from mnistlr.io.onnx_graph import onnx_model, write_onnx

        maps = feature_maps(model.features) if model.features is not None else []
        write_onnx(output, onnx_model(model.kind, W_raw, b_raw, model.classes, model.image_shape,
                                      input_type, input_layout, maps))
    elif suffix == ".npz":
        from mnistlr.io.npz_export import write_npz

        write_npz(output, *npz_fields(model))
    else:
        from mnistlr.io.csv_weights import write_weights_csv

        labels = model.classes[1:] if W_raw.shape[1] == 1 else model.classes
        write_weights_csv(output, W_raw, b_raw, labels.tolist())
    return {"output": str(output), "format": FORMATS[suffix], "kind": model.kind,
            "classes": model.classes.tolist(), "bytes": _size(output),
            "input": f"{input_type} {input_layout}" if suffix == ".onnx" else None}


def _size(output) -> int | None:
    """The bytes of the file written, None for a pipe, FIFO or device (its size is not the export's)."""
    import stat

    info = Path(output).stat()
    return info.st_size if stat.S_ISREG(info.st_mode) else None


# Feature steps the ONNX graph cannot express (image resampling; gradient-orientation histograms)
NOT_IN_ONNX = ("deskew", "hog")


def feature_maps(pipeline) -> list[tuple]:
    """A feature pipeline as the plain maps `io.onnx_graph` applies to raw pixels: ("affine", W,
    b) float64, ("cos", c), ("poly2", K), ("rbf", L, gamma, unit), ("round_rows", B). UsageError for
    deskew and hog, which ONNX cannot express here."""
    import numpy as np

    from mnistlr.learn.kernels.projection import rounded_row_bits

    maps, unit = [], 1.0 / 255.0       # the first projection acts on x/255
    for step in pipeline.steps:
        if step.name in NOT_IN_ONNX:
            raise UsageError(f"ONNX export cannot express the {step.name} step of `features={pipeline.spec}`",
                             f"export a model trained without {step.name}; pca, poly2, rff and nystroem export")
        if step.name == "pca":
            V = step.components.astype(np.float64)
            # z = (x·unit − μ)V = x·(unit·V) − μV, the offset rounded to float32 as the model keeps it
            offset = -(step.mean.astype(np.float64) @ V).astype(np.float32)
            maps.append(("affine", V * unit, offset))
        elif step.name == "rff":
            bits = None if unit != 1.0 else rounded_row_bits(step.weights)
            # φ = cos(x·unit·W + b)·√(2/D), on rows rounded as the model's float32 projection rounds them
            maps += [("round_rows", bits)] if bits is not None else []
            maps += [("affine", step.weights.astype(np.float64) * unit, step.offset),
                     ("cos", float(np.sqrt(2.0 / step.n_components)))]
        elif step.name == "nystroem":
            # φ = k(x·unit, L)·A: the Gaussian kernels of the landmarks, then a projection without offset
            maps += [("rbf", step.landmarks, step.gamma, unit),
                     ("affine", step.normalization.astype(np.float64), np.zeros(step.n_components, np.float32))]
        else:
            maps.append(("poly2", maps[-1][1].shape[1]))
        unit = 1.0
    return maps


def npz_fields(model) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arrays, metadata) of the `.npz` export of a LinearModel (see `mnistlr.io.npz_export`)."""
    import numpy as np

    from mnistlr.learn.persistence import library_versions

    W_raw, b_raw = model.effective_weights()
    p = model.preprocessor
    arrays = {"kind": np.array(model.kind), "classes": np.asarray(model.classes, np.int64),
              "image_shape": np.asarray(model.image_shape, np.int64),
              "W": np.ascontiguousarray(model.W, np.float32), "b": np.ascontiguousarray(model.b, np.float32),
              "preprocessing": np.array(p.kind), "mean": p.mean.astype(np.float32),
              "std": p.std.astype(np.float32), "W_raw": W_raw, "b_raw": b_raw}
    if model.meta.get("class_means") is not None:
        arrays["class_means"] = np.asarray(model.meta["class_means"], np.float32)
    metadata = {"params": model.params, "meta": {k: v for k, v in model.meta.items() if k != "class_means"},
                "versions": library_versions(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return arrays, metadata
