"""A LightningModule that trains an MLP classifier with epoch-level metrics over whole splits."""

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from ch12_lightning.models.mlp import build_mlp

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
STAGES = ("train", "val", "test")


class MLPClassifier(L.LightningModule):
    """MLP producing logits, trained with cross-entropy.

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
        optimizer: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        optimizer = dict(optimizer or {"name": "adam", "lr": 1e-3})
        _check_optimizer(optimizer)
        self.save_hyperparameters(
            {
                "input_size": input_size,
                "num_classes": num_classes,
                "hidden_sizes": list(hidden_sizes),
                "activation": activation,
                "dropout": dropout,
                "optimizer": optimizer,
            }
        )
        self.net = build_mlp(input_size, hidden_sizes, num_classes, activation, dropout)
        self.loss_fn = nn.CrossEntropyLoss()
        # Keys carry a suffix: a ModuleDict entry may not be called "train" (nn.Module.train).
        self.accuracy = nn.ModuleDict(
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES}
        )
        self.mean_loss = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in STAGES})
        self.val_acc_best = MaxMetric()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        inputs, targets = batch
        logits = self(inputs)
        loss = self.loss_fn(logits, targets)
        accuracy = self.accuracy[f"{stage}_acc"]
        mean_loss = self.mean_loss[f"{stage}_loss"]
        accuracy.update(logits, targets)
        mean_loss.update(loss.detach(), weight=len(targets))
        self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best accuracy.
        self.val_acc_best.reset()

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.accuracy["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

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
