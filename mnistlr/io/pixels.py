"""Pixel values: the one rule for what scale an array of pixels is on, used by every reader,
by the command line and by the Python API alike.

- Integer arrays (uint8, int64, ...; CSV cells without a decimal point) hold raw pixels 0–255.
- Float arrays (float32, float64; CSV cells with a decimal point) are on the **[0, 1] scale**
  when every value lies in [0, 1] (they are multiplied by 255), and on the **0–255 scale**
  when the largest value is 2 or more (and at most 255).
- A float array whose largest value lies strictly between 1 and 2 is refused as ambiguous:
  on the 0–255 scale it would be an almost black picture, on the [0, 1] scale it overshoots.
- NaN, infinities, negative values and values above 255 are refused, naming the image.
- Floats that are whole numbers on the 0–255 scale, up to float rounding (uint8 images divided
  by 255, or cast to float), are those whole numbers: uint8, so `X`, `X / 255` and
  `X.astype(float)` give the same bits everywhere. Other floats stay float32.

A stream (a file read in batches) takes its scale from its first batch and holds every later
batch to it; an array given whole is judged whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnistlr.errors import DataError, InputTypeError

PIXELS_HINT = "pixels must be integers 0–255 (e.g. uint8), or floats in [0, 1] or 0–255"
# A float array whose maximum is at least this is on the 0–255 scale.
RAW_SCALE_MIN_MAX = 2.0
# Raw-scale floats this close to whole numbers are whole numbers (k/255 in float32, times 255,
# is off by ~2e-5 at most).
WHOLE_TOLERANCE = 1e-3
_BLOCK_ROWS = 65536   # rows rounded at a time (bounded scratch memory)


def _image_name(i: int) -> str:
    return f"image {i:,}"


def pixel_top(X: np.ndarray, where: Callable[[int], str] = _image_name) -> float:
    """The top of the scale *X* is on: 255.0 (raw pixels) or 1.0 (the [0, 1] scale).

    X: (n, ...) pixel values. Integers are always raw; floats follow the rule above.
    """
    if X.dtype.kind in "iu" or X.size == 0:
        return 255.0
    flat = X.reshape(len(X), -1)
    _check_finite(flat, where)
    top = float(flat.max())
    if top <= 1.0:
        return 1.0
    if top < RAW_SCALE_MIN_MAX:
        i = int(np.flatnonzero((flat > 1).any(axis=1))[0])
        raise DataError(f"{where(i)} holds {flat[i].max():g}: float pixels are either in [0, 1] or "
                        f"on the 0–255 scale (largest value at least {RAW_SCALE_MIN_MAX:g}); this is "
                        "neither", "clip [0, 1] images with np.clip(X, 0, 1), or give uint8 pixels")
    return 255.0


def _check_finite(flat: np.ndarray, where: Callable[[int], str]) -> None:
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        what = "NaN" if np.isnan(flat[i]).any() else "an infinite value"
        raise DataError(f"{where(i)} holds {what}", PIXELS_HINT)


def check_pixels(X: np.ndarray, where: Callable[[int], str], top: float) -> np.ndarray:
    """Validate a batch of pixel values on the scale [0, *top*]; return raw pixels 0–255.

    top: 255 for the raw scale (integers become uint8, floats float32) or 1 for the
    [0, 1] scale (multiplied by 255, float32). where(i) names image i in error messages.
    """
    if X.dtype == np.uint8:
        return X
    flat = X.reshape(len(X), -1)
    if X.dtype.kind == "f":
        _check_finite(flat, where)
    if flat.size and flat.min() < 0:
        i = int(np.flatnonzero((flat < 0).any(axis=1))[0])
        raise DataError(f"{where(i)} holds a negative pixel value ({flat[i].min():g})", PIXELS_HINT)
    if flat.size and flat.max() > top:
        i = int(np.flatnonzero((flat > top).any(axis=1))[0])
        if top == 1:
            raise DataError(f"{where(i)} holds {flat[i].max():g}, but the images before it are on "
                            "the [0, 1] scale", "give every image on one scale, or uint8 pixels")
        raise DataError(f"{where(i)} holds {flat[i].max():g}, above 255", PIXELS_HINT)
    if X.dtype.kind in "iu":
        return X.astype(np.uint8)
    # x_raw = 255·x on the [0, 1] scale
    raw = X.astype(np.float32) * np.float32(255.0) if top == 1 else X.astype(np.float32, copy=False)
    return _whole(raw)


def _whole(raw: np.ndarray) -> np.ndarray:
    """*raw* (n, ...) float32 pixels as uint8 when every value is a whole number up to WHOLE_TOLERANCE."""
    flat = raw.reshape(len(raw), -1)
    for start in range(0, len(flat), _BLOCK_ROWS):
        block = flat[start:start + _BLOCK_ROWS]
        if np.abs(block - np.rint(block)).max(initial=0.0) > WHOLE_TOLERANCE:
            return raw
    out = np.empty(raw.shape, np.uint8)
    for start in range(0, len(flat), _BLOCK_ROWS):
        out.reshape(len(raw), -1)[start:start + _BLOCK_ROWS] = np.rint(flat[start:start + _BLOCK_ROWS])
    return out


def raw_pixels(X: np.ndarray, where: Callable[[int], str] = _image_name) -> np.ndarray:
    """Pixels on either scale → raw pixels 0–255 (uint8, or float32), by the rule above.

    X: (n, ...) numbers, of an integer or float dtype.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "iuf":
        raise InputTypeError(f"pixels of type {X.dtype} are not numbers", PIXELS_HINT)
    return check_pixels(X, where, pixel_top(X, where))
