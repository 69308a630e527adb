"""The proximal step of the L1 penalty (soft thresholding)."""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.setup import njit


@njit(cache=True)
def _soft_threshold(w, t, out):
    for i in range(w.size):
        # prox_{t‖·‖₁}(w) = sign(w)·max(|w| − t, 0)
        a = abs(w[i]) - t
        out[i] = 0.0 if a <= 0.0 else (a if w[i] > 0.0 else -a)


def soft_threshold(W: np.ndarray, t: float) -> np.ndarray:
    """Proximal step of t·‖W‖₁: sign(W)·max(|W| − t, 0), a new array of W's float dtype and shape."""
    W = np.ascontiguousarray(W)
    if W.dtype not in (np.float32, np.float64):
        raise ValueError(f"soft_threshold needs a float32/float64 array, got {W.dtype}")
    if not (t >= 0.0 and np.isfinite(t)):
        raise ValueError(f"soft_threshold needs a finite threshold ≥ 0, got {t}")
    out = np.empty_like(W)
    _soft_threshold(W.ravel(), W.dtype.type(t), out.ravel())
    return out
