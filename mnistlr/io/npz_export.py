"""The `.npz` export of a model: plain arrays for ``np.load(path, allow_pickle=False)``.

Field by field (written by `mnistlr export MODEL -o FILE.npz`, read back by `mnistlr.load`):

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
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import ModelFileError
from mnistlr.io.atomic import atomic_write
from mnistlr.io.json_values import json_ready
from mnistlr.io.readers import error_line

NPZ_FORMAT = "mnistlr-npz"
NPZ_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"
FIELDS = ("kind", "classes", "image_shape", "W", "b", "preprocessing", "mean", "std",
          "W_raw", "b_raw", "metadata")
HINT = "give a file written by 'mnistlr export MODEL -o FILE.npz'"


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Write the export's *arrays* (the FIELDS but metadata, and class_means) and *metadata*
    (JSON) to *path*, atomically."""
    fields = {"format": np.array(NPZ_FORMAT), "format_version": np.array(NPZ_VERSION, np.int64)}
    fields |= arrays | {"metadata": np.array(json.dumps(json_ready(metadata)))}
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **fields)


def read_npz(path: str | os.PathLike, data: bytes, max_bytes: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of an `.npz` export whose bytes are *data*, read without pickle and
    refused when its members would expand past *max_bytes*; any other file is refused."""
    path = Path(path)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
        if expanded > max_bytes:
            raise ModelFileError(f"{path}: expands to {expanded:,} bytes, more than any mnistlr export "
                                 f"({max_bytes >> 20} MiB at most)", HINT)
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({error_line(exc)})", HINT) from None
    if str(arrays.get("format", "")) != NPZ_FORMAT:
        raise ModelFileError(f"{path}: an .npz file, but not a mnistlr export", HINT)
    version = arrays.get("format_version")
    if version is None or version.shape != () or int(version) != NPZ_VERSION:
        raise ModelFileError(f"{path}: export format version {version} is not supported "
                             f"(this mnistlr reads version {NPZ_VERSION})", "export the model again")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
        missing = [name for name in FIELDS if name != "metadata" and name not in arrays]
    except (KeyError, ValueError):
        metadata, missing = None, ["metadata"]
    if missing or not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: the .npz export lacks {', '.join(missing) or 'its metadata'}",
                             "export the model again")
    return arrays, metadata
