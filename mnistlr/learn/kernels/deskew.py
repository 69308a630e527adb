"""Moment-based deskewing of uint8 images (LeCun's "deskewing"): a NumPy path and a Numba kernel.

Each image is sheared so that the principal axis of its ink is vertical and its centre of mass
lands on the image centre; pixel values come from bilinear interpolation (zero outside).

Both paths do the same float64 operations in the same order, so they give the same bits (a
test checks it on real digits): the moments come from exact integer sums (S = Σv, S_r = Σv·r,
S_c = Σv·c, S_rr = Σv·r², S_rc = Σv·r·c, all below 2^53, so any order gives them), and each
output row blends two input rows at one fractional column shift. `deskew_images` takes NumPy
in a process without Numba (predict: loading Numba costs more than deskewing 10,000 images)
and the kernel (`kernels.deskew_numba`) when Numba is loaded anyway (training).
"""

from __future__ import annotations

import sys

import numpy as np

# Below this many images one thread: starting the parallel runtime costs more than it saves.
_DESKEW_PARALLEL_MIN = 2048
_NUMPY_BLOCK = 512     # images per NumPy block (its float64 temporaries: 3 MB each)


def _moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r̄, c̄, α) (n,) each of images (n, rows, cols): centre of mass and shear α = cov(r, c)/var(r)."""
    n, rows, cols = images.shape
    # per row: Σ_c v and Σ_c v·c, integers below 2^24 (exact in float32 whatever BLAS's order)
    marginals = (images.astype(np.float32) @ np.stack([np.ones(cols), np.arange(cols)], 1).astype(np.float32))
    row_sums, row_c = marginals[:, :, 0].astype(np.float64), marginals[:, :, 1].astype(np.float64)
    r = np.arange(rows, dtype=np.float64)
    # S, S_r, S_rr, S_c, S_rc: integer sums below 2^53, exact in any order
    s, s_r, s_rr = row_sums.sum(axis=1), row_sums @ r, row_sums @ (r * r)
    s_c, s_rc = row_c.sum(axis=1), row_c @ r
    blank = s == 0.0
    safe = np.where(blank, 1.0, s)
    # α = (S·S_rc − S_r·S_c)/(S·S_rr − S_r²)
    denominator = s * s_rr - s_r * s_r
    alpha = np.where(denominator > 0.0, (s * s_rc - s_r * s_c) / np.where(denominator > 0.0, denominator, 1.0), 0.0)
    r_mean = np.where(blank, (rows - 1) / 2.0, s_r / safe)
    c_mean = np.where(blank, (cols - 1) / 2.0, s_c / safe)
    return r_mean, c_mean, np.where(blank, 0.0, alpha)


def _deskew_numpy(images: np.ndarray) -> np.ndarray:
    """`deskew_images` for a block (n, rows, cols) uint8, in NumPy (the kernel's operations, vectorised).

    Only output rows with ink in one of their two input rows are computed: the others blend
    zeros, which the kernel rounds to 0 (a quarter of MNIST's rows).
    """
    n, rows, cols = images.shape
    r_mean, c_mean, alpha = _moments(images)
    r = np.arange(rows, dtype=np.float64)
    r0, c0 = (rows - 1) / 2.0, (cols - 1) / 2.0
    src_r = (r + r_mean[:, None]) - r0                       # (n, rows)
    top = np.floor(src_r)
    fr = src_r - top
    # each row's column shift: c ↦ c + o, o = α(r − r₀) + c̄ − c₀
    o = (alpha[:, None] * (r - r0) + c_mean[:, None]) - c0
    left = np.floor(o)
    fc = o - left
    # zero-padded images (rows −2 … rows+1, columns −cols−1 … 2·cols); for each output row the
    # 2 × (cols+1) window of its two input rows from its first column
    padded = np.zeros((n, rows + 4, 3 * cols + 2), np.uint8)
    padded[:, 2:rows + 2, cols + 1:2 * cols + 1] = images
    t = np.clip(top, -2, rows).astype(np.intp) + 2
    lc = np.clip(left, -cols - 1, cols).astype(np.intp) + cols + 1
    inked = np.zeros((n, rows + 5), bool)                     # padded rows holding ink
    inked[:, 2:rows + 2] = images.any(axis=2)
    image, row = np.nonzero(inked[np.arange(n)[:, None], t] | inked[np.arange(n)[:, None], t + 1])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2, cols + 1), axis=(1, 2))
    near = windows[image, t[image, row], lc[image, row]]      # (m, 2, cols+1)
    fr, fc = fr[image, row][:, None], fc[image, row][:, None]
    weights = ((1.0 - fr) * (1.0 - fc), (1.0 - fr) * fc, fr * (1.0 - fc), fr * fc)
    # Σ over the 4 neighbours of weight (1−|Δr|)(1−|Δc|) · pixel, left to right, as the kernel
    acc = weights[0] * near[:, 0, :-1]
    term = np.empty_like(acc)
    for w, dr, dc in zip(weights[1:], (0, 1, 1), (1, 0, 1), strict=True):
        acc += np.multiply(w, near[:, dr, dc:cols + dc], out=term)
    # 0 ≤ acc < 255.5 (weights ≥ 0 summing to 1 within rounding): truncation is floor, no clip needed
    acc += 0.5
    out = np.zeros_like(images)
    out[image, row] = acc.astype(np.uint8)
    return out


def deskew_images(images: np.ndarray, numba: bool | None = None) -> np.ndarray:
    """Deskewed copies (n, rows, cols) uint8 of uint8 images (n, rows, cols).

    numba: take the kernel (True) or NumPy (False); None: the kernel when Numba is loaded.
    """
    images = np.ascontiguousarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"deskew_images needs (n, rows, cols) uint8 images, got {images.dtype} {images.shape}")
    if not (("numba" in sys.modules) if numba is None else numba):
        out = np.empty_like(images)
        for start in range(0, len(images), _NUMPY_BLOCK):
            out[start:start + _NUMPY_BLOCK] = _deskew_numpy(images[start:start + _NUMPY_BLOCK])
        return out
    from mnistlr.learn.kernels.deskew_numba import deskew_parallel, deskew_serial

    out = np.empty_like(images)
    (deskew_parallel if len(images) >= _DESKEW_PARALLEL_MIN else deskew_serial)(images, out)
    return out
