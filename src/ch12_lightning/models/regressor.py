"""A regression head on the same design: mean squared error, no accuracy."""

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn
from torchmetrics import Metric

from ch12_lightning.models.module import MLPModule, plain_hparams


class MLPRegressor(MLPModule):
    """Predicts ``num_outputs`` numbers with ``MSELoss``; with no hidden layers (the default)
    it is the chapter's linear regression, one ``nn.Linear``. ``val/loss_best`` is the lowest
    validation loss."""

    task = "regression"
    best_of = "loss"
    maximize = False

    def __init__(
        self,
        input_size: int,
        num_outputs: int = 1,
        hidden_sizes: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        compile: bool = False,
    ) -> None:
        hparams = plain_hparams(input_size, hidden_sizes, activation, dropout, optimizer, scheduler)
        super().__init__(hparams | {"num_outputs": num_outputs}, num_outputs, compile)
        self.loss_fn = nn.MSELoss()

    def _loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.loss_fn(outputs.reshape(targets.shape), targets)

    def _best_source(self) -> Metric:
        return self.mean_loss["val_loss"]
