"""Feature maps in front of the linear models: `--features deskew,pca:50,rff:5000[:gamma]`.

A pipeline turns raw pixels (n, rows·cols), values 0–255, into the model's inputs:

- ``deskew``: moment-based deskewing (uint8 in, uint8 out; must come first);
- ``hog[:cell[:bins]]``: histograms of oriented gradients of the image (after deskew, if any):
  *bins* signed orientations (12) in cells of cell × cell pixels (4), 2 × 2-cell blocks normalised
  by L2-Hys (`mnistlr.learn.kernels.hog`);
- ``pca:K``: the K principal components of x/255, fitted on the training part;
- ``poly2``: after ``pca:K``, the components and all their pairwise products z_i·z_j (i ≤ j);
- ``rff:D[:gamma]``: random Fourier features cos(xW + b)·√(2/D) for the Gaussian kernel
  exp(−gamma·‖x − x′‖²), x the pixels/255 (or the PCA components, which are in the same units);
  W ~ N(0, 2·gamma), b ~ U[0, 2π), seeded; gamma defaults to 1/median ‖x − x′‖² over a sample;
- ``nystroem:D[:gamma]``: the Nyström features k(x, L)·A of the same kernel on D landmarks
  (training rows drawn by the seed), A·Aᵀ = K_LL⁻¹ (`mnistlr.learn.nystroem`).

This module parses SPEC, runs the pipeline and maps weights back to pixels; the steps
themselves live in `mnistlr.learn.feature_steps`. Fitted parameters are plain float32 arrays and
numbers (`to_dict`), so model files stay plain data. Features are computed a block of rows at a
time, in float32, never as a float64 copy.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mnistlr.errors import UsageError
from mnistlr.learn.feature_steps import (
    HOG,
    HOG_BINS,
    HOG_CELL,
    HOG_MAX_BINS,
    PCA,
    RFF,
    Deskew,
    FeatureStep,
    Poly2,
    check_state,
    step_from_state,
)

NAMES = ("deskew", "hog", "pca", "poly2", "rff", "nystroem")
# The type of each step's numeric arguments (hog:cell:bins, pca:K, rff:D:gamma), for sweep ranges.
ARGUMENT_KINDS = {"deskew": (), "hog": (int, int), "pca": (int,), "poly2": (), "rff": (int, float),
                  "nystroem": (int, float)}
SPEC_EXAMPLE = "deskew,pca:50,rff:5000"
# Rows pushed through the pipeline at a time (a 5,000-feature block is 40 MB of float32).
BLOCK_ROWS = 2048
# Rows of the last step's output scored at a time (`transform_tiles`; 5,000 features: 1.3 MB).
TILE_ROWS = 64
# The most features a step may make (rff:D, pca:K, pca:K,poly2's K + K(K+1)/2): 65,536 float32
# columns are 256 KiB a row, 15 GB for 60,000 rows.
MAX_FEATURES = 1 << 16
# The widest kernel gamma of rff and nystroem: at 1e4 exp(−gamma·‖x − x′‖²) is already 0 for two
# images one full pixel apart (beyond ~1e76 rff's weights, N(0, 2·gamma), overflow float32).
MAX_GAMMA = 1e4
# Numbers in a spec: ASCII decimals (int() and float() also take '1_000', '+5', ' 5' and other scripts' digits)
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"`features` '{spec}': {why}",
                      f"e.g. `features={SPEC_EXAMPLE}`; steps: deskew, hog[:cell[:bins]], pca:K, poly2, "
                      "rff:D[:gamma], nystroem:D[:gamma]")


def _whole(spec: str, text: str, what: str, most: int = MAX_FEATURES) -> int:
    if not _WHOLE.fullmatch(text):
        raise _bad(spec, f"{what} must be a whole number, got '{text}'")
    value = int(text)
    if not 1 <= value <= most:
        raise _bad(spec, f"{what} must be from 1 to {most:,}, got {value:,}")
    return value


def _gamma(spec: str, text: str, what: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise _bad(spec, f"{what} must be a number > 0, got '{text}'")
    value = float(text)
    if not 0 < value <= MAX_GAMMA:
        raise _bad(spec, f"{what} must be > 0 and at most {MAX_GAMMA:g}, where the kernel is already 0 between "
                   f"images one pixel apart; got {text}")
    return value


def _step(spec: str, part: str) -> FeatureStep:
    name, *args = part.strip().split(":")
    takes = {"deskew": (0, 0), "hog": (0, 2), "pca": (1, 1), "poly2": (0, 0), "rff": (1, 2), "nystroem": (1, 2)}
    if name not in takes:
        raise _bad(spec, f"unknown step '{name}'")
    low, high = takes[name]
    if not low <= len(args) <= high:
        form = {"deskew": "deskew", "hog": "hog, hog:cell or hog:cell:bins", "pca": "pca:K", "poly2": "poly2",
                "rff": "rff:D or rff:D:gamma",
                "nystroem": "nystroem:D or nystroem:D:gamma"}[name]
        raise _bad(spec, f"'{part}' should read {form}")
    if name == "deskew":
        return Deskew()
    if name == "poly2":
        return Poly2()
    if name == "hog":
        cell = _whole(spec, args[0], "hog's cell") if args else HOG_CELL
        return HOG(cell, _whole(spec, args[1], "hog's bins", HOG_MAX_BINS) if len(args) == 2 else HOG_BINS)
    if name == "pca":
        return PCA(_whole(spec, args[0], "pca's K"))
    gamma = _gamma(spec, args[1], f"{name}'s gamma") if len(args) == 2 else None
    if name == "nystroem":
        from mnistlr.learn.nystroem import MAX_LANDMARKS, Nystroem

        return Nystroem(_whole(spec, args[0], "nystroem's D", MAX_LANDMARKS), gamma)
    return RFF(_whole(spec, args[0], "rff's D"), gamma)


def parse(spec: str) -> list[FeatureStep]:
    """The (unfitted) steps of *spec*; UsageError naming the problem when it is malformed."""
    parts = spec.split(",")
    if not spec.strip() or any(not p.strip() for p in parts):
        raise _bad(spec, "empty step")
    steps = [_step(spec, p) for p in parts]
    names = [s.name for s in steps]
    # the order the steps can take: images → deskew → hog → pca → poly2, rff or nystroem
    rank = {"deskew": 0, "hog": 1, "pca": 2, "poly2": 3, "rff": 3, "nystroem": 3}
    for before, after in itertools.pairwise(names):
        if before == after:
            raise _bad(spec, f"'{before}' appears twice")
        if rank[after] == rank[before] == 3:
            raise _bad(spec, f"give one of poly2, rff or nystroem, not both {before} and {after}")
        if rank[after] <= rank[before]:
            raise _bad(spec, f"{after} cannot follow {before} "
                       "(the order is deskew, hog, pca:K, then poly2, rff:D or nystroem:D)")
    if "poly2" in names and "pca" not in names:
        raise _bad(spec, "poly2 multiplies PCA components, so it needs pca:K before it")
    if "poly2" in names and steps[-1].n_out(steps[names.index("pca")].k) > MAX_FEATURES:
        raise _bad(spec, f"poly2 of {steps[names.index('pca')].k} components makes more than "
                   f"{MAX_FEATURES:,} features (pca:K with K ≤ 360)")
    return steps


@dataclasses.dataclass
class FeaturePipeline:
    """Steps applied in order to raw pixels (n, rows·cols); fitted once on the training part."""

    steps: list[FeatureStep]
    image_shape: tuple[int, int]

    def __post_init__(self):
        for step in self.steps:
            step.bind(self.image_shape)

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
        """The scale of the output (255 for pixels, √(2/D) for rff and nystroem, 1 for PCA components)."""
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

    def transform_tiles(self, X: np.ndarray, consume: Callable[[int, np.ndarray], None],
                        tile_rows: int = TILE_ROWS) -> None:
        """consume(start, F) for the features F (m, n_out) of the rows X[start:start + m] of raw
        pixels X (n, rows·cols), m ≤ tile_rows: every step but the last on all of X, the last a tile
        at a time into one reused buffer (so its output is still in cache when *consume* reads it;
        F is overwritten by the next tile). Each row's features are those `transform` gives."""
        *first, last = self.steps
        Z = self._blocks(X, first, True) if first else X
        pixels = all(step.pixels_out for step in first)
        last.transform_tiles(Z, pixels, self.image_shape, tile_rows, consume)

    def _blocks(self, X: np.ndarray, steps: list[FeatureStep], pixels: bool) -> np.ndarray:
        """Run *steps* over X a block of rows at a time into one preallocated result."""
        n_out = X.shape[1]
        for step in steps:
            n_out = step.n_out(n_out)
        dtype = np.uint8 if pixels and all(step.pixels_out for step in steps) else np.float32
        out = np.empty((len(X), n_out), dtype) if len(X) > BLOCK_ROWS else None
        for start in range(0, len(X), BLOCK_ROWS):
            Z, flag = X[start:start + BLOCK_ROWS], pixels
            rows = None if out is None else out[start:start + len(Z)]
            for i, step in enumerate(steps):
                # the last step writes straight into the result when it can (pca, rff)
                Z = step.transform(Z, flag, self.image_shape, out=rows if i == len(steps) - 1 else None)
                flag = flag and step.pixels_out
            if out is None:     # one block: its result is the whole answer (no copy)
                return np.ascontiguousarray(Z, dtype)
            if Z is not rows:
                rows[...] = Z
        return out if out is not None else np.empty((0, n_out), dtype)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the spec, the image shape and each step's state (numbers and float32 arrays)."""
        return {"spec": self.spec, "image_shape": list(self.image_shape),
                "steps": [step.state() for step in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePipeline:
        """Rebuild a fitted pipeline from `to_dict`'s data; ValueError when it does not add up."""
        shape = tuple(int(d) for d in data["image_shape"])
        steps = [step_from_state(dict(state)) for state in data["steps"]]
        pipeline = cls(steps, shape)
        parse(pipeline.spec)   # the order rules
        n = shape[0] * shape[1]
        for step in steps:
            check_state(step, n)
            n = step.n_out(n)
        return pipeline

    def describe(self) -> list[str]:
        return [step.describe() for step in self.steps]


def pixel_weights(pipeline: FeaturePipeline, W: np.ndarray) -> tuple[np.ndarray | None, str]:
    """W (n_out, k), acting on the pipeline's features, mapped to the image's pixels, and a caption.

    Defined while the pipeline is linear in the pixels: deskew (weights on the deskewed image)
    and pca (V·W on x/255); (None, the reason) for poly2, rff and nystroem, which are not.
    """
    names = [step.name for step in pipeline.steps]
    reasons = {"hog": "histograms of gradient orientations", "rff": "cos(xW + b) of random directions",
               "poly2": "products of PCA components", "nystroem": "Gaussian kernels of landmark images"}
    for name, why in reasons.items():
        if name in names:
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
