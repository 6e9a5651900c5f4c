"""Pictures of a run, as PNG files in the run folder and in TensorBoard's IMAGES tab."""

import logging
import math
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ch12_lightning.callbacks.publish import DISPLAY_WIDTH, logged_step, publish_picture
from ch12_lightning.files.atomic import write_serialized_atomic

log = logging.getLogger(__name__)

COLUMNS = 3  # cells of DISPLAY_WIDTH // COLUMNS pixels: room for a caption such as "pred male"
TILE = 96  # the largest side of an image in the grid, in pixels
FONT_SIZE = 11  # pixels: readable at the size TensorBoard shows the grid, and room for
# "pred masculin 0.62" in a third of its width
MARGIN = 4


def _to_pil(image: Tensor) -> Image.Image:
    """A normalized (C, H, W) tensor, rescaled to its own range, as an RGB picture at most TILE
    pixels a side: enlarged by a whole factor (pixels stay square) or reduced smoothly."""
    image = image.float()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-8)
    array = (image * 255).round().byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).convert("RGB")
    side = max(picture.size)
    if side > TILE:
        scale = TILE / side
        size = (round(picture.width * scale), round(picture.height * scale))
        return picture.resize(size, Image.Resampling.LANCZOS)
    factor = TILE // side
    size = (picture.width * factor, picture.height * factor)
    return picture.resize(size, Image.Resampling.NEAREST)


def _fitted(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, shortened with an ellipsis where it is wider than ``width`` pixels; a number
    that ends it (a probability) is kept whole, the words before it are shortened."""
    head, _, tail = text.rpartition(" ")
    if not (head and tail.replace(".", "", 1).isdigit()):
        head, tail = text, ""
    ending = f" {tail}" if tail else ""
    while len(head) > 1 and draw.textlength(head + ending, font=font) > width:
        head = head[:-2] + "…"
    return head + ending


def caption_font() -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships: Latin, Greek and Cyrillic letters (``féminin``),
    which Pillow's own default font draws as boxes."""
    import matplotlib  # here: a caption is drawn once per run

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), FONT_SIZE)


def caption(true: str, predicted: str, probability: float) -> tuple[str, str]:
    """A misclassified picture's two lines: its class, and the model's with its probability."""
    return f"true {true}", f"pred {predicted} {probability:.2f}"


def captioned_grid(images: list[Tensor], captions: list[tuple[str, str]]) -> Image.Image:
    """Images in rows of ``COLUMNS``, each with a two-line caption underneath, DISPLAY_WIDTH
    pixels wide so that TensorBoard shows it pixel for pixel."""
    font = caption_font()
    tiles = [_to_pil(image) for image in images]
    cell_width = DISPLAY_WIDTH // COLUMNS
    cell_height = max(tile.height for tile in tiles) + 2 * (FONT_SIZE + 2) + 2 * MARGIN
    rows = (len(tiles) + COLUMNS - 1) // COLUMNS
    grid = Image.new("RGB", (DISPLAY_WIDTH, rows * cell_height), "white")
    draw = ImageDraw.Draw(grid)
    for index, (tile, lines) in enumerate(zip(tiles, captions, strict=True)):
        x, y = (index % COLUMNS) * cell_width, (index // COLUMNS) * cell_height
        grid.paste(tile, (x + (cell_width - tile.width) // 2, y + MARGIN))
        for number, line in enumerate(lines):
            text = _fitted(draw, line, font, cell_width - 2 * MARGIN)
            top = y + MARGIN + tile.height + 2 + number * (FONT_SIZE + 2)
            draw.text((x + cell_width // 2, top), text, fill="black", font=font, anchor="ma")
    return grid


class MisclassifiedImages(Callback):
    """At test end, a grid of test images the model got wrong: true label, predicted label and
    the predicted probability. Uses the ``probabilities`` that ``test_step`` returns."""

    def __init__(self, dirpath: str, max_images: int = 21, filename: str = "misclassified.png"):
        self.path = Path(dirpath) / filename
        self.max_images = max_images
        self._found: list[tuple[Tensor, int, int, float]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._found = []

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: tuple[Tensor, Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        inputs, targets = batch
        if not isinstance(outputs, dict) or "probabilities" not in outputs or inputs.dim() != 4:
            return  # not a classifier, or not images (Iris measurements, say)
        probabilities = outputs["probabilities"]
        # An equal share per true class, so the grid is not all of whichever class comes first.
        share = max(1, self.max_images // probabilities.shape[1])
        confidence, predicted = probabilities.max(dim=1)
        for i in (predicted != targets).nonzero().flatten().tolist():
            true = int(targets[i])
            if sum(found[1] == true for found in self._found) < share:
                self._found.append((inputs[i].cpu(), true, int(predicted[i]), float(confidence[i])))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self._found:
            return
        names = pl_module.hparams.class_names  # a classifier's: its data's, or "0", "1", ...
        captions = [caption(names[true], names[pred], prob) for _, true, pred, prob in self._found]
        grid = captioned_grid([image for image, *_ in self._found], captions)
        publish_picture(trainer, grid, self.path, "test/misclassified", logged_step(trainer))
        log.info("%d misclassified test images: %s", len(self._found), self.path)


class LearningCurves(Callback):
    """At fit end, train and validation loss and accuracy (where the model has it) per epoch,
    as a PNG.

    The history is saved in checkpoints, so a resumed run draws its whole curve.
    """

    METRICS = ("train/loss", "val/loss", "train/acc", "val/acc")

    def __init__(self, dirpath: str, filename: str = "learning_curves.png") -> None:
        self.path = Path(dirpath) / filename
        self.history: dict[str, list[float]] = {name: [] for name in ("epoch", *self.METRICS)}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.history["epoch"].append(trainer.current_epoch + 1)
        for name in self.METRICS:
            self.history[name].append(float(metrics[name]) if name in metrics else float("nan"))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history["epoch"]:
            return
        # A Figure of its own, drawn by Agg, needs no pyplot (no backend, no global state).
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        quantities = [
            quantity
            for quantity in ("loss", "acc")
            if not all(
                math.isnan(value)
                for split in ("train", "val")
                for value in self.history[f"{split}/{quantity}"]
            )
        ]
        if not quantities:  # e.g. limit_train_batches=0: nothing was measured
            log.info("No learning curves: no epoch logged a training or validation metric")
            return
        width = 5 * len(quantities)
        figure = Figure(figsize=(width, 4))
        axes = figure.subplots(1, len(quantities), squeeze=False)[0]
        for axis, quantity in zip(axes, quantities, strict=True):
            for split in ("train", "val"):
                axis.plot(
                    self.history["epoch"], self.history[f"{split}/{quantity}"], marker="o",
                    markersize=3, label=split,
                )  # fmt: skip
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_ylabel("accuracy" if quantity == "acc" else "loss")
            axis.grid(alpha=0.3)
            axis.legend()
        figure.suptitle("Learning curves")
        # Fixed margins (in inches) instead of tight_layout, which draws the figure once more.
        figure.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, bottom=0.13, top=0.88)
        write_serialized_atomic(self.path, partial(figure.savefig, dpi=100, format="png"))
        log.info("Learning curves: %s", self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
