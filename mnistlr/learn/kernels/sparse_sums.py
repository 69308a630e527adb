"""Row sums z = x·W over the nonzero pixels only, for W on its float32 grid (`projection`).

On W's float32 grid every partial sum of uint8 pixels times W is exact, so leaving out the
zero pixels and adding the others in any order gives the bits of the dense product. MNIST's
digits leave ~80 % of the pixels at 0: its rows take ~0.7 of sgemm's time this way, Fashion's
(half of them 0) twice sgemm's, so `projection` takes this path for sparse blocks only.

A block's nonzero pixels are listed once (their index and value, row by row); then, for each
tile of TILE_WIDTH output columns (W pre-cut into tiles of (d, TILE_WIDTH): each pixel's tile
row is contiguous), each row adds up its pixels' tile rows eight at a time into one
accumulator tile in the L1 cache (9 loads and 1 store per 8 multiply-adds).
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit

TILE_WIDTH = 512       # output columns per tile: a 2 KB accumulator, a 784 × 512 tile of W (1.6 MB)
_EXACT_MATH = {"contract", "reassoc"}   # the sums are exact: any order, fused or not, gives the same bits


@njit(cache=True, nogil=True)
def _nonzeros(X, starts, index, value):
    """starts (m + 1,) offsets, index / value (nnz,) of the nonzero entries of uint8 X (m, d), row by row."""
    n = 0
    for r in range(X.shape[0]):
        starts[r] = n
        row = X[r]
        for j in range(row.size):
            if row[j] != 0:
                index[n], value[n] = j, np.float32(row[j])
                n += 1
    starts[X.shape[0]] = n


@njit(cache=True, nogil=True, fastmath=_EXACT_MATH)
def _tile_row(tile, index, value, lo, hi, acc):
    """acc = Σ_{t in lo..hi} value[t]·tile[index[t]] (acc (width,) float32, tile (d, width))."""
    acc[:] = 0.0
    grouped = lo + (hi - lo) // 8 * 8
    for t in range(lo, grouped, 8):
        x0, x1, x2, x3 = value[t], value[t + 1], value[t + 2], value[t + 3]
        x4, x5, x6, x7 = value[t + 4], value[t + 5], value[t + 6], value[t + 7]
        w0, w1, w2, w3 = tile[index[t]], tile[index[t + 1]], tile[index[t + 2]], tile[index[t + 3]]
        w4, w5, w6, w7 = tile[index[t + 4]], tile[index[t + 5]], tile[index[t + 6]], tile[index[t + 7]]
        for c in range(acc.size):
            # z_c += Σ_{8 pixels j} x_j·W_jc
            acc[c] += (x0 * w0[c] + x1 * w1[c] + x2 * w2[c] + x3 * w3[c]) + \
                      (x4 * w4[c] + x5 * w5[c] + x6 * w6[c] + x7 * w7[c])
    for t in range(grouped, hi):
        x, w = value[t], tile[index[t]]
        for c in range(acc.size):
            acc[c] += x * w[c]


@njit(cache=True, nogil=True)
def _sparse_sums(X, tiles, n_out, out):
    """out (m, n_out) float32 = X (m, d) uint8 · W for W cut into tiles (n_tiles, d, width)."""
    width = tiles.shape[2]
    count = 0
    for r in range(X.shape[0]):
        for j in range(X.shape[1]):
            count += X[r, j] != 0
    starts = np.empty(X.shape[0] + 1, np.int64)
    index, value = np.empty(count, np.int64), np.empty(count, np.float32)
    _nonzeros(X, starts, index, value)
    acc = np.empty(width, np.float32)
    for k in range(tiles.shape[0]):
        c0 = k * width
        n = min(n_out, c0 + width) - c0
        for r in range(X.shape[0]):
            _tile_row(tiles[k], index, value, starts[r], starts[r + 1], acc)
            out[r, c0:c0 + n] = acc[:n]


def weight_tiles(W: np.ndarray, width: int = TILE_WIDTH) -> np.ndarray:
    """W (d, k) float32 cut into (⌈k/width⌉, d, width) C-contiguous tiles, the last one zero-padded."""
    d, k = W.shape
    n_tiles = -(-k // width)
    padded = np.zeros((d, n_tiles * width), np.float32)
    padded[:, :k] = W
    return np.ascontiguousarray(padded.reshape(d, n_tiles, width).transpose(1, 0, 2))


def sparse_sums(X: np.ndarray, tiles: np.ndarray, n_out: int, out: np.ndarray) -> None:
    """out (m, n_out) float32 (C-contiguous) = X·W over X's nonzero pixels, X (m, d) uint8, tiles =
    weight_tiles(W) of W (d, n_out) on its float32 grid (else the sums are not exact)."""
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype != np.uint8 or tiles.ndim != 3 or tiles.shape[1] != X.shape[1] \
            or tiles.dtype != np.float32 or not tiles.flags.c_contiguous:
        raise ValueError(f"sparse_sums: X {X.dtype} {X.shape} and tiles {tiles.dtype} {tiles.shape} do not fit")
    if out.shape != (len(X), n_out) or out.dtype != np.float32 or not out.flags.c_contiguous \
            or not 0 < n_out <= tiles.shape[0] * tiles.shape[2]:
        raise ValueError(f"sparse_sums: out {out.dtype} {out.shape} is not ({len(X)}, {n_out}) float32")
    _sparse_sums(X, tiles, n_out, out)
