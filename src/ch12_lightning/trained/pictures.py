"""Pictures as people have them, brought to the form a run's model was trained on.

Decoding (every model) is ``data.picture_decode.open_picture``'s: upright, 8-bit, opaque; a
picture too small for the run is noted by ``small_picture_note`` there, as training warns of it.

MNIST's form (``mnist_form``), the way the MNIST digits were made: grey levels; the ink found
and made light on dark (the picture's border says which is paper); the paper's level and grain
taken out; cropped to the digit; scaled to fit 20x20, keeping its aspect ratio; centred by its
centre of mass in 28x28. An MNIST digit comes out as it went in, give or take a few levels.

CelebA's form (``celeba_form``): the aligned faces are 178x218; a photo of another aspect ratio
is centre-cropped to it, so that training's resize to a square distorts it as it did them.

Each step that changed something adds a note, shown beside the prediction.
"""

import numpy as np
from PIL import Image

from ch12_lightning.data.picture_decode import Picture

MNIST_SIDE = 28
MNIST_BOX = 20  # the digits were scaled to fit this box, then centred by mass in 28x28
CELEBA_ASPECT = 178 / 218  # width / height of the aligned faces
NOISE_FLOOR = 0.1  # ink below this fraction of the paper-to-ink contrast is paper


def mnist_form(picture: Picture) -> tuple[np.ndarray, tuple[str, ...]]:
    """The picture as an MNIST digit: 28x28 float32 in [0, 1], light ink on black; with notes."""
    gray = np.asarray(picture.image.convert("L"), dtype=np.float32) / 255
    notes: list[str] = []
    if float(np.median(_border(gray))) > 0.5:
        gray = 1 - gray
        notes.append("dark ink on light paper: inverted")
    paper = float(np.median(_border(gray)))
    ink = float(np.percentile(gray, 99.5))
    blank = np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32), (*notes, "no ink found")
    if ink - paper < NOISE_FLOOR:
        return blank
    digit = np.clip((gray - paper) / (ink - paper), 0, 1)
    grain = 2 * float(np.percentile(_border(digit), 99))  # what the paper itself reaches
    digit[digit < max(NOISE_FLOOR, grain)] = 0
    rows, cols = np.nonzero(digit)
    if not rows.size:  # all of it as faint as the paper's grain
        return blank
    digit = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return _centred_by_mass(_fit_box(digit)), tuple(notes)


def _border(pixels: np.ndarray) -> np.ndarray:
    """The outer 5% (at least one pixel) of each side: where the paper is."""
    b = max(1, min(pixels.shape) // 20)
    return np.concatenate(
        [pixels[:b].ravel(), pixels[-b:].ravel(), pixels[:, :b].ravel(), pixels[:, -b:].ravel()]
    )


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Scaled (antialiased) so that its longer side is MNIST's 20 pixels."""
    height, width = digit.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(np.rint(digit * 255).astype(np.uint8)).resize(
        size, Image.Resampling.LANCZOS
    )
    return np.asarray(image, dtype=np.float32) / 255


def _centred_by_mass(digit: np.ndarray) -> np.ndarray:
    """Placed in 28x28 with its centre of mass on pixel (14, 14), as MNIST's digits are."""
    height, width = digit.shape
    mass = digit.sum()
    row = float((digit.sum(axis=1) * np.arange(height)).sum() / mass)
    col = float((digit.sum(axis=0) * np.arange(width)).sum() / mass)
    top, left = round(MNIST_SIDE / 2 - row), round(MNIST_SIDE / 2 - col)
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32)
    rows = slice(max(top, 0), min(top + height, MNIST_SIDE))
    cols = slice(max(left, 0), min(left + width, MNIST_SIDE))
    out[rows, cols] = digit[
        rows.start - top : rows.stop - top, cols.start - left : cols.stop - left
    ]
    return out


def celeba_form(picture: Picture) -> tuple[Image.Image, tuple[str, ...]]:
    """The picture centre-cropped to the aligned faces' aspect ratio (178:218)."""
    width, height = picture.image.size
    if abs(width / height - CELEBA_ASPECT) < 0.01:
        return picture.image, ()
    if width / height > CELEBA_ASPECT:
        new_width, new_height = round(height * CELEBA_ASPECT), height
    else:
        new_width, new_height = width, round(width / CELEBA_ASPECT)
    left, top = (width - new_width) // 2, (height - new_height) // 2
    cropped = picture.image.crop((left, top, left + new_width, top + new_height))
    return cropped, (f"centre-cropped from {width}x{height} to {new_width}x{new_height} (178:218)",)
