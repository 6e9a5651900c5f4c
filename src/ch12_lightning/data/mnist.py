"""MNIST as a LightningDataModule: decoded once into one normalized tensor, served by batches."""

import gzip
import hashlib
import logging
import math
import shutil
import struct
import zlib
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import random_split
from torchvision.datasets import MNIST

from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches
from ch12_lightning.errors import ConfigError, InputError, MissingDataError, invalid
from ch12_lightning.files.atomic import atomic_path

log = logging.getLogger(__name__)

ARCHIVES = tuple(Path(url).name for url, _ in MNIST.resources)
IMAGE_SHAPE = (1, 28, 28)
# Per kind of IDX file: its magic number and the shape of one item.
IDX_FORMATS = {"images": (0x0803, IMAGE_SHAPE[1:]), "labels": (0x0801, ())}


class MNISTFormatError(InputError, ValueError):
    """An MNIST file is damaged, truncated or not an MNIST file at all."""


class MNISTDataModule(InMemoryDataModule):
    """The book's MNIST splits: 55,000 train / 5,000 validation (seeded) / 10,000 test.

    torchvision's ``MNIST`` reads (or downloads) the files. Archives found in ``data_dir`` are
    extracted into ``cache_dir``, never next to them, so a read-only data folder works.
    """

    def __init__(
        self,
        data_dir: str,
        cache_dir: str,
        batch_size: int = 64,
        data_on_device: bool = True,
        val_size: int = 5000,
        split_seed: int = 1,
        mean: float = 0.1307,
        std: float = 0.3081,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__(batch_size, data_on_device, num_workers, pin_memory, eval_batch_size)
        # Where the files live is not a hyperparameter of the run; how they are split and scaled is.
        self.save_hyperparameters(
            "batch_size", "val_size", "split_seed", "mean", "std", logger=True
        )
        self.data_dir = Path(data_dir).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.val_size = val_size
        self.split_seed = split_seed
        self.mean = mean
        self.std = std
        self.download = download

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One gray 28x28 picture."""
        return IMAGE_SHAPE

    @property
    def num_classes(self) -> int:
        return len(MNIST.classes)

    @property
    def class_names(self) -> list[str]:
        return [str(digit) for digit in range(self.num_classes)]

    def prepare_data(self) -> None:
        """Make the extracted files available under ``self.root``, downloading if allowed."""
        if _extracted(self.data_dir):
            return
        raw = self.data_dir / "MNIST" / "raw"
        if all((raw / name).is_file() for name in ARCHIVES):
            _extract_into(raw, self._extract_root() / "MNIST" / "raw")
            return
        if not self.download:
            raise MissingDataError(self._missing_message("dataset.download is false"))
        try:
            for train in (True, False):
                MNIST(self.data_dir, train=train, download=True)
        except (OSError, RuntimeError) as err:
            raise MissingDataError(self._missing_message(f"the download failed: {err}")) from err

    @cached_property
    def root(self) -> Path:
        """The folder that torchvision's ``MNIST`` reads (it holds ``MNIST/raw/``). Found once,
        at the first split's loading: the cache folder's key follows the archives, so a data
        folder removed or unmounted mid-run must not send the test split's loading elsewhere."""
        return self.data_dir if _extracted(self.data_dir) else self._extract_root()

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and "train" not in self.splits:
            inputs, targets = self._load(train=True)
            if self.val_size >= len(targets):
                reason = f"must be less than the {len(targets)} training images"
                raise ConfigError(invalid("dataset.val_size", self.val_size, reason))
            generator = torch.Generator().manual_seed(self.split_seed)
            train, val = random_split(
                range(len(targets)), [len(targets) - self.val_size, self.val_size], generator
            )
            self.splits["train"] = TensorBatches(inputs[train.indices], targets[train.indices])
            self.splits["val"] = TensorBatches(inputs[val.indices], targets[val.indices])
        if stage == "test" and "test" not in self.splits:
            self.splits["test"] = TensorBatches(*self._load(train=False))

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        """Decode one split once into a normalized float tensor of shape (N, 1, 28, 28)."""
        for archive in ARCHIVES:
            if archive.startswith("train" if train else "t10k"):
                self._check_idx(archive)
        dataset = MNIST(self.root, train=train, download=False)
        images = dataset.data.unsqueeze(1).float().div_(255).sub_(self.mean).div_(self.std)
        return images, dataset.targets

    def _check_idx(self, archive: str) -> None:
        """torchvision meets a damaged file with a bare AssertionError or a reshape error: name
        the file instead, as the user has it (the archive, not its extraction in the cache)."""
        path = self.root / "MNIST" / "raw" / archive.removesuffix(".gz")
        if not path.is_file():
            raise MissingDataError(
                f"{path} is gone: it was there when the run prepared its data, and something "
                "removed it since (a cache prune, a cleanup, an unmounted disk). Checkpoints "
                "written so far are intact; once the file is back, evaluate them with "
                "`./ch12 eval ckpt_path=<run folder>`."
            )
        problem = _idx_problem(path, *IDX_FORMATS["images" if "images" in archive else "labels"])
        if problem:
            archived = self.data_dir / "MNIST" / "raw" / archive
            source = path if self.root == self.data_dir else archived
            raise MNISTFormatError(
                f"{source} is not a valid MNIST file: {problem}. Replace it with an intact copy "
                f"of {archive}."
            )

    def _extract_root(self) -> Path:
        """A cache folder keyed by the archives, so different copies never share extractions."""
        raw = self.data_dir / "MNIST" / "raw"
        key = hashlib.sha1(str(raw.resolve()).encode())
        for name in ARCHIVES:
            stat = (raw / name).stat() if (raw / name).exists() else None
            key.update(f"{name}:{stat and stat.st_size}:{stat and stat.st_mtime_ns}".encode())
        return self.cache_dir / "mnist" / key.hexdigest()[:16]

    def _missing_message(self, reason: str) -> str:
        raw = self.data_dir / "MNIST" / "raw"
        return (
            f"MNIST was not found in {raw} and {reason}.\n"
            f"Expected files: {', '.join(ARCHIVES)} (or the same files extracted, without .gz).\n"
            "Provide them by copying the four files into that folder, by pointing paths.data_dir "
            "(or the CH12_DATA_DIR environment variable) at a folder that holds MNIST/raw/, "
            "or by running once with internet access and dataset.download=true."
        )


def _extracted(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / name.removesuffix(".gz")).is_file() for name in ARCHIVES)


