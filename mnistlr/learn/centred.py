"""The L-BFGS objective in centred (and optionally whitened or split) variables.

L-BFGS runs in v = pack(W, b' = b + z̄W), z̄ the mean model input: the same objective and
optimum as in (W, b), but centred inputs condition it better. With a `learn.whitening.Whitening`
the weights are W = P U and v holds U; with l1 > 0, v = [W⁺, W⁻, b'] with W = W⁺ − W⁻ ≥ 0 parts.
`rows` (optional (m,) int64 indices) evaluates the same objective on those rows only, in the same
variables: the subsampled phases of `solvers.fit_lbfgs` start the full-data search there.
With `exact_zero` (softmax on uint8 pixels), f and ∇f at v = 0 come from the per-class pixel sums
(`objective.objective_at_zero`), which also give z̄: a zero-start fit saves its first pass. (Not
for ovr: the kernel rounds each row's binary losses to float32, log 2 to 2.7e-9 relative, too far
from an exact f(0) for the first step's comparison.)
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.means import input_mean, model_input_mean
from mnistlr.learn.objective import objective, objective_at_zero, pack, unpack

# the least slack of an exact f(0) against the fused kernel's, relative to |f(0)|
KERNEL_F_ROUNDING = 1e-11


def kernel_f_rounding(n_rows: int) -> float:
    """A bound on |f − f_kernel| / |f|, f exact and f_kernel the fused kernel's float64 sum of n row
    losses: each chunk's running sum of m rows is ≤ m·2^-53 off (4e-13 for 60,000 rows in 16 chunks),
    taken with a margin of 4 and never below KERNEL_F_ROUNDING."""
    from mnistlr.learn.kernels.fused import rows_per_chunk

    return max(KERNEL_F_ROUNDING, 4.0 * rows_per_chunk(n_rows) * 2.0 ** -53)


class CentredObjective:
    """The objective in the variables v = pack(W, b' = b + z̄W) — with a `Whitening`, v = pack(U = LᵀW, b');
    with l1 > 0, v = [W⁺, W⁻, b'] and W = W⁺ − W⁻ — for scipy; remembers the last evaluation."""

    def __init__(self, X, y, kind: str, n_outputs: int, l2: float, affine, l1: float = 0.0, whitening=None,
                 exact_zero: bool = False):
        self.X, self.y, self.kind, self.n_outputs, self.l2, self.affine = X, y, kind, n_outputs, l2, affine
        self.l1, self.n_weights = l1, X.shape[1] * n_outputs
        sums = self._class_pixel_sums() if exact_zero else None
        self.at_zero = None if sums is None else objective_at_zero(
            sums, np.bincount(y, minlength=n_outputs), kind, n_outputs, affine)
        # x̄ = (1/n) Σ_c Σ_{i in c} x_i from the exact class sums (the bits of `means.column_means`)
        self.z_mean = input_mean(X, affine) if sums is None else model_input_mean(sums.sum(axis=0) / len(X), affine)
        self.whitening = whitening if not l1 else None
        self.rows = None     # (m,) int64: evaluate on these rows only
        self.last_v, self.last = None, None

    def _class_pixel_sums(self):
        """Σ_{i in c} x_i (n_outputs, n_features) uint32 for the closed form at v = 0; None unless X is uint8
        (under 2^24 rows), the model softmax, l1 = 0 and Numba loaded (the sums' kernel)."""
        from mnistlr.learn.kernels.threads import numba_ready

        X = self.X
        if self.kind != "softmax" or self.l1 or X.dtype != np.uint8 or len(X) >= 2 ** 24 or not numba_ready():
            return None
        from mnistlr.learn.kernels.class_sums import class_pixel_sums

        return class_pixel_sums(X, self.y, self.n_outputs)

    def _exact_at(self, v) -> bool:
        """Whether fun(v) takes the closed form: v = 0 on all rows, with `exact_zero`."""
        return self.at_zero is not None and self.rows is None and not v.any()

    def start_slack(self, v) -> float:
        """How far f(v) from `fun` may lie from what the kernel would give: > 0 at an exact v = 0."""
        return kernel_f_rounding(len(self.y)) * max(abs(self.at_zero.value), 1.0) if self._exact_at(v) else 0.0

    def start(self, W, b) -> np.ndarray:
        """v for the weights (W, b): W⁺ = max(W, 0), W⁻ = max(−W, 0) when split; b' = b + z̄W; U = LᵀW when whitened."""
        b_centred = b + self.z_mean @ W
        if self.whitening is not None:
            return pack(self.whitening.variables(W), b_centred)
        if not self.l1:
            return pack(W, b_centred)
        return np.concatenate([np.maximum(W, 0).ravel(), np.maximum(-W, 0).ravel(), b_centred])

    def bounds(self):
        """W⁺, W⁻ ≥ 0 when split; no bounds otherwise."""
        if not self.l1:
            return None
        return [(0.0, None)] * (2 * self.n_weights) + [(None, None)] * self.n_outputs

    def weights(self, v) -> tuple[np.ndarray, np.ndarray]:
        m = self.n_weights
        if self.l1:
            # W = W⁺ − W⁻
            W, b_centred = (v[:m] - v[m:2 * m]).reshape(self.X.shape[1], self.n_outputs), v[2 * m:]
        else:
            W, b_centred = unpack(v, self.X.shape[1], self.n_outputs)
            if self.whitening is not None:
                W = self.whitening.weights(W)
        # b = b' − z̄W
        return W, b_centred - self.z_mean @ W

    def fun(self, v) -> tuple[float, np.ndarray]:
        if self._exact_at(v):
            obj = self.at_zero
        else:
            obj = objective(self.X, self.y, *self.weights(v), self.kind, l2=self.l2, rows=self.rows,
                            affine=self.affine)
        self.last_v, self.last = v.copy(), obj
        # chain rule: ∂f/∂W|_{b'} = ∇_W f − z̄ᵀ∇_b f;  ∂f/∂b' = ∇_b f
        grad_W = obj.grad_W - np.outer(self.z_mean, obj.grad_b)
        if self.whitening is not None:
            grad_W = self.whitening.gradient(grad_W)
        grad_W = grad_W.ravel()
        if not self.l1:
            return obj.value, np.concatenate([grad_W, obj.grad_b])
        m = self.n_weights
        # f + l1·Σ(W⁺ + W⁻);  ∂/∂W⁺ = ∂f/∂W + l1,  ∂/∂W⁻ = −∂f/∂W + l1
        value = obj.value + self.l1 * float(v[:2 * m].sum())
        return value, np.concatenate([grad_W + self.l1, self.l1 - grad_W, obj.grad_b])

    def at(self, v):
        """(Objective in (W, b), W, b) at v, reusing the last evaluation when it was at v."""
        W, b = self.weights(v)
        if self.last_v is not None and np.array_equal(self.last_v, v):
            return self.last, W, b
        return objective(self.X, self.y, W, b, self.kind, l2=self.l2, rows=self.rows, affine=self.affine), W, b
