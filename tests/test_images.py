"""MNIST-style conversion of image files: inversion, crop, 20×20 box, centre of mass, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mnistlr.errors import DataError, MissingExtraError
from mnistlr.io import images
from mnistlr.io.images import image_files_in, load_image, looks_like_image, read_image, to_mnist

Image = pytest.importorskip("PIL.Image")


def sample_digits(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Real digits from the bundled sample: uint8 (n, 28, 28) and their labels."""
    from mnistlr.data.registry import load_dataset

    X, y = load_dataset("mnist-sample", "test")
    return X[:n], y[:n]


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    total = mass.sum()
    rows, cols = np.indices(image.shape)
    return float((rows * mass).sum() / total), float((cols * mass).sum() / total)


def ink_box(image: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def dark_on_light(digit: np.ndarray, size: tuple[int, int] = (100, 80), scale: float = 2.5,
                  at: tuple[int, int] = (20, 3)) -> np.ndarray:
    """The digit scaled up, drawn dark on a light-grey page of (height, width) at offset *at*."""
    side = round(28 * scale)
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32)
    page = np.full(size, 230.0, np.float32)
    top, left = at
    page[top:top + side, left:left + side] -= big * (200 / 255)
    return np.clip(page, 0, 255).astype(np.uint8)


def test_magic_bytes():
    assert looks_like_image(b"\x89PNG\r\n\x1a\n\x00")
    assert looks_like_image(b"\xff\xd8\xff\xdb")
    assert looks_like_image(b"P2\n3 3\n")
    assert not looks_like_image(b"\x00\x00\x08\x03")
    assert not looks_like_image(b"Pixel0,pixel1")


def test_mnist_digit_is_almost_unchanged():
    X, _ = sample_digits()
    for digit in X:
        out = to_mnist(digit)
        assert out.dtype == np.uint8 and out.shape == (28, 28)
        assert correlation(out, digit) > 0.9
        assert max(ink_box(out)) <= 20
        assert np.allclose(centre_of_mass(out), (14, 14), atol=0.75)


def test_dark_on_light_other_size_matches_the_digit():
    X, _ = sample_digits()
    for digit in X:
        page = dark_on_light(digit)
        assert np.median(page[0]) > 200  # the border is light: the picture must be inverted
        out = to_mnist(page)
        assert correlation(out, digit) > 0.8
        assert max(ink_box(out)) == 20
        assert np.allclose(centre_of_mass(out), (14, 14), atol=0.75)
        assert out.max() == 255


def test_aspect_ratio_is_kept():
    bar = np.zeros((60, 200), np.uint8)
    bar[20:40, 50:150] = 255  # 20 × 100: a wide bar
    out = to_mnist(bar)
    height, width = ink_box(out)
    assert width == 20 and height in (4, 5)
    tall = to_mnist(bar.T.copy())
    assert ink_box(tall) == (width, height)


def test_blank_pictures_give_empty_images():
    assert not to_mnist(np.full((40, 40), 255, np.uint8)).any()
    assert not to_mnist(np.zeros((10, 10), np.uint8)).any()


def test_other_frame_sizes_scale_the_box():
    X, _ = sample_digits(1)
    out = to_mnist(X[0], (14, 14))
    assert out.shape == (14, 14) and max(ink_box(out)) == 10


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1"])
def test_file_modes(tmp_path, mode):
    X, _ = sample_digits(1)
    page = dark_on_light(X[0], (64, 64), 2.0, (4, 4))
    picture = Image.fromarray(page)
    if mode == "I;16":
        picture = Image.fromarray(page.astype(np.uint16) * 257)
    elif mode == "1":
        picture = picture.point(lambda v: 255 if v > 180 else 0).convert("1")
    else:
        picture = picture.convert(mode)
    path = tmp_path / "digit.png"
    picture.save(path)
    out = read_image(path)
    assert correlation(out, X[0]) > (0.6 if mode == "1" else 0.8)


def test_ink_on_transparent_canvas(tmp_path):
    X, _ = sample_digits(1)
    # black strokes whose coverage is the alpha channel, on a fully transparent canvas
    rgba = np.zeros((56, 56, 4), np.uint8)
    big = np.asarray(Image.fromarray(X[0]).resize((56, 56), Image.Resampling.BICUBIC))
    rgba[:, :, 3] = big
    path = tmp_path / "drawn.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert correlation(read_image(path), X[0]) > 0.8
    rgba[:, :, :3] = 255  # white strokes on transparency
    Image.fromarray(rgba, "RGBA").save(path)
    assert correlation(read_image(path), X[0]) > 0.8


def test_jpeg_with_noise(tmp_path):
    X, _ = sample_digits(1)
    rng = np.random.default_rng(0)
    page = dark_on_light(X[0]).astype(np.int16) + rng.integers(-12, 12, size=(100, 80))
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(path, quality=80)
    assert correlation(read_image(path), X[0]) > 0.75


def test_unreadable_images(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(DataError, match="broken.png: not a readable image") as info:
        load_image(broken)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(DataError, match="<stdin>: not a readable image") as info:
        load_image(b"GIF89a-truncated", "<stdin>")
    assert " object at 0x" not in str(info.value)   # not Pillow's name for its BytesIO


def test_missing_pillow_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingExtraError, match=r"mnistlr\[images\]"):
        images.load_image(tmp_path / "x.png")


def test_folder_listing(tmp_path):
    for name in ("b.png", "a.jpg", "c.PNG"):
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "no_suffix", format="PNG")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in image_files_in(tmp_path)] == ["a.jpg", "b.png", "c.PNG", "no_suffix"]
