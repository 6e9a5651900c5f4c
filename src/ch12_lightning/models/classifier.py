"""Classification: a network producing logits, cross-entropy, accuracy over whole splits."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.models.module import STAGES, TaskModule, plain_hparams

LOSSES = ("cross_entropy", "bce_with_logits")


class Classifier(TaskModule):
    """The network's logits, one per class with cross-entropy, or for two classes optionally a
    single logit with ``BCEWithLogitsLoss`` (``loss="bce_with_logits"``). Accuracy overall and
    within each class (``val/acc_<class name>``, from the split's confusion matrix, which
    callbacks draw: ``confusion_matrices``); ``val/acc_best`` is the best epoch's accuracy."""

    task = "classification"
    best_of = "acc"
    maximize = True

    def __init__(
        self,
        net: Mapping[str, Any],
        input_shape: Sequence[int],
        num_classes: int,
        loss: str = "cross_entropy",
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
        compile: bool = False,
    ) -> None:
        if loss == "bce_with_logits" and num_classes != 2:  # needs the data's class count
            reason = f"a single logit cannot tell {num_classes} classes apart; use cross_entropy"
            raise ConfigError(invalid("model.loss", loss, reason))
        hparams = plain_hparams(net, input_shape, optimizer, scheduler)
        hparams |= {
            "num_classes": num_classes,
            "loss": loss,
            "class_names": list(class_names or [str(k) for k in range(num_classes)]),
        }
        # compile is how to run, not what the model is: not saved, so a checkpoint loads eagerly.
        super().__init__(hparams, 1 if loss == "bce_with_logits" else num_classes, compile)
        self.loss_fn = (
            nn.BCEWithLogitsLoss() if loss == "bce_with_logits" else nn.CrossEntropyLoss()
        )
        # The inputs come from our own pipeline: argument checks per batch would cost more than
        # the tiny network they measure.
        self.accuracy = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(
                    num_classes, average="micro", validate_args=False
                )
                for stage in STAGES
            }
        )
        # Validation and test: counts of (true class, predicted class) over the whole split,
        # summed over processes. Accuracy within each class (recall) is their diagonal share.
        self.confusion = nn.ModuleDict(
            {
                f"{stage}_confusion": MulticlassConfusionMatrix(num_classes, validate_args=False)
                for stage in ("val", "test")
            }
        )
        # The latest evaluation's matrix per stage (rows: true class), for callbacks to draw.
        self.confusion_matrices: dict[str, Tensor] = {}

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities (N, num_classes) from the network's logits."""
        if self.hparams.loss == "bce_with_logits":
            positive = torch.sigmoid(logits)
            return torch.cat([1 - positive, positive], dim=1)
        return torch.softmax(logits, dim=1)

    def _loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.hparams.loss == "bce_with_logits":
            return self.loss_fn(logits.squeeze(1), targets.float())
        return self.loss_fn(logits, targets)

    def _predictions(self, logits: Tensor) -> Tensor:
        if self.hparams.loss == "bce_with_logits":
            return (logits.squeeze(1) > 0).long()
        return logits.argmax(dim=1)

    def _best_source(self) -> Metric:
        return self.accuracy["val_acc"]

    def _update_metrics(
        self, stage: str, outputs: Tensor, targets: Tensor, losses: Tensor, sizes: Tensor
    ) -> None:
        super()._update_metrics(stage, outputs, targets, losses, sizes)
        predictions = self._predictions(outputs)
        self.accuracy[f"{stage}_acc"].update(predictions, targets)
        if stage != "train":
            self.confusion[f"{stage}_confusion"].update(predictions, targets)

    def _stage_metrics(self, stage: str) -> dict[str, Metric]:
        return super()._stage_metrics(stage) | {"acc": self.accuracy[f"{stage}_acc"]}

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Returns the probabilities, for callbacks that look at the predictions."""
        logits = self._evaluate(batch, "test")
        return {"probabilities": self.probabilities(logits).detach()}

    def _log_class_accuracy(self, stage: str) -> None:
        metric = self.confusion[f"{stage}_confusion"]
        matrix = metric.compute()
        metric.reset()
        self.confusion_matrices[stage] = matrix.cpu()
        recall = matrix.diag() / matrix.sum(dim=1).clamp_min(1)  # 0 for a class absent here
        for name, value in zip(self.hparams.class_names, recall.float(), strict=True):
            self.log_reduced(f"{stage}/acc_{name}", value)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_class_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_class_accuracy("test")
