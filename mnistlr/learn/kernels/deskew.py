"""Moment-based deskewing of uint8 images (LeCun's "deskewing"), one image per loop iteration.

Each image is sheared so that the principal axis of its ink is vertical and its centre of mass
lands on the image centre; pixel values come from bilinear interpolation (zero outside).
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit, prange

# Below this many images one thread: starting the parallel runtime costs more than it saves.
_DESKEW_PARALLEL_MIN = 2048


@njit(cache=True)
def _moments(image):
    """(r̄, c̄, α) of one image (rows, cols): centre of mass and the shear α = cov(r, c)/var(r)."""
    rows, cols = image.shape
    total = 0.0
    r_sum = 0.0
    c_sum = 0.0
    for r in range(rows):
        for c in range(cols):
            v = np.float64(image[r, c])
            total += v
            r_sum += r * v
            c_sum += c * v
    if total == 0.0:
        return (rows - 1) / 2.0, (cols - 1) / 2.0, 0.0
    r_mean = r_sum / total
    c_mean = c_sum / total
    var_r = 0.0
    cov_rc = 0.0
    for r in range(rows):
        for c in range(cols):
            v = np.float64(image[r, c])
            # var(r) = Σ v (r − r̄)² / Σ v;  cov(r, c) = Σ v (r − r̄)(c − c̄) / Σ v
            var_r += v * (r - r_mean) * (r - r_mean)
            cov_rc += v * (r - r_mean) * (c - c_mean)
    alpha = cov_rc / var_r if var_r > 0.0 else 0.0
    return r_mean, c_mean, alpha


@njit(cache=True)
def _deskew_one(image, out):
    """out[r, c] = image(r + r̄ − r₀, c + α(r − r₀) + c̄ − c₀), bilinear, r₀/c₀ the image centre."""
    rows, cols = image.shape
    r_mean, c_mean, alpha = _moments(image)
    r0 = (rows - 1) / 2.0
    c0 = (cols - 1) / 2.0
    for r in range(rows):
        src_r = r + r_mean - r0
        top = int(np.floor(src_r))
        fr = src_r - top
        for c in range(cols):
            src_c = c + alpha * (r - r0) + c_mean - c0
            left = int(np.floor(src_c))
            fc = src_c - left
            acc = 0.0
            # bilinear: Σ over the 4 neighbours of weight (1−|Δr|)(1−|Δc|) · pixel, zero outside
            for dr in range(2):
                rr = top + dr
                if rr < 0 or rr >= rows:
                    continue
                wr = fr if dr == 1 else 1.0 - fr
                for dc in range(2):
                    cc = left + dc
                    if cc < 0 or cc >= cols:
                        continue
                    wc = fc if dc == 1 else 1.0 - fc
                    acc += wr * wc * image[rr, cc]
            value = np.floor(acc + 0.5)
            out[r, c] = np.uint8(min(max(value, 0.0), 255.0))


@njit(cache=True, parallel=True)
def _deskew_parallel(images, out):
    for i in prange(images.shape[0]):
        _deskew_one(images[i], out[i])


@njit(cache=True)
def _deskew_serial(images, out):
    for i in range(images.shape[0]):
        _deskew_one(images[i], out[i])


def deskew_images(images: np.ndarray) -> np.ndarray:
    """Deskewed copies (n, rows, cols) uint8 of uint8 images (n, rows, cols)."""
    images = np.ascontiguousarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"deskew_images needs (n, rows, cols) uint8 images, got {images.dtype} {images.shape}")
    out = np.empty_like(images)
    kernel = _deskew_parallel if len(images) >= _DESKEW_PARALLEL_MIN else _deskew_serial
    kernel(images, out)
    return out
