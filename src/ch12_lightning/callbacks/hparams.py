"""Make TensorBoard's HPARAMS tab compare runs by their real metrics."""

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from ch12_lightning.callbacks.steps import logged_step

DEFAULT_METRICS = {"hp/val_acc_best": "val/acc_best", "hp/test_acc": "test/acc"}


class TensorBoardHparams(Callback):
    """Register the run's hyperparameters with metric columns that get real values.

    Lightning's default registers a placeholder ``hp_metric`` of -1. Here each TensorBoard logger
    (created with ``default_hp_metric=False``) gets the model and data hyperparameters once,
    with the ``hp/*`` columns declared at 0, and each column then follows its source metric
    (``hp/val_acc_best`` copies ``val/acc_best`` after every validation epoch).
    """

    def __init__(self, metrics: dict[str, str] | None = None) -> None:
        self.metrics = dict(metrics or DEFAULT_METRICS)
        self._registered = False

    def _tensorboards(self, trainer: L.Trainer) -> list[TensorBoardLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def _register(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._registered:
            return
        params = dict(pl_module.hparams)
        if trainer.datamodule is not None:
            params.update({f"data/{k}": v for k, v in trainer.datamodule.hparams.items()})
        for logger in self._tensorboards(trainer):
            logger.log_hyperparams(params, {column: 0.0 for column in self.metrics})
        self._registered = True

    def _copy(self, trainer: L.Trainer) -> None:
        values = {
            column: float(trainer.callback_metrics[source])
            for column, source in self.metrics.items()
            if source in trainer.callback_metrics
        }
        for logger in self._tensorboards(trainer):
            logger.log_metrics(values, step=logged_step(trainer))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._copy(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._copy(trainer)
