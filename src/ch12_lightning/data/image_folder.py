"""One's own pictures as a LightningDataModule: ``dataset=image_folder dataset.root=<folder>``.

The folder (or a zip of it) is read as torchvision's ``ImageFolder`` reads one
(``picture_folder``); the pictures go through the same decoding, 8-bit cache, room check and
progress as CelebA's (``picture_cache``), and ``predict`` prepares new pictures the same way.
"""

import logging
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ch12_lightning.data.picture_cache import (
    SPLITS,
    Inventory,
    PictureCacheDataModule,
    Selection,
)
from ch12_lightning.data.picture_folder import FolderScan, read_labels_csv, scan_folder
from ch12_lightning.data.picture_store import PictureStore, is_zip_name
from ch12_lightning.errors import ConfigError, invalid

log = logging.getLogger(__name__)

# Fewer validation or test pictures of a class than this are named in a warning.
FEW = 5


class ImageFolderDataModule(PictureCacheDataModule):
    """Classes from folder names (or ``labels_csv``); the user's train/val/test split folders,
    or a split drawn with ``seed``, stratified by class: ``val_fraction`` and ``test_fraction``
    of each class's pictures. ``n_per_class`` (None: all) training pictures of each class are
    drawn with ``seed`` to balance the classes, as CelebA's are.

    ``root`` is a folder or a .zip file; a relative one is looked for in the working folder,
    then in ``data_dir`` (``paths.data_dir``, ``CH12_DATA_DIR``).
    """

    title = "image-folder"
    cache_name = "image_folder"
    fewer_images = "set dataset.n_per_class, or use fewer pictures"

    def __init__(
        self,
        root: str,
        data_dir: str,
        cache_dir: str,
        labels_csv: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        n_per_class: int | None = None,
        seed: int = 1,
        image_size: int = 32,
        grayscale: bool = False,
        mean: float = 0.5,
        std: float = 0.5,
        batch_size: int = 32,
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
            "root", "labels_csv", "val_fraction", "test_fraction", "n_per_class", "seed",
            "image_size", "grayscale", "mean", "std", "batch_size",
        )  # fmt: skip
        self.root = root
        self.data_dir = data_dir
        self.labels_csv = labels_csv
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.n_per_class = n_per_class
        self.seed = seed
        self._found: tuple[PictureStore, FolderScan, dict[str, list[int]]] | None = None
        self._classes: list[str] | None = None
        self._found_at: Path | None = None  # where the run being read back found ``root``

    @property
    def class_names(self) -> list[str]:
        return self._classes or self._scan()[1].classes

    def use_classes(self, names: list[str]) -> None:
        """Take the classes a trained run recorded instead of reading them from the folder:
        what predict and export need, once the pictures may have moved."""
        self._classes = list(names)

    def state_dict(self) -> dict[str, Any]:
        """The recorded split, and where ``root`` was found: a relative root is found again
        there by eval from any working folder."""
        state = super().state_dict()
        return state | {"root": self.root, "found_at": str(self._root_path())} if state else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("found_at") and state_dict.get("root") == self.root:
            self._found_at = Path(state_dict["found_at"])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _settings(self) -> dict[str, Any]:
        keys = ("n_per_class", "val_fraction", "test_fraction", "seed")
        return super()._settings() | {key: getattr(self, key) for key in keys}

    # -- finding the pictures -------------------------------------------------------------

    def _scan(self) -> tuple[PictureStore, FolderScan, dict[str, list[int]]]:
        """The store, what it holds, and every file's size and stamp; read once (the class
        names are needed before the cache is)."""
        if self._found is None:
            store = PictureStore(self._root_path())
            try:
                listing = store.listing()
            except (zipfile.BadZipFile, OSError) as err:
                reason = f"it cannot be read as a zip archive ({err}); unzip it, or copy it again"
                raise ConfigError(invalid("dataset.root", self.root, reason)) from err
            labels = None
            if self.labels_csv:
                csv_path = self._csv_path(store.path)
                labels = read_labels_csv(_csv_text(csv_path), self.labels_csv, listing.files)
            scan = scan_folder(listing, self.root, labels, self.labels_csv)
            if scan.top:
                log.info("dataset.root=%s holds one folder, %s: reading it", self.root, scan.top)
                store = store.below(scan.top)
            self._found = store, _relative(scan), listing.files
            if scan.skipped:
                log.info("%s: %s", store.where(), scan.skipped_line())
        return self._found

    def _root_path(self) -> Path:
        """The folder or zip ``root`` names: where the run being read back found it, else
        ``root`` itself, in the working folder, or in ``data_dir``."""
        given = Path(self.root).expanduser()
        places = (
            [given]
            if given.is_absolute()
            else [Path.cwd() / given, Path(self.data_dir).expanduser() / given]
        )
        places = [self._found_at, *places] if self._found_at else places
        for place in places:
            if place.is_dir() or (place.is_file() and is_zip_name(place.name)):
                return place.resolve()
        if given.is_file():
            reason = "it is a file; give a folder of class folders, or a .zip of one"
        else:
            looked = " and ".join(str(p) for p in dict.fromkeys(places))
            reason = f"no such folder or .zip file (looked for {looked})"
            if self._found_at:
                reason += (
                    f". The run found its pictures in {self._found_at}: if they moved, give "
                    "dataset.root=<where they are now>"
                )
        raise ConfigError(invalid("dataset.root", self.root, reason))

    def _csv_path(self, root: Path) -> Path:
        given = Path(self.labels_csv).expanduser()
        folder = root if root.is_dir() else root.parent
        places = [given] if given.is_absolute() else [folder / given, Path.cwd() / given]
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            looked = " and ".join(str(p) for p in places)
            reason = f"no such file (looked for {looked})"
            raise ConfigError(invalid("dataset.labels_csv", self.labels_csv, reason))
        return found

    def _inventory(self) -> Inventory:
        store, scan, files = self._scan()
        below = len(scan.top)  # the store is opened at the scan's top
        stamps = {name[below:]: stamp for name, stamp in files.items() if name.startswith(scan.top)}
        return Inventory(store, stamps, self.class_names)

    # -- splitting and balancing ----------------------------------------------------------

    def _select(self, inventory: Inventory) -> Selection:
        store, scan, _ = self._scan()
        generator = torch.Generator().manual_seed(self.seed)
        by_split = _by_class(scan, generator, self.val_fraction, self.test_fraction)
        found = _counts(by_split)
        if self.n_per_class is not None:
            self._check_enough(by_split["train"], scan.classes, found)
            by_split["train"] = [
                [pool[i] for i in torch.randperm(len(pool), generator=generator)
                 [: self.n_per_class].sort().values.tolist()]
                for pool in by_split["train"]
            ]  # fmt: skip
        files = [(split, name, label) for split in SPLITS
                 for label, pool in enumerate(by_split[split]) for name in pool]  # fmt: skip
        given = [scan.split_folders[s] for s in SPLITS if s in scan.split_folders]
        how = (
            f"split folders {', '.join(given)}" if given else
            f"split with seed {self.seed}: val {self.val_fraction}, test {self.test_fraction}"
        )  # fmt: skip
        names = ", ".join(scan.classes[:10]) + (", ..." if len(scan.classes) > 10 else "")
        summary = (
            f"Image folder {store.where()} ({how}): {len(scan.classes)} classes ({names}); "
            f"found {found}"
        )
        if scan.skipped:
            summary += f"; {scan.skipped_line()}"
        _warn_of_few(by_split, scan.classes, store.where())
        return Selection(files, summary)

    def _check_enough(self, train: list[list[str]], classes: list[str], found: str) -> None:
        fewest = min(len(pool) for pool in train)
        if self.n_per_class > fewest:
            rarest = classes[min(range(len(train)), key=lambda i: len(train[i]))]
            raise ConfigError(
                f"dataset.n_per_class={self.n_per_class} asks for more training pictures of one "
                f"class than there are: {rarest} has {fewest} (found {found}). Use at most "
                f"{fewest}, or null for all of them."
            )


