"""A preconditioner for L-BFGS on pixel-like inputs: the search runs in whitened variables.

Neighbouring pixels are strongly correlated, so the cross-entropy's curvature along the top
principal directions of the inputs is thousands of times that along the others, and L-BFGS
spends most of its passes on that spread (scaling each pixel by its deviation does not help: the
spread lies in the correlations). With C the covariance of the model inputs on a sample of the
rows, λ, V its top eigenvalues and eigenvectors, and ε a ridge, the solver searches over U in

    W = P U,   ∇_U f = P ∇_W f,   P = I + V·diag(√(ε/(λ + ε)) − 1)·Vᵀ

(P ∝ (C + ε·I)^(−1/2) on the top directions, the identity on the rest): the same objective and
minimiser, so only the path changes. Default options, same stopping rule: MNIST 22,699 36 → 27
iterations, Fashion 60,000 53 → 29, to about the same objective (Fashion needs ~1.6× fewer
evaluations to any given objective; BENCHMARKS.md, eleventh session). ε = RIDGE_SCALE · tr(C)/d keeps
the low-variance directions at the plain metric, where the penalty (l2/2)‖W‖² alone shapes them;
the gain held for ε from 0.1 to 10 times the mean input variance, for 512 to 8,000 sample rows and
32 to 128 directions. The subspace iteration starts from a fixed seed and runs with the solver's BLAS on one thread, so
the metric has the same bits on any machine load and any -j.
"""

from __future__ import annotations

import dataclasses
import weakref

import numpy as np

# rows of the training data whose covariance defines the metric (every n // SAMPLE_ROWS-th row)
SAMPLE_ROWS = 1024
# inputs wider than this are not whitened: the metric costs more than the passes it saves (rff:5000
# features are near-orthogonal cosines, and a preconditioner from their Gram measured no gain)
MAX_FEATURES = 1024
# ε as a multiple of the mean input variance tr(C)/d
RIDGE_SCALE = 3.0
# principal directions whitened (MNIST: 45 eigenvalues of C above ε, 85 above ε/3), and the
# power iterations that find them: more of either measured no fewer passes
RANK = 32
POWER_ITERATIONS = 1


@dataclasses.dataclass(frozen=True)
class Whitening:
    """The metric P = I + V·diag(shrink)·Vᵀ (symmetric, V (d, k) orthonormal): W = P U, ∇_U f = P ∇_W f."""

    V: np.ndarray          # (d, k) the top principal directions of the inputs
    shrink: np.ndarray     # (k,) √(ε/(λ + ε)) − 1 along each

    def variables(self, W: np.ndarray) -> np.ndarray:
        """U = P⁻¹W (d, m) for weights W (d, m): P⁻¹ = I + V·diag(1/(1 + shrink) − 1)·Vᵀ."""
        return W + self.V @ ((1.0 / (1.0 + self.shrink) - 1.0)[:, None] * (self.V.T @ W))

    def weights(self, U: np.ndarray) -> np.ndarray:
        """W = P U (d, m) for variables U (d, m)."""
        return U + self.V @ (self.shrink[:, None] * (self.V.T @ U))

    def gradient(self, grad_W: np.ndarray) -> np.ndarray:
        """∇_U f = Pᵀ∇_W f = P ∇_W f (d, m)."""
        return self.weights(grad_W)


# the last metric made, for the array it was made from (the --l2 auto path fits the same X a dozen times)
_last: list = [None]


def whitening(X: np.ndarray, affine=None, sample_rows: int = SAMPLE_ROWS, rank: int = RANK) -> Whitening | None:
    """The whitening of model inputs z = X·scale − shift (affine) or z = X, from every
    (n // sample_rows)-th row of X (n_samples, n_features); None when X is wider than MAX_FEATURES
    or its inputs have no variance. Made once for the same array X and options."""
    key = (X.shape, None if affine is None else np.asarray(affine[0]).tobytes(), sample_rows, rank)
    last = _last[0]
    if last is not None and last[0]() is X and last[1] == key:
        return last[2]
    made = _whitening(X, affine, sample_rows, rank)
    _last[0] = (weakref.ref(X), key, made)
    return made


def _whitening(X: np.ndarray, affine, sample_rows: int, rank: int) -> Whitening | None:
    n_samples, n_features = X.shape
    if n_features > MAX_FEATURES or n_samples < 2:
        return None
    sample = X[::max(1, n_samples // sample_rows)][:sample_rows].astype(np.float32)
    if affine is not None:
        # z = x·scale − shift; the shift goes with the centring
        sample *= np.asarray(affine[0], dtype=np.float32)
    # Z = z − z̄ on the sample, C = ZᵀZ/m
    Z = sample - sample.mean(axis=0)
    mean_variance = float(np.vdot(Z.astype(np.float64), Z)) / Z.size
    if not (np.isfinite(mean_variance) and mean_variance > 0):
        return None
    variances, V = top_eigenpairs(Z, min(rank, n_features, len(Z)))
    # ε = RIDGE_SCALE · tr(C)/d;  shrink = √(ε/(λ + ε)) − 1
    ridge = RIDGE_SCALE * mean_variance
    return Whitening(V, np.sqrt(ridge / (np.maximum(variances, 0.0) + ridge)) - 1.0)


def top_eigenpairs(Z: np.ndarray, k: int, n_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues (k,) of C = ZᵀZ/m, Z (m, d) float32/float64, and their orthonormal
    eigenvectors (d, k) float64: by subspace iteration on Z from a fixed start (Halko et al. 2011,
    Alg. 4.4; C is never formed; products in Z's precision, orthonormalised in float64) and
    Rayleigh–Ritz, or all of them when k = d."""
    m, d = Z.shape
    if k == d:
        Z = Z.astype(np.float64)
        return np.linalg.eigh(Z.T @ Z / m)
    Q = np.random.default_rng(0).standard_normal((d, k))
    for _ in range(1 + (POWER_ITERATIONS if n_iter is None else n_iter)):
        # Q ← orth(ZᵀZ Q)
        Q = np.linalg.qr((Z.T @ (Z @ Q.astype(Z.dtype))).astype(np.float64))[0]
    # Rayleigh–Ritz: Qᵀ C Q = S Λ Sᵀ, eigenvectors QS
    ZQ = (Z @ Q.astype(Z.dtype)).astype(np.float64)
    values, S = np.linalg.eigh(ZQ.T @ ZQ / m)
    return values, Q @ S
