"""What every task's LightningModule shares: a network built from its description (plain data),
trained by Lightning's automatic optimization, one mini-batch per ``training_step``, epoch
metrics over whole splits, and a stop at a non-finite loss.

Subclasses are the tasks: they say how outputs become a loss (``_loss``) and which metrics follow
them (``_update_metrics``, ``_stage_metrics``); ``Classifier`` and ``Regressor`` are the two. The
network is whatever ``net`` describes (``models/nets``): no task knows which one it trains.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, MinMetric, SumMetric

from ch12_lightning.models.nets import build_net
from ch12_lightning.models.optim import build_optimizers

STAGES = ("train", "val", "test")
# The checkpoint's entry for the best validation value so far (a plain float).
BEST_SO_FAR = "val_best_so_far"
# Training steps whose outputs wait before the training metrics take them in at once: a
# torchmetrics update costs about a tenth of a whole step of these small networks.
PENDING_STEPS = 16


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class TaskModule(L.LightningModule):
    """The network that ``hparams["net"]`` describes, for inputs of ``hparams["input_shape"]``,
    with its optimizer (and learning-rate scheduler) built by name in ``configure_optimizers``.

    ``hparams`` are the subclass's constructor arguments, all plain numbers, strings, lists or
    dicts (the network's description among them), so checkpoints load with
    ``torch.load(weights_only=True)`` and rebuild the network without any config. Loss (and the
    subclass's metrics) are torchmetrics objects computed once per epoch over the whole split,
    synchronised across processes. ``val/<best_of>_best`` tracks the best epoch.

    Training is Lightning's own automatic optimization, so every Trainer flag (clipping,
    accumulation, limits, schedulers, ``max_steps``, ...) means what Lightning documents. The
    training metrics take in each step's detached outputs in groups of ``PENDING_STEPS`` (and
    whatever is left before validation and at the end of the epoch): the same sums, at a
    fraction of the cost of one update per step.
    """

    task: str  # "classification" or "regression", as the data module says it is
    best_of: str  # the name of the validation metric whose best value is logged
    maximize: bool

    def __init__(self, hparams: dict[str, Any], outputs: int, compile: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters(hparams)
        h = self.hparams
        self.net = build_net(h.net, h.input_shape, outputs)
        if compile:
            # In place: the state dict keeps its keys, so checkpoints load into a plain model.
            self.net.compile()
        # Keys carry a suffix: a ModuleDict entry may not be called "train" (nn.Module.train).
        self.mean_loss = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in STAGES})
        # Samples counted per evaluation, summed over processes: a check that DDP evaluation
        # sees each sample exactly once.
        self.sample_count = nn.ModuleDict(
            {f"{stage}_samples": SumMetric() for stage in ("val", "test")}
        )
        self.val_best = MaxMetric() if self.maximize else MinMetric()
        self._best_so_far: float | None = None  # a resumed run's, from its checkpoint
        # (outputs, targets, loss) of training batches not yet in the metrics; the first of them
        # came after _pending_from[0] optimizer steps, as batch _pending_from[1] of its epoch.
        self._pending: list[tuple[Tensor, Tensor, Tensor]] = []
        self._pending_from = (0, 0)
        self._train_metrics_logged = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets ``_current_fx_name`` around every hook it calls, dozens of times per
        # training step; nn.Module's own __setattr__, which looks for parameters, buffers and
        # submodules first, costs 15 times a plain one. This attribute is never any of those.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def _best_source(self) -> Metric:
        """The validation metric (``val/<best_of>``) whose best epoch is tracked."""
        raise NotImplementedError

    def _update_metrics(
        self, stage: str, outputs: Tensor, targets: Tensor, losses: Tensor, sizes: Tensor
    ) -> None:
        """Add outputs and (per mini-batch) losses to the stage's metrics."""
        self.mean_loss[f"{stage}_loss"].update(losses, weight=sizes)
        if stage != "train":
            self.sample_count[f"{stage}_samples"].update(len(targets))

    def _stage_metrics(self, stage: str) -> dict[str, Metric]:
        """The metrics logged per epoch as ``<stage>/<name>``."""
        return {"loss": self.mean_loss[f"{stage}_loss"]}

    def stage_metric_names(self) -> list[str]:
        """What is measured per epoch in every stage (``train/<name>``, ``val/<name>``, ...)."""
        return list(self._stage_metrics("train"))

    def _log_stage(self, stage: str) -> None:
        """Hand Lightning the stage's metric objects; it computes each over its whole state at
        epoch end (and resets it)."""
        for name, metric in self._stage_metrics(stage).items():
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

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        outputs = self(inputs)
        loss = self._loss(outputs, targets)
        if not self._pending:
            self._pending_from = (self.trainer.global_step, batch_idx)
        self._pending.append((outputs.detach(), targets, loss.detach()))
        if len(self._pending) >= PENDING_STEPS:
            self._take_in_pending()
        if not self._train_metrics_logged:
            # Once per epoch: the metric objects stay registered with Lightning's epoch
            # results, which compute them at epoch end; ``self.log`` costs more than a step.
            self._log_stage("train")
            self._train_metrics_logged = True
        if self.trainer._logger_connector.should_update_logs:  # log_every_n_steps
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_metrics_logged = False

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        trainer = self.trainer
        if (
            trainer.is_last_batch
            or batch_idx + 1 >= trainer.num_training_batches
            or trainer.should_stop
            or 0 <= trainer.max_steps <= trainer.global_step
        ):  # the epoch ends here: callbacks read the training metrics next
            self._take_in_pending()

    def on_validation_start(self) -> None:
        # Validation within an epoch (val_check_interval) may end it (early stopping).
        self._take_in_pending()

    def on_train_epoch_end(self) -> None:
        self._take_in_pending()

    def _take_in_pending(self) -> None:
        """Update the training metrics with the pending steps; stop at a non-finite loss."""
        if not self._pending:
            return
        outputs, targets, losses = zip(*self._pending, strict=True)
        self._pending = []
        losses_tensor = torch.stack(losses)
        self._stop_if_not_finite(losses_tensor)
        sizes = torch.tensor([len(t) for t in targets], device=losses_tensor.device)
        self._update_metrics("train", torch.cat(outputs), torch.cat(targets), losses_tensor, sizes)

    def _stop_if_not_finite(self, losses: Tensor) -> None:
        """Stop training at a NaN or infinite loss (of the pending steps), naming its optimizer
        step; the checkpoints already written (the last good epoch) are kept."""
        finite = torch.isfinite(losses)
        if not finite.all():
            first = int((~finite).nonzero()[0])
            steps_before, first_batch = self._pending_from
            # Lightning steps after every accumulate_grad_batches batches of an epoch.
            accumulate = self.trainer.accumulate_grad_batches
            step = steps_before + (first_batch % accumulate + first) // accumulate + 1
            raise NonFiniteLossError(
                f"The training loss became {losses[first].item()} at optimizer step {step} "
                f"(epoch {self.current_epoch}); training stopped. Checkpoints of earlier epochs "
                "are kept. A lower optimizer.lr often helps."
            )

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        """Update the stage's metrics with one batch; return the network's outputs."""
        inputs, targets = batch
        outputs = self(inputs)
        loss = self._loss(outputs, targets)
        size = torch.tensor([len(targets)], device=loss.device)
        self._update_metrics(stage, outputs, targets, loss.unsqueeze(0), size)
        return outputs

    def _log_evaluation(self, stage: str) -> None:
        """Register the stage's metric objects with Lightning once per evaluation, before its
        first batch: Lightning computes them over the whole split at its end. (A ``self.log``
        per batch costs more than the batch, and a process with no batch would not log.)"""
        self._log_stage(stage)
        self.log(f"{stage}/samples", self.sample_count[f"{stage}_samples"], on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._log_evaluation("test")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Any:
        self._evaluate(batch, "test")

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best value; a
        # resumed run's best epochs before it do.
        self.val_best.reset()
        if self._best_so_far is not None:
            self.val_best.update(torch.tensor(self._best_so_far, device=self.device))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the best validation value so far (torchmetrics' states are not in the state
        dict), so that a resumed run's ``val/<metric>_best`` goes on from it. Read from the
        metric's state, the same on every rank: ``compute`` would synchronise the processes."""
        if self.val_best.update_called:
            state = self.val_best.max_value if self.maximize else self.val_best.min_value
            checkpoint[BEST_SO_FAR] = float(state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._best_so_far = checkpoint.get(BEST_SO_FAR)

    def on_validation_epoch_end(self) -> None:
        self.val_best.update(self._best_source().compute())
        self.log_reduced(f"val/{self.best_of}_best", self.val_best.compute(), prog_bar=True)

    def log_reduced(self, name: str, value: Tensor, prog_bar: bool = False) -> None:
        """Log, once per epoch, a value computed from metrics already reduced over all processes,
        so the same on every one (``val/acc_best``, the accuracy per class).

        A tensor logged per epoch without ``sync_dist`` makes Lightning warn under DDP, once per
        name, that it should be synced: a line per metric in every run and notebook cell.
        ``sync_dist=True`` is how Lightning is told the value is reduced; with ``reduce_fx="max"``
        the reduction of equal values gives each one exactly (a mean over 3 processes could
        round), and for a value logged once per epoch "max" leaves it as it is. The cost is one
        small all-reduce per name and epoch, beside the metrics' own."""
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    def configure_optimizers(self) -> Any:
        return build_optimizers(self, self.hparams.optimizer, self.hparams.get("scheduler"))


def plain_hparams(
    net: Mapping[str, Any],
    input_shape: Sequence[int],
    optimizer: Mapping[str, Any] | None,
    scheduler: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The hyperparameters every task saves, as plain data (defaults filled in)."""
    return {
        "net": dict(net),
        "input_shape": list(input_shape),
        "optimizer": dict(optimizer or {"name": "adam", "lr": 1e-3}),
        "scheduler": dict(scheduler or {"name": "none"}),
    }
