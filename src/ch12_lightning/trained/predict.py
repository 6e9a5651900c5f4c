"""Class predictions for the pictures people have, prepared as the run's training data was.

Each file is decoded by ``data.picture_decode.open_picture`` (EXIF orientation, first frame,
16-bit and float levels, transparency), then, with ``preprocess=auto`` (the default), brought to
the form of the run's data set: an MNIST digit (``pictures.mnist_form``) or an aligned CelebA
face's aspect ratio (``pictures.celeba_form``); ``preprocess=none`` only resizes, for pictures
already in that form; a run on a folder of pictures decodes and resizes exactly as its training
did. Then the run's own arithmetic: for MNIST gray, 28x28, scaled to [0, 1] and normalized with
the run's mean and std; for CelebA and image folders the data module's ``picture_transform``.
The model's ``probabilities`` turns its logits into class probabilities (softmax, or a sigmoid
for a single logit), as the chapter does at inference time, and each is put in words
(``answers.py``). Pictures a program holds rather than files (``inputs.py``) are decoded
already and prepared the same way. A run on a table predicts rows instead (``row_predictions``).
"""

import csv
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ch12_lightning.data.celeba import CelebADataModule
from ch12_lightning.data.mnist import IMAGE_SHAPE, MNISTDataModule
from ch12_lightning.data.picture_cache import PictureCacheDataModule
from ch12_lightning.data.picture_decode import (
    DRAFT_MARGIN,
    HEIF_HINT,
    SMALL_WHAT,
    Picture,
    UnreadablePicture,
    open_picture,
    small_picture_note,
)
from ch12_lightning.data.picture_store import (
    EXTENSIONS_HINT,
    HEIC_REASON,
    PictureStore,
    is_picture_name,
    is_zip_name,
    passed_over,
)
from ch12_lightning.data.tables import TableData
from ch12_lightning.errors import ConfigError, InputError, invalid
from ch12_lightning.files.atomic import atomic_path
from ch12_lightning.run.build import prepare
from ch12_lightning.trained.answers import LOW_CONFIDENCE, Estimate, Prediction, answers, counted
from ch12_lightning.trained.load import load_run
from ch12_lightning.trained.pictures import celeba_form, mnist_form
from ch12_lightning.trained.row_predictions import predict_table

log = logging.getLogger(__name__)

PREPROCESS = ("auto", "none")
ON_ERROR = ("fail", "skip")


@dataclass(frozen=True)
class ImageFormat:
    """What the model takes: a (C, H, W) tensor, made from a ``Picture`` (decoded with
    ``draft_side`` as training decoded its pictures) by ``prepare`` (``preprocess`` as the
    command line says), which also returns what it did, in words."""

    shape: tuple[int, int, int]
    prepare: Callable[[Picture, str], tuple[Tensor, tuple[str, ...]]]
    mean: float
    std: float
    draft_side: int | None = None


def image_format(datamodule: L.LightningDataModule) -> ImageFormat:
    """The input format of a run, from its data module's settings."""
    if isinstance(datamodule, PictureCacheDataModule):
        size, transform = datamodule.image_size, datamodule.transform()
        # CelebA's faces are brought to the aligned faces' aspect ratio; a folder's pictures
        # were only resized, and are prepared exactly so.
        is_face = isinstance(datamodule, CelebADataModule)
        what = "a face at this run's size" if is_face else SMALL_WHAT

        def prepare_picture(picture: Picture, preprocess: str) -> tuple[Tensor, tuple[str, ...]]:
            auto = is_face and preprocess == "auto"
            image, notes = celeba_form(picture) if auto else (picture.image, ())
            small = small_picture_note(picture, size, what)
            return transform(image), (*notes, *([small] if small else []))

        return ImageFormat(datamodule.input_shape, prepare_picture, datamodule.mean,
                           datamodule.std, size * DRAFT_MARGIN)  # fmt: skip
    if isinstance(datamodule, MNISTDataModule):
        mean, std = datamodule.mean, datamodule.std
        resized = mnist_transform(mean, std)

        def prepare_digit(picture: Picture, preprocess: str) -> tuple[Tensor, tuple[str, ...]]:
            small = small_picture_note(picture, 8, "a digit")
            if preprocess == "none":
                return resized(picture.image), (small,) if small else ()
            digit, notes = mnist_form(picture)
            levels = torch.from_numpy(np.rint(digit * 255) / 255).float()[None]  # as uint8 / 255
            return levels.sub_(mean).div_(std), (*notes, *([small] if small else []))

        return ImageFormat(IMAGE_SHAPE, prepare_digit, mean, std)
    raise ConfigError(
        f"Images cannot be prepared for a run of {type(datamodule).__name__}: only MNIST, "
        "CelebA and image-folder runs are known to predict and export."
    )


