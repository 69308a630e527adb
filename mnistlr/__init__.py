"""mnistlr: linear classifiers (ridge, logistic, softmax) for MNIST-format image data."""

__version__ = "0.1.0"
