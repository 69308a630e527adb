"""Image files (PNG, JPEG, ...) turned into MNIST-style digits, the way MNIST itself was made.

`to_mnist` takes a picture of one digit and returns raw pixels like an MNIST image:
greyscale, a light digit on a black background (the picture is inverted when the
digit is dark on a light background, decided by the median of the border pixels),
cropped to the ink, scaled with anti-aliasing to fit a 20×20 box keeping the aspect
ratio, and placed in a 28×28 frame so that its centre of mass sits at the centre
(14, 14), as in MNIST. Other frame sizes scale the box in proportion (box = 20/28 of
the frame). Pillow is the optional `images` extra; without it, reading an image file
raises `MissingExtraError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mnistlr.errors import DataError, MissingExtraError

# Leading bytes of the image formats recognised by content (Pillow reads more).
IMAGE_MAGICS = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".pbm", ".pnm"})
# MNIST: a 20×20 box in a 28×28 frame; ink below this share of the peak does not count
# towards the bounding box (noise, paper texture).
BOX_SHARE = 20 / 28
INK_THRESHOLD = 0.1
# Largest picture decoded (a 64-megapixel photo; its greyscale float copy alone is 256 MB).
MAX_PIXELS = 64_000_000


def looks_like_image(head: bytes) -> bool:
    """True when *head* (the first bytes of a file) starts like an image format."""
    if head.startswith(IMAGE_MAGICS):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    # Netpbm: P1–P6 followed by whitespace
    return len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n"


def require_pillow() -> Any:
    """The PIL.Image module, or MissingExtraError naming the `images` extra."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("Pillow", "images", "reading image files") from None
    return Image


def load_image(source: str | os.PathLike | bytes, name: str | None = None) -> Any:
    """Open and fully decode an image (a path, or the file's bytes); EXIF rotation applied.

    Errors become one-line DataErrors naming *name* (default: the path).
    """
    Image = require_pillow()
    from PIL import ImageOps

    name = name or str(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns (two lines on stderr) before its own limit; here that is an error
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else regular_path(source)) as image:
                _check_size(image.size, name)
                image.load()
                return ImageOps.exif_transpose(image)
    except Image.DecompressionBombWarning as exc:
        raise DataError(f"{name}: image is too large to decode safely ({exc})",
                        "scale it down; a digit needs no more than a few hundred pixels a side") from None
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a directory, not an image file") from None
    except PermissionError:
        raise DataError(f"{name}: permission denied (cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{name}: image is too large to decode safely ({exc})",
                        "scale it down; a digit needs no more than a few hundred pixels a side") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        detail = re.sub(r" ?<[\w.]+ object at 0x[0-9a-fA-F]+>", "", detail)   # Pillow names its stream
        raise DataError(f"{name}: not a readable image ({detail})",
                        "give PNG, JPEG or another format Pillow reads") from None


def regular_path(path: str | os.PathLike, what: str = "an image file",
                 fix: str = "give the image file") -> str | os.PathLike:
    """*path* when it is a regular file or a folder (or missing: the reader names that); a
    device, FIFO or socket is refused without opening it (opening a FIFO waits for a writer)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DataError(f"{path}: is a device, FIFO or socket, not {what}", fix)
    return path


def _check_size(size: tuple[int, int], name: str) -> None:
    """Refuse, before decoding, an image of more than MAX_PIXELS (its memory grows with them)."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise DataError(f"{name}: image is {width:,}×{height:,} pixels, more than the "
                        f"{MAX_PIXELS // 1_000_000} megapixels read for one digit",
                        "scale it down; a digit needs no more than a few hundred pixels a side")


