"""A LightningModule that trains an MLP classifier with epoch-level metrics over whole splits."""

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.models.mlp import build_mlp

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
STAGES = ("train", "val", "test")
BACKWARD_HOOKS = ("on_before_backward", "on_after_backward")
LOSSES = ("cross_entropy", "bce_with_logits")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


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
        if loss == "bce_with_logits" and num_classes != 2:  # needs the data's class count
            reason = f"a single logit cannot tell {num_classes} classes apart; use cross_entropy"
            raise ConfigError(invalid("model.loss", loss, reason))
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
        # Several optimizer steps per training_step call (see training_step).
        self.automatic_optimization = False
        self._backward_hooks_heard = True  # until on_fit_start has looked

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

    def _loss_and_predictions(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        if self.hparams.loss == "bce_with_logits":
            loss = self.loss_fn(logits.squeeze(1), targets.float())
            return loss, (logits.squeeze(1) > 0).long()
        return self.loss_fn(logits, targets), logits.argmax(dim=1)

    def _update_metrics(
        self, stage: str, predictions: Tensor, targets: Tensor, losses: Tensor, sizes: Tensor
    ) -> None:
        """Add a call's predictions and (per mini-batch) losses to the stage's metrics."""
        accuracy = self.accuracy[f"{stage}_acc"]
        mean_loss = self.mean_loss[f"{stage}_loss"]
        accuracy.update(predictions, targets)
        mean_loss.update(losses, weight=sizes)
        if stage != "train":
            self.class_accuracy[f"{stage}_class_acc"].update(predictions, targets)
            samples = self.sample_count[f"{stage}_samples"]
            samples.update(len(targets))
            self.log(f"{stage}/samples", samples, on_step=False, on_epoch=True)
        # Logging hands Lightning the metric objects, which it computes over their whole state
        # at epoch end. In training, the hot path, hand them over once per epoch, not per call:
        # self.log costs more than a training step of this network.
        if stage != "train" or self.trainer.is_last_batch:
            self.log(f"{stage}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True)
            self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        """Update the stage's metrics with one batch; return its logits."""
        inputs, targets = batch
        logits = self(inputs)
        loss, predictions = self._loss_and_predictions(logits, targets)
        size = torch.tensor([len(targets)], device=loss.device)
        self._update_metrics(stage, predictions, targets, loss.unsqueeze(0), size)
        return logits

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
            predictions.append(predicted)
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

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Returns the probabilities, for callbacks that look at the predictions."""
        logits = self._evaluate(batch, "test")
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
