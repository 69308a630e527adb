"""Histograms of oriented gradients (Dalal & Triggs 2005) of uint8 images, in NumPy.

For each image (rows × cols, pixel values 0–255):

- gradients by central differences of x/255, 0 on the border: g_x = (x[r, c+1] − x[r, c−1])/255,
  g_y = (x[r+1, c] − x[r−1, c])/255;
- each pixel votes its magnitude ‖g‖ for its signed orientation atan2(g_y, g_x) ∈ [0, 2π),
  split linearly between the two nearest of *bins* orientations (bin k at 2πk/bins);
- votes are summed in cells of cell × cell pixels (the rows and columns past the last whole cell
  are left out), and every 2 × 2 block of neighbouring cells (stride one cell) is normalised
  by L2-Hys: v ← v/√(‖v‖² + ε), clipped at 0.2, then v ← v/√(‖v‖² + ε) again (ε = 10⁻⁶:
  negligible beside any stroke's gradients; a blank block stays 0).

The features of an image are its blocks in row-major order, each the 4·bins values of its cells
(top-left, top-right, bottom-left, bottom-right) bin by bin: (rows//cell − 1)·(cols//cell − 1)·4·bins
float32 values in [0, 1]. Only pixels with a non-zero gradient vote, summed in pixel order by
`np.bincount`, so an image gets the same bits alone or in any batch and on any thread count.
One NumPy path serves training and predict (no Numba to load: 10,000 images take ~0.2 s).
"""

from __future__ import annotations

import numpy as np

from mnistlr.learn.kernels.threads import run_blocks

BLOCK_CELLS = 2          # a block is 2 × 2 cells
CLIP = 0.2               # L2-Hys clips the normalised block at this value
EPSILON = 1e-6           # ε of the L2-Hys norms
_BLOCK_IMAGES = 256      # images per NumPy block (their float64 temporaries stay in L2)


def hog_size(rows: int, cols: int, cell: int, bins: int) -> int:
    """Features per image: (rows//cell − 1)·(cols//cell − 1) blocks of 4·bins values (0 when under 2 × 2 cells)."""
    blocks_down, blocks_across = rows // cell - BLOCK_CELLS + 1, cols // cell - BLOCK_CELLS + 1
    if blocks_down < 1 or blocks_across < 1:
        return 0
    return blocks_down * blocks_across * BLOCK_CELLS * BLOCK_CELLS * bins


def hog_features(images: np.ndarray, cell: int, bins: int, out: np.ndarray | None = None) -> np.ndarray:
    """The HOG features (n, hog_size) float32 of uint8 images (n, rows, cols), written into *out* when given."""
    images = np.ascontiguousarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"hog_features needs (n, rows, cols) uint8 images, got {images.dtype} {images.shape}")
    n, rows, cols = images.shape
    size = hog_size(rows, cols, cell, bins)
    if size == 0:
        raise ValueError(f"{rows}×{cols} images hold fewer than 2 × 2 cells of {cell} × {cell} pixels")
    out = np.empty((n, size), np.float32) if out is None else out

    def block(start: int) -> None:
        stop = min(start + _BLOCK_IMAGES, n)
        out[start:stop] = _hog_block(images[start:stop], cell, bins)

    run_blocks(range(0, n, _BLOCK_IMAGES), block)
    return out


def _votes(images: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat index of each voting pixel in the (n, rows', cols') crop, g_x, g_y) as float64 in x/255
    units, for the pixels of the whole cells with a non-zero gradient."""
    n, rows, cols = images.shape
    x = images.astype(np.int16)
    gx, gy = np.zeros((n, rows, cols), np.int16), np.zeros((n, rows, cols), np.int16)
    # g_x = x[r, c+1] − x[r, c−1], g_y = x[r+1, c] − x[r−1, c]; 0 on the border
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    crop = (slice(None), slice(0, rows // cell * cell), slice(0, cols // cell * cell))
    gx, gy = gx[crop].ravel(), gy[crop].ravel()
    voting = np.flatnonzero(gx | gy)
    return voting, gx[voting] / 255.0, gy[voting] / 255.0


def _hog_block(images: np.ndarray, cell: int, bins: int) -> np.ndarray:
    """`hog_features` of one block of images (n, rows, cols) uint8."""
    n, rows, cols = images.shape
    cells_down, cells_across = rows // cell, cols // cell
    voting, gx, gy = _votes(images, cell)
    # ‖g‖ and the orientation's place among the bins: t = atan2(g_y, g_x)·bins/2π ∈ [0, bins)
    magnitude = np.sqrt(gx * gx + gy * gy)
    place = np.arctan2(gy, gx) * (bins / (2.0 * np.pi))
    place += np.where(place < 0.0, float(bins), 0.0)
    below = np.floor(place)
    upper_share = place - below
    below = below.astype(np.intp) % bins
    # each pixel's histogram: image i, cell (r // cell, c // cell) of the crop
    pixels_per_image = cells_down * cell * cells_across * cell
    image, pixel = np.divmod(voting, pixels_per_image)
    r, c = np.divmod(pixel, cells_across * cell)
    first_bin = ((image * cells_down + r // cell) * cells_across + c // cell) * bins
    # votes: ‖g‖·(1 − share) to the bin below, ‖g‖·share to the next (bins wrap around)
    length = n * cells_down * cells_across * bins
    histograms = (np.bincount(first_bin + below, magnitude * (1.0 - upper_share), length)
                  + np.bincount(first_bin + (below + 1) % bins, magnitude * upper_share, length))
    # (float64 also when no pixel votes: bincount of nothing is whole numbers)
    h = histograms.astype(np.float64, copy=False).reshape(n, cells_down, cells_across, bins)
    blocks = np.concatenate([h[:, :-1, :-1], h[:, :-1, 1:], h[:, 1:, :-1], h[:, 1:, 1:]], axis=-1)
    # L2-Hys: v/√(‖v‖² + ε), clipped at 0.2, normalised again
    blocks /= np.sqrt(np.einsum("...i,...i", blocks, blocks) + EPSILON)[..., None]
    np.minimum(blocks, CLIP, out=blocks)
    blocks /= np.sqrt(np.einsum("...i,...i", blocks, blocks) + EPSILON)[..., None]
    return blocks.reshape(n, -1).astype(np.float32)
