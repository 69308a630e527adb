"""Model files: joblib pickles of plain data only, loaded by a restricted unpickler.

A model file holds one dict of NumPy arrays, numbers, strings, lists and dicts
(see `model_to_dict`) plus a SHA-256 over its content. Loading allows only the
three globals joblib needs for numeric arrays; anything else (a foreign or
code-running pickle) is refused before it is called, and a content hash that
does not match (a tampered file) is refused too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import pickle
import platform
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from joblib import numpy_pickle

from mnistlr import __version__
from mnistlr.errors import ModelFileError
from mnistlr.io.atomic import atomic_write
from mnistlr.learn.features import FeaturePipeline
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.options import MODELS

# Version 2 adds "features" (the fitted feature pipeline, or None); version 1 files (no
# features) still load. An mnistlr that reads only version 1 refuses version 2 files instead
# of scoring pixels without their features.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAGIC = "mnistlr-model"


def _safe_dtype(*args: Any) -> np.dtype:
    """np.dtype for numeric and string arrays only: object arrays would run pickle."""
    # numpy pickles a dtype as dtype(str, False, True); anything else is not from numpy
    if len(args) != 3 or not isinstance(args[0], str) or not all(isinstance(a, bool) for a in args[1:]):
        raise ModelFileError("model file holds a malformed array type", "it was damaged or tampered with")
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise ModelFileError("model file holds Python objects, not plain data", "refusing to load it")
    return dtype


_ALLOWED_GLOBALS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): numpy_pickle.NumpyArrayWrapper,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}


def _rebuilt_dtype(dtype: np.dtype, state: Any) -> np.dtype:
    """The dtype a BUILD opcode asks for, made without numpy's dtype.__setstate__.

    A crafted state can crash the interpreter inside __setstate__, so only the states
    numpy itself writes for plain dtypes are accepted (differing at most in byte order).
    """
    endian = state[1] if isinstance(state, tuple) and len(state) == 8 else None
    if endian in ("<", ">") and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(endian)
    if endian is None or dtype.__reduce__()[2] != state:
        raise ModelFileError("model file holds a malformed array type", "it was damaged or tampered with")
    return dtype


class _RestrictedUnpickler(numpy_pickle.NumpyUnpickler):
    """joblib's unpickler, allowed to build numeric arrays and plain containers only."""

    dispatch = dict(numpy_pickle.NumpyUnpickler.dispatch)

    def load_build(self) -> None:
        if len(self.stack) >= 2 and isinstance(self.stack[-2], np.dtype):
            state = self.stack.pop()
            self.stack[-1] = _rebuilt_dtype(self.stack[-1], state)
            return
        numpy_pickle.NumpyUnpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ModelFileError(
                f"refusing to load: the file asks for '{module}.{name}', which a mnistlr model never holds",
                "it is not a mnistlr model, or it was tampered with; nothing in it was run") from None


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


def library_versions() -> dict[str, str]:
    versions = {"mnistlr": __version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "joblib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def model_to_dict(model: LinearModel) -> dict[str, Any]:
    """The plain-data payload saved for *model*."""
    payload = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "classes": np.asarray(model.classes, np.int64),
        "image_shape": [int(d) for d in model.image_shape],
        "preprocessing": model.preprocessor.to_dict(),
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


def save_model(model: LinearModel, path: str | Path) -> dict[str, Any]:
    """Write *model* to *path* atomically; returns the saved payload."""
    payload = model_to_dict(model)
    with atomic_write(path, "wb") as handle:
        joblib.dump(payload, handle)
    return payload


def _read_payload(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file", "train one with 'mnistlr train -o PATH'") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file", "give the .joblib file") from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied", "check the file's permissions") from None
    if data[:2] == b"\x1f\x8b":  # joblib's gzip compression
        try:
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        except zlib.error:
            raise ModelFileError(f"{path}: corrupt compressed model file", "train the model again") from None
    try:
        return _RestrictedUnpickler(str(path), io.BytesIO(data), False).load()
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc.message}", exc.hint) from None
    except Exception as exc:  # noqa: BLE001  any failure of a damaged stream; find_class ran nothing
        if data[:1] == b"\x80":  # a pickle stream (protocol 2+) that breaks off or is corrupt
            raise ModelFileError(f"{path}: damaged or truncated model file ({type(exc).__name__})",
                                 "retrain the model or restore the file from a copy") from None
        raise ModelFileError(f"{path}: not a mnistlr model file ({type(exc).__name__})",
                             "give a file written by 'mnistlr train'") from None


def load_model(path: str | Path) -> LinearModel:
    """Load a model written by `save_model`, refusing anything else."""
    path = Path(path)
    payload = _read_payload(path)
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        raise ModelFileError(f"{path}: not a mnistlr model file", "give a file written by 'mnistlr train'")
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: model format version {version!r} is not supported "
            f"(this mnistlr reads versions {', '.join(map(str, READABLE_VERSIONS))})",
            "retrain the model with this version of mnistlr")
    try:
        intact = payload.get("sha256") == content_hash(payload)
    except Exception:  # noqa: BLE001  e.g. keys that do not sort: not what save_model writes
        intact = False
    if not intact:
        raise ModelFileError(f"{path}: content hash does not match; the file was changed after it was saved",
                             "retrain the model or restore the original file")
    return _model_from_payload(path, payload)


def _model_from_payload(path: Path, p: dict[str, Any]) -> LinearModel:
    try:
        W, b, classes = p["W"], p["b"], p["classes"]
        rows, cols = (int(d) for d in p["image_shape"])
        features = _features_from_payload(p, (rows, cols))
        n_inputs = rows * cols if features is None else features.n_out
        ok = (p["kind"] in MODELS and W.ndim == 2 and W.shape[0] == n_inputs
              and b.shape == (W.shape[1],) and classes.ndim == 1
              and W.shape[1] in (1, len(classes)) and np.isfinite(W).all())
        preprocessor = Preprocessor.from_dict(p["preprocessing"])
        ok = ok and preprocessor.mean.shape == (W.shape[0],) == preprocessor.std.shape
        meta, params = dict(p["meta"]), dict(p["params"])
    except Exception:  # noqa: BLE001  a crafted payload of the wrong types
        ok = False
    if not ok:
        raise ModelFileError(f"{path}: model file is inconsistent (weights, classes or shape)",
                             "retrain the model")
    meta.setdefault("created", p.get("created"))
    meta.setdefault("versions", p.get("versions"))
    meta["format_version"] = p["format_version"]
    return LinearModel(kind=p["kind"], classes=classes.astype(np.int64), image_shape=(rows, cols),
                       preprocessor=preprocessor, W=np.ascontiguousarray(W, np.float32),
                       b=np.ascontiguousarray(b, np.float32), params=params, meta=meta, features=features)


def _features_from_payload(p: dict[str, Any], image_shape: tuple[int, int]) -> FeaturePipeline | None:
    """The fitted feature pipeline of the payload, or None; ValueError if inconsistent."""
    if p["format_version"] == 1 or p["features"] is None:
        return None
    features = FeaturePipeline.from_dict(p["features"])
    if features.image_shape != image_shape:
        raise ValueError("the feature pipeline's image shape is not the model's")
    return features
