"""The Numba kernel of `kernels.deskew`: one image per loop iteration, the same float64 operations
in the same order as its NumPy twin there (so the same bits)."""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit, prange


@njit(cache=True)
def _pixel(image, r, c):
    """image[r, c] as float64, 0 outside the image."""
    rows, cols = image.shape
    if r < 0 or r >= rows or c < 0 or c >= cols:
        return 0.0
    return np.float64(image[r, c])


@njit(cache=True)
def _moments(image):
    """(r̄, c̄, α) of one image: centre of mass and shear α = cov(r, c)/var(r), from exact integer sums."""
    rows, cols = image.shape
    s = s_r = s_c = s_rr = s_rc = 0.0
    for r in range(rows):
        for c in range(cols):
            v = np.float64(image[r, c])
            s += v
            s_r += v * r
            s_c += v * c
            s_rr += v * (r * r)
            s_rc += v * (r * c)
    if s == 0.0:
        return (rows - 1) / 2.0, (cols - 1) / 2.0, 0.0
    # α = cov/var = (S·S_rc − S_r·S_c)/(S·S_rr − S_r²): integers below 2^53, one rounding
    denominator = s * s_rr - s_r * s_r
    alpha = (s * s_rc - s_r * s_c) / denominator if denominator > 0.0 else 0.0
    return s_r / s, s_c / s, alpha


@njit(cache=True)
def _deskew_one(image, out):
    """out[r, c] = image(r + r̄ − r₀, c + α(r − r₀) + c̄ − c₀), bilinear, r₀/c₀ the image centre."""
    rows, cols = image.shape
    r_mean, c_mean, alpha = _moments(image)
    r0 = (rows - 1) / 2.0
    c0 = (cols - 1) / 2.0
    for r in range(rows):
        src_r = (r + r_mean) - r0
        top = np.floor(src_r)
        fr = src_r - top
        # this row's column shift: c ↦ c + o, o = α(r − r₀) + c̄ − c₀
        o = (alpha * (r - r0) + c_mean) - c0
        left = np.floor(o)
        fc = o - left
        w00 = (1.0 - fr) * (1.0 - fc)
        w01 = (1.0 - fr) * fc
        w10 = fr * (1.0 - fc)
        w11 = fr * fc
        t = int(min(max(top, -2.0), float(rows)))
        lc = int(min(max(left, -cols - 1.0), float(cols)))
        for c in range(cols):
            # bilinear: Σ over the 4 neighbours of weight (1−|Δr|)(1−|Δc|) · pixel, zero outside
            acc = ((w00 * _pixel(image, t, lc + c) + w01 * _pixel(image, t, lc + c + 1))
                   + w10 * _pixel(image, t + 1, lc + c)) + w11 * _pixel(image, t + 1, lc + c + 1)
            out[r, c] = np.uint8(min(max(np.floor(acc + 0.5), 0.0), 255.0))


@njit(cache=True, parallel=True)
def deskew_parallel(images, out):
    for i in prange(images.shape[0]):
        _deskew_one(images[i], out[i])


@njit(cache=True)
def deskew_serial(images, out):
    for i in range(images.shape[0]):
        _deskew_one(images[i], out[i])
