"""Fused loss + gradient, slice-blocked form (used for uint8 X): a block of rows at a time, in feature slices.

- The block's rows are copied (uint8 widened, once) into a float scratch laid out slice-major,
  (n_slices, rows, width): every feature slice of every row is a contiguous run.
- Logits S = xW, slice by slice: a slice of Wᵀ (k × width floats, ≤ 16 KB) stays in the L1 cache
  while the block's rows stream past; `logit_rows` rows × 5 classes per inner loop: 2 rows (10
  vector accumulators, 7 loads per 10 multiply-adds: no spills with AVX2's 16 registers) or, with
  AVX-512's 32 registers, 4 rows (20 accumulators, 9 loads per 20 multiply-adds).
- After the residuals R = ∂ℓ/∂s, the gradient G += Rᵀx, slice by slice again, 4 rows × 5
  classes per inner loop: 4 row loads and 5 loads and stores of G for 20 multiply-adds.

Wᵀ and the chunks' G are slice-major too, zero-padded past the last feature.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.residuals import (
    FASTMATH,
    KIND_SOFTMAX,
    block_residuals,
    softmax_block_residuals,
)
from mnistlr.learn.kernels.setup import njit, prange

SLICE_BYTES = 16384         # a slice of Wᵀ or of G (k × width floats) fills at most half the L1 cache
BLOCK_BYTES = 262144        # a block of rows (rows × features floats) fills at most half the L2 cache
MAX_BLOCK_ROWS = 64
CLASS_BLOCK = 5             # classes per register block of the logits and of the gradient



@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot2x5(xa, xb, Ws, c0, S, r):
    """S[r + i, c0 + q] += x_i·Ws[c0 + q] for the 2 row slices x_a, x_b and 5 classes q."""
    t = S.dtype.type
    w0, w1, w2, w3, w4 = Ws[c0], Ws[c0 + 1], Ws[c0 + 2], Ws[c0 + 3], Ws[c0 + 4]
    a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = t(0.0)
    for j in range(xa.size):
        u, v = xa[j], xb[j]
        # s_ic += x_ij · w_jc for the 2 × 5 block
        a0 += u * w0[j]; a1 += u * w1[j]; a2 += u * w2[j]; a3 += u * w3[j]; a4 += u * w4[j]  # noqa: E702
        b0 += v * w0[j]; b1 += v * w1[j]; b2 += v * w2[j]; b3 += v * w3[j]; b4 += v * w4[j]  # noqa: E702
    S[r, c0] += a0; S[r, c0 + 1] += a1; S[r, c0 + 2] += a2; S[r, c0 + 3] += a3; S[r, c0 + 4] += a4  # noqa: E702
    r += 1
    S[r, c0] += b0; S[r, c0 + 1] += b1; S[r, c0 + 2] += b2; S[r, c0 + 3] += b3; S[r, c0 + 4] += b4  # noqa: E702


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot4x5(Xs, r, Ws, c0, S):
    """S[r + i, c0 + q] += x_{r+i}·Ws[c0 + q] for the 4 row slices r..r+3 and 5 classes q."""
    t = S.dtype.type
    xa, xb, xc, xd = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3]
    w0, w1, w2, w3, w4 = Ws[c0], Ws[c0 + 1], Ws[c0 + 2], Ws[c0 + 3], Ws[c0 + 4]
    a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = t(0.0)
    e0 = e1 = e2 = e3 = e4 = d0 = d1 = d2 = d3 = d4 = t(0.0)
    for j in range(xa.size):
        u0, u1, u2, u3 = xa[j], xb[j], xc[j], xd[j]
        v0, v1, v2, v3, v4 = w0[j], w1[j], w2[j], w3[j], w4[j]
        # s_ic += x_ij · w_jc for the 4 × 5 block
        a0 += u0 * v0; a1 += u0 * v1; a2 += u0 * v2; a3 += u0 * v3; a4 += u0 * v4  # noqa: E702
        b0 += u1 * v0; b1 += u1 * v1; b2 += u1 * v2; b3 += u1 * v3; b4 += u1 * v4  # noqa: E702
        e0 += u2 * v0; e1 += u2 * v1; e2 += u2 * v2; e3 += u2 * v3; e4 += u2 * v4  # noqa: E702
        d0 += u3 * v0; d1 += u3 * v1; d2 += u3 * v2; d3 += u3 * v3; d4 += u3 * v4  # noqa: E702
    S[r, c0] += a0; S[r, c0 + 1] += a1; S[r, c0 + 2] += a2; S[r, c0 + 3] += a3; S[r, c0 + 4] += a4  # noqa: E702
    r += 1
    S[r, c0] += b0; S[r, c0 + 1] += b1; S[r, c0 + 2] += b2; S[r, c0 + 3] += b3; S[r, c0 + 4] += b4  # noqa: E702
    r += 1
    S[r, c0] += e0; S[r, c0 + 1] += e1; S[r, c0 + 2] += e2; S[r, c0 + 3] += e3; S[r, c0 + 4] += e4  # noqa: E702
    r += 1
    S[r, c0] += d0; S[r, c0 + 1] += d1; S[r, c0 + 2] += d2; S[r, c0 + 3] += d3; S[r, c0 + 4] += d4  # noqa: E702


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot2x1(xa, xb, Ws, c, S, r):
    """S[r + i, c] += x_i·Ws[c] for the 2 row slices x_a, x_b and one class c."""
    t = S.dtype.type
    w = Ws[c]
    a = b = t(0.0)
    for j in range(xa.size):
        # s_ic += x_ij · w_jc
        a += xa[j] * w[j]
        b += xb[j] * w[j]
    S[r, c] += a
    S[r + 1, c] += b


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer4x5(Xs, R, r, c0, Gs):
    """Gs[c0 + q] += Σ_i R[r + i, c0 + q]·Xs[r + i] for the 4 row slices r..r+3 and 5 classes q."""
    xa, xb, xc, xd = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3]
    g0, g1, g2, g3, g4 = Gs[c0], Gs[c0 + 1], Gs[c0 + 2], Gs[c0 + 3], Gs[c0 + 4]
    a0, a1, a2, a3, a4 = R[r, c0], R[r, c0 + 1], R[r, c0 + 2], R[r, c0 + 3], R[r, c0 + 4]
    b0, b1, b2, b3, b4 = R[r + 1, c0], R[r + 1, c0 + 1], R[r + 1, c0 + 2], R[r + 1, c0 + 3], R[r + 1, c0 + 4]
    e0, e1, e2, e3, e4 = R[r + 2, c0], R[r + 2, c0 + 1], R[r + 2, c0 + 2], R[r + 2, c0 + 3], R[r + 2, c0 + 4]
    d0, d1, d2, d3, d4 = R[r + 3, c0], R[r + 3, c0 + 1], R[r + 3, c0 + 2], R[r + 3, c0 + 3], R[r + 3, c0 + 4]
    for j in range(g0.size):
        u0, u1, u2, u3 = xa[j], xb[j], xc[j], xd[j]
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic), as two chains of two (shorter latency than one of four)
        g0[j] = (g0[j] + a0 * u0 + b0 * u1) + (e0 * u2 + d0 * u3)
        g1[j] = (g1[j] + a1 * u0 + b1 * u1) + (e1 * u2 + d1 * u3)
        g2[j] = (g2[j] + a2 * u0 + b2 * u1) + (e2 * u2 + d2 * u3)
        g3[j] = (g3[j] + a3 * u0 + b3 * u1) + (e3 * u2 + d3 * u3)
        g4[j] = (g4[j] + a4 * u0 + b4 * u1) + (e4 * u2 + d4 * u3)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _outer4x1(Xs, R, r, c, Gs):
    """Gs[c] += Σ_i R[r + i, c]·Xs[r + i] for the 4 row slices r..r+3 and one class c."""
    xa, xb, xc, xd = Xs[r], Xs[r + 1], Xs[r + 2], Xs[r + 3]
    pa, pb, pc, pd = R[r, c], R[r + 1, c], R[r + 2, c], R[r + 3, c]
    g = Gs[c]
    for j in range(g.size):
        # ∂/∂W_jc Σ_i ℓ_i = Σ_i x_ij (∂ℓ_i/∂s_ic)
        g[j] = (g[j] + pa * xa[j] + pb * xb[j]) + (pc * xc[j] + pd * xd[j])


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


@njit(cache=True, fastmath=FASTMATH)   # the register blocks inline here, with these flags
def _block_logits(XS, m, WS, b, S, logit_rows):
    """S[:m] = logits x_i·W + b of the block's first m rows (XS (n_slices, rows, width), WS (n_slices, k, width)).

    logit_rows (2 or 4): rows per register block of the 5-class loops (rows past m are computed
    on the scratch's zero rows and never read).
    """
    n_slices, k = WS.shape[0], WS.shape[1]
    full = k - k % CLASS_BLOCK
    S[:] = 0.0
    for s in range(n_slices):
        Xs, Ws = XS[s], WS[s]
        if logit_rows == 4:
            for r in range(0, m + (-m) % 4, 4):
                for c0 in range(0, full, CLASS_BLOCK):
                    _dot4x5(Xs, r, Ws, c0, S)
        else:
            for r in range(0, m, 2):
                for c0 in range(0, full, CLASS_BLOCK):
                    _dot2x5(Xs[r], Xs[r + 1], Ws, c0, S, r)
        for r in range(0, m, 2):
            for c in range(full, k):
                _dot2x1(Xs[r], Xs[r + 1], Ws, c, S, r)
    for r in range(m):
        for c in range(k):
            # s = x·w + b
            S[r, c] += b[c]


@njit(cache=True, fastmath=FASTMATH)   # the register blocks inline here, with these flags
def _block_gradient(XS, m, R, GS, gb):
    """GS += Rᵀx and gb += Σ_i R[i] over the block's m rows (R's other rows are zeroed first)."""
    n_slices, k = GS.shape[0], GS.shape[1]
    m4 = m + (-m) % 4
    for r in range(R.shape[0]):
        for c in range(k):
            # rows past m add nothing; residuals below 1e-30 (subnormal in float32, ~10× slower) become 0
            R[r, c] = R[r, c] if (r < m and abs(R[r, c]) >= 1e-30) else 0.0
            gb[c] += R[r, c]
    full = k - k % CLASS_BLOCK
    for s in range(n_slices):
        Xs, Gs = XS[s], GS[s]
        for r in range(0, m4, 4):
            for c0 in range(0, full, CLASS_BLOCK):
                _outer4x5(Xs, R, r, c0, Gs)
            for c in range(full, k):
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
        _block_logits(XS, m, WS, b, S, logit_rows)
        if kind == KIND_SOFTMAX:   # S float32 (uint8 X always has float32 weights here)
            loss_sum, n_correct = softmax_block_residuals(S, m, y, rows, i0, loss_sum, n_correct, bits, shifted_y)
        else:
            loss_sum, n_correct = block_residuals(S, m, y, rows, i0, kind, loss_sum, n_correct)
        if want_grad:
            _block_gradient(XS, m, S, GS, gb)
    return loss_sum, n_correct


@njit(cache=True, parallel=True)
def loss_grad_chunks(X, rows, WS, b, y, kind, want_grad, GS, gb, losses, hits, XS, logit_rows):
    """Per-chunk Σ_i ℓ(x_i W + b, y_i), hits and gradients over X[rows], chunk ch written to index ch.

    X (n, d) uint8/float32/float64; rows (m,) int64; WS (n_slices, k, width) = Wᵀ slice-major,
    zero-padded, float32 or float64; b (k,) float64; y (n,) int64; outputs GS (n_chunks, n_slices,
    k, width) WS's dtype, gb (n_chunks, k), losses (n_chunks,), hits (n_chunks,) int64, all zeroed
    by the caller; XS (n_chunks, n_slices, block rows, width) scratch; logit_rows 2 or 4
    (`logit_rows()`: 4 where the target has 32 vector registers). (Allocation stays outside:
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


def logit_rows() -> int:
    """Rows per register block of the logits: 4 (20 accumulators) with AVX-512's 32 vector registers, else 2.

    On AVX2 (16 registers) the 4-row block spills: 53–64 against 37–46 ms per 22,699 rows
    (BENCHMARKS.md, issue 18, fifth session).
    """
    from mnistlr.learn.kernels.setup import vector_registers

    return 4 if vector_registers() >= 32 else 2


def block_shape(n_features: int, n_outputs: int, itemsize: int) -> tuple[int, int, int]:
    """(n_slices, width, block rows): k × width floats within SLICE_BYTES (width a multiple of 8, slices of
    near-equal width); block rows a multiple of 4 with rows × features floats within BLOCK_BYTES."""
    most = max(8, SLICE_BYTES // (itemsize * n_outputs) // 8 * 8)
    n_slices = -(-n_features // most)
    width = -(-n_features // (8 * n_slices)) * 8
    rows = BLOCK_BYTES // (itemsize * n_slices * width) // 4 * 4
    return n_slices, width, max(4, min(MAX_BLOCK_ROWS, rows))
