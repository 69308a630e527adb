"""Model exports readable without mnistlr: `.npz` (NumPy alone, read back by `read_npz`) and
`.csv` (the raw-pixel weights, for spreadsheets). Both are written atomically.

The `.npz` file (``np.load(path, allow_pickle=False)``), field by field:

    format          "mnistlr-npz" (0-d str)       format_version   1 (0-d int64)
    kind            "softmax" | "logistic" | "ridge" (0-d str)
    classes         (n_classes,) int64: the labels, in the order of the outputs
    image_shape     (2,) int64: (rows, cols); n_features = rows·cols
    W, b            (n_features, n_outputs), (n_outputs,) float32: the weights on the
                    preprocessed inputs z (n_outputs = 1 for a binary logistic model)
    preprocessing   "scale" | "standardize" | "center" | "none" (0-d str)
    mean, std       (n_features,) float32: z = (x/255 − mean)/std for pixels, z = x for "none"
    W_raw, b_raw    float32, the preprocessing folded in: scores = x·W_raw + b_raw on raw
                    pixels x 0–255 (flattened row-major), the scores `predict` uses
    metadata        0-d str, JSON: {"params": training options, "meta": dataset, n_train,
                    history, stop reason, metrics, ..., "versions": library versions,
                    "created": UTC time}
    class_means     (n_classes, n_features) float32, when the model records them

Probabilities from the scores s: softmax and ridge p = softmax(s); logistic binary
p₁ = σ(s), p₀ = 1 − p₁; logistic one-vs-rest p_k = σ(s_k)/Σ_j σ(s_j). Labels: classes[argmax s],
or classes[s > 0] for one output.

The `.csv` file: a header row ``feature,<label>,...`` (one column per output: every class,
or only the positive class classes[1] of a binary logistic model), an ``intercept`` row
(b_raw), then one row per pixel ``pixel_<i>`` (row-major, i = r·cols + c) of W_raw: the
score of class k is intercept_k + Σ_i x_i·W_raw[i, k] on raw pixels 0–255.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import ModelFileError
from mnistlr.io.atomic import atomic_write
from mnistlr.learn.model import LinearModel

NPZ_FORMAT = "mnistlr-npz"
NPZ_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"


def _json_plain(value: Any) -> Any:
    """Plain JSON-able values: arrays become lists, NumPy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def npz_arrays(model: LinearModel) -> dict[str, np.ndarray]:
    """The arrays of the `.npz` export (see the module docstring)."""
    from mnistlr.learn.persistence import library_versions

    W_raw, b_raw = model.effective_weights()
    meta = {k: v for k, v in model.meta.items() if k != "class_means"}
    metadata = {"params": model.params, "meta": meta, "versions": library_versions(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    p = model.preprocessor
    arrays = {
        "format": np.array(NPZ_FORMAT), "format_version": np.array(NPZ_VERSION, np.int64),
        "kind": np.array(model.kind), "classes": np.asarray(model.classes, np.int64),
        "image_shape": np.asarray(model.image_shape, np.int64),
        "W": np.ascontiguousarray(model.W, np.float32), "b": np.ascontiguousarray(model.b, np.float32),
        "preprocessing": np.array(p.kind), "mean": p.mean.astype(np.float32), "std": p.std.astype(np.float32),
        "W_raw": W_raw, "b_raw": b_raw, "metadata": np.array(json.dumps(_json_plain(metadata))),
    }
    if model.meta.get("class_means") is not None:
        arrays["class_means"] = np.asarray(model.meta["class_means"], np.float32)
    return arrays


def write_npz(model: LinearModel, path: str | os.PathLike) -> None:
    """Write the `.npz` export of *model* to *path*, atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **npz_arrays(model))


def read_npz(path: str | os.PathLike) -> LinearModel:
    """The model of an `.npz` export (refusing any other npz), read without pickle."""
    from mnistlr.learn.persistence import _model_from_payload

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({type(exc).__name__})",
                             "give a file written by 'mnistlr export MODEL -o FILE.npz'") from None
    if str(arrays.get("format", "")) != NPZ_FORMAT:
        raise ModelFileError(f"{path}: an .npz file, but not a mnistlr export",
                             "give a file written by 'mnistlr export MODEL -o FILE.npz'")
    if int(arrays.get("format_version", -1)) != NPZ_VERSION:
        raise ModelFileError(f"{path}: export format version {arrays.get('format_version')} is not "
                             f"supported (this mnistlr reads version {NPZ_VERSION})", "export the model again")
    try:
        metadata = json.loads(str(arrays["metadata"]))
        payload = {"kind": str(arrays["kind"]), "W": arrays["W"], "b": arrays["b"],
                   "classes": arrays["classes"], "image_shape": arrays["image_shape"].tolist(),
                   "preprocessing": {"kind": str(arrays["preprocessing"]), "mean": arrays["mean"],
                                     "std": arrays["std"]},
                   "params": metadata["params"], "meta": metadata["meta"], "format_version": NPZ_VERSION,
                   "created": metadata.get("created"), "versions": metadata.get("versions")}
    except (KeyError, ValueError, TypeError, AttributeError):
        raise ModelFileError(f"{path}: the .npz export lacks fields or holds malformed ones",
                             "export the model again") from None
    model = _model_from_payload(path, payload)
    if "class_means" in arrays:
        model.meta["class_means"] = arrays["class_means"]
    return model


def write_csv(model: LinearModel, path: str | os.PathLike) -> None:
    """Write the raw-pixel weights of *model* as CSV (see the module docstring), atomically."""
    W_raw, b_raw = model.effective_weights()
    labels = model.classes[1:] if W_raw.shape[1] == 1 else model.classes
    rows = [",".join(["feature"] + [str(c) for c in labels.tolist()])]
    rows.append(",".join(["intercept"] + [f"{v:.9g}" for v in b_raw.tolist()]))
    rows += [",".join([f"pixel_{i}"] + [f"{v:.9g}" for v in row]) for i, row in enumerate(W_raw.tolist())]
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(rows) + "\n")


def is_npz(path: str | os.PathLike) -> bool:
    """Whether the file at *path* starts as a zip (an .npz) does."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ZIP_MAGIC
    except OSError:
        return False
