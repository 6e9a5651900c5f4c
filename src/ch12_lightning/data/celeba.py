"""CelebA attribute classification ("is the person male?") as a LightningDataModule.

Decoding JPEGs is the whole cost of this pipeline, so each selected image is decoded and resized
once, in parallel, and the 8-bit pixels are cached on disk under a key made of everything that
changes them. Later epochs, and later runs with the same settings, never decode; batches are
normalized as they are served, on the device they train on. Before decoding, the memory and disk
the settings need are checked against what there is.
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from ch12_lightning.data.cache_folder import cache_folder_summary
from ch12_lightning.data.celeba_decode import decode_all, picture_pixels
from ch12_lightning.data.celeba_files import (
    PARTITIONS,
    CelebALayout,
    read_attribute,
    read_partitions,
)
from ch12_lightning.data.room import check_room
from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches
from ch12_lightning.errors import ConfigError, InputError
from ch12_lightning.files.atomic import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: uint8 pixels, normalized when served
SPLITS = tuple(PARTITIONS)


class CorruptImageError(InputError, ValueError):
    """An image file cannot be decoded."""


def class_names_for(attribute: str) -> list[str]:
    """Names of label 0 and label 1 of a binary CelebA attribute."""
    if attribute == "Male":
        return ["female", "male"]
    return [f"not_{attribute.lower()}", attribute.lower()]


def normalized(pixels: Tensor, mean: float, std: float) -> Tensor:
    """uint8 pixels (any leading dimensions) scaled to [0, 1] and normalized, by torchvision's
    own arithmetic: the values a float pipeline (``ToDtype(scale=True)``, ``Normalize``) gives."""
    channels = pixels.shape[-3]
    scaled = F.to_dtype(pixels, torch.float32, scale=True)
    return F.normalize(scaled, [mean] * channels, [std] * channels)


def picture_transform(
    image_size: int, grayscale: bool, mean: float, std: float
) -> Callable[[Image.Image], Tensor]:
    """Any picture as the training data were made: ``picture_pixels``, then ``normalized``."""

    def transform(picture: Image.Image) -> Tensor:
        pixels = torch.from_numpy(picture_pixels(picture, image_size, grayscale).copy())
        return normalized(pixels, mean, std)

    return transform


class CelebADataModule(InMemoryDataModule):
    """A binary CelebA attribute (``Male`` by default) from the official partitions.

    Training uses ``n_per_class`` images of each class drawn from the train partition with
    ``seed``, as in the chapter. Validation and test come from their own partitions:
    ``eval_per_class`` is ``"balanced"`` (as many of each class as the rarer one has),
    ``"all"``, or a number of images per class.
    """

    def __init__(
        self,
        data_dir: str,
        cache_dir: str,
        attribute: str = "Male",
        n_per_class: int = 1000,
        eval_per_class: str | int = "balanced",
        image_size: int = 32,
        grayscale: bool = True,
        mean: float = 0.5,
        std: float = 0.5,
        seed: int = 1,
        batch_size: int = 16,
        data_on_device: bool = True,
        num_workers: int = 2,
        skip_corrupt: bool = False,
        pin_memory: bool = False,
        memory_limit_gb: float | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        # num_workers decode the JPEGs once; batches are then served from memory, in-process.
        super().__init__(
            batch_size, data_on_device, pin_memory=pin_memory, eval_batch_size=eval_batch_size
        )
        self.save_hyperparameters(
            "attribute", "n_per_class", "eval_per_class", "image_size", "grayscale",
            "mean", "std", "seed", "batch_size",
        )  # fmt: skip
        self.data_dir = data_dir
        self.cache_dir = Path(cache_dir).expanduser()
        self.attribute = attribute
        self.n_per_class = n_per_class
        self.eval_per_class = eval_per_class
        self.image_size = image_size
        self.grayscale = grayscale
        self.mean = mean
        self.std = std
        self.seed = seed
        self.num_workers = num_workers
        self.skip_corrupt = skip_corrupt
        self.memory_limit_gb = memory_limit_gb
        self.prepare_seconds: float | None = None  # for the benchmark: finding or building
        self.decode_seconds: float | None = None  # the part of building spent decoding
        self.from_cache: bool | None = None
        self._cache_file: Path | None = None

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def class_names(self) -> list[str]:
        return class_names_for(self.attribute)

    def transform(self) -> Callable[[Image.Image], Tensor]:
        """A picture as this module's training data: for ``predict``."""
        return picture_transform(self.image_size, self.grayscale, self.mean, self.std)

    # -- preparing: select, decode, cache -------------------------------------------------

    def prepare_data(self) -> None:
        """Build the cache file for these settings unless it already exists (once per run)."""
        if self._cache_file is None:
            self._cache_file = self._cached()

    def setup(self, stage: str) -> None:
        if not self.splits:
            # Other DDP ranks skip prepare_data and find the file rank 0 built. Mapped, not
            # read: the pages come from the file as batches need them, shared by all ranks.
            path = self._cache_file or self._cached()
            cached = torch.load(path, weights_only=True, mmap=True)
            pixels, targets = cached["pixels"], cached["targets"]
            serve = partial(normalized, mean=self.mean, std=self.std)
            self.splits = {
                split: TensorBatches(pixels[start:end], targets[start:end], serve=serve)
                for split, (start, end) in cached["splits"].items()
            }

    def _cached(self) -> Path:
        """Path of the cache file for the current settings and files, built if missing or
        damaged. One process builds it while others that need the same file wait for it."""
        start = time.perf_counter()
        layout = CelebALayout.find(self.data_dir)
        images = _image_stats(layout.image_dir)
        path = self.cache_dir / "celeba" / f"{self._cache_key(layout, images)}.pt"
        with _one_builder(path):
            summary = self._cached_summary(path)
            self.from_cache = summary is not None
            if summary is None:
                summary = self._build(layout, set(images), path)
        self.prepare_seconds = time.perf_counter() - start
        source = "from the cache" if self.from_cache else "decoded and cached"
        log.info("%s (%.2f s, %s: %s)", summary, self.prepare_seconds, source, path)
        log.info("%s", cache_folder_summary(self.cache_dir))
        return path

    def _cached_summary(self, path: Path) -> str | None:
        """The summary of the cache at ``path`` if it is there and sound, else None (a damaged
        one is only a cache: it is rebuilt, with a warning)."""
        sidecar = path.with_suffix(".json")
        if not path.exists() and not sidecar.exists():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            problem = self._cache_problem(path, meta)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            problem = f"cannot be read ({type(err).__name__}: {err})"
        if problem:
            log.warning("The CelebA cache %s %s; building it again.", path, problem)
            return None
        os.utime(sidecar)  # last used: what ``./ch12 cache prune --keep-last`` goes by
        return meta["summary"]

    def _cache_problem(self, path: Path, meta: dict[str, Any]) -> str | None:
        """What makes the cache unusable for these settings (its description and tensors
        checked against each other and against the key's settings), or None."""
        if meta.get("format") != CACHE_FORMAT or meta.get("settings") != self._settings():
            return "does not match its key (its description holds other settings)"
        try:
            cached = torch.load(path, weights_only=True, mmap=True)
        except Exception as err:  # truncated, overwritten: the zip reader's errors vary
            return f"does not load ({type(err).__name__}: {str(err).split('. ')[0]})"
        pixels, targets, splits = cached["pixels"], cached["targets"], cached["splits"]
        shape = (meta["images"], self.channels, self.image_size, self.image_size)
        ends = sorted(end for _, end in splits.values())
        if (
            tuple(pixels.shape) != shape
            or pixels.dtype != torch.uint8
            or len(targets) != shape[0]
            or list(splits) != list(SPLITS)
            or ends[-1] != shape[0]
        ):
            return (
                f"does not match its description (pixels {tuple(pixels.shape)} {pixels.dtype}, "
                f"{len(targets)} labels; described: {shape}, uint8)"
            )
        return None

    def _settings(self) -> dict[str, Any]:
        """What changes the cached pixels (normalization and batch size are applied later)."""
        keys = ("attribute", "n_per_class", "eval_per_class", "image_size", "grayscale", "seed")
        return {key: getattr(self, key) for key in (*keys, "skip_corrupt")}

    def _cache_key(self, layout: CelebALayout, images: dict[str, list[int]]) -> str:
        settings = {
            "format": CACHE_FORMAT,
            "metadata": [_stat(layout.attr_file), _stat(layout.partition_file)],
            "images": images,
            **self._settings(),
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]

    def _build(self, layout: CelebALayout, present: set[str], path: Path) -> str:
        selection, summary = self._select(layout, present)
        files = [(split, name, label) for split in SPLITS for name, label in selection[split]]
        check_room(len(files), self.channels, self.image_size, path.parent, self.memory_limit_gb)
        start = time.perf_counter()
        pixels, errors = decode_all(
            [layout.image_dir / name for _, name, _ in files],
            self.image_size, self.grayscale, self.num_workers,
        )  # fmt: skip
        self.decode_seconds = time.perf_counter() - start
        failed = [(files[i][1], error) for i, error in sorted(errors.items())]
        if failed and not self.skip_corrupt:
            name, error = failed[0]
            raise CorruptImageError(
                f"Cannot decode image {layout.image_dir / name}: {error}"
                + (f" ({len(failed) - 1} more unreadable images)" if len(failed) > 1 else "")
                + ". Replace or delete the file, or set dataset.skip_corrupt=true to skip "
                "unreadable images."
            )
        if failed:
            names = [name for name, _ in failed]
            summary += f"; skipped {len(names)} unreadable images: {', '.join(names[:10])}"
            log.warning("Skipped %d unreadable images: %s", len(names), ", ".join(names))
        # One tensor, the splits as consecutive ranges of it (files come split by split).
        kept = [i for i in range(len(files)) if i not in errors]
        pixels_kept = torch.from_numpy(pixels if not errors else pixels[kept])
        targets = torch.tensor([files[i][2] for i in kept], dtype=torch.long)
        parts = [files[i][0] for i in kept]
        bounds = [0, *accumulate(parts.count(split) for split in SPLITS)]
        splits = {split: bounds[i : i + 2] for i, split in enumerate(SPLITS)}
        size = pixels_kept.nbytes + targets.nbytes
        with atomic_path(path, size) as tmp:
            torch.save({"pixels": pixels_kept, "targets": targets, "splits": splits}, tmp)
        write_json_atomic(
            path.with_suffix(".json"),
            {
                "format": CACHE_FORMAT,
                "dataset": "celeba",
                "summary": summary,
                "settings": self._settings(),
                "images": len(targets),
                "bytes": path.stat().st_size,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        return summary

    def _select(self, layout: CelebALayout, present: set[str]) -> tuple[dict[str, list], str]:
        """Pick the files of each split, as (name, label) pairs, and describe what was found."""
        labels = read_attribute(layout.attr_file, self.attribute)
        partitions = read_partitions(layout.partition_file)
        found: dict[str, list[list[str]]] = {split: [[], []] for split in SPLITS}
        for name in sorted(present & labels.keys() & partitions.keys()):
            found[SPLITS[partitions[name]]][labels[name]].append(name)
        names = self.class_names
        counts = {split: [len(found[split][0]), len(found[split][1])] for split in SPLITS}
        described = ", ".join(
            f"{split} {counts[split][0]} {names[0]} / {counts[split][1]} {names[1]}"
            for split in SPLITS
        )
        generator = torch.Generator().manual_seed(self.seed)
        selection: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
        used = []
        for split in SPLITS:
            per_class = self._per_class(split, counts[split], described)
            taken = []
            for label, pool in enumerate(found[split]):
                take = len(pool) if per_class is None else per_class
                picks = torch.randperm(len(pool), generator=generator)[:take].sort().values
                selection[split] += [(pool[i], label) for i in picks.tolist()]
                taken.append(str(take))
            used.append(f"{split} {' / '.join(taken)}")
        summary = (
            f"CelebA {self.attribute} in {layout.image_dir}: found {described}; "
            f"using {', '.join(used)}"
        )
        return selection, summary

    def _per_class(self, split: str, counts: list[int], described: str) -> int | None:
        """How many images of each class ``split`` uses (None: all of them)."""
        if split == "train":
            wanted, setting = self.n_per_class, "dataset.n_per_class"
        elif self.eval_per_class == "all":
            return None
        elif self.eval_per_class == "balanced":
            return min(counts)
        else:
            wanted, setting = self.eval_per_class, "dataset.eval_per_class"
        if wanted > min(counts):
            raise ConfigError(
                f"{setting}={wanted} asks for more {split} images of one class than there are "
                f"(found {described}). Use at most {min(counts)}, or a fuller copy of CelebA."
            )
        return wanted


@contextmanager
def _one_builder(path: Path) -> Iterator[None]:
    """Hold the lock of the cache at ``path`` (a lock file beside it, which the system releases
    if its holder dies): runs that start together build a cache once, the others wait and use
    it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.stem}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Another run is building the CelebA cache %s; waiting for it", path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _stat(path: Path) -> list[Any]:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def _image_stats(folder: Path) -> dict[str, list[int]]:
    """Size and modification time of every image: a changed, added or removed file changes
    the cache key."""
    with os.scandir(folder) as entries:
        return {
            entry.name: [entry.stat().st_size, entry.stat().st_mtime_ns]
            for entry in entries
            if entry.name.endswith(".jpg")
        }