def mnist_transform(mean: float, std: float) -> Callable[[Image.Image], Tensor]:
    """A picture as ``MNISTDataModule`` prepares a digit, resized only: gray, 28x28, uint8
    scaled by the same float32 operations (a 28x28 gray picture of a digit gives its training
    tensor bit for bit)."""
    resize = v2.Resize(IMAGE_SHAPE[1:], antialias=True)

    def transform(picture: Image.Image) -> Tensor:
        pixels = resize(F.pil_to_tensor(picture.convert("L")))
        return pixels.float().div_(255).sub_(mean).div_(std)

    return transform


@dataclass(frozen=True)
class Inputs:
    """The picture files to predict, and the files found in the folders given that are not
    read: other files, hidden ones (``.DS_Store``, ``__MACOSX/...``), and HEIC pictures where
    pillow-heif is not installed."""

    files: list[Path]
    others: list[Path]
    hidden: list[Path] = field(default_factory=list)
    heic: list[Path] = field(default_factory=list)


def image_files(inputs: str | Sequence[str]) -> Inputs:
    """The image files named by ``inputs``: files, and the pictures in folders and the folders
    below them, as training reads a folder (the same extensions, links followed, hidden files
    and folders skipped: ``picture_store``), sorted by their path in the folder; the folders'
    other files are counted, not silently passed over. A missing path or a folder without
    pictures is an error."""
    names = [inputs] if isinstance(inputs, str | Path) else list(inputs or [])
    if not names:
        raise ConfigError(invalid("inputs", inputs, "give image files or a folder of images"))
    found = Inputs([], [])
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            _add_folder(found, path, name)
        elif path.is_file() and is_zip_name(path.name):
            reason = (
                f"a zip archive: predict reads picture files and folders; unzip it (unzip "
                f"{path.name} -d {path.stem}) and give the folder"
            )
            raise ConfigError(invalid("inputs", name, reason))
        elif path.is_file():
            found.files.append(path)
        else:
            raise ConfigError(invalid("inputs", name, "no such file or folder"))
    return found


def _add_folder(found: Inputs, folder: Path, name: str) -> None:
    """The files below ``folder`` into ``found``, sorted by their path in it, each where
    ``picture_store.passed_over`` puts it."""
    kinds: dict[str | None, list[Path]] = {
        None: [], "hidden": [], HEIC_REASON: [], "not pictures": []
    }  # fmt: skip
    for relative in sorted(PictureStore(folder).listing().files):
        kinds[passed_over(relative)].append(folder / relative)
    pictures, heic = kinds[None], kinds[HEIC_REASON]
    if not pictures:
        advice = f"; {len(heic)} HEIC pictures: {HEIF_HINT}" if heic else ""
        reason = f"the folder {folder} holds no image files (ending in {EXTENSIONS_HINT}{advice})"
        raise ConfigError(invalid("inputs", name, reason))
    found.files.extend(pictures)
    found.others.extend(kinds["not pictures"])
    found.hidden.extend(kinds["hidden"])
    found.heic.extend(heic)


@dataclass(frozen=True)
class Unreadable:
    path: Path
    reason: str


@dataclass(frozen=True)
class HeldPicture:
    """A picture a program holds rather than a file, decoded already (``inputs.py``);
    ``name`` stands where a file's path would (``picture 0``)."""

    name: Path
    picture: Picture


def predict(
    model: L.LightningModule,
    sources: Sequence[Path | HeldPicture],
    input_format: ImageFormat,
    batch_size: int = 256,
    preprocess: str = "auto",
) -> Iterator[Prediction | Unreadable]:
    """The most probable class of each picture (a file, or one held in memory), with its
    probability, a batch at a time; a file that cannot be read is reported as ``Unreadable``
    and the others are predicted."""
    for start in range(0, len(sources), batch_size):
        prepared: list[tuple[Path, Tensor, tuple[str, ...]]] = []
        for source in sources[start : start + batch_size]:
            try:
                path, picture = _opened(source, input_format.draft_side)
            except UnreadablePicture as err:
                yield Unreadable(source, str(err))
                continue
            tensor, notes = input_format.prepare(picture, preprocess)
            prepared.append((path, tensor, (*picture.notes, *notes)))
        if prepared:
            paths, tensors, notes = zip(*prepared, strict=True)
            yield from answers(model, torch.stack(tensors), paths, notes)


