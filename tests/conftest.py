"""Shared fixtures: small MNIST-format data made in the test, and quick run configs."""

import gzip
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ch12_lightning import config_dir

REAL_DATA = os.environ.get("CH12_REAL_DATA")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format of the original MNIST files, gzip-compressed."""
    magic = 0x0800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


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


def make_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """MNIST-format archives whose digits are learnable: class k lights up row band k."""
    rng = np.random.default_rng(seed)

    def bands(labels: np.ndarray) -> np.ndarray:
        images = rng.integers(0, 60, (len(labels), 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label + 4 : 2 * label + 6, 4:24] = 255
        return images

    return write_mnist(root, (n_train, n_test), bands, rng)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mnist(tmp_path_factory.mktemp("data"))


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose conf/train.yaml as the command line would, without starting a Hydra run."""
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


def with_output_dir(overrides: list[str], output_dir: Path) -> list[str]:
    """The same overrides with another run folder."""
    kept = [o for o in overrides if not o.startswith("paths.output_dir=")]
    return [*kept, f"paths.output_dir={output_dir}"]


@pytest.fixture
def path_overrides(tmp_path: Path) -> list[str]:
    """Overrides that keep everything a run writes below tmp_path."""
    return [
        f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'run'}",
    ]


@pytest.fixture
def quick_overrides(mnist_dir: Path, path_overrides: list[str]) -> list[str]:
    """Overrides for a run of a few seconds on the generated MNIST data."""
    return [
        *path_overrides,
        f"paths.data_dir={mnist_dir}",
        "dataset.val_size=100",
        "dataset.batch_size=32",
        "trainer.max_epochs=2",
    ]
