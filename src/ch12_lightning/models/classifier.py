"""A LightningModule that trains an MLP classifier with epoch-level metrics over whole splits."""

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from ch12_lightning.models.mlp import build_mlp

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
STAGES = ("train", "val", "test")
LOSSES = ("cross_entropy", "bce_with_logits")


class MLPClassifier(L.LightningModule):
    """MLP producing logits: one per class with cross-entropy, or for two classes optionally a
    single logit with ``BCEWithLogitsLoss`` (``loss="bce_with_logits"``).

    Every argument is a plain number, string, list or dict, and all are saved as
    hyperparameters, so checkpoints load with ``torch.load(weights_only=True)``. Loss and
    accuracy are torchmetrics objects updated per batch and computed once per epoch over the
    whole split (synchronised across processes), never averaged per step.
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden_sizes: Sequence[int] = (32, 16),
        activation: str = "relu",
        dropout: float = 0.0,
        loss: str = "cross_entropy",
        optimizer: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        optimizer = dict(optimizer or {"name": "adam", "lr": 1e-3})
        _check_optimizer(optimizer)
        if loss not in LOSSES or (loss == "bce_with_logits" and num_classes != 2):
            raise ValueError(
                f"model.loss={loss!r} is not valid for {num_classes} classes; valid: "
                + ("cross_entropy, bce_with_logits" if num_classes == 2 else "cross_entropy")
            )
        class_names = list(class_names or [str(k) for k in range(num_classes)])
        self.save_hyperparameters(
            {
                "input_size": input_size,
                "num_classes": num_classes,
                "hidden_sizes": list(hidden_sizes),
                "activation": activation,
                "dropout": dropout,
                "loss": loss,
                "optimizer": optimizer,
                "class_names": class_names,
            }
        )
        outputs = 1 if loss == "bce_with_logits" else num_classes
        self.net = build_mlp(input_size, hidden_sizes, outputs, activation, dropout)
        self.loss_fn = nn.BCEWithLogitsLoss() if outputs == 1 else nn.CrossEntropyLoss()
        # Keys carry a suffix: a ModuleDict entry may not be called "train" (nn.Module.train).
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
        self.mean_loss = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in STAGES})
        # Accuracy within each class (recall), on validation and test only.
        self.class_accuracy = nn.ModuleDict(
            {
                f"{stage}_class_acc": MulticlassAccuracy(
                    num_classes, average=None, validate_args=False
                )
                for stage in ("val", "test")
            }
        )
        # Samples counted per evaluation, summed over processes: a check that DDP evaluation
        # sees each sample exactly once.
        self.sample_count = nn.ModuleDict(
            {f"{stage}_samples": SumMetric() for stage in ("val", "test")}
        )
        self.val_acc_best = MaxMetric()

    def setup(self, stage: str) -> None:
        # Processes started by ddp_spawn on CPUs receive this module through shared memory, so
        # their metric states would be one tensor that every rank adds to; fresh states give
        # each process its own.
        for module in self.modules():
            if isinstance(module, Metric):
                module.reset()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities (N, num_classes) from the network's logits."""
        if self.hparams.loss == "bce_with_logits":
            positive = torch.sigmoid(logits)
            return torch.cat([1 - positive, positive], dim=1)
        return torch.softmax(logits, dim=1)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor]:
        inputs, targets = batch
        logits = self(inputs)
        if self.hparams.loss == "bce_with_logits":
            loss = self.loss_fn(logits.squeeze(1), targets.float())
            predictions = (logits.squeeze(1) > 0).long()
        else:
            loss = self.loss_fn(logits, targets)
            predictions = logits.argmax(dim=1)
        accuracy = self.accuracy[f"{stage}_acc"]
        mean_loss = self.mean_loss[f"{stage}_loss"]
        accuracy.update(predictions, targets)
        mean_loss.update(loss.detach(), weight=len(targets))
        if stage != "train":
            self.class_accuracy[f"{stage}_class_acc"].update(predictions, targets)
            samples = self.sample_count[f"{stage}_samples"]
            samples.update(len(targets))
            self.log(f"{stage}/samples", samples, on_step=False, on_epoch=True)
        # Logging hands Lightning the metric objects, which it computes over their whole state
        # at epoch end. In training, the hot path, hand them over once per epoch, not per step:
        # self.log costs more than a training step of this network.
        if stage != "train" or self.trainer.is_last_batch:
            self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
            self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss, logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Returns the probabilities, for callbacks that look at the predictions."""
        logits = self._step(batch, "test")[1]
        return {"probabilities": self.probabilities(logits).detach()}

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best accuracy.
        self.val_acc_best.reset()

    def _log_class_accuracy(self, stage: str) -> None:
        metric = self.class_accuracy[f"{stage}_class_acc"]
        for name, value in zip(self.hparams.class_names, metric.compute(), strict=True):
            self.log(f"{stage}/acc_{name}", value)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.accuracy["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        self._log_class_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_class_accuracy("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        settings = dict(self.hparams.optimizer)
        optimizer_class = OPTIMIZERS[settings.pop("name")]
        return optimizer_class(self.parameters(), **settings)


def _check_optimizer(settings: dict[str, Any]) -> None:
    name = settings.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer name {name!r}; valid names: {', '.join(sorted(OPTIMIZERS))}"
        )
    lr = settings.get("lr")
    if not isinstance(lr, int | float) or lr <= 0:
        raise ValueError(f"optimizer.lr must be a positive number, got {lr!r}")
