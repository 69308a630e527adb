"""Per-row pieces shared by the fused loss kernels: the loss of one row of logits and its residual ∂ℓ/∂s."""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.expf import exp_nonpositive
from mnistlr.learn.kernels.setup import njit

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}   # no nnan/ninf: divergence must stay visible
KIND_SOFTMAX = 0
KIND_OVR = 1


@njit(cache=True)
def row_max(S, r):
    """(max_c S[r, c], first c that reaches it)."""
    top = S[r, 0]
    arg = 0
    for c in range(1, S.shape[1]):
        if S[r, c] > top:
            top = S[r, c]
            arg = c
    return top, arg


@njit(cache=True)
def softmax_residual(S, r, yi):
    """Row r of S (logits) becomes p − onehot(y); returns (loss ℓ, 1 if argmax = y)."""
    k = S.shape[1]
    top, arg = row_max(S, r)
    s_y = S[r, yi]
    total = 0.0
    for c in range(k):
        e = np.exp(S[r, c] - top)
        S[r, c] = e
        total += e
    # ℓ = log Σ_c e^{s_c} − s_y = log Σ_c e^{s_c − max} + max − s_y
    loss = np.log(total) + top - s_y
    for c in range(k):
        # ∂ℓ/∂s_c = p_c − [c = y]
        S[r, c] = S[r, c] / total
    S[r, yi] -= 1.0
    return loss, 1 if arg == yi else 0


@njit(cache=True)
def ovr_residual(S, r, yi):
    """Row r of S (logits) becomes σ(s) − t with t_c = [y = c] (one output: t = y); returns (ℓ, hit)."""
    k = S.shape[1]
    loss = 0.0
    arg = row_max(S, r)[1]
    hit = (1 if S[r, 0] > 0.0 else 0) == yi if k == 1 else arg == yi
    for c in range(k):
        s = S[r, c]
        t = float(yi) if k == 1 else (1.0 if c == yi else 0.0)
        # ℓ_c = log(1 + e^s) − t·s = max(s, 0) + log1p(e^−|s|) − t·s
        loss += max(s, 0.0) + np.log1p(np.exp(-abs(s))) - t * s
        # ∂ℓ_c/∂s = σ(s) − t
        S[r, c] = (1.0 / (1.0 + np.exp(-s)) if s >= 0.0 else np.exp(s) / (1.0 + np.exp(s))) - t
    return loss, 1 if hit else 0


@njit(cache=True, inline="always")
def block_residuals(S, m, y, rows, i0, kind, loss_sum, n_correct):
    """Rows 0..m−1 of S (logits of X[rows[i0:i0+m]]) become residuals; returns the running (Σ ℓ, hits) plus theirs."""
    for r in range(m):
        yi = y[rows[i0 + r]]
        if kind == KIND_SOFTMAX:
            loss, hit = softmax_residual(S, r, yi)
        else:
            loss, hit = ovr_residual(S, r, yi)
        loss_sum += loss
        n_correct += hit
    return loss_sum, n_correct


@njit(cache=True)
def softmax_block_residuals(S, m, y, rows, i0, loss_sum, n_correct, bits, shifted_y):
    """`block_residuals` for softmax on float32 logits S (≥ m, k), the exponentials vectorised over the block.

    bits (≥ m·k,) int32 scratch for `exp_nonpositive`; shifted_y (≥ m,) float64 scratch (s_y − max per row). The same hits as `softmax_residual`; the loss
    and the residuals within a few float32 ulps of its (its exp is libm's).
    """
    k = S.shape[1]
    for r in range(m):
        top, arg = row_max(S, r)
        yi = y[rows[i0 + r]]
        n_correct += 1 if arg == yi else 0
        shifted_y[r] = S[r, yi] - top
        for c in range(k):
            S[r, c] -= top
    exp_nonpositive(S.reshape(-1), m * k, bits)
    for r in range(m):
        total = 0.0
        for c in range(k):
            total += S[r, c]
        # ℓ = log Σ_c e^{s_c − max} − (s_y − max)
        loss_sum += np.log(total) - shifted_y[r]
        inv = 1.0 / total
        for c in range(k):
            # ∂ℓ/∂s_c = p_c − [c = y]
            S[r, c] = S[r, c] * inv
        S[r, y[rows[i0 + r]]] -= 1.0
    return loss_sum, n_correct
