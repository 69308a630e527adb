"""Fuzzers: model files (generated pickle opcode streams and mutated valid files) and the
IDX, CSV, .npy and PNG readers (mutated valid files). Whatever the bytes, the answer is a
result or a mnistlr error (one line at the CLI); never another exception, a crash or a hang.

`make test` runs a few dozen examples of each; set MNISTLR_FUZZ_EXAMPLES=N for a longer run
(e.g. MNISTLR_FUZZ_EXAMPLES=20000 pytest -q tests/test_fuzz.py).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
import struct
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistlr.errors import MnistlrError
from mnistlr.learn.model import LinearModel, Preprocessor
from mnistlr.learn.persistence import load_model, model_to_dict

LONG_RUN = int(os.environ.get("MNISTLR_FUZZ_EXAMPLES", "0"))
HANG_SECONDS = 60  # far above any honest example (milliseconds): a guard against hangs only


def fuzz(default_examples: int):
    return settings(max_examples=LONG_RUN or default_examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), derandomize=not LONG_RUN)


@contextlib.contextmanager
def no_hang():
    """Fail (instead of waiting for ever) when one example takes HANG_SECONDS."""
    def timeout(signum, frame):
        raise AssertionError(f"an example ran for {HANG_SECONDS} s: a hang")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _model_bytes(compress: int = 0) -> bytes:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(20, 9)).astype(np.uint8)
    model = LinearModel("softmax", np.arange(3), (3, 3), Preprocessor.fit("standardize", X),
                        rng.normal(size=(9, 3)).astype(np.float32), np.zeros(3, np.float32),
                        params={"l2": 1e-3}, meta={"history": [{"epoch": 1, "train_loss": 0.5}]})
    buffer = io.BytesIO()
    joblib.dump(model_to_dict(model), buffer, compress=compress)
    return buffer.getvalue()


GOOD_MODEL = _model_bytes()
GOOD_MODEL_GZ = _model_bytes(compress=("gzip", 3))

# Byte edits: (position as a share of the length, kind, bytes)
EDITS = st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["flip", "set", "insert", "delete", "cut"]),
                           st.binary(min_size=1, max_size=8)), min_size=1, max_size=6)


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for share, kind, chunk in edits:
        i = min(int(share * len(out)), max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[i] ^= chunk[0] or 1
        elif kind == "set":
            out[i:i + len(chunk)] = chunk
        elif kind == "insert":
            out[i:i] = chunk
        elif kind == "delete":
            del out[i:i + len(chunk)]
        elif kind == "cut":
            del out[i:]
    return bytes(out)


# Pickle opcode atoms with well-formed arguments; the fuzzer strings them together.
def _atoms():
    ints = st.integers(-2**70, 2**70)
    text = st.text(max_size=12)
    names = st.sampled_from(["numpy", "dtype", "ndarray", "joblib.numpy_pickle", "NumpyArrayWrapper",
                             "os", "system", "builtins", "eval", "f4", "i8", "O8", "c8", "shape",
                             "dtype", "order", "C", "F", "subclass", "numpy_array_alignment_bytes"])
    simple = st.sampled_from([b"(", b")", b"]", b"}", b"N", b"\x88", b"\x89", b"t", b"\x85", b"\x86",
                              b"\x87", b"l", b"d", b"a", b"e", b"s", b"u", b"R", b"\x81", b"b", b"\x93",
                              b"0", b"1", b"2", b"\x94", b"\x8f", b"\x90", b"\x91", b"Q", b"\x92",
                              b"\x97", b"\x98", b"o", b"."])
    return st.one_of(
        simple,
        ints.map(lambda n: b"\x8a" + _long(n)),
        st.integers(0, 255).map(lambda n: b"K" + bytes([n])),
        st.integers(-2**31, 2**31 - 1).map(lambda n: b"J" + struct.pack("<i", n)),
        st.floats(allow_nan=True).map(lambda x: b"G" + struct.pack(">d", x)),
        text.map(lambda s: b"\x8c" + _short(s.encode("utf-8", "surrogatepass"))),
        names.map(lambda s: b"\x8c" + _short(s.encode())),
        st.binary(max_size=40).map(lambda b: b"C" + _short(b)),
        st.integers(0, 40).map(lambda n: b"h" + bytes([n])),
        st.tuples(names, names).map(lambda mn: b"c" + mn[0].encode() + b"\n" + mn[1].encode() + b"\n"),
        st.binary(min_size=1, max_size=64),  # raw bytes: array data, garbage
    )


def _short(raw: bytes) -> bytes:
    raw = raw[:255]
    return bytes([len(raw)]) + raw


def _long(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True) if n else b""
    return bytes([len(raw)]) + raw


STREAMS = st.lists(_atoms(), max_size=60).map(lambda atoms: b"\x80\x04" + b"".join(atoms) + b".")


def _load_or_refuse(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.joblib"
        path.write_bytes(data)
        with no_hang():
            try:
                model = load_model(path)
            except MnistlrError:
                return
        # whatever loads must be usable: finite probabilities for a few images
        P = model.predict_proba(np.zeros((2,) + model.image_shape, np.uint8))
        assert np.isfinite(P).all()


@fuzz(60)
@given(STREAMS)
def test_generated_opcode_streams(data):
    _load_or_refuse(data)


@fuzz(60)
@given(EDITS, st.booleans())
def test_mutated_model_files(edits, compressed):
    _load_or_refuse(mutate(GOOD_MODEL_GZ if compressed else GOOD_MODEL, edits))


@fuzz(30)
@given(st.binary(max_size=64), EDITS)
def test_model_prefix_then_garbage(garbage, edits):
    """A valid head (globals, the first array wrapper) followed by arbitrary bytes."""
    head = GOOD_MODEL[:len(GOOD_MODEL) // 3]
    _load_or_refuse(mutate(head + garbage, edits))


# ---------------------------------------------------------------- data readers

def _idx(images: np.ndarray) -> bytes:
    from mnistlr.io.idx import encode_idx

    return encode_idx(images)


IMAGES = np.random.default_rng(3).integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
GOOD_IDX = _idx(IMAGES)
GOOD_IDX_GZ = gzip.compress(GOOD_IDX, mtime=0)
GOOD_CSV = ("\n".join(",".join(map(str, row)) for row in IMAGES.reshape(3, -1)) + "\n").encode()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, IMAGES)
    return buffer.getvalue()


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(IMAGES[0]).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_INPUTS = {"idx": GOOD_IDX, "idx.gz": GOOD_IDX_GZ, "csv": GOOD_CSV, "npy": _npy()}


def _read_idx_or_refuse(data: bytes) -> None:
    from mnistlr.io.idx import read_idx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data"
        path.write_bytes(data)
        with no_hang(), contextlib.suppress(MnistlrError):
            read_idx(path)


def _predict_or_refuse(data: bytes, suffix: str) -> None:
    from mnistlr.io.inputs import open_inputs

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input.{suffix}"
        path.write_bytes(data)
        with no_hang(), contextlib.suppress(MnistlrError):
            for source in open_inputs([path], (28, 28)):
                for batch in source.batches(2):
                    assert batch.X.dtype in (np.uint8, np.float32)


@fuzz(40)
@given(EDITS, st.booleans())
def test_mutated_idx_files(edits, compressed):
    _read_idx_or_refuse(mutate(GOOD_IDX_GZ if compressed else GOOD_IDX, edits))


@fuzz(40)
@given(st.sampled_from(sorted(GOOD_INPUTS)), EDITS)
def test_mutated_prediction_inputs(kind, edits):
    _predict_or_refuse(mutate(GOOD_INPUTS[kind], edits), kind.split(".")[0])


@pytest.fixture(scope="module")
def png_bytes():
    pytest.importorskip("PIL")
    return _png()


@fuzz(40)
@given(data=st.data())
def test_mutated_png_files(png_bytes, data):
    edits = data.draw(EDITS)
    _predict_or_refuse(mutate(png_bytes, edits), "png")
