"""Regression on the same design: a network's outputs, mean squared error, no accuracy."""

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torchmetrics import Metric

from ch12_lightning.models.module import TaskModule, plain_hparams


class Regressor(TaskModule):
    """Predicts ``num_outputs`` numbers with ``MSELoss``; with an MLP of no hidden layers
    (``model=linear_regression``) it is the chapter's linear regression, one ``nn.Linear``.
    ``val/loss_best`` is the lowest validation loss."""

    task = "regression"
    best_of = "loss"
    maximize = False

    def __init__(
        self,
        net: Mapping[str, Any],
        input_shape: Sequence[int],
        num_outputs: int = 1,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        compile: bool = False,
    ) -> None:
        hparams = plain_hparams(net, input_shape, optimizer, scheduler)
        super().__init__(hparams | {"num_outputs": num_outputs}, num_outputs, compile)
        self.loss_fn = nn.MSELoss()

    def _loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.loss_fn(outputs.reshape(targets.shape), targets)

    def _best_source(self) -> Metric:
        return self.mean_loss["val_loss"]