def _extract_into(source: Path, target: Path) -> None:
    """Decompress each archive into ``target``; a rename makes each file appear whole or never,
    so runs extracting at the same moment each end with whole files. An extraction found
    damaged (cut short by an older version, overwritten) is only a cache: extracted again."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVES:
        out = target / name.removesuffix(".gz")
        if out.is_file():
            problem = _idx_problem(out, *IDX_FORMATS["images" if "images" in name else "labels"])
            if problem is None:
                continue
            log.warning("The extracted %s in the cache is damaged (%s); extracting it again.",
                        out, problem)  # fmt: skip
        try:
            with (
                atomic_path(out) as tmp,
                gzip.open(source / name, "rb") as src,
                open(tmp, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise MNISTFormatError(
                f"{source / name} cannot be decompressed ({err}): it is truncated or not a gzip "
                "archive. Replace it with an intact copy."
            ) from err


def _idx_problem(path: Path, magic: int, item_shape: tuple[int, ...]) -> str | None:
    """What is wrong with the IDX file at ``path`` (magic number, item shape, size), or None."""
    header_size = 4 * (2 + len(item_shape))
    with open(path, "rb") as f:
        header = f.read(header_size)
    if len(header) < header_size:
        return f"it has only {len(header)} bytes, less than an IDX header"
    found = int.from_bytes(header[:4], "big")
    if found != magic:
        return f"its magic number is 0x{found:08x}, expected 0x{magic:08x}"
    count, *shape = struct.unpack(f">{1 + len(item_shape)}I", header[4:])
    if tuple(shape) != item_shape:
        return f"its items have shape {shape}, expected {list(item_shape)}"
    size, expected = path.stat().st_size, header_size + count * math.prod(item_shape)
    if size != expected:
        return f"it has {size} bytes where its header announces {count} items ({expected} bytes)"
    return None
