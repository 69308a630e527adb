"""Row projections X·scale·W + offset (optionally through cos, for random Fourier features).

Rows are taken in tiles and the columns of W in chunks that stay in cache; zero inputs (most
of an MNIST image) are skipped. Every output is summed over the inputs in ascending order by
the same loop whatever the batch, so a row gets the same features alone or inside a block.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit, prange

_TILE_ROWS = 16        # rows that share one cached chunk of W
_CHUNK_COLS = 256      # columns of W per chunk: 784 × 256 float32 = 0.8 MB
_PARALLEL_MIN_ROWS = 512


_FAST = {"contract", "nsz", "arcp"}   # no "reassoc": each output's sum keeps its order


@njit(cache=True, fastmath=_FAST)
def _axpy(acc, a, w, width):
    """acc[:width] += a·w[:width] (vectorised over k)."""
    for k in range(width):
        acc[k] += a * w[k]


_TWO_PI = np.float32(2.0 * np.pi)
_INV_TWO_PI = np.float32(1.0 / (2.0 * np.pi))
_PI = np.float32(np.pi)
_HALF_PI = np.float32(np.pi / 2.0)
# Taylor coefficients of cos on [0, π/2] in u = x²: 1 − u/2! + u²/4! − … − u⁷/14! (error < 1e-8)
_COS_TAYLOR = tuple(np.float32((-1.0) ** k / np.prod(np.arange(1, 2 * k + 1, dtype=np.float64)))
                    for k in range(8))


@njit(cache=True, fastmath=_FAST)
def _cos(z):
    """cos(z) in float32 by branch-free reduction to [0, π/2] and a polynomial (vectorises)."""
    # x = |z − 2π·round(z/2π)| ∈ [0, π];  cos(x) = −cos(π − x) for x > π/2
    x = abs(z - _TWO_PI * np.floor(z * _INV_TWO_PI + np.float32(0.5)))
    flip = x > _HALF_PI
    x = _PI - x if flip else x
    u = x * x
    c0, c1, c2, c3, c4, c5, c6, c7 = _COS_TAYLOR
    p = c0 + u * (c1 + u * (c2 + u * (c3 + u * (c4 + u * (c5 + u * (c6 + u * c7))))))
    return -p if flip else p


@njit(cache=True, fastmath=_FAST)
def _epilogue(acc, offset, norm, cosine, row, width):
    """row = cos(acc + offset)·norm for rff, else acc + offset."""
    if cosine:
        for k in range(width):
            # φ_k = cos(z_k)·√(2/D)
            row[k] = _cos(acc[k] + offset[k]) * norm
    else:
        for k in range(width):
            row[k] = acc[k] + offset[k]


@njit(cache=True, fastmath=_FAST)
def _project_tile(X, r0, r1, W, offset, scale, norm, cosine, out):
    """out[i, :] for rows r0 ≤ i < r1 (see `project`); acc holds one row's chunk."""
    n_in, n_out = W.shape
    acc = np.empty(_CHUNK_COLS, np.float32)
    for c0 in range(0, n_out, _CHUNK_COLS):
        c1 = min(c0 + _CHUNK_COLS, n_out)
        width = c1 - c0
        for i in range(r0, r1):
            acc[:] = 0.0
            for j in range(n_in):
                v = X[i, j]
                if v != 0:
                    # acc_k += x_j·scale·W_jk, j ascending
                    _axpy(acc, np.float32(v) * scale, W[j, c0:c1], width)
            _epilogue(acc, offset[c0:c1], norm, cosine, out[i, c0:c1], width)


@njit(cache=True, parallel=True)
def _project_parallel(X, W, offset, scale, norm, cosine, out):
    n_tiles = (X.shape[0] + _TILE_ROWS - 1) // _TILE_ROWS
    for t in prange(n_tiles):
        r0 = t * _TILE_ROWS
        _project_tile(X, r0, min(r0 + _TILE_ROWS, X.shape[0]), W, offset, scale, norm, cosine, out)


@njit(cache=True)
def _project_serial(X, W, offset, scale, norm, cosine, out):
    _project_tile(X, 0, X.shape[0], W, offset, scale, norm, cosine, out)


def project(X: np.ndarray, W: np.ndarray, offset: np.ndarray, scale: float = 1.0,
            cosine_norm: float | None = None) -> np.ndarray:
    """(n, k) float32: X·scale·W + offset, or cos(X·scale·W + offset)·cosine_norm when given.

    X (n, d) uint8 or float32; W (d, k) float32; offset (k,) float32.
    """
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype not in (np.uint8, np.float32):
        raise ValueError(f"project needs a 2-D uint8/float32 array, got {X.dtype} {X.shape}")
    W = np.ascontiguousarray(W, dtype=np.float32)
    offset = np.ascontiguousarray(offset, dtype=np.float32)
    if W.ndim != 2 or W.shape[0] != X.shape[1] or offset.shape != (W.shape[1],):
        raise ValueError(f"project: W {W.shape} and offset {offset.shape} do not fit X {X.shape}")
    out = np.empty((len(X), W.shape[1]), np.float32)
    cosine = cosine_norm is not None
    kernel = _project_parallel if len(X) >= _PARALLEL_MIN_ROWS else _project_serial
    kernel(X, W, offset, np.float32(scale), np.float32(cosine_norm or 1.0), cosine, out)
    return out
