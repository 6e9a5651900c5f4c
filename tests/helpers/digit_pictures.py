"""Digits rendered with Pillow's own font, and saved the ways people have pictures of digits.

Training digits go through ``mnist_form``, as MNIST's were made from scans; the pictures to
predict are rendered anew (other sizes, strokes, slants, places) and saved as a clean MNIST-like
digit, as ink on paper, as a photo crop with margins and noise, as a JPEG stored rotated with
an EXIF orientation tag, on a transparent canvas, and as a 16-bit PNG.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ch12_lightning.data.picture_decode import Picture
from ch12_lightning.trained.pictures import mnist_form
from ch12_lightning.trained.predict import Prediction, predict_files
from tests.helpers.mnist_files import write_mnist
from tests.helpers.runs import trained_run_config

STYLES = ("mnist_like", "ink_on_paper", "photo_crop", "exif_rotated", "transparent", "16_bit")


def render(digit: int, rng: np.random.Generator, side: int = 96) -> np.ndarray:
    """A light digit on black, ``side`` pixels square, of random size, stroke, slant and place."""
    size = int(rng.integers(side // 3, side // 2))
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = rng.integers(side // 8, side // 2, 2)
    draw.text((int(x), int(y)), str(digit), fill=255, font=font,
              stroke_width=int(rng.integers(0, 3)), stroke_fill=255)  # fmt: skip
    slanted = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return np.asarray(slanted, dtype=np.float32) / 255


def as_mnist(pixels: np.ndarray) -> np.ndarray:
    """A rendering in MNIST's form, as uint8."""
    picture = Picture(Image.fromarray(np.rint(pixels * 255).astype(np.uint8)))
    return np.rint(mnist_form(picture)[0] * 255).astype(np.uint8)


def write_digit_set(root: Path, n_train: int = 1500, n_test: int = 200, seed: int = 0) -> Path:
    """MNIST-format archives of rendered digits (the training data of a digit reader)."""
    rng = np.random.default_rng(seed)

    def rendered(labels: np.ndarray) -> np.ndarray:
        return np.stack([as_mnist(render(int(label), rng)) for label in labels])

    return write_mnist(root, (n_train, n_test), rendered, rng)


def save(pixels: np.ndarray, style: str, path_stem: Path, rng: np.random.Generator) -> Path:
    """One rendering saved in ``style``; returns the file written."""
    clean = as_mnist(pixels)
    if style == "mnist_like":
        path = path_stem.with_suffix(".png")
        Image.fromarray(clean).save(path)
    elif style == "ink_on_paper":
        path = path_stem.with_suffix(".png")
        Image.fromarray(255 - clean).save(path)
    elif style == "photo_crop":
        path = path_stem.with_suffix(".jpg")
        _photo(pixels, rng).save(path, quality=90)
    elif style == "exif_rotated":  # stored turned a quarter, the tag saying how to show it
        path = path_stem.with_suffix(".jpg")
        stored = Image.fromarray(clean).resize((112, 112)).transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6  # "turn 90 degrees clockwise to view": undoes the ROTATE_90
        stored.save(path, quality=95, exif=exif)
    elif style == "transparent":  # black ink on a canvas whose every pixel is black
        path = path_stem.with_suffix(".png")
        ink = Image.fromarray(clean)
        Image.merge("RGBA", (*(Image.new("L", ink.size, 0),) * 3, ink)).save(path)
    elif style == "16_bit":
        path = path_stem.with_suffix(".png")
        Image.fromarray(clean.astype(np.uint16) * 257).save(path)  # I;16: 0..65535
    else:
        raise ValueError(style)
    return path


def _photo(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A 200x200 RGB crop of a photo: dark ink on lit paper, margins, a shadow, noise."""
    ink = np.asarray(Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).resize((130, 130)),
                     dtype=np.float32) / 255  # fmt: skip
    page = np.full((200, 200), 0.82, np.float32) + np.linspace(-0.06, 0.06, 200)[None, :]
    top, left = rng.integers(5, 65, 2)
    window = page[top : top + 130, left : left + 130]
    page[top : top + 130, left : left + 130] = window * (1 - ink) + 0.12 * ink
    page += rng.normal(0, 0.03, page.shape).astype(np.float32)
    gray = np.rint(np.clip(page, 0, 1) * 255).astype(np.uint8)
    tint = np.stack([gray, gray, np.clip(gray.astype(int) - 12, 0, 255).astype(np.uint8)], -1)
    return Image.fromarray(tint, "RGB")


def write_pictures(folder: Path, n: int = 100, seed: int = 1) -> dict[str, dict[str, int]]:
    """``n`` new renderings in each style, in ``folder/<style>/``: {style: {file name: digit}}."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    renderings = [render(int(label), rng) for label in labels]
    truth: dict[str, dict[str, int]] = {}
    for style in STYLES:
        (folder / style).mkdir(parents=True)
        truth[style] = {
            save(pixels, style, folder / style / f"{i:03d}_{label}", rng).name: int(label)
            for i, (pixels, label) in enumerate(zip(renderings, labels, strict=True))
        }
    return truth


def predictions(run: Path, inputs: Path, tmp_path: Path, *overrides: str) -> list[Prediction]:
    """What ``./ch12 predict ckpt_path=<run> inputs=<inputs>`` predicts, in this process."""
    config = trained_run_config("predict", tmp_path, f"ckpt_path={run}", f"inputs={inputs}",
                                *overrides)  # fmt: skip
    return predict_files(config)


def accuracy(found: list[Prediction], truth: dict[str, int]) -> float:
    """The share of ``found`` whose class is the digit ``truth`` gives for its file name."""
    assert sorted(p.path.name for p in found) == sorted(truth)
    return float(np.mean([int(p.class_name) == truth[p.path.name] for p in found]))
