"""Fused loss + gradient, slice-blocked form (used for uint8 X): a block of rows at a time, in feature slices.

- The block's rows are copied (uint8 widened, once) into a float scratch laid out slice-major,
  (n_slices, rows, width): every feature slice of every row is a contiguous run.
- Logits S = xW, slice by slice: a slice of Wᵀ (k × width floats, ≤ 32 KB) stays in the L1 cache
  while the block's rows stream past; `logit_rows` rows × 5 classes per inner loop (`kernels.dots`):
  2 rows with AVX2's 16 registers, 4 rows with AVX-512's 32.
- While a block's logits are computed, the next block's rows are prefetched into the L2 cache
  (the widening then reads cache, not memory; with the single slice below, 19.9 → 16.6 ms per
  Fashion pass).
- After the residuals R = ∂ℓ/∂s, the gradient G += Rᵀx, slice by slice again, 8 rows × 2
  classes per inner loop with AVX-512: 8 row loads and 2 loads and stores of G for 16
  multiply-adds, one chain each (4 × 5 with two chains of two: ~20 % slower on Zen 4, its adds
  unfused); 4 rows × 2 with AVX2, whose 16 registers cannot hold the 8 × 2 block's 16 broadcast
  residuals (Fashion pass 19.5 → 17.6 ms on Zen 3, the same bits: the same additions in order).

Wᵀ and the chunks' G are slice-major too, zero-padded past the last feature.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.dots import dot2x1, dot2x5, dot4x5
from mnistlr.learn.kernels.residuals import (
    FASTMATH,
    KIND_SOFTMAX,
    block_residuals,
    softmax_block_residuals,
)
from mnistlr.learn.kernels.setup import njit, prange, prefetch

SLICE_BYTES = 32768         # a slice of Wᵀ or of G (k × width floats) fits the L1 cache (10 × 784 pixels: one slice)
BLOCK_BYTES = 262144        # a block of rows (rows × features floats) fills at most half the L2 cache
MAX_BLOCK_ROWS = 64
CLASS_BLOCK = 5             # classes per register block of the logits


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer8x2(Xs, R, r, c0, Gs):
    """Gs[c0 + q] += Σ_i R[r + i, c0 + q]·Xs[r + i] for the 8 row slices r..r+7 and 2 classes q."""
    x0, x1, x2, x3, x4, x5, x6, x7 = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3], Xs[r + 4], Xs[r + 5], Xs[r + 6], Xs[r + 7]
    g, h = Gs[c0], Gs[c0 + 1]
    p0, p1, p2, p3, p4, p5, p6, p7 = R[r, c0], R[r + 1, c0], R[r + 2, c0], R[r + 3, c0], \
        R[r + 4, c0], R[r + 5, c0], R[r + 6, c0], R[r + 7, c0]
    q0, q1, q2, q3, q4, q5, q6, q7 = R[r, c0 + 1], R[r + 1, c0 + 1], R[r + 2, c0 + 1], R[r + 3, c0 + 1], \
        R[r + 4, c0 + 1], R[r + 5, c0 + 1], R[r + 6, c0 + 1], R[r + 7, c0 + 1]
    for j in range(g.size):
        u0, u1, u2, u3, u4, u5, u6, u7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic)
        g[j] = g[j] + p0 * u0 + p1 * u1 + p2 * u2 + p3 * u3 + p4 * u4 + p5 * u5 + p6 * u6 + p7 * u7
        h[j] = h[j] + q0 * u0 + q1 * u1 + q2 * u2 + q3 * u3 + q4 * u4 + q5 * u5 + q6 * u6 + q7 * u7


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer4x2(Xs, R, r, c0, Gs):
    """Gs[c0 + q] += Σ_i R[r + i, c0 + q]·Xs[r + i] for the 4 row slices r..r+3 and 2 classes q."""
    x0, x1, x2, x3 = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3]
    g, h = Gs[c0], Gs[c0 + 1]
    p0, p1, p2, p3 = R[r, c0], R[r + 1, c0], R[r + 2, c0], R[r + 3, c0]
    q0, q1, q2, q3 = R[r, c0 + 1], R[r + 1, c0 + 1], R[r + 2, c0 + 1], R[r + 3, c0 + 1]
    for j in range(g.size):
        u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic)
        g[j] = g[j] + p0 * u0 + p1 * u1 + p2 * u2 + p3 * u3
        h[j] = h[j] + q0 * u0 + q1 * u1 + q2 * u2 + q3 * u3


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer4x1(Xs, R, r, c, Gs):
    """Gs[c] += Σ_i R[r + i, c]·Xs[r + i] for the 4 row slices r..r+3 and one class c."""
    x0, x1, x2, x3 = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3]
    p0, p1, p2, p3 = R[r, c], R[r + 1, c], R[r + 2, c], R[r + 3, c]
    g = Gs[c]
    for j in range(g.size):
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic)
        g[j] = g[j] + p0 * x0[j] + p1 * x1[j] + p2 * x2[j] + p3 * x3[j]


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer8x1(Xs, R, r, c, Gs):
    """Gs[c] += Σ_i R[r + i, c]·Xs[r + i] for the 8 row slices r..r+7 and one class c."""
    x0, x1, x2, x3, x4, x5, x6, x7 = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3], Xs[r + 4], Xs[r + 5], Xs[r + 6], Xs[r + 7]
    p0, p1, p2, p3, p4, p5, p6, p7 = R[r, c], R[r + 1, c], R[r + 2, c], R[r + 3, c], \
        R[r + 4, c], R[r + 5, c], R[r + 6, c], R[r + 7, c]
    g = Gs[c]
    for j in range(g.size):
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic)
        g[j] = g[j] + p0 * x0[j] + p1 * x1[j] + p2 * x2[j] + p3 * x3[j] + p4 * x4[j] + p5 * x5[j] + p6 * x6[j] + p7 * x7[j]


@njit(cache=True)
def _gather_block(X, rows, i0, m, XS):
    """XS[s, i] = slice s of row X[rows[i0 + i]] in XS's dtype, zero past the last feature and for i ≥ m."""
    n_slices, n_rows, width = XS.shape
    d = X.shape[1]
    for i in range(n_rows):
        src = X[rows[i0 + min(i, m - 1)]]
        for s in range(n_slices):
            dst = XS[s, i]
            n = max(0, min(width, d - s * width)) if i < m else 0
            part = src[s * width: s * width + n]
            for j in range(n):
                dst[j] = part[j]
            for j in range(n, width):
                dst[j] = 0.0


