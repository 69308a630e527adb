"""The steps of a feature pipeline (`mnistlr.learn.features`): deskew, hog[:cell[:bins]], pca:K, poly2,
rff:D[:gamma] (nystroem:D[:gamma] lives in `mnistlr.learn.nystroem`).

Each step is fitted on the training part (`fit`), maps a block of rows (`transform`) and keeps
its fitted parameters as plain numbers and float32 arrays (`state`, `step_from_state`).
PCA and rff project through `kernels.projection`, whose sums are exact, so a row gets the same
features alone or in any batch; each step builds its projection once (`_projection`).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from mnistlr.errors import UsageError

# Training rows whose pairwise distances set gamma's default.
GAMMA_SAMPLE = 1000
PIXEL_SCALE = 1.0 / 255.0
_BUILDING = threading.Lock()


class FeatureStep:
    """One step: `fit` on the training part, `transform` blocks of rows, plain `state` to save."""

    name = ""
    pixels_out = False   # True when the output is still pixels 0–255 (uint8)

    def unit(self) -> float:
        """The output's natural scale: plain scaling (--preprocess scale) divides by it."""
        return 255.0 if self.pixels_out else 1.0

    def spec(self) -> str:
        return self.name

    def n_out(self, n_in: int) -> int:
        return n_in

    def bind(self, image_shape: tuple[int, int]) -> None:
        """Learn the pipeline's image shape (rows, cols); UsageError when the step cannot take it."""

    def fit(self, X: np.ndarray, pixels: bool, rng: np.random.Generator, image_shape) -> None:
        """Fit on the training part X (n, n_in); pixels: X holds pixel values 0–255."""

    def transform(self, X: np.ndarray, pixels: bool, image_shape, out: np.ndarray | None = None) -> np.ndarray:
        """The features of the rows X; steps that can write them into *out* (n, n_out) float32 return it."""
        raise NotImplementedError

    def transform_tiles(self, X: np.ndarray, pixels: bool, image_shape, tile_rows: int, consume) -> None:
        """consume(start, F) for the features F (m, n_out) of X[start:start + m], m ≤ tile_rows, a tile
        at a time (float32 steps write them into one reused buffer, overwritten by the next tile)."""
        buffer = None if self.pixels_out else np.empty((min(tile_rows, len(X)), self.n_out(X.shape[1])), np.float32)
        for start in range(0, len(X), tile_rows):
            tile = X[start:start + tile_rows]
            consume(start, self.transform(tile, pixels, image_shape, out=None if buffer is None else buffer[:len(tile)]))

    def state(self) -> dict[str, Any]:
        return {"name": self.name}

    def describe(self) -> str:
        return self.spec()

    def _projection(self, X: np.ndarray, pixels: bool, W: np.ndarray, offset: np.ndarray,
                    cosine_norm: float | None = None):
        """The step's `kernels.projection.Projection` for rows like X (built on first use, then kept)."""
        from mnistlr.learn.kernels.projection import Projection

        key = (X.dtype == np.uint8, pixels)
        with _BUILDING:      # blocks of rows may arrive on two threads at once
            cache = self.__dict__.setdefault("_projections", {})
            if key not in cache:
                cache[key] = Projection(W, offset, PIXEL_SCALE if pixels else 1.0, cosine_norm, key[0])
            return cache[key]

    def _forget_projections(self) -> None:
        self.__dict__.pop("_projections", None)

    def __getstate__(self):
        """Pickled without the built projections (rebuilt on first use)."""
        state = dict(self.__dict__)
        state.pop("_projections", None)
        return state


class Deskew(FeatureStep):
    """Moment-based deskewing; uint8 in, uint8 out (float pixels are rounded to 0–255 first)."""

    name = "deskew"
    pixels_out = True

    def transform(self, X, pixels, image_shape, out=None):
        from mnistlr.learn.kernels.deskew import deskew_images

        if X.dtype != np.uint8:
            X = np.clip(np.rint(X), 0, 255).astype(np.uint8)
        rows, cols = image_shape
        return deskew_images(X.reshape(len(X), rows, cols)).reshape(len(X), rows * cols)


