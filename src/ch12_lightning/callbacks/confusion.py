"""Confusion matrices of a classifier, the first picture practitioners read: on validation at
the best epoch and on test, as PNG in the run folder and in TensorBoard's IMAGES tab."""

import io
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image

from ch12_lightning.callbacks.publish import DISPLAY_WIDTH, logged_step, publish_picture

log = logging.getLogger(__name__)

DPI = 100
PANEL_HEIGHT = 3.3  # inches of figure per matrix


def confusion_picture(counts: np.ndarray, class_names: list[str], title: str) -> Image.Image:
    """Counts (rows: true class, columns: predicted class) above the same matrix normalized by
    row (the share of each true class given each prediction: recall on the diagonal), drawn
    by scikit-learn's ``ConfusionMatrixDisplay`` DISPLAY_WIDTH pixels wide."""
    # A Figure of its own, drawn by Agg: no pyplot state, no display needed.
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from sklearn.metrics import ConfusionMatrixDisplay

    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # Constrained layout makes room for the labels, however long the class names (Iris's
    # "versicolor" pushed a fixed margin's "true class" off the left edge); the size stays.
    # Agg draws the rotated label up to 4 pixels left of the box the layout measures: a pad of
    # 0.1 inch (the default is 3 points) keeps it whole.
    layout = ConstrainedLayoutEngine(w_pad=0.1)
    figure = Figure(figsize=(DISPLAY_WIDTH / DPI, 2 * PANEL_HEIGHT + 0.3), dpi=DPI, layout=layout)
    axes = figure.subplots(2, 1)
    text = {"fontsize": 7 if len(class_names) > 5 else 10}
    panels = ((counts, "d", "counts"), (shares, ".0%", "share of each true class"))
    for axis, (values, form, name) in zip(axes, panels, strict=True):
        display = ConfusionMatrixDisplay(values, display_labels=class_names)
        display.plot(ax=axis, values_format=form, colorbar=False, text_kw=text, cmap="Blues")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("predicted class", fontsize=8)
        axis.set_ylabel("true class", fontsize=8)
        axis.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return Image.open(buffer)


class ConfusionMatrices(Callback):
    """Draw the confusion matrix a classifier computed (``confusion_matrices``, over the whole
    split, summed over processes): validation's at the best epoch by ``monitor`` (strictly
    better, as ``ModelCheckpoint`` judges, so it is the epoch of the best checkpoint), drawn at
    fit end at that epoch's step; test's at test end. ``eval split=val`` draws its validation.

    The best epoch's matrix is part of the callback's state, so a resumed run still knows it.
    """

    def __init__(self, dirpath: str, monitor: str = "val/acc", mode: str = "max") -> None:
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        # score, epoch, step and the matrix (lists of ints): plain data for the checkpoint.
        self.best: dict[str, Any] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = getattr(pl_module, "confusion_matrices", {}).get("val")
        if matrix is None or trainer.sanity_checking:
            return
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._publish(trainer, pl_module, "val", matrix.tolist(), logged_step(trainer), "")
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is None:
            return
        if not self.best or self.sign * float(score) > self.sign * self.best["score"]:
            self.best = {
                "score": float(score),
                "epoch": trainer.current_epoch,
                "step": logged_step(trainer),
                "matrix": matrix.tolist(),
            }

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best:
            best = self.best
            note = f", best epoch {best['epoch'] + 1} ({self.monitor} {best['score']:.4f})"
            self._publish(trainer, pl_module, "val", best["matrix"], best["step"], note)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = getattr(pl_module, "confusion_matrices", {}).get("test")
        if matrix is not None:
            self._publish(trainer, pl_module, "test", matrix.tolist(), logged_step(trainer), "")

    def _publish(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        split: str,
        matrix: list[list[int]],
        step: int,
        note: str,
    ) -> None:
        if not trainer.is_global_zero:
            return
        counts = np.array(matrix, dtype=np.int64)
        names = [str(name) for name in pl_module.hparams.class_names]
        title = f"{split}: {counts.sum()} samples{note}"
        path = self.dirpath / f"confusion_matrix_{split}.png"
        picture = confusion_picture(counts, names, title)
        publish_picture(trainer, picture, path, f"{split}/confusion_matrix", step)
        log.info("Confusion matrix (%s): %s", split, path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict["best"]