@njit(cache=True, inline="always")
def _prefetch_rows(X, rows, i, n, lo, hi):
    """Ask for the cache lines of X[rows[i + q], lo:hi] for q < n (the next block's, while this one computes)."""
    step = max(1, 64 // X.itemsize)
    for q in range(n):
        row = X[rows[i + q]]
        for j in range(lo, min(hi, row.size), step):
            prefetch(row, j)


@njit(cache=True, fastmath=FASTMATH)   # the register blocks inline here, with these flags
def _block_logits(XS, m, WS, b, S, logit_rows, X, rows, next_i, next_m):
    """S[:m] = logits x_i·W + b of the block's first m rows (XS (n_slices, rows, width), WS (n_slices, k, width)).

    logit_rows (2 or 4): rows per register block of the 5-class loops (rows past m are computed
    on the scratch's zero rows and never read). X, rows, next_i, next_m: the next block's rows
    rows[next_i:next_i + next_m] of X, prefetched slice by slice along the way.
    """
    n_slices, k = WS.shape[0], WS.shape[1]
    full = k - k % CLASS_BLOCK
    S[:] = 0.0
    for s in range(n_slices):
        Xs, Ws = XS[s], WS[s]
        width = Xs.shape[1]
        if logit_rows == 4:
            for r in range(0, m + (-m) % 4, 4):
                _prefetch_rows(X, rows, next_i + r, max(0, min(4, next_m - r)), s * width, (s + 1) * width)
                for c0 in range(0, full, CLASS_BLOCK):
                    dot4x5(Xs, r, Ws, c0, S)
        else:
            for r in range(0, m, 2):
                _prefetch_rows(X, rows, next_i + r, max(0, min(2, next_m - r)), s * width, (s + 1) * width)
                for c0 in range(0, full, CLASS_BLOCK):
                    dot2x5(Xs[r], Xs[r + 1], Ws, c0, S, r)
        for r in range(0, m, 2):
            for c in range(full, k):
                dot2x1(Xs[r], Xs[r + 1], Ws, c, S, r)
    for r in range(m):
        for c in range(k):
            # s = x·w + b
            S[r, c] += b[c]


@njit(cache=True, fastmath=FASTMATH)   # the register blocks inline here, with these flags
def _block_gradient(XS, m, R, GS, gb, grad_rows):
    """GS += Rᵀx and gb += Σ_i R[i] over the block's m rows (R's other rows are zeroed first);
    grad_rows (4 or 8) rows per register block."""
    n_slices, k = GS.shape[0], GS.shape[1]
    rounded = m + (-m) % grad_rows
    for r in range(R.shape[0]):
        for c in range(k):
            # rows past m add nothing; residuals below 1e-30 (subnormal in float32, ~10× slower) become 0
            R[r, c] = R[r, c] if (r < m and abs(R[r, c]) >= 1e-30) else 0.0
            gb[c] += R[r, c]
    pairs = k - k % 2
    for s in range(n_slices):
        Xs, Gs = XS[s], GS[s]
        if grad_rows == 8:
            for r in range(0, rounded, 8):
                for c0 in range(0, pairs, 2):
                    _outer8x2(Xs, R, r, c0, Gs)
                for c in range(pairs, k):
                    _outer8x1(Xs, R, r, c, Gs)
        else:
            for r in range(0, rounded, 4):
                for c0 in range(0, pairs, 2):
                    _outer4x2(Xs, R, r, c0, Gs)
                for c in range(pairs, k):
                    _outer4x1(Xs, R, r, c, Gs)


@njit(cache=True)
def _loss_grad_rows(X, rows, start, end, WS, b, y, kind, want_grad, GS, gb, XS, logit_rows):
    """Σ ℓ and hits over rows[start:end], adding Σ ∂ℓ/∂Wᵀ into GS (n_slices, k, width) and Σ ∂ℓ/∂b into gb (k,).

    XS (n_slices, block rows, width): this chunk's scratch, in WS's dtype.
    """
    n_rows = XS.shape[1]
    S = np.empty((n_rows, WS.shape[1]), WS.dtype)   # logits, then residuals, in the weights' dtype
    bits, shifted_y = np.empty(n_rows * WS.shape[1], np.int32), np.empty(n_rows)   # the block softmax's scratch
    loss_sum = 0.0
    n_correct = 0
    for i0 in range(start, end, n_rows):
        m = min(n_rows, end - i0)
        _gather_block(X, rows, i0, m, XS)
        _block_logits(XS, m, WS, b, S, logit_rows, X, rows, i0 + n_rows, min(n_rows, end - i0 - n_rows))
        if kind == KIND_SOFTMAX:   # S float32 (uint8 X always has float32 weights here)
            loss_sum, n_correct = softmax_block_residuals(S, m, y, rows, i0, loss_sum, n_correct, bits, shifted_y)
        else:
            loss_sum, n_correct = block_residuals(S, m, y, rows, i0, kind, loss_sum, n_correct)
        if want_grad:
            _block_gradient(XS, m, S, GS, gb, 2 * logit_rows)   # AVX2 4 rows, AVX-512 8
    return loss_sum, n_correct


@njit(cache=True, parallel=True)
def loss_grad_chunks(X, rows, WS, b, y, kind, want_grad, GS, gb, losses, hits, XS, logit_rows):
    """Per-chunk Σ_i ℓ(x_i W + b, y_i), hits and gradients over X[rows], chunk ch written to index ch.

    X (n, d) uint8/float32/float64; rows (m,) int64; WS (n_slices, k, width) = Wᵀ slice-major,
    zero-padded, float32 or float64; b (k,) float64; y (n,) int64; outputs GS (n_chunks, n_slices,
    k, width) WS's dtype, gb (n_chunks, k), losses (n_chunks,), hits (n_chunks,) int64, all zeroed
    by the caller; XS (n_chunks, n_slices, block rows, width) scratch; logit_rows 2 or 4
    (`dots.block_rows()`: 4 where the target has 32 vector registers). (Allocation stays outside:
    every array expression in a parallel function becomes another parallel loop.)
    """
    n_chunks = losses.size
    for ch in prange(n_chunks):
        losses[ch], hits[ch] = _loss_grad_rows(X, rows, ch * rows.size // n_chunks, (ch + 1) * rows.size // n_chunks,
                                               WS, b, y, kind, want_grad, GS[ch], gb[ch], XS[ch], logit_rows)


@njit(cache=True)
def loss_grad_chunks_serial(X, rows, WS, b, y, kind, want_grad, GS, gb, losses, hits, XS, logit_rows):
    """`loss_grad_chunks` on one thread, chunk by chunk: the same numbers, without a parallel launch."""
    n_chunks = losses.size
    for ch in range(n_chunks):
        losses[ch], hits[ch] = _loss_grad_rows(X, rows, ch * rows.size // n_chunks, (ch + 1) * rows.size // n_chunks,
                                               WS, b, y, kind, want_grad, GS[ch], gb[ch], XS[ch], logit_rows)


def block_shape(n_features: int, n_outputs: int, itemsize: int) -> tuple[int, int, int]:
    """(n_slices, width, block rows): k × width floats within SLICE_BYTES (width a multiple of 16, slices of
    near-equal width); block rows a multiple of 8 with rows × features floats within BLOCK_BYTES.

    A width of whole AVX-512 vectors leaves the inner loops no scalar remainder (2 × 392 floats
    per row: ~7 % slower than 1 × 784 on Zen 4, BENCHMARKS.md, thirteenth session).
    """
    most = max(16, SLICE_BYTES // (itemsize * n_outputs) // 16 * 16)
    n_slices = -(-n_features // most)
    width = -(-n_features // (16 * n_slices)) * 16
    rows = BLOCK_BYTES // (itemsize * n_slices * width) // 8 * 8
    return n_slices, width, max(8, min(MAX_BLOCK_ROWS, rows))