# hog's defaults: 4 × 4-pixel cells and 12 signed orientations (28 × 28 images: 1,728 features), by 2-fold
# cross-validation of softmax on deskew,hog over the 22,699 MNIST training images: hog:4:12 0.9857, 4:16
# 0.9861 and 3:12 0.9863 (1.3× and 1.8× the features), 4:9 0.9856, 4:8 0.9842, 7:12 0.9800 (test: 0.9884).
HOG_CELL, HOG_BINS = 4, 12
HOG_MAX_BINS = 360


@dataclasses.dataclass
class HOG(FeatureStep):
    """Histograms of oriented gradients in cell × cell cells, 2 × 2-cell blocks (`kernels.hog`); pixels in, float32 out."""

    cell: int = HOG_CELL
    bins: int = HOG_BINS
    image_shape: tuple[int, int] | None = None     # set by the pipeline (the output size depends on it)
    name = "hog"

    def spec(self) -> str:
        return f"hog:{self.cell}:{self.bins}"

    def bind(self, image_shape: tuple[int, int]) -> None:
        from mnistlr.learn.kernels.hog import hog_size

        rows, cols = image_shape
        if hog_size(rows, cols, self.cell, self.bins) == 0:
            raise UsageError(f"`features` {self.spec()}: {rows}×{cols} images hold fewer than 2 × 2 cells of "
                             f"{self.cell} × {self.cell} pixels", f"give hog:C with C ≤ {min(rows, cols) // 2}")
        self.image_shape = (rows, cols)

    def n_out(self, n_in: int) -> int:
        from mnistlr.learn.kernels.hog import hog_size

        return hog_size(*self.image_shape, self.cell, self.bins)

    def transform(self, X, pixels, image_shape, out=None):
        from mnistlr.learn.kernels.hog import hog_features

        if X.dtype != np.uint8:
            X = np.clip(np.rint(X), 0, 255).astype(np.uint8)
        rows, cols = image_shape
        return hog_features(X.reshape(len(X), rows, cols), self.cell, self.bins, out)

    def state(self):
        return {"name": self.name, "cell": self.cell, "bins": self.bins}

    def describe(self):
        rows, cols = self.image_shape
        return (f"{self.spec()} ({self.cell}×{self.cell}-pixel cells, {self.bins} orientations, 2×2-cell blocks: "
                f"{self.n_out(rows * cols):,} features)")


@dataclasses.dataclass
class PCA(FeatureStep):
    """z = (x/255 − μ)·V with V (n_in, K) the top-K eigenvectors of the training covariance."""

    k: int
    mean: np.ndarray | None = None        # (n_in,) float32, in x/255 units
    components: np.ndarray | None = None  # (n_in, K) float32
    variance: np.ndarray | None = None    # (K,) float32, the eigenvalues kept
    total_variance: float = 0.0
    name = "pca"

    def spec(self) -> str:
        return f"pca:{self.k}"

    def n_out(self, n_in: int) -> int:
        return self.k

    def fit(self, X, pixels, rng, image_shape):
        from mnistlr.learn.kernels.gram import centered_cross_products

        if self.k > X.shape[1]:
            raise UsageError(f"`features` pca:{self.k} asks for more components than the {X.shape[1]} inputs",
                             f"give pca:K with K ≤ {X.shape[1]}")
        from mnistlr.learn.kernels.blas import blas_on_one_thread

        self._forget_projections()
        unit = PIXEL_SCALE if pixels else 1.0
        gram, _, x_mean, _ = centered_cross_products(X, np.zeros((len(X), 1), np.float32))
        # covariance of x·unit: (unit²/n)·XcᵀXc; eigenvectors by descending eigenvalue (LAPACK on
        # one thread: on a busy machine its two threads take 10× longer)
        with blas_on_one_thread():
            eigenvalues, vectors = np.linalg.eigh(gram * (unit * unit / len(X)))
        order = np.argsort(eigenvalues)[::-1][: self.k]
        V = vectors[:, order]
        # sign convention: each component's largest-magnitude entry is positive
        V *= np.sign(V[np.abs(V).argmax(axis=0), np.arange(self.k)])
        self.mean = (x_mean * unit).astype(np.float32)
        self.components = np.ascontiguousarray(V, np.float32)
        self.variance = eigenvalues[order].clip(0).astype(np.float32)
        self.total_variance = float(eigenvalues.clip(0).sum())

    def transform(self, X, pixels, image_shape, out=None):
        X = _kernel_input(X)
        # z = (x·unit − μ)V = (x·unit)V − μV
        offset = -(self.mean.astype(np.float64) @ self.components).astype(np.float32)
        return self._projection(X, pixels, self.components, offset)(X, out)

    def state(self):
        return {"name": self.name, "k": self.k, "mean": self.mean, "components": self.components,
                "variance": self.variance, "total_variance": self.total_variance}

    def describe(self):
        kept = float(self.variance.sum()) / self.total_variance if self.total_variance else 0.0
        return f"pca:{self.k} ({kept:.1%} of the variance)"


