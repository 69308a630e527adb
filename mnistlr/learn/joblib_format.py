"""Writing model files in joblib's format without importing joblib (its import costs ~0.1 s).

`dump` writes the bytes `joblib.dump(payload, handle)` writes for a payload of plain data
(dicts, lists, strings, numbers, None and NumPy arrays of numbers), the same pickler doing the
same steps: the pure-Python pickler at pickle's default protocol, each array replaced by a
`joblib.numpy_pickle.NumpyArrayWrapper` (subclass, shape, order, dtype, allow_mmap, 16-byte
alignment) and its bytes written after it, behind one padding-length byte and padding. So
`joblib.load` reads the file, and `mnistlr.learn.unpickle` reads it as any joblib file.
"""

from __future__ import annotations

import pickle
from typing import Any, BinaryIO

import numpy as np

WRAPPER_MODULE, WRAPPER_NAME = "joblib.numpy_pickle", "NumpyArrayWrapper"
ALIGNMENT_BYTES = 16      # joblib's NUMPY_ARRAY_ALIGNMENT_BYTES


class _ArrayWrapper:
    """Pickled as joblib's NumpyArrayWrapper (by name: joblib itself is never imported)."""


class _JoblibPickler(pickle._Pickler):
    """joblib's NumpyPickler for plain numeric arrays, on the pickler joblib subclasses."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, protocol=pickle.DEFAULT_PROTOCOL)
        self._handle = handle

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if obj is _ArrayWrapper:
            self._save_wrapper_class()
        elif type(obj) is np.ndarray:
            self._save_array(obj)
        else:
            super().save(obj, save_persistent_id)

    def _save_wrapper_class(self) -> None:
        # what save_global writes for the class: its module and name, STACK_GLOBAL, memoized
        seen = self.memo.get(id(_ArrayWrapper))
        if seen is not None:
            self.write(self.get(seen[0]))
            return
        self.save(WRAPPER_MODULE)
        self.save(WRAPPER_NAME)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(_ArrayWrapper)

    def _save_array(self, array: np.ndarray) -> None:
        if array.dtype.hasobject:
            raise TypeError("a model file holds arrays of numbers only")
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        wrapper = _ArrayWrapper()
        # NumpyArrayWrapper.__init__'s attributes, in its order
        wrapper.__dict__.update(subclass=np.ndarray, shape=array.shape, order=order, dtype=array.dtype,
                                allow_mmap=True, numpy_array_alignment_bytes=ALIGNMENT_BYTES)
        super().save(wrapper)
        self.framer.commit_frame(force=True)   # the wrapper's opcodes reach the file first
        handle = self._handle
        # padding p so that the bytes start on a multiple of 16: p = 16 − ((pos + 1) mod 16)
        padding = ALIGNMENT_BYTES - (handle.tell() + 1) % ALIGNMENT_BYTES
        handle.write(padding.to_bytes(1, "little") + b"\xff" * padding)
        handle.write(array.tobytes(order))


def dump(payload: Any, handle: BinaryIO) -> None:
    """Write *payload* to the seekable binary *handle* as `joblib.dump(payload, handle)` would."""
    _JoblibPickler(handle).dump(payload)
