"""Class predictions for image files, prepared exactly as the run's training data was.

Any picture (PNG, JPEG, ...; RGB, RGBA, gray, palette; any size) is brought to the model's input
by the run's own transforms: for CelebA the data module's ``picture_transform`` with the run's
size, channels and normalization (training decodes its JPEGs at reduced scale first, which moves
pixels by 0.3-0.6 levels of 255 on average); for MNIST the arithmetic of ``MNISTDataModule``
(gray, 28x28, scaled to [0, 1], normalized with the run's mean and std). The model's
``probabilities`` turns its logits into class probabilities (softmax, or a sigmoid for a single
logit), as the chapter does at inference time.
"""

import csv
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ch12_lightning.data.celeba import CelebADataModule, CorruptImageError
from ch12_lightning.data.mnist import IMAGE_SHAPE, MNISTDataModule
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.pipeline import prepare
from ch12_lightning.trained import load_run
from ch12_lightning.utils import atomic_path

log = logging.getLogger(__name__)

# File name endings PIL can open, e.g. ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp".
IMAGE_SUFFIXES = frozenset(Image.registered_extensions())


@dataclass(frozen=True)
class ImageFormat:
    """What the model takes: a (C, H, W) tensor, made from a PIL picture by ``transform``."""

    shape: tuple[int, int, int]
    transform: Callable[[Image.Image], Tensor]
    mean: float
    std: float


def image_format(datamodule: L.LightningDataModule) -> ImageFormat:
    """The input format of a run, from its data module's settings."""
    if isinstance(datamodule, CelebADataModule):
        size = datamodule.image_size
        return ImageFormat(
            (datamodule.channels, size, size),
            datamodule.transform(),
            datamodule.mean,
            datamodule.std,
        )
    if isinstance(datamodule, MNISTDataModule):
        return ImageFormat(
            IMAGE_SHAPE,
            mnist_transform(datamodule.mean, datamodule.std),
            datamodule.mean,
            datamodule.std,
        )
    raise ConfigError(
        f"Images cannot be prepared for a run of {type(datamodule).__name__}: only MNIST and "
        "CelebA runs are known to predict and export."
    )


def mnist_transform(mean: float, std: float) -> Callable[[Image.Image], Tensor]:
    """Any picture as ``MNISTDataModule`` prepares a digit: gray, 28x28, uint8 scaled by the
    same float32 operations (a 28x28 gray picture of a digit gives its training tensor
    bit for bit)."""
    resize = v2.Resize(IMAGE_SHAPE[1:], antialias=True)

    def transform(picture: Image.Image) -> Tensor:
        pixels = resize(F.pil_to_tensor(picture.convert("L")))
        return pixels.float().div_(255).sub_(mean).div_(std)

    return transform


def image_files(inputs: str | Sequence[str]) -> list[Path]:
    """The image files named by ``inputs``: files, and the image files directly in folders
    (by name ending, sorted). A missing path or a folder without images is an error."""
    names = [inputs] if isinstance(inputs, str | Path) else list(inputs or [])
    if not names:
        raise ConfigError(invalid("inputs", inputs, "give image files or a folder of images"))
    files: list[Path] = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                reason = f"the folder {path} holds no image files (.png, .jpg, ... as PIL reads)"
                raise ConfigError(invalid("inputs", name, reason))
            files += [p for p in found if p.is_file()]
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(invalid("inputs", name, "no such file or folder"))
    return files


def read_image(path: Path) -> Image.Image:
    """The picture in ``path``, decoded now, so that a damaged file is named here."""
    try:
        with Image.open(path) as picture:
            picture.load()
            return picture.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise CorruptImageError(f"Cannot read image {path}: {err}") from err


@dataclass(frozen=True)
class Prediction:
    path: Path
    class_name: str
    probability: float
    probabilities: tuple[float, ...]


def predict(
    model: L.LightningModule,
    files: Sequence[Path],
    input_format: ImageFormat,
    batch_size: int = 256,
) -> Iterator[Prediction]:
    """The most probable class of each file, with its probability, a batch at a time."""
    class_names = list(model.hparams.class_names)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        inputs = torch.stack([input_format.transform(read_image(path)) for path in chunk])
        with torch.inference_mode():
            probabilities = model.probabilities(model(inputs.to(model.device))).cpu()
        for path, row in zip(chunk, probabilities, strict=True):
            best = int(row.argmax())
            yield Prediction(path, class_names[best], float(row[best]), tuple(row.tolist()))


def write_csv(path: str | Path, predictions: Sequence[Prediction], class_names: list[str]) -> None:
    """One row per image: file, predicted class, its probability, every class's probability."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "class", "probability", *(f"p_{n}" for n in class_names)])
        for p in predictions:
            writer.writerow([str(p.path), p.class_name, p.probability, *p.probabilities])


def predict_files(cfg: DictConfig) -> list[Prediction]:
    """Predict ``cfg.inputs`` with ``cfg.ckpt_path``: print a line per image and, with
    ``cfg.output_csv``, write the CSV."""
    if not (isinstance(cfg.batch_size, int) and cfg.batch_size > 0):
        raise ConfigError(invalid("batch_size", cfg.batch_size, "must be a positive integer"))
    files = image_files(cfg.inputs)
    run = load_run(cfg)
    prepare(run.config)
    datamodule = run.datamodule()
    model = run.model(datamodule)
    predictions = list(predict(model, files, image_format(datamodule), cfg.batch_size))
    for p in predictions:
        print(f"{p.path}: {p.class_name} ({p.probability:.4f})")
    if cfg.get("output_csv"):
        write_csv(cfg.output_csv, predictions, list(model.hparams.class_names))
        log.info("Predictions of %d images written to %s", len(predictions), cfg.output_csv)
    return predictions