class Poly2(FeatureStep):
    """[z, z_i·z_j for i ≤ j]: K + K(K+1)/2 features from K inputs."""

    name = "poly2"

    def n_out(self, n_in: int) -> int:
        return n_in + n_in * (n_in + 1) // 2

    def transform(self, X, pixels, image_shape, out=None):
        X = np.asarray(X, np.float32)
        i, j = np.triu_indices(X.shape[1])
        out = np.empty((len(X), self.n_out(X.shape[1])), np.float32)
        out[:, : X.shape[1]] = X
        # q_ij = z_i·z_j
        np.multiply(X[:, i], X[:, j], out=out[:, X.shape[1]:])
        return out


class GaussianKernelStep(FeatureStep):
    """What the Gaussian-kernel steps (rff, nystroem) share: D = n_components outputs, a gamma that is
    given in the spec or chosen at fit time (median heuristic), and features on the scale √(2/D)."""

    fitted_field = ""   # the array a fitted step holds (None before fit)

    def __post_init__(self):
        fitted = getattr(self, self.fitted_field) is not None
        self.gamma_given = self.gamma_given if fitted else self.gamma is not None

    def spec(self) -> str:
        return f"{self.name}:{self.n_components}" + (f":{self.gamma:g}" if self.gamma_given else "")

    def n_out(self, n_in: int) -> int:
        return self.n_components

    def unit(self) -> float:
        # rff: φ_k ∈ [−√(2/D), √(2/D)]; nystroem: ‖φ(x)‖² ≈ k(x, x) = 1 over D features; both scale by √(2/D)
        return float(np.sqrt(2.0 / self.n_components))


@dataclasses.dataclass
class RFF(GaussianKernelStep):
    """φ(x) = cos(xW + b)·√(2/D), W (n_in, D) ~ N(0, 2γ), b (D,) ~ U[0, 2π); x in x/255 units."""

    n_components: int
    gamma: float | None = None            # None until fitted when not given
    weights: np.ndarray | None = None     # (n_in, D) float32
    offset: np.ndarray | None = None      # (D,) float32
    gamma_given: bool = True
    name = "rff"
    fitted_field = "weights"

    def fit(self, X, pixels, rng, image_shape):
        from mnistlr.learn.kernels.projection import float_rows_fit_float32, snap_to_float32_grid

        self._forget_projections()
        if self.gamma is None:
            self.gamma = median_gamma(X, PIXEL_SCALE if pixels else 1.0, rng)
        # k(x, x′) = exp(−γ‖x − x′‖²) = E[2 cos(wx + b) cos(wx′ + b)], w ~ N(0, 2γI), b ~ U[0, 2π)
        weights = (rng.standard_normal((X.shape[1], self.n_components), np.float32)
                   * np.float32(np.sqrt(2.0 * self.gamma)))
        # W on a grid where the sums of pixels (steps ≤ σ/40), or of rows rounded on their own grid
        # (after pca:K, K ≤ 128; steps ≤ σ/20), are exact in float32: the same kernel
        on_grid = pixels or float_rows_fit_float32(X.shape[1])
        self.weights = snap_to_float32_grid(weights, pixels) if on_grid else weights
        self.offset = rng.uniform(0.0, 2.0 * np.pi, self.n_components).astype(np.float32)

    def transform(self, X, pixels, image_shape, out=None):
        X = _kernel_input(X)
        return self._rff_projection(X, pixels)(X, out)

    def transform_tiles(self, X, pixels, image_shape, tile_rows, consume):
        X = _kernel_input(X)
        self._rff_projection(X, pixels).tiles(X, tile_rows, consume)

    def _rff_projection(self, X, pixels):
        return self._projection(X, pixels, self.weights, self.offset, float(np.sqrt(2.0 / self.n_components)))

    def state(self):
        return {"name": self.name, "n_components": self.n_components, "gamma": float(self.gamma),
                "gamma_given": self.gamma_given, "weights": self.weights, "offset": self.offset}

    def describe(self):
        how = "given" if self.gamma_given else "1/median distance²"
        return f"rff:{self.n_components} (gamma {self.gamma:.4g}, {how})"


