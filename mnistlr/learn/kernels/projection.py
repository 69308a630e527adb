"""Row projections X·scale·W + offset (optionally through cos, for random Fourier features), by BLAS.

Every sum Σ_j x_j·W_jk is made exact, so BLAS's order of summation (which depends on a row's
position in its block, the block's size and the thread count) cannot change a bit, and a row
gets the same features alone or in any batch:

- uint8 rows and W on its float32 grid (W = K·2^−e per column, integers K with
  255·Σ_j|K_jk| < 2^24; `snap_to_float32_grid`, which rff on pixels draws): every partial sum is
  a multiple of 2^−e below 2^(24−e), exact in float32, so sgemm runs at full speed;
- uint8 rows and any other W: W rounded to K·2^−e with 255·Σ_j|K_jk| < 2^53, exact in float64;
- float rows and W on its float32 grid for them (2^B·Σ_j|K_jk| < 2^24, B = `float32_row_bits`:
  12 for 50 inputs, d ≤ 128; `snap_to_float32_grid(W, pixels=False)`, which rff after pca:K
  draws): each row rounded on its own grid, x = q·2^−a (integers |q| ≤ 2^B), then exact in
  float32 (sgemm);
- float rows and any other W (models saved before): rows rounded to B = `row_bits` (24 for 50
  inputs, 22 for 784) and W to K·2^−e with 2^B·Σ_j|K_jk| < 2^53: exact in float64.

Scaling, offset and cos then act element by element (NumPy's float32 cos gives an element the
same bits wherever it sits). Blocks of rows run on up to two threads, BLAS on one thread each.
"""

from __future__ import annotations

import threading

import numpy as np

from mnistlr.learn.kernels.blas import blas_on_one_thread
from mnistlr.learn.kernels.threads import numba_ready, run_blocks

_THREAD_ROWS = 512     # rows per BLAS call (512 × 5,000 float32 sums: 10 MB)
_PIXEL_MAX = 255.0
_DENSE_SHARE = 0.9     # pixels in use above which a block's product takes them all
# nonzero share of a block's pixels in use below which `sparse_sums` beats sgemm (MNIST, 0.26: 0.53
# against 0.75 s for 22,699 rows × 5,000 features; Fashion, 0.52: 1.3 against 1.0 s; even at ~0.37)
SPARSE_SHARE = 0.3
FLOAT32_MAX_INPUTS = 128   # float rows of more inputs keep < 11 bits on the float32 path: float64


def grid_exponents(W: np.ndarray, input_max: float, mantissa_bits: int) -> np.ndarray:
    """e (k,) int64 per column of W (d, k): the largest e with input_max·(Σ_j|W_jk|·2^e + d) < 2^bits.

    Then |rint(W·2^e)| sums below 2^bits/input_max: every partial sum of inputs |x| ≤ input_max
    times those integers is an exact integer in a float of *mantissa_bits* bits.
    """
    W = np.asarray(W)
    room = 2.0 ** mantissa_bits / input_max - W.shape[0]
    # Σ_j|W_jk| in float64, row after row (float32 W is not copied to float64 first: the same sums)
    column_sums = np.abs(W).sum(axis=0, dtype=np.float64)
    safe = np.where(column_sums > 0, column_sums, 1.0)
    # 2^e ≤ room / Σ_j|W_jk|
    return np.where(column_sums > 0, np.floor(np.log2(room / safe)), 0).astype(np.int64)


def float32_row_bits(n_in: int) -> int:
    """Bits B a float row keeps for an exact float32 product (d = 50: 12, d = 128: 11): 24 less
    log2(d) for the sums and 6 for W's own steps, so W ~ N(0, σ²) snapped moves by steps ≤ σ/20."""
    return 18 - int(np.ceil(np.log2(max(n_in, 2))))


def float_rows_fit_float32(n_in: int) -> bool:
    """Whether float rows of n_in inputs may take the float32 path (they keep ≥ 11 bits there)."""
    return n_in <= FLOAT32_MAX_INPUTS


