"""Fused loss + gradient, row-streaming form: four rows at a time over all features (used for float X).

Inside a chunk rows go four at a time and classes five at a time: the logits of 2 rows × 5
classes stay in 10 vector accumulators (AVX2's 16 registers), or of all 4 rows × 5 classes in 20
(AVX-512's 32: `logit_rows`), while the loop over features loads each feature of the rows and
each weight of the 5 classes once; the gradient update G += Rᵀx reuses the four rows while they
are in cache. Wᵀ and G stream through the L2 cache. On wide float32 rows (22,699 × 5,000) this
beat the slice-blocked form of `fused_blocks` (BENCHMARKS.md), which wins on uint8 pixels.
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.residuals import FASTMATH, block_residuals
from mnistlr.learn.kernels.setup import njit, prange

CLASS_BLOCK = 5


@njit(cache=True, fastmath=FASTMATH)
def _logits2x5(xa, xb, WT, c0, S, r0):
    """S[r0+r, c0+q] = x_r·WT[c0+q] for 2 rows x_a, x_b and 5 classes q < 5, accumulated in WT's dtype."""
    t = WT.dtype.type
    w0, w1, w2, w3, w4 = WT[c0], WT[c0 + 1], WT[c0 + 2], WT[c0 + 3], WT[c0 + 4]
    a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = t(0.0)
    for j in range(w0.size):
        va, vb = t(xa[j]), t(xb[j])
        u0, u1, u2, u3, u4 = w0[j], w1[j], w2[j], w3[j], w4[j]
        # s_rc += x_rj · w_jc for the 2 × 5 block
        a0 += va * u0; a1 += va * u1; a2 += va * u2; a3 += va * u3; a4 += va * u4  # noqa: E702
        b0 += vb * u0; b1 += vb * u1; b2 += vb * u2; b3 += vb * u3; b4 += vb * u4  # noqa: E702
    S[r0, c0], S[r0, c0 + 1], S[r0, c0 + 2], S[r0, c0 + 3], S[r0, c0 + 4] = a0, a1, a2, a3, a4
    S[r0 + 1, c0], S[r0 + 1, c0 + 1], S[r0 + 1, c0 + 2], S[r0 + 1, c0 + 3], S[r0 + 1, c0 + 4] = b0, b1, b2, b3, b4


@njit(cache=True, fastmath=FASTMATH)
def _logits4x5(x0, x1, x2, x3, WT, c0, S):
    """S[r, c0+q] = x_r·WT[c0+q] for the 4 rows x_r and 5 classes q < 5, accumulated in WT's dtype."""
    t = WT.dtype.type
    w0, w1, w2, w3, w4 = WT[c0], WT[c0 + 1], WT[c0 + 2], WT[c0 + 3], WT[c0 + 4]
    a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = t(0.0)
    e0 = e1 = e2 = e3 = e4 = d0 = d1 = d2 = d3 = d4 = t(0.0)
    for j in range(w0.size):
        va, vb, vc, vd = t(x0[j]), t(x1[j]), t(x2[j]), t(x3[j])
        u0, u1, u2, u3, u4 = w0[j], w1[j], w2[j], w3[j], w4[j]
        # s_rc += x_rj · w_jc for the 4 × 5 block
        a0 += va * u0; a1 += va * u1; a2 += va * u2; a3 += va * u3; a4 += va * u4  # noqa: E702
        b0 += vb * u0; b1 += vb * u1; b2 += vb * u2; b3 += vb * u3; b4 += vb * u4  # noqa: E702
        e0 += vc * u0; e1 += vc * u1; e2 += vc * u2; e3 += vc * u3; e4 += vc * u4  # noqa: E702
        d0 += vd * u0; d1 += vd * u1; d2 += vd * u2; d3 += vd * u3; d4 += vd * u4  # noqa: E702
    S[0, c0], S[0, c0 + 1], S[0, c0 + 2], S[0, c0 + 3], S[0, c0 + 4] = a0, a1, a2, a3, a4
    S[1, c0], S[1, c0 + 1], S[1, c0 + 2], S[1, c0 + 3], S[1, c0 + 4] = b0, b1, b2, b3, b4
    S[2, c0], S[2, c0 + 1], S[2, c0 + 2], S[2, c0 + 3], S[2, c0 + 4] = e0, e1, e2, e3, e4
    S[3, c0], S[3, c0 + 1], S[3, c0 + 2], S[3, c0 + 3], S[3, c0 + 4] = d0, d1, d2, d3, d4