def _kernel_input(X: np.ndarray) -> np.ndarray:
    """X as the projection kernel reads it: uint8 as is, anything else float32."""
    return X if X.dtype == np.uint8 else np.asarray(X, np.float32)


def median_gamma(X: np.ndarray, unit: float, rng: np.random.Generator) -> float:
    """1 / median ‖x − x′‖² over pairs of a seeded sample of ≤ 1,000 rows of X·unit."""
    rows = np.sort(rng.choice(len(X), size=min(len(X), GAMMA_SAMPLE), replace=False))
    S = X[rows].astype(np.float64) * unit
    norms = np.einsum("ij,ij->i", S, S)
    # ‖s_a − s_b‖² = ‖s_a‖² + ‖s_b‖² − 2 s_a·s_b
    sq = norms[:, None] + norms[None, :] - 2.0 * (S @ S.T)
    median = float(np.median(sq[np.triu_indices(len(S), 1)])) if len(S) > 1 else 0.0
    return 1.0 / median if median > 0 else 1.0


STEP_TYPES = {"deskew": Deskew, "hog": HOG, "pca": PCA, "poly2": Poly2, "rff": RFF}


def _array(value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != ndim or array.dtype.kind != "f" or not np.isfinite(array).all():
        raise ValueError("feature parameters must be finite float arrays")
    return np.ascontiguousarray(array, np.float32)


def _count(value: Any) -> int:
    if type(value) is not int or value < 1:   # not 300.7, True or "300"
        raise ValueError("feature counts must be whole numbers ≥ 1")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ValueError("feature parameters must be finite numbers ≥ 0")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("gamma_given must be true or false")
    return value


def step_from_state(state: dict[str, Any]) -> FeatureStep:
    name = state.get("name")
    if name == "deskew":
        return Deskew()
    if name == "poly2":
        return Poly2()
    if name == "hog":
        bins = _count(state["bins"])
        if bins > HOG_MAX_BINS:
            raise ValueError(f"hog bins must be at most {HOG_MAX_BINS}")
        return HOG(_count(state["cell"]), bins)
    if name == "pca":
        return PCA(_count(state["k"]), _array(state["mean"], 1), _array(state["components"], 2),
                   _array(state["variance"], 1), _number(state["total_variance"]))
    if name == "nystroem":
        from mnistlr.learn.nystroem import Nystroem

        step = Nystroem(_count(state["n_components"]), _number(state["gamma"]), _array(state["landmarks"], 2),
                        _array(state["normalization"], 2))
        step.gamma_given = _flag(state["gamma_given"])
        return step
    if name == "rff":
        step = RFF(_count(state["n_components"]), _number(state["gamma"]), _array(state["weights"], 2),
                   _array(state["offset"], 1))
        step.gamma_given = _flag(state["gamma_given"])
        return step
    raise ValueError(f"unknown feature step {name!r}")


def check_state(step: FeatureStep, n_in: int) -> None:
    """ValueError unless a restored step's arrays fit its input width n_in."""
    if isinstance(step, PCA):
        ok = (step.mean.shape == (n_in,) and step.components.shape == (n_in, step.k)
              and step.variance.shape == (step.k,))
    elif isinstance(step, RFF):
        ok = (step.weights.shape == (n_in, step.n_components) and step.offset.shape == (step.n_components,)
              and np.isfinite(step.gamma) and step.gamma > 0)
    elif step.name == "nystroem":
        ok = step.fits(n_in)
    else:
        ok = True
    if not ok:
        raise ValueError(f"feature step {step.name} does not fit its {n_in} inputs")
