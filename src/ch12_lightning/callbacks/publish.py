"""Where callbacks put what they draw: a PNG in the run folder and TensorBoard's IMAGES tab, at
the step on TensorBoard's x axis that every other curve of the run uses."""

from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from ch12_lightning.files.atomic import write_serialized_atomic

# TensorBoard's IMAGES tab shows each picture 350 px wide, scaled to fit up or down: pictures
# of that width are shown pixel for pixel, their text as sharp as it was drawn.
DISPLAY_WIDTH = 350


def logged_step(trainer: L.Trainer) -> int:
    """The step Lightning logs the current metrics at: the optimizer steps taken (it counts
    the batches that stepped), with an epoch's metrics at the index of its last step. Lightning's
    own LearningRateMonitor logs at this step too, so every curve shares one axis."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def tensorboards(trainer: L.Trainer) -> list[TensorBoardLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def publish_picture(
    trainer: L.Trainer, picture: Image.Image, path: Path, tag: str, step: int
) -> None:
    """Save ``picture`` as the PNG ``path`` (written beside it, then renamed into place) and add
    it to every TensorBoard logger of the run as ``tag`` at ``step``."""
    write_serialized_atomic(path, partial(picture.save, format="PNG"))
    pixels = np.asarray(picture.convert("RGB"))
    for logger in tensorboards(trainer):
        logger.experiment.add_image(tag, pixels, step, dataformats="HWC")