def _grey(image: Any) -> np.ndarray:
    """A Pillow image → greyscale (h, w) float32 0–255; transparency composited away."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = np.asarray(image, np.float32)
        # 16-bit images: 0–65535 → 0–255
        return grey * np.float32(255 / 65535) if grey.max() > 255 else grey
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image.convert("L"), np.float32)
    rgba = image.convert("RGBA")
    grey = np.asarray(rgba.convert("L"), np.float32)
    alpha = np.asarray(rgba, np.float32)[:, :, 3] / 255.0
    if alpha.min() >= 1.0:
        return grey
    # ink drawn on a transparent canvas: put it on the background that contrasts with the ink
    drawn = alpha > 0.5
    background = 255.0 if not drawn.any() or np.median(grey[drawn]) < 128 else 0.0
    # g = α·ink + (1 − α)·background
    return grey * alpha + background * (1.0 - alpha)


def _ink(grey: np.ndarray) -> np.ndarray:
    """Greyscale → ink (light digit on 0 background), stretched so the peak is 255."""
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = float(np.median(border))
    if background > 127.5:
        # dark digit on a light background: invert
        grey, background = 255.0 - grey, 255.0 - background
    ink = np.clip(grey - background, 0.0, None)
    peak = float(ink.max())
    if peak <= 0.0:
        return np.zeros_like(ink)
    return ink * (255.0 / peak)


def _fit_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Crop to the ink and scale (anti-aliased) so the longer side is *box* pixels."""
    from PIL import Image

    rows = np.flatnonzero((ink > INK_THRESHOLD * 255.0).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255.0).any(axis=0))
    crop = np.ascontiguousarray(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], np.float32)
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return crop
    scaled = Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled, np.float32), 0.0, 255.0)


def _place(digit: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Put *digit* into a frame of *shape* with its centre of mass at the frame's centre."""
    rows, cols = shape
    height, width = digit.shape
    mass = float(digit.sum())
    # centre of mass: (Σ i·v / Σ v, Σ j·v / Σ v) in pixel indices
    cy = float(digit.sum(axis=1) @ np.arange(height)) / mass
    cx = float(digit.sum(axis=0) @ np.arange(width)) / mass
    top = min(max(round(rows / 2 - cy), 0), rows - height)
    left = min(max(round(cols / 2 - cx), 0), cols - width)
    frame = np.zeros(shape, np.float32)
    frame[top:top + height, left:left + width] = digit
    return frame


def to_mnist(image: Any, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """A picture of one digit → uint8 (rows, cols) raw pixels, MNIST-style.

    *image* is a Pillow image or a greyscale array (h, w) of 0–255 values. A picture
    without any ink (blank) gives an all-zero image.
    """
    rows, cols = shape
    grey = _grey(image) if not isinstance(image, np.ndarray) else np.asarray(image, np.float32)
    if grey.ndim != 2 or grey.size == 0:
        raise DataError(f"an image must be 2-D greyscale, got shape {grey.shape}")
    ink = _ink(grey)
    if not (ink > INK_THRESHOLD * 255.0).any():
        return np.zeros(shape, np.uint8)
    box = max(1, min(round(BOX_SHARE * min(rows, cols)), rows, cols))
    frame = _place(_fit_box(ink, box), shape)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Read an image file of one digit → uint8 (rows, cols), MNIST-style (see `to_mnist`)."""
    return to_mnist(load_image(path), shape)


def read_grey(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """An image file (path or bytes) as it is: greyscale uint8 (h, w), no inversion, cropping or
    scaling (for datasets stored as image files, e.g. MNIST's own digits as PNGs)."""
    grey = _grey(load_image(source, name))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def read_digits(items: list[tuple[str, Any]], shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Read (name, path or bytes) image files → uint8 (n, rows, cols), MNIST-style."""
    return np.stack([to_mnist(load_image(source, name), shape) for name, source in items])


def image_files_in(folder: Path) -> list[Path]:
    """The image files in *folder* (by suffix or content; hidden files skipped), sorted by name."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    except PermissionError:
        raise DataError(f"{folder}: permission denied (cannot list the folder)") from None
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    found = []
    for path in entries:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
            continue
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            if looks_like_image(handle.read(16)):
                found.append(path)
    if not found:
        folders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folders:   # class folders DIR/<label>/: their images are not looked for here
            shown = ", ".join(folders[:3]) + (", …" if len(folders) > 3 else "")
            raise DataError(f"{folder}: folder holds no image files, only folders ({shown})",
                            f"give the folders of images themselves, e.g. {folder / folders[0]}")
        raise DataError(f"{folder}: folder holds no image files",
                        "give image files (PNG, JPEG, ...), or an IDX, .npy or CSV file")
    return found