def _csv_text(path: Path) -> str:
    """The CSV's text as Excel saves it: "CSV UTF-8" starts with a byte-order mark (utf-8-sig);
    plain "CSV" is in the locale's code page, cp1252 in Western Europe and the Americas, whose
    accented labels (``Straßenbahn``) are no UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("%s is not UTF-8: read as Windows-1252 (cp1252), as Excel saves a CSV", path)
        return data.decode("cp1252", errors="replace")


def _relative(scan: FolderScan) -> FolderScan:
    """The scan with names relative to its top (the store is opened there)."""
    if not scan.top:
        return scan
    cut = len(scan.top)
    pictures = {split: [(name[cut:], label) for name, label in pairs]
                for split, pairs in scan.pictures.items()}  # fmt: skip
    return replace(scan, pictures=pictures)


def _by_class(
    scan: FolderScan, generator: torch.Generator, val_fraction: float, test_fraction: float
) -> dict[str, list[list[str]]]:
    """Split -> class -> file names: the split folders' own, and the splits they lack drawn
    from train (or from all), each class in proportion."""
    pools = {split: [[] for _ in scan.classes] for split in (*SPLITS, "all")}
    for split, pictures in scan.pictures.items():
        for name, label in pictures:
            pools[split][label].append(name)
    source = "all" if "all" in scan.pictures else "train"
    fractions = {split: fraction for split, fraction in (("val", val_fraction),
                 ("test", test_fraction)) if split not in scan.pictures}  # fmt: skip
    if not fractions:
        return pools
    for label, name in enumerate(scan.classes):
        pool = pools[source][label]
        needed = 1 + len(fractions)
        if len(pool) < needed:
            raise ConfigError(
                f"The class {name} has {len(pool)} picture{'s' * (len(pool) != 1)} in "
                f"{source}: at least {needed} are needed to draw {' and '.join(fractions)} "
                "pictures of every class from it. Add pictures, or give split folders."
            )
        order = [pool[i] for i in torch.randperm(len(pool), generator=generator).tolist()]
        start = 0
        for split, fraction in fractions.items():
            count = max(1, round(len(pool) * fraction))
            pools[split][label] = sorted(order[start : start + count])
            start += count
        pools["train"][label] = sorted(order[start:])
    return pools


def _warn_of_few(by_split: dict[str, list[list[str]]], classes: list[str], where: str) -> None:
    """One line naming the classes with fewer than ``FEW`` validation or test pictures: an
    accuracy over 1 or 2 pictures can only be 0, 0.5 or 1, and says little."""
    few = [f"{split} {classes[label]} {len(pool)}" for split in ("val", "test")
           for label, pool in enumerate(by_split[split]) if len(pool) < FEW]  # fmt: skip
    if few:
        shown = ", ".join(few[:8]) + (f" and {len(few) - 8} more" if len(few) > 8 else "")
        log.warning(
            "%s: few pictures to measure on (%s): an accuracy over n pictures moves in steps of "
            "1/n. Give more with dataset.val_fraction and dataset.test_fraction, more pictures, "
            "or val/ and test/ folders of your own.",
            where,
            shown,
        )


def _counts(by_split: dict[str, list[list[str]]]) -> str:
    """``train 400 / 380, val 50 / 48, test 50 / 47`` (per class, in class order)."""
    return ", ".join(
        f"{split} {' / '.join(str(len(pool)) for pool in by_split[split])}" for split in SPLITS
    )
