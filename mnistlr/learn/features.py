"""Feature maps in front of the linear models: `--features deskew,pca:50,rff:5000[:gamma]`.

A pipeline turns raw pixels (n, rows·cols), values 0–255, into the model's inputs:

- ``deskew``: moment-based deskewing (uint8 in, uint8 out; must come first);
- ``pca:K``: the K principal components of x/255, fitted on the training part;
- ``poly2``: after ``pca:K``, the components and all their pairwise products z_i·z_j (i ≤ j);
- ``rff:D[:gamma]``: random Fourier features cos(xW + b)·√(2/D) for the Gaussian kernel
  exp(−gamma·‖x − x′‖²), x the pixels/255 (or the PCA components, which are in the same units);
  W ~ N(0, 2·gamma), b ~ U[0, 2π), seeded; gamma defaults to 1/median ‖x − x′‖² over a sample.

Fitted parameters are plain float32 arrays and numbers (`to_dict`), so model files stay plain
data. Features are computed a block of rows at a time, in float32, never as a float64 copy.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from mnistlr.errors import UsageError

NAMES = ("deskew", "pca", "poly2", "rff")
# The type of each step's numeric arguments (pca:K, rff:D:gamma), for sweep ranges.
ARGUMENT_KINDS = {"deskew": (), "pca": (int,), "poly2": (), "rff": (int, float)}
SPEC_EXAMPLE = "deskew,pca:50,rff:5000"
# Rows pushed through the pipeline at a time (a 5,000-feature block is 40 MB of float32).
BLOCK_ROWS = 2048
# Training rows whose pairwise distances set gamma's default.
GAMMA_SAMPLE = 1000
PIXEL_SCALE = 1.0 / 255.0


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"`features` '{spec}': {why}",
                      f"e.g. `features={SPEC_EXAMPLE}`; steps: deskew, pca:K, poly2, rff:D[:gamma]")


def _whole(spec: str, text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(spec, f"{what} must be a whole number, got '{text}'") from None
    if value < 1:
        raise _bad(spec, f"{what} must be at least 1, got {value}")
    return value


def _positive(spec: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(spec, f"{what} must be a number, got '{text}'") from None
    if not np.isfinite(value) or value <= 0:
        raise _bad(spec, f"{what} must be a finite number > 0, got {text}")
    return value


def _step(spec: str, part: str) -> FeatureStep:
    name, *args = part.strip().split(":")
    takes = {"deskew": (0, 0), "pca": (1, 1), "poly2": (0, 0), "rff": (1, 2)}
    if name not in takes:
        raise _bad(spec, f"unknown step '{name}'")
    low, high = takes[name]
    if not low <= len(args) <= high:
        form = {"deskew": "deskew", "pca": "pca:K", "poly2": "poly2", "rff": "rff:D or rff:D:gamma"}[name]
        raise _bad(spec, f"'{part}' should read {form}")
    if name == "deskew":
        return Deskew()
    if name == "poly2":
        return Poly2()
    if name == "pca":
        return PCA(_whole(spec, args[0], "pca's K"))
    gamma = _positive(spec, args[1], "rff's gamma") if len(args) == 2 else None
    return RFF(_whole(spec, args[0], "rff's D"), gamma)


def parse(spec: str) -> list[FeatureStep]:
    """The (unfitted) steps of *spec*; UsageError naming the problem when it is malformed."""
    parts = spec.split(",")
    if not spec.strip() or any(not p.strip() for p in parts):
        raise _bad(spec, "empty step")
    steps = [_step(spec, p) for p in parts]
    names = [s.name for s in steps]
    # the order the steps can take: images → deskew → pca → poly2 or rff
    rank = {"deskew": 0, "pca": 1, "poly2": 2, "rff": 2}
    for before, after in itertools.pairwise(names):
        if before == after:
            raise _bad(spec, f"'{before}' appears twice")
        if {before, after} == {"poly2", "rff"}:
            raise _bad(spec, "give poly2 or rff, not both")
        if rank[after] <= rank[before]:
            raise _bad(spec, f"{after} cannot follow {before} (the order is deskew, pca:K, then poly2 or rff:D)")
    if "poly2" in names and "pca" not in names:
        raise _bad(spec, "poly2 multiplies PCA components, so it needs pca:K before it")
    return steps


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

    def fit(self, X: np.ndarray, pixels: bool, rng: np.random.Generator, image_shape) -> None:
        """Fit on the training part X (n, n_in); pixels: X holds pixel values 0–255."""

    def transform(self, X: np.ndarray, pixels: bool, image_shape) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {"name": self.name}

    def describe(self) -> str:
        return self.spec()


class Deskew(FeatureStep):
    """Moment-based deskewing; uint8 in, uint8 out (float pixels are rounded to 0–255 first)."""

    name = "deskew"
    pixels_out = True

    def transform(self, X, pixels, image_shape):
        from mnistlr.learn.kernels.deskew import deskew_images

        if X.dtype != np.uint8:
            X = np.clip(np.rint(X), 0, 255).astype(np.uint8)
        rows, cols = image_shape
        return deskew_images(X.reshape(len(X), rows, cols)).reshape(len(X), rows * cols)


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
        unit = PIXEL_SCALE if pixels else 1.0
        gram, _, x_mean, _ = centered_cross_products(X, np.zeros((len(X), 1), np.float32))
        # covariance of x·unit: (unit²/n)·XcᵀXc; eigenvectors by descending eigenvalue
        eigenvalues, vectors = np.linalg.eigh(gram * (unit * unit / len(X)))
        order = np.argsort(eigenvalues)[::-1][: self.k]
        V = vectors[:, order]
        # sign convention: each component's largest-magnitude entry is positive
        V *= np.sign(V[np.abs(V).argmax(axis=0), np.arange(self.k)])
        self.mean = (x_mean * unit).astype(np.float32)
        self.components = np.ascontiguousarray(V, np.float32)
        self.variance = eigenvalues[order].clip(0).astype(np.float32)
        self.total_variance = float(eigenvalues.clip(0).sum())

    def transform(self, X, pixels, image_shape):
        from mnistlr.learn.kernels.projection import project

        # z = (x·unit − μ)V = (x·unit)V − μV
        offset = -(self.mean.astype(np.float64) @ self.components).astype(np.float32)
        return project(_kernel_input(X), self.components, offset, PIXEL_SCALE if pixels else 1.0)

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

    def transform(self, X, pixels, image_shape):
        X = np.asarray(X, np.float32)
        i, j = np.triu_indices(X.shape[1])
        out = np.empty((len(X), self.n_out(X.shape[1])), np.float32)
        out[:, : X.shape[1]] = X
        # q_ij = z_i·z_j
        np.multiply(X[:, i], X[:, j], out=out[:, X.shape[1]:])
        return out


@dataclasses.dataclass
class RFF(FeatureStep):
    """φ(x) = cos(xW + b)·√(2/D), W (n_in, D) ~ N(0, 2γ), b (D,) ~ U[0, 2π); x in x/255 units."""

    n_components: int
    gamma: float | None = None            # None until fitted when not given
    weights: np.ndarray | None = None     # (n_in, D) float32
    offset: np.ndarray | None = None      # (D,) float32
    gamma_given: bool = True
    name = "rff"

    def __post_init__(self):
        self.gamma_given = self.gamma is not None if self.weights is None else self.gamma_given

    def spec(self) -> str:
        return f"rff:{self.n_components}" + (f":{self.gamma:g}" if self.gamma_given else "")

    def n_out(self, n_in: int) -> int:
        return self.n_components

    def unit(self) -> float:
        # φ_k ∈ [−√(2/D), √(2/D)]: scaling by √(2/D) gives cos(xW + b) ∈ [−1, 1]
        return float(np.sqrt(2.0 / self.n_components))

    def fit(self, X, pixels, rng, image_shape):
        if self.gamma is None:
            self.gamma = median_gamma(X, PIXEL_SCALE if pixels else 1.0, rng)
        # k(x, x′) = exp(−γ‖x − x′‖²) = E[2 cos(wx + b) cos(wx′ + b)], w ~ N(0, 2γI), b ~ U[0, 2π)
        self.weights = (rng.standard_normal((X.shape[1], self.n_components), np.float32)
                        * np.float32(np.sqrt(2.0 * self.gamma)))
        self.offset = rng.uniform(0.0, 2.0 * np.pi, self.n_components).astype(np.float32)

    def transform(self, X, pixels, image_shape):
        from mnistlr.learn.kernels.projection import project

        return project(_kernel_input(X), self.weights, self.offset, PIXEL_SCALE if pixels else 1.0,
                       cosine_norm=float(np.sqrt(2.0 / self.n_components)))

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


STEP_TYPES = {"deskew": Deskew, "pca": PCA, "poly2": Poly2, "rff": RFF}


@dataclasses.dataclass
class FeaturePipeline:
    """Steps applied in order to raw pixels (n, rows·cols); fitted once on the training part."""

    steps: list[FeatureStep]
    image_shape: tuple[int, int]

    @classmethod
    def from_spec(cls, spec: str, image_shape: tuple[int, int]) -> FeaturePipeline:
        return cls(parse(spec), (int(image_shape[0]), int(image_shape[1])))

    @property
    def spec(self) -> str:
        return ",".join(step.spec() for step in self.steps)

    @property
    def pixels_out(self) -> bool:
        """True when the output is still pixels 0–255 (a pipeline of deskew alone)."""
        return all(step.pixels_out for step in self.steps)

    @property
    def unit(self) -> float:
        """The scale of the output (255 for pixels, √(2/D) for rff, 1 for PCA components)."""
        return self.steps[-1].unit()

    @property
    def n_out(self) -> int:
        n = self.image_shape[0] * self.image_shape[1]
        for step in self.steps:
            n = step.n_out(n)
        return n

    def fit_transform(self, X: np.ndarray, seed: int) -> np.ndarray:
        """Fit every step on the training pixels X (n, rows·cols) and return their features.

        Each step is fitted on the previous step's output for all of X (deskewed pixels or K
        components: small); the last output is built a block of rows at a time.
        """
        rng = np.random.default_rng([seed, 18])
        pixels = True
        for step in self.steps:
            step.fit(X, pixels, rng, self.image_shape)
            X = self._blocks(X, [step], pixels)
            pixels = pixels and step.pixels_out
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features (n, n_out) of raw pixels X (n, rows·cols): uint8 for deskew alone, else float32."""
        return self._blocks(X, self.steps, True)

    def _blocks(self, X: np.ndarray, steps: list[FeatureStep], pixels: bool) -> np.ndarray:
        """Run *steps* over X a block of rows at a time into one preallocated result."""
        n_out = X.shape[1]
        for step in steps:
            n_out = step.n_out(n_out)
        dtype = np.uint8 if pixels and all(step.pixels_out for step in steps) else np.float32
        out = np.empty((len(X), n_out), dtype)
        for start in range(0, len(X), BLOCK_ROWS):
            Z, flag = X[start:start + BLOCK_ROWS], pixels
            for step in steps:
                Z = step.transform(Z, flag, self.image_shape)
                flag = flag and step.pixels_out
            out[start:start + len(Z)] = Z
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the spec, the image shape and each step's state (numbers and float32 arrays)."""
        return {"spec": self.spec, "image_shape": list(self.image_shape),
                "steps": [step.state() for step in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePipeline:
        """Rebuild a fitted pipeline from `to_dict`'s data; ValueError when it does not add up."""
        shape = tuple(int(d) for d in data["image_shape"])
        steps = [_step_from_state(dict(state)) for state in data["steps"]]
        pipeline = cls(steps, shape)
        parse(pipeline.spec)   # the order rules
        n = shape[0] * shape[1]
        for step in steps:
            _check_state(step, n)
            n = step.n_out(n)
        return pipeline

    def describe(self) -> list[str]:
        return [step.describe() for step in self.steps]


def _array(value: Any, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != ndim or array.dtype.kind != "f" or not np.isfinite(array).all():
        raise ValueError("feature parameters must be finite float arrays")
    return np.ascontiguousarray(array, np.float32)


def _step_from_state(state: dict[str, Any]) -> FeatureStep:
    name = state.get("name")
    if name == "deskew":
        return Deskew()
    if name == "poly2":
        return Poly2()
    if name == "pca":
        return PCA(int(state["k"]), _array(state["mean"], 1), _array(state["components"], 2),
                   _array(state["variance"], 1), float(state["total_variance"]))
    if name == "rff":
        step = RFF(int(state["n_components"]), float(state["gamma"]), _array(state["weights"], 2),
                   _array(state["offset"], 1))
        step.gamma_given = bool(state["gamma_given"])
        return step
    raise ValueError(f"unknown feature step {name!r}")


def _check_state(step: FeatureStep, n_in: int) -> None:
    """ValueError unless a restored step's arrays fit its input width n_in."""
    if isinstance(step, PCA):
        ok = (step.mean.shape == (n_in,) and step.components.shape == (n_in, step.k)
              and step.variance.shape == (step.k,))
    elif isinstance(step, RFF):
        ok = (step.weights.shape == (n_in, step.n_components) and step.offset.shape == (step.n_components,)
              and np.isfinite(step.gamma) and step.gamma > 0)
    else:
        ok = True
    if not ok:
        raise ValueError(f"feature step {step.name} does not fit its {n_in} inputs")


def pixel_weights(pipeline: FeaturePipeline, W: np.ndarray) -> tuple[np.ndarray | None, str]:
    """W (n_out, k), acting on the pipeline's features, mapped to the image's pixels, and a caption.

    Defined while the pipeline is linear in the pixels: deskew (weights on the deskewed image)
    and pca (V·W on x/255); (None, the reason) for poly2 and rff, which are not.
    """
    names = [step.name for step in pipeline.steps]
    for name in ("rff", "poly2"):
        if name in names:
            why = ("cos(xW + b) of random directions" if name == "rff" else "products of PCA components")
            return None, (f"no weight images: the {pipeline.spec} features are {why}, not linear in "
                          "the pixels, so their weights have no image")
    W = np.asarray(W, np.float64)
    for step in reversed(pipeline.steps):
        if isinstance(step, PCA):
            # s = z·W with z = (x/255 − μ)V, so on x/255 the weights are V·W
            W = step.components.astype(np.float64) @ W
    caption = "on the deskewed image" if "deskew" in names else "on the image"
    if "pca" in names:
        caption += f", back-projected through {next(s.spec() for s in pipeline.steps if s.name == 'pca')}"
    return W.astype(np.float32), caption
