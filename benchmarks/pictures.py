"""How well ``predict`` reads pictures as people have them, with ``preprocess=none`` and ``auto``.

    python benchmarks/pictures.py --run <MNIST run folder> [--mnist-dir <folder with MNIST/raw>]

Real handwritten digits that are not MNIST's (scikit-learn's 1,797 8x8 scans, scaled to 64x64
with a margin) are saved in each of the ways of ``tests/helpers/digit_pictures.py`` (MNIST-like,
ink on paper, photo crop, EXIF-rotated JPEG, transparent canvas, 16-bit PNG) and predicted from the
files, as the command does. With ``--mnist-dir``, MNIST's own test digits saved as PNG too: what
the preprocessing costs on pictures already in MNIST's form. Also printed: the share of answers
that are wrong with probability 0.9 or more.
"""

import argparse
import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/ helpers

from tests.helpers.digit_pictures import STYLES, accuracy, predictions, save  # noqa: E402
from tests.helpers.mnist_files import read_idx  # noqa: E402


def scikit_learn_digits(limit: int) -> list[tuple[np.ndarray, int]]:
    """The scans as light digits on black, 64x64 inside a 16-pixel margin, in [0, 1]."""
    digits = load_digits()
    scans = []
    for image, label in list(zip(digits.images, digits.target, strict=True))[:limit]:
        scan = Image.fromarray(np.uint8(image / 16 * 255)).resize((64, 64), Image.BICUBIC)
        scans.append((np.pad(np.asarray(scan, dtype=np.float32) / 255, 16), int(label)))
    return scans


def measure(run: Path, folder: Path, truth: dict[str, int], work: Path) -> str:
    """``none auto wrong-and-sure(none) wrong-and-sure(auto)`` for the pictures in ``folder``."""
    cells = []
    for options in (["preprocess=none"], []):
        with contextlib.redirect_stdout(io.StringIO()):
            found = predictions(run, folder, work, "output_csv=null", *options)
        sure_and_wrong = np.mean(
            [p.probability >= 0.9 and int(p.class_name) != truth[p.path.name] for p in found]
        )
        cells.append((accuracy(found, truth), sure_and_wrong))
    (none, none_wrong), (auto, auto_wrong) = cells
    return f"{none:6.3f} {auto:6.3f}   {none_wrong:.3f} -> {auto_wrong:.3f}"


def row(name: str, cells: str) -> None:
    print(f"{name:40s} {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained MNIST run folder")
    parser.add_argument("--mnist-dir", type=Path, help="a folder holding MNIST/raw/*.gz")
    parser.add_argument("--limit", type=int, default=10_000, help="pictures per kind, at most")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="ch12_pictures_"))
    rng = np.random.default_rng(0)
    scans = scikit_learn_digits(args.limit)
    print(f"run {args.run}\n{'pictures':40s} {'none':>6s} {'auto':>6s}   wrong with p >= 0.9")
    if args.mnist_dir:
        raw = args.mnist_dir / "MNIST" / "raw"
        images = read_idx(raw / "t10k-images-idx3-ubyte.gz")[: args.limit]
        labels = read_idx(raw / "t10k-labels-idx1-ubyte.gz")
        (work / "mnist").mkdir()
        truth = {}
        for i, image in enumerate(images):
            Image.fromarray(image).save(work / "mnist" / f"{i:05d}.png")
            truth[f"{i:05d}.png"] = int(labels[i])
        row(
            f"MNIST test digits as PNG ({len(truth)})",
            measure(args.run, work / "mnist", truth, work),
        )
    for style in STYLES:
        (work / style).mkdir()
        truth = {save(pixels, style, work / style / f"{i:04d}_{label}", rng).name: label
                 for i, (pixels, label) in enumerate(scans)}  # fmt: skip
        row(
            f"scikit-learn digits, {style} ({len(truth)})",
            measure(args.run, work / style, truth, work),
        )


if __name__ == "__main__":
    main()