@njit(cache=True, fastmath=FASTMATH)
def _logits4x1(x0, x1, x2, x3, WT, c, S):
    """S[r, c] = x_r·WT[c] for 4 rows x_r and one class c."""
    t = WT.dtype.type
    w = WT[c]
    a0 = a1 = a2 = a3 = t(0.0)
    for j in range(w.size):
        # s_rc += x_rj · w_jc
        a0 += t(x0[j]) * w[j]
        a1 += t(x1[j]) * w[j]
        a2 += t(x2[j]) * w[j]
        a3 += t(x3[j]) * w[j]
    S[0, c], S[1, c], S[2, c], S[3, c] = a0, a1, a2, a3


@njit(cache=True, fastmath=FASTMATH)
def _accumulate4x5(x0, x1, x2, x3, R, c0, G):
    """G[c0+q] += Σ_r R[r, c0+q]·x_r for 4 rows and 5 classes (R rows past the block are 0)."""
    t = G.dtype.type
    r00, r01, r02, r03, r04 = t(R[0, c0]), t(R[0, c0 + 1]), t(R[0, c0 + 2]), t(R[0, c0 + 3]), t(R[0, c0 + 4])
    r10, r11, r12, r13, r14 = t(R[1, c0]), t(R[1, c0 + 1]), t(R[1, c0 + 2]), t(R[1, c0 + 3]), t(R[1, c0 + 4])
    r20, r21, r22, r23, r24 = t(R[2, c0]), t(R[2, c0 + 1]), t(R[2, c0 + 2]), t(R[2, c0 + 3]), t(R[2, c0 + 4])
    r30, r31, r32, r33, r34 = t(R[3, c0]), t(R[3, c0 + 1]), t(R[3, c0 + 2]), t(R[3, c0 + 3]), t(R[3, c0 + 4])
    g0, g1, g2, g3, g4 = G[c0], G[c0 + 1], G[c0 + 2], G[c0 + 3], G[c0 + 4]
    for j in range(g0.size):
        v0, v1, v2, v3 = t(x0[j]), t(x1[j]), t(x2[j]), t(x3[j])
        # ∂/∂W_jc Σ_r ℓ_r = Σ_r x_rj (∂ℓ_r/∂s_rc)
        g0[j] += r00 * v0 + r10 * v1 + r20 * v2 + r30 * v3
        g1[j] += r01 * v0 + r11 * v1 + r21 * v2 + r31 * v3
        g2[j] += r02 * v0 + r12 * v1 + r22 * v2 + r32 * v3
        g3[j] += r03 * v0 + r13 * v1 + r23 * v2 + r33 * v3
        g4[j] += r04 * v0 + r14 * v1 + r24 * v2 + r34 * v3


@njit(cache=True, fastmath=FASTMATH)
def _accumulate4x1(x0, x1, x2, x3, R, c, G):
    """G[c] += Σ_r R[r, c]·x_r for 4 rows and one class."""
    t = G.dtype.type
    r0, r1, r2, r3 = t(R[0, c]), t(R[1, c]), t(R[2, c]), t(R[3, c])
    g = G[c]
    for j in range(g.size):
        # ∂/∂W_jc Σ_r ℓ_r = Σ_r x_rj (∂ℓ_r/∂s_rc)
        g[j] += r0 * t(x0[j]) + r1 * t(x1[j]) + r2 * t(x2[j]) + r3 * t(x3[j])


