"""Each trial of an Optuna search reports its ``optimized_metric`` at every validation, and stops
early, as pruned, when the search's pruner (``hydra.sweeper.pruner``) says it cannot win.

The trial is found again in the study's database by its number, which is the job's number
(``hydra.job.num``): the job may run in another process than the sweeper (spawned DDP ranks,
joblib, SLURM), and so may rank 0 of a DDP job, which alone reports; it tells every rank
whether to stop, so that all stop together. The sweeper reads the ``pruned`` mark this leaves
on the trial and tells Optuna the trial's state.
"""

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.errors import ConfigError, invalid

log = logging.getLogger(__name__)

SWEEPER = "hydra_plugins.ch12_optuna_sweeper."
PRUNERS = ("median", "hyperband", "none")
# The storages of studies kept in memory (hydra.sweeper.storage=null), by study name: their
# trials can report only in the sweeper's own process.
IN_MEMORY: dict[str | None, Any] = {}


def make_pruner(spec: Any, validations: int | None = None) -> Any:
    """The Optuna pruner ``hydra.sweeper.pruner`` names. ``median`` lets the first 2 trials run
    whole and judges a trial from its second validation on against the median of the others at
    the same validation; ``hyperband`` gives trials 1 to ``validations`` validations."""
    import optuna

    if isinstance(spec, Mapping) and "_target_" in spec:
        return instantiate(spec)
    if spec == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if spec == "hyperband":
        return optuna.pruners.HyperbandPruner(max_resource=validations or "auto")
    if spec in ("none", None):
        return optuna.pruners.NopPruner()
    reason = f"one of {', '.join(PRUNERS)}, or a pruner's config with its _target_"
    raise ConfigError(invalid("hydra.sweeper.pruner", spec, reason))


def trial_callbacks(cfg: DictConfig) -> list[Callback]:
    """The trial's reporting callback, where this run is a trial of the project's Optuna search."""
    if not HydraConfig.initialized() or not cfg.get("optimized_metric"):
        return []
    hydra = HydraConfig.get()
    sweeper = hydra.sweeper
    if hydra.mode != RunMode.MULTIRUN or not str(sweeper.get("_target_")).startswith(SWEEPER):
        return []
    pruner = sweeper.pruner
    if isinstance(pruner, DictConfig):
        pruner = OmegaConf.to_container(pruner, resolve=True)
    trial = TrialPruning(
        sweeper.storage, sweeper.study_name, int(hydra.job.num), cfg.optimized_metric, pruner
    )
    return [trial]


class TrialPruning(Callback):
    """Report ``monitor`` after each validation (step k: the (k+1)-th validation, the epoch when
    validating once per epoch) and stop when the pruner says so."""

    def __init__(
        self, storage: str | None, study_name: str | None, trial: int, monitor: str, pruner: Any
    ) -> None:
        self.storage, self.study_name, self.number = storage, study_name, trial
        self.monitor, self.pruner = monitor, pruner
        self._trial: Any = None
        self._reports = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            self._reports = 0
            validations = None
            if trainer.max_epochs and trainer.max_epochs > 0:
                validations = max(trainer.max_epochs // trainer.check_val_every_n_epoch, 1)
            self._trial = self._open_trial(make_pruner(self.pruner, validations))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            prune = self._report(trainer)
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            trainer.should_stop = True

    def _report(self, trainer: L.Trainer) -> bool:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:  # the sweeper fails a trial whose metric never came
            return False
        value, step = float(value), self._reports
        self._reports += 1
        self._trial.report(value, step)
        if not self._trial.should_prune():
            return False
        epoch = trainer.current_epoch + 1
        if last_validation(trainer):
            log.info(
                "Trial %d: the pruner would stop it after epoch %d, its last: it ran every epoch "
                "and is complete",
                self.number,
                epoch,
            )
            return False
        self._trial.set_user_attr("pruned", {"epoch": epoch, "step": step, "value": value})
        log.info(
            "Trial %d pruned after epoch %d: %s=%.4f cannot win, the pruner says",
            self.number,
            epoch,
            self.monitor,
            value,
        )
        return True

    def _open_trial(self, pruner: Any) -> Any:
        import optuna

        storage = self.storage
        if storage is None:
            if self.study_name not in IN_MEMORY:
                raise ConfigError(
                    "A trial of a study kept in memory (hydra.sweeper.storage=null) runs in "
                    "another process than the search (spawned DDP ranks, launcher=joblib or "
                    "submitit), where the study is not: keep the study in a database (the "
                    "default storage) or set hydra.sweeper.pruner=none."
                )
            storage = IN_MEMORY[self.study_name]
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        (trial,) = [t for t in study.get_trials(deepcopy=False) if t.number == self.number]
        # Optuna's Trial is how a running trial reports; the sweeper asked for this one.
        return optuna.trial.Trial(study, trial._trial_id)


def last_validation(trainer: L.Trainer) -> bool:
    """Whether the fit ends after this validation anyway: the last batch of the last epoch
    (``max_epochs``), ``max_steps`` reached, or another callback (early stopping) stopping it.
    A trial stopped there is not pruned: it ran every epoch it was given, and its value is a
    complete trial's, which the search must count (a pruned trial is kept out of the best)."""
    if trainer.should_stop:
        return True
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return True
    max_epochs = trainer.max_epochs
    return (
        max_epochs is not None
        and max_epochs > 0
        and trainer.current_epoch + 1 >= max_epochs
        and trainer.is_last_batch
    )
