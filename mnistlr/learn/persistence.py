"""Model files: joblib pickles of plain data only (written by learn.joblib_format), loaded by a restricted unpickler.

A model file holds one dict of NumPy arrays, numbers, strings, lists and dicts
(see `model_to_dict`) plus a SHA-256 over its content. Loading reads it through
`mnistlr.learn.unpickle` (plain numeric arrays and containers only; nothing in the
file is ever called), refuses a content hash that does not match (a tampered file),
and then checks every field's type, shape, dtype and finiteness, since the hash has
no key and anyone can write a file that verifies.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistlr import __version__
from mnistlr.errors import ModelFileError
from mnistlr.io.atomic import atomic_write
from mnistlr.io.npz_export import ZIP_MAGIC, read_npz
from mnistlr.learn import joblib_format
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.options import MODELS, PREPROCESS_KINDS
from mnistlr.learn.unpickle import MAX_MODEL_BYTES, read_model_bytes, read_payload

if TYPE_CHECKING:
    from mnistlr.learn.features import FeaturePipeline

# Version 2 adds "features" (the fitted feature pipeline, or None); version 1 files (no
# features) still load. An mnistlr that reads only version 1 refuses version 2 files instead
# of scoring pixels without their features.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAGIC = "mnistlr-model"
MAX_DEPTH = 12       # nesting of params and meta (a sweep's trials sit 4 levels deep)
MAX_SIDE = 1 << 16   # image rows and columns


def to_plain(value: Any) -> Any:
    """Convert NumPy scalars and tuples to plain Python values, recursively (arrays stay)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _digest(value: Any, h: Any) -> None:
    """Feed a canonical encoding of plain *value* into hash *h*."""
    if isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value):
            h.update(repr(key).encode())
            _digest(value[key], h)
        h.update(b"}")
    elif isinstance(value, list):
        h.update(b"[")
        for item in value:
            _digest(item, h)
        h.update(b"]")
    elif isinstance(value, np.ndarray):
        h.update(f"array{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 over everything in the payload except the hash itself."""
    h = hashlib.sha256()
    _digest({k: v for k, v in payload.items() if k != "sha256"}, h)
    return h.hexdigest()


def installed_version(name: str) -> str:
    """The installed version of distribution *name* (importlib.metadata's), or "unknown".

    Read from the metadata file's header lines: `metadata.version` parses the whole file, long
    description included (numpy's and scipy's are tens of kilobytes: a few ms each).
    """
    from importlib import metadata  # only when saving: importing it costs tens of milliseconds

    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return "unknown"
    for line in (distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or "").splitlines():
        if not line:   # the end of the headers
            break
        if line.lower().startswith("version:"):
            return line.partition(":")[2].strip()
    return distribution.version


def library_versions() -> dict[str, str]:
    versions = {"mnistlr": __version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "joblib"):
        versions[name] = installed_version(name)
    return versions


def model_to_dict(model: LinearModel) -> dict[str, Any]:
    """The plain-data payload saved for *model*."""
    payload = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "kind": to_plain(model.kind),    # np.str_ (a value from an array of choices) is no plain str
        "classes": np.asarray(model.classes, np.int64),
        "image_shape": [int(d) for d in model.image_shape],
        "preprocessing": to_plain(model.preprocessor.to_dict()),
        "W": np.ascontiguousarray(model.W, np.float32),
        "b": np.ascontiguousarray(model.b, np.float32),
        "features": None if model.features is None else to_plain(model.features.to_dict()),
        "params": to_plain(model.params),
        "meta": to_plain(model.meta),
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    payload["sha256"] = content_hash(payload)
    return payload


def save_model(model: LinearModel, path: str | Path, inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Write *model* to *path* atomically (never over one of *inputs*); returns the saved payload."""
    payload = model_to_dict(model)
    with atomic_write(path, "wb", inputs=inputs) as handle:
        # joblib's format, written without importing joblib; read back by learn.unpickle
        if handle.seekable():
            joblib_format.dump(payload, handle)
        else:   # a pipe or FIFO (-o /dev/stdout | …): the pickler asks positions, for its array padding
            buffer = io.BytesIO()
            joblib_format.dump(payload, buffer)
            handle.write(buffer.getbuffer())
    return payload


def load_model(path: str | Path) -> LinearModel:
    """Load a model written by `save_model`, or an `.npz` export of one, refusing anything else."""
    path = Path(path)
    data = read_model_bytes(path)
    if data.startswith(ZIP_MAGIC):
        return _model_of_export(path, data)
    payload = read_payload(path, data)
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        raise ModelFileError(f"{path}: not a mnistlr model file", "give a file written by 'mnistlr train'")
    version = payload.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # not True, 1.0 or a subclass
        raise ModelFileError(
            f"{path}: model format version {version!r} is not supported "
            f"(this mnistlr reads versions {', '.join(map(str, READABLE_VERSIONS))})",
            "retrain the model with this version of mnistlr")
    if "sha256" not in payload:
        raise ModelFileError(f"{path}: holds no content hash, so it was not written by mnistlr",
                             "give a file written by 'mnistlr train'")
    try:
        intact = payload.get("sha256") == content_hash(payload)
    except Exception:  # noqa: BLE001  e.g. keys that do not sort: not what save_model writes
        intact = False
    if not intact:
        raise ModelFileError(f"{path}: content hash does not match; the file was changed after it was saved",
                             "retrain the model or restore the original file")
    return _model_from_payload(path, payload)


def _model_of_export(path: Path, data: bytes) -> LinearModel:
    """The LinearModel of an `.npz` export (its bytes *data*), checked as a model file is."""
    arrays, metadata = read_npz(path, data, MAX_MODEL_BYTES)
    payload = {"kind": str(arrays["kind"]), "W": arrays["W"], "b": arrays["b"], "classes": arrays["classes"],
               "image_shape": arrays["image_shape"].tolist(),
               "preprocessing": {"kind": str(arrays["preprocessing"]), "mean": arrays["mean"], "std": arrays["std"]},
               "params": metadata.get("params"), "meta": metadata.get("meta"),
               "format_version": int(arrays["format_version"]), "features": None,
               "created": metadata.get("created"),
               "versions": metadata.get("versions")}
    model = _model_from_payload(path, payload)
    if "class_means" in arrays:
        model.meta["class_means"] = arrays["class_means"]
    return model


class _Bad(Exception):
    """One field of a payload is impossible (the message says which and why)."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise _Bad(what)


def _real_array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """*value* as a finite float32 array of *shape*, or _Bad naming *name*."""
    _require(isinstance(value, np.ndarray), f"{name} is {type(value).__name__}, not an array")
    _require(value.dtype.kind in "fiu", f"{name} holds {value.dtype} values, not real numbers")
    _require(value.shape == shape, f"{name} has shape {value.shape}, expected {shape}")
    with np.errstate(over="ignore"):
        as32 = np.ascontiguousarray(value, np.float32)
    _require(bool(np.isfinite(as32).all()), f"{name} holds NaN or infinite values")
    return as32


def _plain(value: Any, name: str, depth: int = 0) -> None:
    """Refuse anything but None, bool, numbers, str, lists, str-keyed dicts and numeric arrays."""
    _require(depth <= MAX_DEPTH, f"{name} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _require(isinstance(key, str), f"{name} has a key of type {type(key).__name__}")
            _plain(item, f"{name}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _plain(item, f"{name}[]", depth + 1)
    else:
        _require(value is None or isinstance(value, (bool, int, float, str, np.ndarray)),
                 f"{name} is of type {type(value).__name__}")


def _check_meta(meta: Any) -> None:
    """The meta fields the commands read have the types they expect."""
    _require(isinstance(meta, dict), "meta is not a dict")
    _plain(meta, "meta")
    history = meta.get("history")
    _require(history is None or (isinstance(history, list) and all(isinstance(r, dict) for r in history)),
             "meta.history is not a list of records")
    for record in history or []:
        _require(all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                     for v in record.values()), "meta.history holds a record of non-numbers")
    for key in ("metrics", "train_files", "versions", "sweep"):
        _require(meta.get(key) is None or isinstance(meta[key], dict), f"meta.{key} is not a dict")
    for key in ("best_epoch", "n_train", "n_val", "n_iter", "seed"):
        value = meta.get(key)
        _require(value is None or (type(value) is int and value >= 0), f"meta.{key} is not a count")
    for key in ("dataset", "stop_reason", "data_sha256"):
        _require(meta.get(key) is None or isinstance(meta[key], str), f"meta.{key} is not text")


def _classes(value: Any) -> np.ndarray:
    _require(isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu",
             "classes is not a 1-D array of integer labels")
    _require(len(value) >= 2, f"it holds {len(value)} class{'es' if len(value) != 1 else ''}, "
             "a classifier needs at least 2")
    ordered = np.sort(value)
    _require(bool((ordered[1:] != ordered[:-1]).all()), "classes holds the same label twice")
    return value.astype(np.int64)


def _image_shape(value: Any) -> tuple[int, int]:
    _require(isinstance(value, (list, tuple)) and len(value) == 2
             and all(type(d) is int for d in value), "image_shape is not two whole numbers")
    rows, cols = value
    _require(1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE,
             f"image shape {rows}×{cols} is not two sizes from 1 to {MAX_SIDE:,}")
    return rows, cols


def _preprocessor(value: Any, n_features: int) -> Preprocessor:
    _require(isinstance(value, dict) and value.get("kind") in PREPROCESS_KINDS,
             "preprocessing is not one of " + ", ".join(PREPROCESS_KINDS))
    mean = _real_array(value.get("mean"), "preprocessing mean", (n_features,))
    std = _real_array(value.get("std"), "preprocessing std", (n_features,))
    _require(bool((std > 0).all()), "preprocessing std holds a value ≤ 0")
    return Preprocessor(value["kind"], mean, std)


# the fields every model file holds (version 1 files lack "features")
_REQUIRED = ("kind", "classes", "image_shape", "preprocessing", "W", "b", "params", "meta")


def _model_from_payload(path: Path, p: dict[str, Any]) -> LinearModel:
    """The LinearModel of payload *p*, every field checked (a payload's hash has no key, so
    anyone can write one that verifies); an impossible field is a one-line ModelFileError."""
    missing = [key for key in _REQUIRED if key not in p]
    if missing:
        raise ModelFileError(f"{path}: impossible model contents: it lacks {', '.join(missing)}",
                             "the file was damaged or crafted; retrain the model")
    try:
        _require(p.get("kind") in MODELS, f"kind {p.get('kind')!r} is not one of {', '.join(MODELS)}")
        classes = _classes(p.get("classes"))
        rows, cols = _image_shape(p.get("image_shape"))
        W = p.get("W")
        _require(isinstance(W, np.ndarray) and W.ndim == 2, "W is not a 2-D array")
        outputs = (1, 2) if p["kind"] == "logistic" and len(classes) == 2 else (len(classes),)
        _require(W.shape[1] in outputs, f"W has {W.shape[1]} column(s) for {len(classes)} classes")
        features = _features(p, (rows, cols))
        n_inputs = rows * cols if features is None else features.n_out
        W = _real_array(W, "W", (n_inputs, W.shape[1]))
        b = _real_array(p.get("b"), "b", (W.shape[1],))
        preprocessor = _preprocessor(p.get("preprocessing"), n_inputs)
        _require(isinstance(p.get("params"), dict), "params is not a dict")
        _plain(p["params"], "params")
        _check_meta(p.get("meta"))
    except _Bad as exc:
        raise ModelFileError(f"{path}: impossible model contents: {exc}",
                             "the file was damaged or crafted; retrain the model") from None
    meta, params = dict(p["meta"]), dict(p["params"])
    meta.setdefault("created", p.get("created"))
    meta.setdefault("versions", p.get("versions"))
    meta["format_version"] = p["format_version"]
    model = LinearModel(kind=p["kind"], classes=classes, image_shape=(rows, cols),
                        preprocessor=preprocessor, W=W, b=b, params=params, meta=meta, features=features)
    if not _scores_bounded(model):
        raise ModelFileError(f"{path}: impossible model contents: its weights, folded with the preprocessing, "
                             "give scores beyond float32's range", "the file was damaged or crafted; retrain the model")
    return model


def _scores_bounded(model: LinearModel) -> bool:
    """Whether the weights on raw inputs are finite float32 and, for pixels (0–255), no score can overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        W_raw, b_raw = model.effective_weights()
        if not (np.isfinite(W_raw).all() and np.isfinite(b_raw).all()):
            return False
        if model.features is not None:   # feature ranges vary: `raw_scores` checks the scores themselves
            return True
        # |s_k| ≤ 255·Σ_j |W_raw,jk| + |b_raw,k|
        bound = 255.0 * np.abs(W_raw).sum(axis=0, dtype=np.float64) + np.abs(b_raw)
    return bool((bound <= float(np.finfo(np.float32).max)).all())


def _features(p: dict[str, Any], image_shape: tuple[int, int]) -> FeaturePipeline | None:
    """The fitted feature pipeline of the payload, or None."""
    if p["format_version"] == 1 or p.get("features") is None:
        return None
    from mnistlr.learn.features import FeaturePipeline  # only for a model with features

    try:
        features = FeaturePipeline.from_dict(p["features"])
    except Exception as exc:  # noqa: BLE001  from_dict raises ValueError, a crafted dict anything
        raise _Bad(f"features do not add up ({exc})") from None
    _require(features.image_shape == image_shape, "the feature pipeline's image shape is not the model's")
    return features