def _float32_input_max(n_in: int, pixels: bool) -> float:
    """The largest |input| of the float32 path: 255 for pixels, 2^B for float rows on their grid."""
    return _PIXEL_MAX if pixels else 2.0 ** float32_row_bits(n_in)


def snap_to_float32_grid(W: np.ndarray, pixels: bool = True) -> np.ndarray:
    """W (d, k) rounded to a float32 grid on which rows project exactly in float32 (float32): uint8
    rows (pixels), or float rows rounded to `float32_row_bits` bits (pixels=False, d ≤ 128).

    One bit below `grid_exponents`' limit, so the snapped W finds its own grid again.
    """
    if not (pixels or float_rows_fit_float32(np.shape(W)[0])):
        raise ValueError(f"float rows of {np.shape(W)[0]} inputs (> {FLOAT32_MAX_INPUTS}) have no float32 grid")
    W = np.asarray(W)
    exponent = grid_exponents(W, _float32_input_max(W.shape[0], pixels), 24) - 1
    if W.dtype == np.float32 and _exact_in_float32(W, exponent):
        # W·2^e, its rint and K·2^−e (products by powers of two, correctly rounded) give in float32
        # the float64 path's numbers, without a float64 copy
        return np.rint(W * _powers_of_two(exponent)) * _powers_of_two(-exponent)
    return np.ldexp(np.rint(np.ldexp(np.asarray(W, np.float64), exponent)), -exponent).astype(np.float32)


def on_float32_grid(W: np.ndarray, pixels: bool = True) -> bool:
    """True when W (d, k) float32 lies on its float32 grid for uint8 rows (pixels) or float rows:
    they then project exactly in float32."""
    if not (pixels or float_rows_fit_float32(np.shape(W)[0])):
        return False
    W = np.asarray(W)
    exponent = grid_exponents(W, _float32_input_max(W.shape[0], pixels), 24)
    if W.dtype == np.float32 and _exact_in_float32(W, exponent):
        K32 = W * _powers_of_two(exponent)
        # no entry flushed to zero: K in float32 is then an integer exactly when the float64 one is
        if not np.any((K32 == 0) & (W != 0)):
            return bool(np.array_equal(K32, np.rint(K32)))
    K = np.ldexp(np.asarray(W, np.float64), exponent)
    return bool(np.array_equal(K, np.rint(K)))


def _exact_in_float32(W: np.ndarray, exponent: np.ndarray) -> bool:
    """Whether W (d, k) is finite and the powers 2^±e (k,) of its grid are normal float32 numbers: then
    scaling W by them is exact, up to values below float32's normal range, whose rint is 0 either way."""
    return bool(np.abs(exponent).max(initial=0) < 126 and np.isfinite(W).all())


def _powers_of_two(exponent: np.ndarray) -> np.ndarray:
    """2^e (k,) float32 for integers |e| < 126."""
    return np.ldexp(np.float32(1), exponent.astype(np.int32))


def rounded_row_bits(W: np.ndarray) -> int | None:
    """The bits float rows keep before they meet W (d, k) on the float32 path (W on its grid for
    float rows), else None (the float64 path: rows keep 22–24 bits, about float32's own)."""
    return float32_row_bits(np.shape(W)[0]) if on_float32_grid(W, pixels=False) else None


def _float64_grid(W: np.ndarray, input_max: float) -> np.ndarray:
    """W (d, k) rounded to K·2^−e in float64: sums of inputs ≤ input_max (on an integer grid) stay exact."""
    exponent = grid_exponents(W, input_max, 53)
    return np.ldexp(np.rint(np.ldexp(np.asarray(W, np.float64), exponent)), -exponent)


