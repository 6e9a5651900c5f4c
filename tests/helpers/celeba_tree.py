"""Small CelebA-format trees for tests, in the official or the CSV layout."""

from pathlib import Path

import numpy as np
from PIL import Image

ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]
MALE = ATTRIBUTES.index("Male")
SMILING = ATTRIBUTES.index("Smiling")
# Per split: (female images, male images) on disk.
COUNTS = {0: (30, 20), 1: (8, 6), 2: (9, 7)}
MISSING = 5  # rows of the train partition whose image is not on disk


def make_celeba(
    root: Path,
    layout: str = "official",
    corrupt: bool = False,
    counts: dict[int, tuple[int, int]] = COUNTS,
    size: tuple[int, int] = (36, 44),
) -> Path:
    """Write a CelebA tree whose male images are bright in the upper half (learnable).

    Every fifth image is smiling. With ``corrupt``, one test image is not a JPEG at all.
    ``counts``: (female, male) images per partition; ``size``: (width, height) of each image
    (CelebA's aligned images are 178 x 218). Returns the folder to use as ``data_dir``.
    """
    rng = np.random.default_rng(0)
    images = root / "img_align_celeba"
    if layout == "csv":
        images = images / "img_align_celeba"
    images.mkdir(parents=True)
    rows, number = [], 0
    for partition, (females, males) in counts.items():
        labels = [0] * females + [1] * males + ([0] * MISSING if partition == 0 else [])
        for index, male in enumerate(labels):
            number += 1
            name = f"{number:06d}.jpg"
            values = [-1] * len(ATTRIBUTES)
            values[MALE] = 1 if male else -1
            values[SMILING] = 1 if number % 5 == 0 else -1
            rows.append((name, partition, values))
            if partition == 0 and index >= females + males:
                continue  # listed, but missing from this partial copy
            pixels = rng.integers(0, 90, (size[1], size[0], 3))
            if male:
                pixels[: size[1] // 2] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(images / name, quality=95)
    if corrupt:
        (images / rows[-1][0]).write_bytes(b"not a jpeg at all")
    if layout == "csv":
        attr = ["image_id," + ",".join(ATTRIBUTES)]
        attr += [f"{name}," + ",".join(map(str, values)) for name, _, values in rows]
        (root / "list_attr_celeba.csv").write_text("\n".join(attr) + "\n")
        parts = ["image_id,partition"] + [f"{name},{part}" for name, part, _ in rows]
        (root / "list_eval_partition.csv").write_text("\n".join(parts) + "\n")
    else:
        attr = [str(len(rows)), " ".join(ATTRIBUTES)]
        attr += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, _, values in rows]
        (root / "list_attr_celeba.txt").write_text("\r\n".join(attr) + "\r\n")
        parts = [f"{name} {part}" for name, part, _ in rows]
        (root / "list_eval_partition.txt").write_text("\r\n".join(parts) + "\r\n")
    return root