def _opened(source: Path | HeldPicture, draft_side: int | None) -> tuple[Path, Picture]:
    if isinstance(source, HeldPicture):
        return source.name, source.picture
    return source, open_picture(source, draft_side)


def write_csv(path: str | Path, predictions: Sequence[Prediction], class_names: list[str]) -> None:
    """One row per image: file, predicted class, its probability in numbers and words, what was
    done to the picture, every class's probability."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["image", "class", "probability", "confidence", "notes"]
        writer.writerow([*header, *(f"p_{n}" for n in class_names)])
        for p in predictions:
            writer.writerow([str(p.path), p.class_name, p.probability, p.confidence,
                             "; ".join(p.notes), *p.probabilities])  # fmt: skip


def predict_files(cfg: DictConfig) -> list[Prediction] | list[Estimate]:
    """Predict ``cfg.inputs`` with ``cfg.ckpt_path``: print a line per image and, with
    ``cfg.output_csv``, write the CSV. Files that cannot be read are listed after the others
    have been predicted; they fail the command unless ``on_error=skip``. A run on a table
    predicts the rows of ``cfg.inputs`` instead (``row_predictions.predict_table``)."""
    _check_options(cfg)
    run = load_run(cfg)
    prepare(run.config)
    datamodule = run.datamodule()
    model = run.model(datamodule)
    if isinstance(datamodule, TableData):
        return predict_table(cfg, model, datamodule)
    inputs = image_files(cfg.inputs)
    results = list(predict(model, inputs.files, image_format(datamodule), cfg.batch_size,
                           cfg.preprocess))  # fmt: skip
    predictions = [r for r in results if isinstance(r, Prediction)]
    unreadable = [r for r in results if isinstance(r, Unreadable)]
    for p in predictions:
        print(p.line())
    for bad in unreadable:
        print(f"{bad.path}: cannot be read ({bad.reason}){_not_a_picture_name(bad.path)}")
    for path in inputs.heic:
        print(f"{path}: not read, a HEIC picture: {HEIF_HINT}")
    if cfg.get("output_csv"):
        write_csv(cfg.output_csv, predictions, list(model.hparams.class_names))
    print(_summary(predictions, unreadable, inputs, cfg.get("output_csv")))
    if unreadable and cfg.on_error == "fail":
        rest = "the others were predicted" if predictions else "none was predicted"
        raise InputError(
            f"{len(unreadable)} of {len(inputs.files)} pictures could not be read (listed "
            f"above); {rest}. Set on_error=skip to exit with status 0 anyway."
        )
    return predictions


def _check_options(cfg: DictConfig) -> None:
    if not (isinstance(cfg.batch_size, int) and cfg.batch_size > 0):
        raise ConfigError(invalid("batch_size", cfg.batch_size, "must be a positive integer"))
    for key, valid in (("preprocess", PREPROCESS), ("on_error", ON_ERROR)):
        if cfg.get(key) not in valid:
            raise ConfigError(invalid(key, cfg.get(key), f"must be one of {', '.join(valid)}"))


def _summary(
    predictions: list[Prediction], unreadable: list[Unreadable], inputs: Inputs, csv_path
) -> str:
    low = sum(p.low_confidence for p in predictions)
    parts = [f"{counted(len(predictions), 'picture')} predicted ({low} with low confidence, "
             f"below {LOW_CONFIDENCE})"]  # fmt: skip
    if unreadable:
        parts.append(f"{len(unreadable)} could not be read")
    others = inputs.others
    if others:
        what = "not a picture" if len(others) == 1 else "not pictures"
        parts.append(
            f"{counted(len(others), 'other file')} in the folders skipped, {what} "
            f"({_names(others)})"
        )
    if inputs.hidden:
        parts.append(f"{counted(len(inputs.hidden), 'hidden file')} skipped "
                     f"({_names(inputs.hidden)})")  # fmt: skip
    if inputs.heic:
        parts.append(f"{counted(len(inputs.heic), 'HEIC picture')} skipped "
                     f"({_names(inputs.heic)}): {HEIF_HINT}")  # fmt: skip
    written = f"; written to {csv_path}" if csv_path else ""
    return "; ".join(parts) + written


def _not_a_picture_name(path: Path) -> str:
    """For a file named outright whose extension is no picture's (a video, a document): what
    pictures end in."""
    if isinstance(path, Path) and not is_picture_name(path.name):
        what = path.suffix or "a name without extension"
        return f"; {what} is no picture format: pictures end in {EXTENSIONS_HINT}"
    return ""


def _names(paths: list[Path]) -> str:
    """The first few files' names, for a summary line."""
    return ", ".join(p.name for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
