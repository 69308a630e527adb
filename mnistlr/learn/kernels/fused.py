"""Fused loss + gradient of linear models: one pass over X, Numba kernels behind checking wrappers.

Rows are processed in fixed chunks (a function of n only, so results do not depend on the
number of threads); each chunk keeps its own partial gradient and the chunks are summed in
order in float64. Two kernel forms, same numbers up to float32 rounding:

- uint8 X (raw pixels, any scaling folded into W by the caller: no float copy of the images):
  `fused_blocks`, a block of rows widened once into a float32 scratch, then logits and gradient
  feature slice by feature slice so a slice of Wᵀ or G stays in the L1 cache;
- float32/float64 X: `fused_rows`, four rows at a time over all features.

Logits and the per-chunk gradient are accumulated in the weights' dtype: float32 for uint8 and
float32 X, float64 for float64 X.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mnistlr.learn.kernels import fused_blocks, fused_rows
from mnistlr.learn.kernels.dots import block_rows
from mnistlr.learn.kernels.residuals import KIND_OVR, KIND_SOFTMAX

_MAX_CHUNKS = 16
_ROWS_PER_CHUNK_MIN = 64
_PARALLEL_MIN_ROWS = 1024   # below this (SGD batches) the same chunks run on one thread
_LOGIT_ROWS = block_rows()
__all__ = ["KIND_OVR", "KIND_SOFTMAX", "LossGrad", "ovr_cross_entropy", "softmax_cross_entropy"]


def _n_chunks(n_rows: int) -> int:
    """Chunks depend on the number of rows only, so results do not depend on the thread count."""
    return max(1, min(_MAX_CHUNKS, -(-n_rows // _ROWS_PER_CHUNK_MIN)))


def rows_per_chunk(n_rows: int) -> int:
    """The most rows one chunk sums (its loss in one float64 running sum)."""
    return -(-n_rows // _n_chunks(n_rows))


class LossGrad(NamedTuple):
    """Summed (not averaged) loss over the rows used, and its gradient."""

    loss_sum: float               # Σ_i ℓ_i, float64 accumulation
    n_correct: int                # rows whose predicted class equals y
    grad_W: np.ndarray | None     # (n_features, n_outputs) float64, Σ_i ∂ℓ_i/∂W (None without grad)
    grad_b: np.ndarray | None     # (n_outputs,) float64, Σ_i ∂ℓ_i/∂b


def _check_linear(X, y, W, b, rows, kind, name):
    """Coerce and check the arguments of a fused loss; returns (X, y, WT, b, rows)."""
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype not in (np.uint8, np.float32, np.float64):
        raise ValueError(f"{name}: X must be a 2-D uint8/float32/float64 array, got {X.dtype} {X.shape}")
    n_samples, n_features = X.shape
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != n_features:
        raise ValueError(f"{name}: W must be ({n_features}, n_outputs), got {W.shape}")
    b = np.ascontiguousarray(b, dtype=np.float64)
    if b.shape != (W.shape[1],):
        raise ValueError(f"{name}: b must be ({W.shape[1]},), got {b.shape}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.shape != (n_samples,):
        raise ValueError(f"{name}: y must be ({n_samples},), got {y.shape}")
    top = 1 if (kind == KIND_OVR and W.shape[1] == 1) else W.shape[1] - 1
    if n_samples and (y.min() < 0 or y.max() > top):
        raise ValueError(f"{name}: labels must lie in 0..{top}")
    rows = np.arange(n_samples, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= n_samples:
        raise ValueError(f"{name}: rows must be a non-empty 1-D array of indices into X")
    with np.errstate(over="ignore", invalid="ignore"):    # a diverging W shows up as a non-finite loss
        WT = np.ascontiguousarray(W.T, dtype=np.float64 if X.dtype == np.float64 else np.float32)
    return X, y, WT, b, rows


def _linear_call(X, y, W, b, rows, grad, kind, name):
    X, y, WT, b, rows = _check_linear(X, y, W, b, rows, kind, name)
    n_chunks = _n_chunks(rows.size)
    gb, losses, hits = np.zeros((n_chunks, WT.shape[0])), np.zeros(n_chunks), np.zeros(n_chunks, np.int64)
    parallel = rows.size >= _PARALLEL_MIN_ROWS   # small batches on one thread (same chunks, same numbers)
    run = _blocked if X.dtype == np.uint8 else _streamed
    G = run(X, y, WT, b, rows, bool(grad), kind, gb, losses, hits, parallel)
    # chunks summed in a fixed order, in float64
    loss = float(losses.sum())
    if not grad:
        return LossGrad(loss, int(hits.sum()), None, None)
    return LossGrad(loss, int(hits.sum()), G, gb.sum(axis=0))


def _streamed(X, y, WT, b, rows, grad, kind, gb, losses, hits, parallel):
    """`fused_rows` over the chunks; returns Σ_chunks G as (n_features, k) float64 (empty without grad)."""
    n_outputs, n_features = WT.shape
    G = np.zeros((losses.size, n_outputs, n_features if grad else 0), WT.dtype)
    kernel = fused_rows.loss_grad_chunks if parallel else fused_rows.loss_grad_chunks_serial
    kernel(X, rows, WT, b, y, kind, grad, G, gb, losses, hits, _LOGIT_ROWS)
    return G.sum(axis=0, dtype=np.float64).T.copy()


def _blocked(X, y, WT, b, rows, grad, kind, gb, losses, hits, parallel):
    """`fused_blocks` over the chunks, Wᵀ and G slice-major; returns Σ_chunks G as (n_features, k) float64."""
    n_outputs, n_features = WT.shape
    n_slices, width, block_rows = fused_blocks.block_shape(n_features, n_outputs, WT.itemsize)
    padded = np.zeros((n_outputs, n_slices * width), WT.dtype)
    padded[:, :n_features] = WT
    WS = np.ascontiguousarray(padded.reshape(n_outputs, n_slices, width).transpose(1, 0, 2))  # (n_slices, k, width)
    GS = np.zeros((losses.size, n_slices if grad else 0, n_outputs, width), WT.dtype)
    XS = np.empty((losses.size, n_slices, block_rows, width), WT.dtype)
    kernel = fused_blocks.loss_grad_chunks if parallel else fused_blocks.loss_grad_chunks_serial
    kernel(X, rows, WS, b, y, kind, grad, GS, gb, losses, hits, XS, _LOGIT_ROWS)
    G = GS.sum(axis=0, dtype=np.float64)              # (n_slices, k, width)
    return G.transpose(0, 2, 1).reshape(-1, n_outputs)[:n_features].copy()


def softmax_cross_entropy(X, y, W, b, rows=None, grad=True) -> LossGrad:
    """Multinomial cross-entropy of scores X[rows] @ W + b against class indices y, fused with its gradient.

    X (n_samples, n_features) uint8/float32/float64; y (n_samples,) int in 0..n_classes−1;
    W (n_features, n_classes); b (n_classes,); rows: optional (m,) indices of the rows to
    use (all rows by default; a mini-batch without copying X). Logits are accumulated in
    float32 (float64 for float64 X), the loss and the gradient's chunk sums in float64.
    """
    return _linear_call(X, y, W, b, rows, grad, KIND_SOFTMAX, "softmax_cross_entropy")


def ovr_cross_entropy(X, y, W, b, rows=None, grad=True) -> LossGrad:
    """Sum over outputs of the binary cross-entropy of σ(X[rows] @ W + b), fused with its gradient.

    One output column (n_outputs = 1): binary logistic regression, y in {0, 1}.
    n_outputs = n_classes ≥ 2: one-vs-rest, column c has target [y = c].
    Shapes and dtypes as in `softmax_cross_entropy`; a prediction is correct when
    s > 0 matches y (one output) or argmax_c s_c = y.
    """
    return _linear_call(X, y, W, b, rows, grad, KIND_OVR, "ovr_cross_entropy")
