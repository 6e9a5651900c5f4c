"""CelebA attribute classification ("is the person male?") as a LightningDataModule.

Decoding JPEGs is the whole cost of this pipeline, so each selected image is decoded and
transformed once, in parallel, and the resulting tensors are cached on disk under a key made of
everything that changes them. Later epochs, and later runs with the same settings, never decode.
"""

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ch12_lightning.data.celeba_files import (
    PARTITIONS,
    CelebALayout,
    read_attribute,
    read_partitions,
)
from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches
from ch12_lightning.errors import ConfigError, InputError
from ch12_lightning.utils import atomic_path

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SPLITS = tuple(PARTITIONS)


class CorruptImageError(InputError, ValueError):
    """An image file cannot be decoded."""


def class_names_for(attribute: str) -> list[str]:
    """Names of label 0 and label 1 of a binary CelebA attribute."""
    if attribute == "Male":
        return ["female", "male"]
    return [f"not_{attribute.lower()}", attribute.lower()]


def build_transform(image_size: int, grayscale: bool, mean: float, std: float) -> v2.Compose:
    """The chapter's transforms, for an RGB picture (PIL or uint8 tensor) of any size."""
    channels = 1 if grayscale else 3
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((image_size, image_size), antialias=True),
            *([v2.Grayscale()] if grayscale else []),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([mean] * channels, [std] * channels),
        ]
    )


class _DecodedImages(Dataset):
    """Decodes and transforms one image per index; an unreadable file gives its error text.

    Errors travel back as values, not exceptions, so the main process can name the file in one
    clear message (or skip it) instead of re-raising a worker's traceback.
    """

    def __init__(self, paths: list[Path], transform: v2.Compose) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor | str:
        try:
            with Image.open(self.paths[index]) as picture:
                image = picture.convert("RGB")
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
            return str(err)
        return self.transform(image).as_subclass(Tensor)


def _keep_list(batch: list[Tensor | str]) -> list[Tensor | str]:
    return batch


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
    ) -> None:
        # num_workers decode the JPEGs once; batches are then served from memory, in-process.
        super().__init__(batch_size, data_on_device, pin_memory=pin_memory)
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
        self.prepare_seconds: float | None = None
        self.from_cache: bool | None = None
        self._cache_file: Path | None = None

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def input_size(self) -> int:
        return self.channels * self.image_size * self.image_size

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def class_names(self) -> list[str]:
        return class_names_for(self.attribute)

    def transform(self) -> v2.Compose:
        return build_transform(self.image_size, self.grayscale, self.mean, self.std)

    # -- preparing: select, decode, cache -------------------------------------------------

    def prepare_data(self) -> None:
        """Build the cache file for these settings unless it already exists (once per run)."""
        if self._cache_file is None:
            self._cache_file = self._cached()

    def setup(self, stage: str) -> None:
        if not self.splits:
            # Other DDP ranks skip prepare_data and find the file rank 0 built.
            cached = torch.load(self._cache_file or self._cached(), weights_only=True)
            self.splits = {
                split: TensorBatches(part["inputs"], part["targets"])
                for split, part in cached["splits"].items()
            }

    def _cached(self) -> Path:
        """Path of the cache file for the current settings and files, built if missing."""
        start = time.perf_counter()
        layout = CelebALayout.find(self.data_dir)
        images = _image_stats(layout.image_dir)
        path = self.cache_dir / "celeba" / f"{self._cache_key(layout, images)}.pt"
        self.from_cache = path.is_file()
        if self.from_cache:
            summary = torch.load(path, weights_only=True)["summary"]
        else:
            summary = self._build(layout, set(images), path)
        self.prepare_seconds = time.perf_counter() - start
        source = "from the cache" if self.from_cache else "decoded and cached"
        log.info("%s (%.2f s, %s: %s)", summary, self.prepare_seconds, source, path)
        return path

    def _cache_key(self, layout: CelebALayout, images: dict[str, list[int]]) -> str:
        settings = {
            "format": CACHE_FORMAT,
            "metadata": [_stat(layout.attr_file), _stat(layout.partition_file)],
            "images": images,
            **{key: getattr(self, key) for key in (*self.hparams, "skip_corrupt")},
        }
        settings.pop("batch_size")
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]

    def _build(self, layout: CelebALayout, present: set[str], path: Path) -> str:
        selection, summary = self._select(layout, present)
        files = [(split, name, label) for split in SPLITS for name, label in selection[split]]
        decoded = self._decode([layout.image_dir / name for _, name, _ in files])
        rows = list(zip(files, decoded, strict=True))
        failed = [(name, image) for (_, name, _), image in rows if isinstance(image, str)]
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
        splits = {}
        for split in SPLITS:
            kept = [
                (image, label)
                for (part, _, label), image in rows
                if part == split and not isinstance(image, str)
            ]
            splits[split] = {
                "inputs": torch.stack([image for image, _ in kept]),
                "targets": torch.tensor([label for _, label in kept], dtype=torch.long),
            }
        with atomic_path(path) as tmp:
            torch.save({"splits": splits, "summary": summary}, tmp)
        return summary

    def _decode(self, paths: list[Path]) -> list[Tensor | str]:
        dataset = _DecodedImages(paths, self.transform())
        # A generator of its own: drawing worker seeds from the global one would make a run that
        # builds the cache shuffle differently from a run that reads it.
        loader = DataLoader(
            dataset,
            batch_size=64,
            num_workers=self.num_workers,
            collate_fn=_keep_list,
            generator=torch.Generator().manual_seed(0),
        )
        return [image for batch in loader for image in batch]

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
