"""What every model of the project shares: an MLP trained with epoch-level metrics over whole
splits, several optimizer steps per ``training_step`` call, and a stop at a non-finite loss.

Subclasses say how outputs become a loss and predictions (``_loss_and_predictions``) and which
metrics follow them (``_update_metrics``); ``MLPClassifier`` and ``MLPRegressor`` are the two.
"""

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, MinMetric, SumMetric

from ch12_lightning.models.mlp import build_mlp

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
STAGES = ("train", "val", "test")
BACKWARD_HOOKS = ("on_before_backward", "on_after_backward")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class MLPModule(L.LightningModule):
    """An MLP (``build_mlp``) with its optimizer built by name in ``configure_optimizers``.

    ``hparams`` are the subclass's constructor arguments, all plain numbers, strings, lists or
    dicts, so checkpoints load with ``torch.load(weights_only=True)``. Loss (and the subclass's
    metrics) are torchmetrics objects updated per batch and computed once per epoch over the
    whole split, synchronised across processes. ``val/<best_of>_best`` tracks the best epoch.
    """

    task: str  # "classification" or "regression", as the data module says it is
    best_of: str  # the name of the validation metric whose best value is logged
    maximize: bool

    def __init__(self, hparams: dict[str, Any], outputs: int) -> None:
        super().__init__()
        self.save_hyperparameters(hparams)
        h = self.hparams
        self.net = build_mlp(h.input_size, h.hidden_sizes, outputs, h.activation, h.dropout)
        # Keys carry a suffix: a ModuleDict entry may not be called "train" (nn.Module.train).
        self.mean_loss = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in STAGES})
        # Samples counted per evaluation, summed over processes: a check that DDP evaluation
        # sees each sample exactly once.
        self.sample_count = nn.ModuleDict(
            {f"{stage}_samples": SumMetric() for stage in ("val", "test")}
        )
        self.val_best = MaxMetric() if self.maximize else MinMetric()
        # Several optimizer steps per training_step call (see training_step).
        self.automatic_optimization = False
        self._backward_hooks_heard = True  # until on_fit_start has looked

    def _loss_and_predictions(self, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _best_source(self) -> Metric:
        """The validation metric (``val/<best_of>``) whose best epoch is tracked."""
        raise NotImplementedError

    def _update_metrics(
        self, stage: str, predictions: Tensor, targets: Tensor, losses: Tensor, sizes: Tensor
    ) -> None:
        """Add a call's predictions and (per mini-batch) losses to the stage's metrics."""
        mean_loss = self.mean_loss[f"{stage}_loss"]
        mean_loss.update(losses, weight=sizes)
        if stage != "train":
            samples = self.sample_count[f"{stage}_samples"]
            samples.update(len(targets))
            self.log(f"{stage}/samples", samples, on_step=False, on_epoch=True)
        self._log_epoch(stage, "loss", mean_loss)

    def _log_epoch(self, stage: str, name: str, metric: Metric) -> None:
        """Hand Lightning a metric object, which it computes over its whole state at epoch end.
        In training, the hot path, once per epoch, not per call: ``self.log`` costs more than a
        training step of these networks."""
        if stage != "train" or self.trainer.is_last_batch:
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=True)

    def setup(self, stage: str) -> None:
        # Processes started by ddp_spawn on CPUs receive this module through shared memory, so
        # their metric states would be one tensor that every rank adds to; fresh states give
        # each process its own.
        for module in self.modules():
            if isinstance(module, Metric):
                module.reset()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        """Update the stage's metrics with one batch; return the network's outputs."""
        inputs, targets = batch
        outputs = self(inputs)
        loss, predictions = self._loss_and_predictions(outputs, targets)
        size = torch.tensor([len(targets)], device=loss.device)
        self._update_metrics(stage, predictions, targets, loss.unsqueeze(0), size)
        return outputs

    def training_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        """One optimizer step per mini-batch: the training loader hands over several at a time
        (``InMemoryDataModule``), so Lightning's cost per call, and the metric updates, are
        shared between them."""
        optimizer = self.optimizers()
        losses, predictions = [], []
        for inputs, targets in batch:
            loss, predicted = self._loss_and_predictions(self(inputs), targets)
            optimizer.zero_grad()
            self._backward(loss)
            optimizer.step()
            losses.append(loss.detach())
            predictions.append(predicted.detach())
        losses_tensor = torch.stack(losses)
        self._stop_if_not_finite(losses_tensor)
        all_targets = torch.cat([targets for _, targets in batch])
        sizes = torch.tensor([len(targets) for _, targets in batch], device=losses_tensor.device)
        self._update_metrics("train", torch.cat(predictions), all_targets, losses_tensor, sizes)

    def _backward(self, loss: Tensor) -> None:
        """``manual_backward``, without dispatching the backward hooks when nothing listens.

        Lightning calls ``on_before_backward`` and ``on_after_backward`` on every callback at
        every step, listening or not; for a network this small that dispatch cost a fifth of
        the step. The strategy's own steps (DDP's gradient sync set-up) always run.
        """
        if not self._backward_hooks_heard:
            strategy = self.trainer.strategy
            strategy.pre_backward(loss)
            loss.backward()
            strategy.post_backward(loss)
        else:
            self.manual_backward(loss)

    def on_fit_start(self) -> None:
        trainer = self.trainer
        self._backward_hooks_heard = (
            type(trainer.precision_plugin) is not Precision  # e.g. loss scaling for fp16
            or type(trainer.strategy).backward is not Strategy.backward
            or any(is_overridden(h, self, L.LightningModule) for h in (*BACKWARD_HOOKS, "backward"))
            or any(is_overridden(h, c, Callback) for h in BACKWARD_HOOKS for c in trainer.callbacks)
        )

    def _stop_if_not_finite(self, losses: Tensor) -> None:
        """Stop training at a NaN or infinite loss, naming its optimizer step; the checkpoints
        already written (the last good epoch) are kept."""
        finite = torch.isfinite(losses)
        if not finite.all():
            first = int((~finite).nonzero()[0])
            step = self.trainer.global_step - len(losses) + first + 1
            raise NonFiniteLossError(
                f"The training loss became {losses[first].item()} at optimizer step {step} "
                f"(epoch {self.current_epoch}); training stopped. Checkpoints of earlier epochs "
                "are kept. A lower optimizer.lr often helps."
            )

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Any:
        self._evaluate(batch, "test")

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best value.
        self.val_best.reset()

    def on_validation_epoch_end(self) -> None:
        self.val_best.update(self._best_source().compute())
        self.log(f"val/{self.best_of}_best", self.val_best.compute(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        settings = dict(self.hparams.optimizer)
        optimizer_class = OPTIMIZERS[settings.pop("name")]
        return optimizer_class(self.parameters(), **settings)


def plain_hparams(
    input_size: int,
    hidden_sizes: Sequence[int],
    activation: str,
    dropout: float,
    optimizer: dict[str, Any] | None,
) -> dict[str, Any]:
    """The hyperparameters every model saves, as plain data (defaults filled in)."""
    return {
        "input_size": input_size,
        "hidden_sizes": list(hidden_sizes),
        "activation": activation,
        "dropout": dropout,
        "optimizer": dict(optimizer or {"name": "adam", "lr": 1e-3}),
    }
