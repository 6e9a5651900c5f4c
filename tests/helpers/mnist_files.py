"""MNIST's original file format, written and read back: data sets made in the test."""

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format of the original MNIST files, gzip-compressed."""
    magic = 0x0800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def read_idx(path: Path) -> np.ndarray:
    """An array from one of the original MNIST files (IDX format, gzip-compressed)."""
    data = gzip.decompress(path.read_bytes())
    shape = np.frombuffer(data, ">u4", count=data[3], offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape)


def write_mnist(
    root: Path,
    sizes: tuple[int, int],
    digits: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
) -> Path:
    """The four MNIST archives in ``root/MNIST/raw``: ``sizes`` train and test labels drawn
    from ``rng``, their images made by ``digits`` from the labels."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in zip(("train", "t10k"), sizes, strict=True):
        labels = rng.integers(0, 10, n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", digits(labels))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def light_bands(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``images`` (N, 28, 28) made learnable: in image i, row band ``labels[i]`` is lit."""
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
    return images


def digit(label: int, seed: int = 0) -> np.ndarray:
    """One 28x28 uint8 digit drawn like those of ``make_mnist``."""
    noise = np.random.default_rng(seed).integers(0, 60, (1, 28, 28))
    return light_bands(noise, np.array([label]))[0].astype(np.uint8)


def make_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """MNIST-format archives whose digits are learnable: class k lights up row band k."""
    rng = np.random.default_rng(seed)

    def bands(labels: np.ndarray) -> np.ndarray:
        return light_bands(rng.integers(0, 60, (len(labels), 28, 28)), labels)

    return write_mnist(root, (n_train, n_test), bands, rng)
