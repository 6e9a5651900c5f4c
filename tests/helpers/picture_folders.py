"""Folders of pictures as people have them, made in the test: learnable classes in mixed
formats, extension cases and depths."""

from pathlib import Path

import numpy as np
from PIL import Image

EXTENSIONS = (".jpg", ".PNG", ".jpeg", ".Png", ".bmp", ".TIFF", ".webp")


def picture(right: bool, rng: np.random.Generator, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """Noise with a bright patch in the left or the right half: learnable from the pixels."""
    width, height = size
    pixels = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
    left = width // 2 + 2 if right else 2
    pixels[height // 4 : 3 * height // 4, left : left + width // 2 - 4] += 150
    return Image.fromarray(pixels)


def make_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/...``: the classes' pictures in mixed formats and extension cases, every
    fourth one a level deeper; the first class's patch on the left, the others' on the right."""
    rng = np.random.default_rng(seed)
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            folder = root / name / ("more" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            picture(c > 0, rng).save(folder / f"p{i:03d}{EXTENSIONS[i % len(EXTENSIONS)]}")
    return root