def row_bits(n_in: int) -> int:
    """Bits a float row keeps on its grid: half of float64's 53 after the log2(d) the sums take
    (the other half goes to W's grid), at most float32's 24 (d = 50: 24, d = 784: 22)."""
    return min(24, (53 - int(np.ceil(np.log2(max(n_in, 2))))) // 2 + 1)


def _rows_on_grid(X: np.ndarray, bits: int, dtype: type = np.float64) -> np.ndarray:
    """X (n, d) float32 → *dtype*, each row rounded on its own grid 2^−a_i, |x|·2^a_i ≤ 2^bits
    (bits ≤ 24: the rounded rows are exact in float32 too)."""
    X = X.astype(dtype)
    top = np.abs(X).max(axis=1, initial=0.0)
    # max|x_i| < 2^E_i (frexp), a_i = bits − E_i
    exponent = bits - np.frexp(np.where(top > 0, top, 1.0))[1]
    return np.ldexp(np.rint(np.ldexp(X, exponent[:, None])), -exponent[:, None])


class Projection:
    """x ↦ x·scale·W + offset, or cos(x·scale·W + offset)·cosine_norm, for uint8 rows (pixels=True)
    or float32 rows: W (d, k), offset (k,) float32; the exact form of W is built once."""

    def __init__(self, W: np.ndarray, offset: np.ndarray, scale: float = 1.0,
                 cosine_norm: float | None = None, pixels: bool = True):
        W = np.ascontiguousarray(W, dtype=np.float32)
        offset = np.ascontiguousarray(offset, dtype=np.float32)
        if W.ndim != 2 or offset.shape != (W.shape[1],):
            raise ValueError(f"Projection: W {W.shape} and offset {offset.shape} do not fit")
        self.pixels, self.n_in = pixels, W.shape[0]
        if on_float32_grid(W, pixels):
            # Σ_j x_j·W_jk: multiples of 2^−(a_i+e_k) below 2^(24−a_i−e_k), exact in float32
            self.W, self.row_bits = W, float32_row_bits(self.n_in)
        else:
            self.row_bits = row_bits(self.n_in)
            self.W = _float64_grid(W, _PIXEL_MAX if pixels else 2.0 ** self.row_bits)
        self.scale = None if scale == 1.0 else self.W.dtype.type(scale)
        self.offset = offset.astype(self.W.dtype)
        self.cosine_norm = None if cosine_norm is None else np.float32(cosine_norm)
        self._tiles, self._tiles_lock = None, threading.Lock()

    def __call__(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, k) float32 for the rows X (n, d): uint8 when built with pixels=True, else float32;
        written into *out* when given as a C-contiguous (n, k) float32 array."""
        X = self._checked(X)
        shape = (len(X), self.W.shape[1])
        if out is None or out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            out = np.empty(shape, np.float32)
        if len(X):
            _run_blocks(self, X, out)
        return out

    def tiles(self, X: np.ndarray, tile_rows: int, consume) -> None:
        """consume(start, F) for F (m, k) float32, the rows X[start:start + m] projected, m ≤ tile_rows,
        on this thread into one reused buffer (F is overwritten by the next tile): the same rows as
        __call__ gives, with the rounding of float rows done once for all of X."""
        X = self._checked(X)
        prepared = self._prepared(X)
        buffer = np.empty((min(tile_rows, len(X)), self.W.shape[1]), np.float32)
        with blas_on_one_thread():
            for start in range(0, len(X), tile_rows):
                out = buffer[:min(tile_rows, len(X) - start)]
                self._prepared_rows(prepared[start:start + tile_rows], out)
                consume(start, out)

    def _checked(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X)
        dtype = np.uint8 if self.pixels else np.float32
        if X.ndim != 2 or X.dtype != dtype or X.shape[1] != self.n_in:
            raise ValueError(f"this projection takes (n, {self.n_in}) {np.dtype(dtype)} rows, got {X.dtype} {X.shape}")
        return X

    def _prepared(self, X: np.ndarray) -> np.ndarray:
        """The rows as the product takes them: uint8 as they are, float rows rounded on their grid."""
        return X if self.pixels else _rows_on_grid(X, self.row_bits, self.W.dtype.type)

    def rows(self, X: np.ndarray, out: np.ndarray) -> None:
        """out (n, k) float32 (C-contiguous) for the rows X (n, d)."""
        self._prepared_rows(self._prepared(X), out)

    def _prepared_rows(self, X: np.ndarray, out: np.ndarray) -> None:
        """`rows` for rows already `_prepared`."""
        # z = (x·W)·scale + offset, x·W exact; float32 sums go straight into out
        z = out if self.W.dtype == np.float32 else np.empty(out.shape)
        if self.pixels:
            self._pixel_sums(X, z)
        else:
            np.matmul(X, self.W, out=z)
        if self.scale is not None:
            z *= self.scale
        # float64 sums: the offset added in float64 and the sum rounded to float32 in one pass
        np.add(z, self.offset, out=out)
        if self.cosine_norm is not None:
            # φ_k = cos(z_k)·√(2/D)
            np.cos(out, out=out)
            out *= self.cosine_norm

    def _pixel_sums(self, X: np.ndarray, z: np.ndarray) -> None:
        """z = X·W (n, k) for uint8 rows X (n, d), leaving out the pixels that are 0 in every row, or,
        on a sparse block, every 0 pixel of each row (`sparse_sums`; the sums are exact, so dropping
        zero terms changes no bit; a quarter of MNIST's pixels are 0 in all of 512 rows, 80 % in a row)."""
        used = np.flatnonzero(X.max(axis=0, initial=0))
        if self._sparse_pays(X, len(used)):
            from mnistlr.learn.kernels.sparse_sums import sparse_sums

            sparse_sums(X, self._weight_tiles(), self.W.shape[1], z)
        elif len(used) > _DENSE_SHARE * X.shape[1]:
            np.matmul(X.astype(self.W.dtype), self.W, out=z)
        else:
            np.matmul(X[:, used].astype(self.W.dtype), self.W[used], out=z)

    def _sparse_pays(self, X: np.ndarray, n_used: int) -> bool:
        """Whether the block X (n, d) takes `sparse_sums`: W on its float32 grid, Numba imported, and
        fewer nonzero pixels than SPARSE_SHARE of the block's rows × the pixels in use (MNIST: 0.26)."""
        return (self.W.dtype == np.float32 and numba_ready()
                and np.count_nonzero(X) < SPARSE_SHARE * len(X) * n_used)

    def _weight_tiles(self) -> np.ndarray:
        """W cut into `sparse_sums.weight_tiles`, made once (the blocks' threads share them)."""
        with self._tiles_lock:
            if self._tiles is None:
                from mnistlr.learn.kernels.sparse_sums import weight_tiles

                self._tiles = weight_tiles(self.W)
            return self._tiles


def _run_blocks(plan: Projection, X: np.ndarray, out: np.ndarray) -> None:
    """plan.rows over blocks of _THREAD_ROWS rows, on up to two threads, BLAS on one thread each."""
    def work(start: int) -> None:
        rows = slice(start, start + _THREAD_ROWS)
        plan.rows(X[rows], out[rows])

    with blas_on_one_thread():
        run_blocks(range(0, len(X), _THREAD_ROWS), work)


def project(X: np.ndarray, W: np.ndarray, offset: np.ndarray, scale: float = 1.0,
            cosine_norm: float | None = None) -> np.ndarray:
    """(n, k) float32: X·scale·W + offset, or cos(X·scale·W + offset)·cosine_norm when given.

    X (n, d) uint8 or float32; W (d, k) float32; offset (k,) float32.
    """
    X = np.ascontiguousarray(X)
    if X.ndim != 2 or X.dtype not in (np.uint8, np.float32):
        raise ValueError(f"project needs a 2-D uint8/float32 array, got {X.dtype} {X.shape}")
    if np.shape(W)[0] != X.shape[1]:
        raise ValueError(f"project: W {np.shape(W)} does not fit X {X.shape}")
    return Projection(W, offset, scale, cosine_norm, X.dtype == np.uint8)(X)
