"""Picture data sets decoded once into an 8-bit cache on disk, served as tensors.

Decoding pictures is the whole cost of such a pipeline, so each selected picture is decoded and
resized once, in parallel, and the 8-bit pixels are cached on disk under a key made of
everything that changes them (the files' sizes and stamps and the settings). Later epochs, and
later runs with the same settings, never decode; batches are normalized as they are served, on
the device they train on. Before decoding, the memory and disk the settings need are checked
against what there is. CelebA and image folders differ only in how they find and label their
files (``_inventory`` and ``_select``); everything else is here.
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
from typing import Any, NamedTuple

import torch
from filelock import FileLock, Timeout
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as F

from ch12_lightning.data.cache_folder import cache_folder_summary
from ch12_lightning.data.picture_decode import decode_all, picture_pixels
from ch12_lightning.data.picture_store import PictureStore
from ch12_lightning.data.recorded_split import RESUMING, Recorded, RecordedSplit
from ch12_lightning.data.room import check_room
from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches
from ch12_lightning.errors import InputError
from ch12_lightning.files.atomic import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: uint8 pixels, normalized when served
SPLITS = ("train", "val", "test")
SHOWN_NAMES = 10  # unreadable pictures named in a message; all of them in a file beside it


class CorruptImageError(InputError, ValueError):
    """An image file cannot be decoded."""


class Inventory(NamedTuple):
    """Where a data set's files are: the store, every file in it (name -> [size, stamp]), and
    what else decides how files are labelled (the class names)."""

    store: PictureStore
    stamps: dict[str, list[int]]
    classes: list[str]


class Selection(NamedTuple):
    """The files a run uses, as (split, name in the store, label), split after split; and what
    was found, in a line for the log (what is used is added to it)."""

    files: list[tuple[str, str, int]]
    summary: str


def normalized(pixels: Tensor, mean: float, std: float) -> Tensor:
    """uint8 pixels (any leading dimensions) scaled to [0, 1] and normalized, by torchvision's
    own arithmetic: the values a float pipeline (``ToDtype(scale=True)``, ``Normalize``) gives."""
    channels = pixels.shape[-3]
    scaled = F.to_dtype(pixels, torch.float32, scale=True)
    return F.normalize(scaled, [mean] * channels, [std] * channels)


def picture_transform(
    image_size: int, grayscale: bool, mean: float, std: float
) -> Callable[[Image.Image], Tensor]:
    """A decoded picture as the training data were made: ``picture_pixels``, then
    ``normalized``."""

    def transform(picture: Image.Image) -> Tensor:
        pixels = torch.from_numpy(picture_pixels(picture, image_size, grayscale).copy())
        return normalized(pixels, mean, std)

    return transform


class PictureCacheDataModule(InMemoryDataModule):
    """Pictures resized to ``image_size`` squared, gray or RGB, normalized with ``mean`` and
    ``std`` when served; decoded by ``num_workers`` processes into a cache in ``cache_dir``.

    Subclasses name themselves (``title``, ``cache_name``: the folder of the cache directory,
    ``fewer_images``: the settings that select fewer images, for the room check's message), and
    find their files: ``_inventory`` (cheap: run on every start; bad input is refused there,
    before anything is decoded), ``_select`` and ``_settings`` (what else changes the pixels).
    """

    title = "pictures"
    cache_name = "pictures"
    fewer_images = "select fewer images"

    def __init__(
        self,
        cache_dir: str,
        image_size: int = 32,
        grayscale: bool = True,
        mean: float = 0.5,
        std: float = 0.5,
        batch_size: int = 16,
        data_on_device: bool = True,
        num_workers: int = 2,
        skip_corrupt: bool = False,
        pin_memory: bool = False,
        memory_limit_gb: float | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        # num_workers decode the pictures once; batches are then served from memory, in-process.
        super().__init__(
            batch_size, data_on_device, pin_memory=pin_memory, eval_batch_size=eval_batch_size
        )
        self.cache_dir = Path(cache_dir).expanduser()
        self.image_size = image_size
        self.grayscale = grayscale
        self.mean = mean
        self.std = std
        self.num_workers = num_workers
        self.skip_corrupt = skip_corrupt
        self.memory_limit_gb = memory_limit_gb
        self.prepare_seconds: float | None = None  # for the benchmark: finding or building
        self.decode_seconds: float | None = None  # the part of building spent decoding
        self.from_cache: bool | None = None
        self._cache_file: Path | None = None
        self._used: list[tuple[str, str, int]] | None = None  # (split, name, label), decoded
        self._stamps: dict[str, list[int]] = {}  # name -> [size, stamp, content digest]
        self._recorded: RecordedSplit | None = None
        self.left_out = ""  # what of the recorded split is gone or changed and left out, if any
        self._where = ""  # where the pictures were found (``PictureStore.where``)
        self._recorded_where = ""  # where the run being read back found them

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.channels, self.image_size, self.image_size

    def transform(self) -> Callable[[Image.Image], Tensor]:
        """A decoded picture as this module's training data: for ``predict``."""
        return picture_transform(self.image_size, self.grayscale, self.mean, self.std)

    # -- the split a run used, kept in its checkpoints (``recorded_split``) ------------------

    def state_dict(self) -> dict[str, Any]:
        """The files this run uses (name, label, size, stamp and content digest by split), which
        Lightning saves in every checkpoint: eval and resuming use them instead of drawing a
        split again."""
        if self._used is None:
            return {}
        split: Recorded = {name: [] for name in SPLITS}
        for part, name, label in self._used:
            split[part].append([name, label, *self._stamps[name]])
        return {"split": split, "where": self._where}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use the recorded split of a run being resumed: every split as it was."""
        self._recorded_where = state_dict.get("where", "")
        if state_dict.get("split"):
            self.use_recorded_split(state_dict["split"], SPLITS)

    def use_recorded_split(
        self,
        files: Recorded,
        needed: tuple[str, ...],
        skip_changed: bool = False,
        remedy: str = RESUMING,
    ) -> None:
        """Serve the recorded ``files`` (a checkpoint's ``state_dict()["split"]``) rather than a
        split drawn now; the ``needed`` splits must be as recorded (see ``RecordedSplit``)."""
        if self._cache_file is None:  # Lightning restores state after preparing: too late then
            self._recorded = RecordedSplit(
                files, needed, skip_changed, remedy, self._recorded_where
            )

    # -- what subclasses say --------------------------------------------------------------

    def _inventory(self) -> Inventory:
        raise NotImplementedError

    def _select(self, inventory: Inventory) -> Selection:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        """What changes the cached pixels besides the files (normalization and batch size
        are applied later)."""
        keys = ("image_size", "grayscale", "skip_corrupt")
        return {key: getattr(self, key) for key in keys}

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
        inventory = self._inventory()
        selection = self._selection(inventory)
        path = self.cache_dir / self.cache_name / f"{self._cache_key(inventory, selection)}.pt"
        with self._one_builder(path):
            meta = self._cached_meta(path)
            self.from_cache = meta is not None
            if meta is None:
                meta = self._build(inventory, selection, path)
        unreadable = meta.get("unreadable", [])
        self._used = [file for file in selection.files if file[1] not in set(unreadable)]
        self._where = inventory.store.where()
        self._stamps = {name: [*inventory.stamps[name], digest] for (_, name, _), digest
                        in zip(self._used, meta["digests"], strict=True)}  # fmt: skip
        summary = self._summary(selection, unreadable)
        self.prepare_seconds = time.perf_counter() - start
        source = "from the cache" if self.from_cache else "decoded and cached"
        log.info("%s (%.2f s, %s: %s)", summary, self.prepare_seconds, source, path)
        log.info("%s", cache_folder_summary(self.cache_dir))
        return path

    def _selection(self, inventory: Inventory) -> Selection:
        """The recorded split's files where there is one, else the split drawn now."""
        if self._recorded is None:
            return self._select(inventory)
        where = inventory.store.where()
        files, self.left_out = self._recorded.usable(inventory.stamps, inventory.store, where)
        summary = f"{self.title} {where}: the split the run recorded"
        return Selection(files, f"{summary} ({self.left_out})" if self.left_out else summary)

    def _counts(self, files: list[tuple[str, str, int]]) -> str:
        """``train 400 / 380, val 50 / 48, test 50 / 47``: pictures by split and class."""
        counts = {split: [0] * self.num_classes for split in SPLITS}
        for split, _, label in files:
            counts[split][label] += 1
        return ", ".join(f"{s} {' / '.join(map(str, counts[s]))}" for s in SPLITS)

    def _cache_key(self, inventory: Inventory, selection: Selection) -> str:
        """A digest of everything the cached pixels depend on: the store, the classes, the
        selected files with their sizes and stamps, and the settings. A second copy of the same
        pictures (another zip) has a cache of its own, with its own summary."""
        files = [[split, name, label, *inventory.stamps[name]]
                 for split, name, label in selection.files]  # fmt: skip
        described = {
            "format": CACHE_FORMAT,
            "store": inventory.store.where(),
            "classes": inventory.classes,
            "files": files,
            **self._settings(),
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]

    def _cached_meta(self, path: Path) -> dict[str, Any] | None:
        """The description of the cache at ``path`` if it is there and sound, else None (a
        damaged one is only a cache: it is rebuilt, with a warning)."""
        sidecar = path.with_suffix(".json")
        if not path.exists() and not sidecar.exists():
            return None
        try:
            meta = json.loads(sidecar.read_text())
            problem = self._cache_problem(path, meta)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            problem = f"cannot be read ({type(err).__name__}: {err})"
        if problem:
            log.warning("The %s cache %s %s; building it again.", self.title, path, problem)
            return None
        os.utime(sidecar)  # last used: what ``./ch12 cache prune --keep-last`` goes by
        return meta

    def _cache_problem(self, path: Path, meta: dict[str, Any]) -> str | None:
        """What makes the cache unusable for these settings (its description and tensors
        checked against each other and against the key's settings), or None."""
        if meta.get("format") != CACHE_FORMAT or meta.get("settings") != self._settings():
            return "does not match its key (its description holds other settings)"
        if len(meta.get("digests", ())) != meta["images"]:
            return "lacks its pictures' content digests (written by an earlier version)"
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

    def _build(self, inventory: Inventory, selection: Selection, path: Path) -> dict[str, Any]:
        """Decode the selected files into the cache at ``path``; its description (sidecar)."""
        files = selection.files
        check_room(len(files), self.channels, self.image_size, path.parent,
                   self.memory_limit_gb, self.title, self.fewer_images)  # fmt: skip
        store = inventory.store
        start = time.perf_counter()
        pixels, errors, digests = decode_all(
            [store.source(name) for _, name, _ in files], self.image_size, self.grayscale,
            self.num_workers, archive=store.archive, title=self.title,
        )  # fmt: skip
        self.decode_seconds = time.perf_counter() - start
        failed = {files[i][1]: error for i, error in sorted(errors.items())}
        if failed and not self.skip_corrupt:
            raise CorruptImageError(_unreadable_message(failed, store, path))
        if failed:
            log.warning("Skipped %d unreadable pictures: %s", len(failed), ", ".join(failed))
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
        meta = {
            "format": CACHE_FORMAT,
            "dataset": self.cache_name,
            "summary": self._summary(selection, sorted(failed)),
            "settings": self._settings(),
            "images": len(targets),
            "unreadable": sorted(failed),
            "digests": [digests[i] for i in kept],  # the decoded files', in selection order
            "bytes": path.stat().st_size,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(path.with_suffix(".json"), meta)
        return meta

    def _summary(self, selection: Selection, unreadable: list[str]) -> str:
        """What was found, what is used (the pictures decoded), and what was unreadable."""
        used = [file for file in selection.files if file[1] not in set(unreadable)]
        summary = f"{selection.summary}; using {self._counts(used)}"
        if unreadable:
            more = ", ..." if len(unreadable) > SHOWN_NAMES else ""
            summary += (
                f"; skipped {len(unreadable)} unreadable pictures: "
                f"{', '.join(unreadable[:SHOWN_NAMES])}{more}"
            )
        return summary

    @contextmanager
    def _one_builder(self, path: Path) -> Iterator[None]:
        """Hold the lock of the cache at ``path`` (a lock file beside it, which the system
        releases if its holder dies): runs that start together build a cache once, the others
        wait and use it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path.parent / f".{path.stem}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("Another run is building the %s cache %s; waiting for it", self.title, path)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


def _unreadable_message(failed: dict[str, str], store: PictureStore, cache: Path) -> str:
    """Every unreadable picture named with its error, up to ``SHOWN_NAMES``; all of them in a
    file beside the cache when there are more."""
    lines = [f"  {store.where(name)}: {error}" for name, error in failed.items()]
    more = ""
    if len(lines) > SHOWN_NAMES:
        listed = cache.with_suffix(".unreadable.txt")
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("\n".join(line.strip() for line in lines) + "\n")
        more = f"\n  and {len(lines) - SHOWN_NAMES} more: see {listed}"
    count = len(failed)
    return (
        f"Cannot decode {count} picture{'s' * (count != 1)}:\n"
        + "\n".join(lines[:SHOWN_NAMES])
        + f"{more}\nReplace or delete {'them' if count > 1 else 'it'}, or set "
        "dataset.skip_corrupt=true to skip unreadable pictures."
    )