@njit(cache=True)
def _block_logits(x0, x1, x2, x3, WT, b, S, logit_rows):
    """S (4, k) = logits x_r·WT + b of 4 rows: logit_rows (2 or 4) rows and five classes at a time
    (2 × 5 in AVX2's 16 registers: 10 % faster than a spilling 4 × 5), then the rest one by one."""
    k = WT.shape[0]
    full = k - k % CLASS_BLOCK
    for c0 in range(0, full, CLASS_BLOCK):
        if logit_rows == 4:
            _logits4x5(x0, x1, x2, x3, WT, c0, S)
        else:
            _logits2x5(x0, x1, WT, c0, S, 0)
            _logits2x5(x2, x3, WT, c0, S, 2)
    for c in range(full, k):
        _logits4x1(x0, x1, x2, x3, WT, c, S)
    for r in range(4):
        for c in range(k):
            # s = x·w + b
            S[r, c] += b[c]


@njit(cache=True)
def _block_accumulate(x0, x1, x2, x3, S, G, gb, m):
    """G += Rᵀ[x_0..x_3] and gb += Σ_r R[r] for residuals R = S's first m rows (the others zeroed)."""
    k = G.shape[0]
    for r in range(4):
        for c in range(k):
            # rows past m add nothing; residuals below 1e-30 (subnormal in float32, ~10× slower) become 0
            S[r, c] = S[r, c] if (r < m and abs(S[r, c]) >= 1e-30) else 0.0
            gb[c] += S[r, c]
    full = k - k % CLASS_BLOCK
    for c0 in range(0, full, CLASS_BLOCK):
        _accumulate4x5(x0, x1, x2, x3, S, c0, G)
    for c in range(full, k):
        _accumulate4x1(x0, x1, x2, x3, S, c, G)


@njit(cache=True)
def _loss_grad_rows(X, rows, start, end, WT, b, y, kind, want_grad, G, gb, logit_rows):
    """Σ ℓ and hits over rows[start:end], adding Σ ∂ℓ/∂Wᵀ into G (k, d) and Σ ∂ℓ/∂b into gb (k,)."""
    S = np.empty((4, WT.shape[0]), WT.dtype)   # residuals (and exp) in the weights' dtype
    loss_sum = 0.0
    n_correct = 0
    for i0 in range(start, end, 4):
        m = min(4, end - i0)
        x0 = X[rows[i0]]
        x1 = X[rows[i0 + 1]] if m > 1 else x0
        x2 = X[rows[i0 + 2]] if m > 2 else x0
        x3 = X[rows[i0 + 3]] if m > 3 else x0
        _block_logits(x0, x1, x2, x3, WT, b, S, logit_rows)
        loss_sum, n_correct = block_residuals(S, m, y, rows, i0, kind, loss_sum, n_correct)
        if want_grad:
            _block_accumulate(x0, x1, x2, x3, S, G, gb, m)
    return loss_sum, n_correct


@njit(cache=True, parallel=True)
def loss_grad_chunks(X, rows, WT, b, y, kind, want_grad, G, gb, losses, hits, logit_rows):
    """Per-chunk Σ_i ℓ(x_i W + b, y_i), hits and gradients over X[rows], chunk ch written to index ch.

    X (n, d) uint8/float32/float64; rows (m,) int64; WT (k, d) = Wᵀ, float32 or float64;
    b (k,) float64; y (n,) int64; outputs G (n_chunks, k, d) WT's dtype, gb (n_chunks, k),
    losses (n_chunks,), hits (n_chunks,) int64, all zeroed by the caller; logit_rows 2 or 4
    (`dots.block_rows()`). (Allocation stays
    outside: every array expression in a parallel function becomes another parallel loop.)
    """
    n_chunks = losses.size
    for ch in prange(n_chunks):
        losses[ch], hits[ch] = _loss_grad_rows(X, rows, ch * rows.size // n_chunks, (ch + 1) * rows.size // n_chunks,
                                               WT, b, y, kind, want_grad, G[ch], gb[ch], logit_rows)


@njit(cache=True)
def loss_grad_chunks_serial(X, rows, WT, b, y, kind, want_grad, G, gb, losses, hits, logit_rows):
    """`loss_grad_chunks` on one thread, chunk by chunk: the same numbers, without a parallel launch."""
    n_chunks = losses.size
    for ch in range(n_chunks):
        losses[ch], hits[ch] = _loss_grad_rows(X, rows, ch * rows.size // n_chunks, (ch + 1) * rows.size // n_chunks,
                                               WT, b, y, kind, want_grad, G[ch], gb[ch], logit_rows)
