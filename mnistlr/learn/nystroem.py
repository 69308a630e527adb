"""The `nystroem:D[:gamma]` feature step: the Nyström approximation of the Gaussian kernel.

φ(x) = k(x, L)·A with k(x, x′) = exp(−γ‖x − x′‖²), L the D landmarks (D training rows drawn by
--seed, in x/255 units, or the PCA components) and A (D, D) with A·Aᵀ = K_LL⁻¹, so that
φ(x)·φ(x′) = k(x, L) K_LL⁻¹ k(L, x′) is the kernel projected on the landmarks (exact between
landmarks). A = C⁻ᵀ for the Cholesky factor C·Cᵀ = K_LL + εI (ε a small jitter that keeps it
positive definite): a rotation of scikit-learn's K_LL^(−1/2), which the L2 penalty cannot tell
apart, found in D³/3 operations instead of an eigendecomposition's ~10·D³.

Landmarks and A are float32 arrays in the model file (A is D² floats: 100 MB at D = 5,000).
The product k(x, L)·A is a float64 triangular matrix product (BLAS dtrmm: A is upper triangular,
so D²/2 multiply-adds a row) rounded to float32: in float32 its
sums would depend on where a row sits in its block by up to 3e-3 (A's entries reach ~100), in
float64 the rounded features of a row alone and inside a batch agree.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# scipy's BLAS loaded with this module, before a scoring context limits BLAS to one thread (a limit
# covers only the libraries already loaded: dtrmm would otherwise start two threads per block)
from scipy.linalg import blas, lapack

from mnistlr.errors import UsageError
from mnistlr.learn.feature_steps import PIXEL_SCALE, GaussianKernelStep, median_gamma

# The most landmarks: A is D² float32 (400 MB at 10,000) and its float64 factor twice that.
MAX_LANDMARKS = 10_000
# ε on K_LL's diagonal (its entries are at most 1): keeps the Cholesky factor finite.
JITTER = 1e-6


def gaussian_kernel(X: np.ndarray, L: np.ndarray, gamma: float) -> np.ndarray:
    """exp(−γ‖x_i − l_j‖²) (n, D) float64 for X (n, n_in) and L (D, n_in), same units."""
    X, L = np.asarray(X, np.float64), np.asarray(L, np.float64)
    # ‖x − l‖² = ‖x‖² + ‖l‖² − 2 x·l, clipped at 0 against rounding
    sq = np.einsum("ij,ij->i", X, X)[:, None] + np.einsum("ij,ij->i", L, L)[None, :] - 2.0 * (X @ L.T)
    return np.exp(-gamma * np.maximum(sq, 0.0))


@dataclasses.dataclass
class Nystroem(GaussianKernelStep):
    """φ(x) = k(x, L)·A, L (D, n_in) seeded training rows, A (D, D) with A·Aᵀ = (K_LL + εI)⁻¹."""

    n_components: int
    gamma: float | None = None              # None until fitted when not given
    landmarks: np.ndarray | None = None     # (D, n_in) float32, in x/255 units
    normalization: np.ndarray | None = None  # (D, D) float32, A
    gamma_given: bool = True
    name = "nystroem"
    fitted_field = "landmarks"

    def fit(self, X, pixels, rng, image_shape):
        unit = PIXEL_SCALE if pixels else 1.0
        if self.n_components > len(X):
            raise UsageError(f"`features` nystroem:{self.n_components} needs {self.n_components:,} landmark "
                             f"images but the training part has {len(X):,}",
                             f"give nystroem:D with D ≤ {len(X):,}")
        if self.gamma is None:
            self.gamma = median_gamma(X, unit, rng)
        rows = np.sort(rng.choice(len(X), size=self.n_components, replace=False))
        self.landmarks = np.ascontiguousarray(X[rows].astype(np.float64) * unit, np.float32)
        K = gaussian_kernel(self.landmarks, self.landmarks, self.gamma)
        K[np.diag_indices_from(K)] += JITTER
        # C·Cᵀ = K_LL + εI;  A = C⁻ᵀ, so A·Aᵀ = (C·Cᵀ)⁻¹
        C, info = lapack.dpotrf(K, lower=1, clean=1, overwrite_a=1)
        if info == 0:
            C_inverse, info = lapack.dtrtri(C, lower=1, overwrite_c=1)
        if info != 0:
            raise UsageError(f"`features` {self.spec()}: the landmarks' kernel matrix is singular "
                             f"(gamma {self.gamma:.4g} makes landmarks indistinguishable)",
                             "give a larger gamma or fewer landmarks")
        self.normalization = np.ascontiguousarray(C_inverse.T, np.float32)

    def transform(self, X, pixels, image_shape, out=None):
        unit = PIXEL_SCALE if pixels else 1.0

        K = gaussian_kernel(np.asarray(X, np.float64) * unit, self.landmarks, self.gamma)
        # φ = k(x, L)·A, i.e. φᵀ = C⁻¹·Kᵀ with C⁻¹ = Aᵀ lower triangular: a triangular product (half
        # a full one's work) on the Fortran-ordered views, summed in float64 and rounded to float32
        phi_t = blas.dtrmm(1.0, self._normalization64().T, K.T, side=0, lower=1, trans_a=0, overwrite_b=1)
        if out is None:
            return phi_t.T.astype(np.float32)
        out[...] = phi_t.T
        return out

    def _normalization64(self) -> np.ndarray:
        """A in float64, converted once per fitted or loaded step (not part of its state)."""
        cached = self.__dict__.get("_a64")
        if cached is None or cached[0] is not self.normalization:
            cached = self.__dict__["_a64"] = (self.normalization, self.normalization.astype(np.float64))
        return cached[1]

    def state(self):
        return {"name": self.name, "n_components": self.n_components, "gamma": float(self.gamma),
                "gamma_given": self.gamma_given, "landmarks": self.landmarks,
                "normalization": self.normalization}

    def describe(self):
        how = "given" if self.gamma_given else "1/median distance²"
        return f"nystroem:{self.n_components} (gamma {self.gamma:.4g}, {how}; {self.n_components:,} landmarks)"

    def fits(self, n_in: int) -> bool:
        """True when the restored arrays fit n_in inputs."""
        D = self.n_components
        return (self.landmarks.shape == (D, n_in) and self.normalization.shape == (D, D)
                and np.isfinite(self.gamma) and self.gamma > 0)
