"""mnistlr: linear classifiers (ridge, logistic, softmax) for MNIST-format image data.

    >>> import mnistlr
    >>> X, y = mnistlr.load_dataset("mnist-sample")
    >>> model = mnistlr.train(X, y, model="softmax", l2=1e-3)
    >>> model.predict(X[:3])

`train`, `load`, `evaluate`, `load_dataset` and `Model` are loaded on first use, so
``import mnistlr`` stays light (no Numba, no SciPy). See the README's "Python API".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mnistlr.errors import (
    ConvergenceWarning,
    DataError,
    InputTypeError,
    MissingExtraError,
    MnistlrError,
    ModelFileError,
    OutputError,
    TrainingError,
    UnknownOptionError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "InputTypeError",
    "MissingExtraError",
    "MnistlrError",
    "Model",
    "ModelFileError",
    "OutputError",
    "TrainingError",
    "UnknownOptionError",
    "UsageError",
    "__version__",
    "evaluate",
    "load",
    "load_dataset",
    "train",
]

_LAZY = {"Model", "train", "load", "evaluate", "load_dataset"}

if TYPE_CHECKING:
    from mnistlr.api.python import Model, evaluate, load, load_dataset, train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mnistlr.api import python

        return getattr(python, name)
    raise AttributeError(f"module 'mnistlr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
