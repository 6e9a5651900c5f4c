"""CelebA attribute classification ("is the person male?") as a LightningDataModule.

The faces are read from the official layout, the CSV re-distribution or the unextracted
``img_align_celeba.zip`` (``celeba_files``); selected, decoded once and cached as 8-bit pixels
by ``picture_cache``.
"""

from typing import Any

import torch

from ch12_lightning.data.celeba_files import (
    PARTITIONS,
    CelebALayout,
    read_attribute,
    read_partitions,
)
from ch12_lightning.data.picture_cache import (
    Inventory,
    PictureCacheDataModule,
    Selection,
)
from ch12_lightning.errors import ConfigError

SPLITS = tuple(PARTITIONS)


def class_names_for(attribute: str) -> list[str]:
    """Names of label 0 and label 1 of a binary CelebA attribute."""
    if attribute == "Male":
        return ["female", "male"]
    return [f"not_{attribute.lower()}", attribute.lower()]


class CelebADataModule(PictureCacheDataModule):
    """A binary CelebA attribute (``Male`` by default) from the official partitions.

    Training uses ``n_per_class`` images of each class drawn from the train partition with
    ``seed``, as in the chapter. Validation and test come from their own partitions:
    ``eval_per_class`` is ``"balanced"`` (as many of each class as the rarer one has),
    ``"all"``, or a number of images per class.
    """

    title = "CelebA"
    cache_name = "celeba"
    fewer_images = "lower dataset.n_per_class or dataset.eval_per_class"

    def __init__(
        self,
        data_dir: str,
        cache_dir: str,
        attribute: str = "Male",
        n_per_class: int | None = 1000,
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
        super().__init__(
            cache_dir, image_size, grayscale, mean, std, batch_size, data_on_device,
            num_workers, skip_corrupt, pin_memory, memory_limit_gb, eval_batch_size,
        )  # fmt: skip
        self.save_hyperparameters(
            "attribute", "n_per_class", "eval_per_class", "image_size", "grayscale",
            "mean", "std", "seed", "batch_size",
        )  # fmt: skip
        self.data_dir = data_dir
        self.attribute = attribute
        self.n_per_class = n_per_class
        self.eval_per_class = eval_per_class
        self.seed = seed
        self._layout: CelebALayout | None = None

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def class_names(self) -> list[str]:
        return class_names_for(self.attribute)

    def _settings(self) -> dict[str, Any]:
        keys = ("attribute", "n_per_class", "eval_per_class", "image_size", "grayscale", "seed")
        return {key: getattr(self, key) for key in (*keys, "skip_corrupt")}

    def _inventory(self) -> Inventory:
        """The images on disk (a change to a selected one changes the cache key)."""
        layout = self._layout = CelebALayout.find(self.data_dir)
        images = {
            name: stamp
            for name, stamp in layout.images.listing().files.items()
            if name.endswith(".jpg") and "/" not in name
        }
        return Inventory(layout.images, images, self.class_names)

    def _select(self, inventory: Inventory) -> Selection:
        """Pick the files of each split and describe what was found."""
        layout, present = self._layout, inventory.stamps.keys()
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
        for split in SPLITS:
            per_class = self._per_class(split, counts[split], described)
            for label, pool in enumerate(found[split]):
                take = len(pool) if per_class is None else per_class
                picks = torch.randperm(len(pool), generator=generator)[:take].sort().values
                selection[split] += [(pool[i], label) for i in picks.tolist()]
        summary = f"CelebA {self.attribute} in {layout.images.where()}: found {described}"
        files = [(split, name, label) for split in SPLITS for name, label in selection[split]]
        return Selection(files, summary)

    def _per_class(self, split: str, counts: list[int], described: str) -> int | None:
        """How many images of each class ``split`` uses (None: all of them)."""
        if split == "train" and self.n_per_class is None:
            return None
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
