"""Register blocks of dot products: rows of X times rows of Wᵀ, S[r + i, c] += x_{r+i}·w_c, in S's dtype.

Each block keeps its accumulators in registers while the loop runs along the shared dimension
(vectorised by LLVM under fastmath's reassociation), then adds them into S once. 2 rows × 5
classes (10 accumulators, 7 loads per 10 multiply-adds: no spills with AVX2's 16 registers),
4 × 5 (20 accumulators, 9 loads per 20: for AVX-512's 32) and 2 × 1 for the classes past the last
multiple of 5. Used by the fused loss-gradient (float32 slices) and the exact integer scores
(float64 rows); `block_rows` says which of 2 and 4 rows suits the CPU.
"""

from __future__ import annotations

from mnistlr.learn.kernels.residuals import FASTMATH
from mnistlr.learn.kernels.setup import njit, vector_registers


def block_rows() -> int:
    """Rows per 5-class register block: 4 (20 accumulators) with AVX-512's 32 vector registers, else 2.

    On AVX2 (16 registers) the 4-row block spills: 53–64 against 37–46 ms per 22,699 rows of the
    fused loss (BENCHMARKS.md, issue 18, fifth session); 22 against 18 ms for Fashion's exact
    integer scores (Zen 3, fifteenth session).
    """
    return 4 if vector_registers() >= 32 else 2


@njit(cache=True, fastmath=FASTMATH, inline="always")
def dot2x5(xa, xb, Ws, c0, S, r):
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
def dot4x5(Xs, r, Ws, c0, S):
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
def dot2x1(xa, xb, Ws, c, S, r):
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
