"""One training run from a composed config: build the pieces, fit, test, record the results."""

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback, Checkpoint, LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from ch12_lightning.checkpoints import write_checkpoints_atomically
from ch12_lightning.cluster import (
    OneRunFolder,
    SignalsWithoutCollectives,
    on_slurm,
    process_count_mismatch,
    restarted_by_launcher,
)
from ch12_lightning.disk import full_disk_explained
from ch12_lightning.errors import ConfigError, InputError, invalid
from ch12_lightning.models.optim import choose_optimizer_kernels
from ch12_lightning.profiler import QuietProfiler
from ch12_lightning.runs import has_checkpoints, remove_leftover_temporaries, resume_checkpoint
from ch12_lightning.utils import write_json_atomic, write_text_atomic
from ch12_lightning.validation import check_checkpoint, validate

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate each ``_target_`` entry of a group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate data, trainer and model (the model once the trainer knows its device)."""
    datamodule = instantiate(cfg.dataset, _convert_="all")
    trainer = build_trainer(cfg)
    choose_optimizer_kernels(cfg.get("optimizer"), trainer.strategy.root_device.type)
    return datamodule, build_model(cfg, datamodule), trainer


def build_model(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The model ``cfg.model`` describes, its sizes (and class names) taken from the data."""
    _check_task(cfg.model._target_, datamodule)
    return instantiate(cfg.model, **datamodule.model_arguments, _convert_="all")


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the callbacks and loggers of ``cfg``.

    Our callbacks step aside where a Trainer flag turns their kind off
    (``enable_progress_bar=false``, ``enable_checkpointing=false``), as Lightning's own defaults
    do; Lightning would refuse the combination. A flag Lightning refuses is reported as bad input.
    """
    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    flags = cfg.trainer
    turned_off = {  # logger=none: the learning rate has nowhere to go (Lightning would refuse)
        LearningRateMonitor: not loggers,
        ProgressBar: flags.get("enable_progress_bar") is False,
        Checkpoint: flags.get("enable_checkpointing") is False,
    }
    kinds = tuple(kind for kind, off in turned_off.items() if off)
    callbacks = [c for c in callbacks if not isinstance(c, kinds)]
    callbacks += [OneRunFolder(), SignalsWithoutCollectives()]
    extra: dict[str, Any] = {} if flags.get("profiler") else {"profiler": QuietProfiler()}
    try:
        trainer = instantiate(flags, callbacks=callbacks, logger=loggers or False, **extra)
    except InstantiationException as err:
        if isinstance(err.__cause__, MisconfigurationException | ValueError):
            raise ConfigError(f"{REFUSED}: {err.__cause__}") from err
        raise
    if not isinstance(trainer.accelerator, CUDAAccelerator):
        _stop_probing_for_gpus()
    write_checkpoints_atomically(trainer)
    mismatch = process_count_mismatch(trainer.num_devices, trainer.num_nodes)
    if mismatch:
        raise ConfigError(mismatch)
    return trainer


REFUSED = "Lightning refused these trainer flags"


@contextmanager
def _refusals_as_config_errors() -> Iterator[None]:
    """Lightning checks some flags against the data (``limit_train_batches=0.01`` of 16
    batches, a ``val_check_interval`` longer than an epoch) only once fit starts; its
    MisconfigurationException then says what is wrong: show that message alone."""
    try:
        yield
    except MisconfigurationException as err:
        raise ConfigError(f"{REFUSED}: {err}") from err


def _stop_probing_for_gpus() -> None:
    """``import lightning`` sets PYTORCH_NVML_BASED_CUDA_CHECK=1, which makes torch ask NVML
    afresh whether CUDA is available, and Adam/AdamW ask at every step: on a CUDA build of torch
    without a GPU that costs about 80 us per step, several percent of a step of the book's MLP.
    A run that uses no GPU has no need for it; torch's default check is answered once."""
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


MODEL_FOR = {"classification": "model=mlp", "regression": "model=linear_regression"}


def _check_task(model_target: str, datamodule: L.LightningDataModule) -> None:
    """A classifier cannot learn a regression data set, nor the other way round: say so before
    building anything, rather than with a constructor's TypeError."""
    task = getattr(get_class(model_target), "task", None)
    if task != datamodule.task:
        data = type(datamodule).__name__
        reason = f"{data} is a {datamodule.task} data set; use {MODEL_FOR[datamodule.task]}"
        raise ConfigError(invalid("model._target_", model_target, reason))


def _log_once() -> None:
    """Let Hydra's handlers (console and the run's log file) print Lightning's messages once.

    ``import lightning`` gives the ``lightning`` logger a console handler of its own while the
    messages also propagate to the root logger that Hydra configured, so each line would show
    twice on the console.
    """
    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()


def prepare(cfg: DictConfig) -> None:
    """Process-wide settings of a run: logging, CPU threads, seeds."""
    _log_once()
    if cfg.get("torch_num_threads"):
        torch.set_num_threads(cfg.torch_num_threads)
    L.seed_everything(cfg.seed, workers=True)


class SweepStrategyError(InputError, ValueError):
    """A strategy that cannot run inside a sweep."""


def _refuse_script_ddp_in_sweep(trainer: L.Trainer) -> None:
    """Lightning's ``ddp`` starts ranks 1..N-1 by re-running the command line. Inside a sweep
    (``-m``) that command is the whole sweep: each extra rank would run its own sweep, with other
    settings, and nothing would fail. Spawned ranks (``ddp_spawn``) and ranks that torchrun or
    SLURM started (each runs the same sweep, job by job, as one rank of each job's DDP) do not
    re-run the command, so they are fine."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and not (
        launcher.cluster_environment.creates_processes_externally
    ):
        raise SweepStrategyError(
            "DDP that re-runs the command line (strategy ddp: accelerator=ddp or ddp_cpu) cannot "
            "run inside a sweep (-m): every extra rank would start the whole sweep again. Use "
            "accelerator=ddp_spawn or accelerator=ddp_cpu_spawn in sweeps, run one DDP job at a "
            "time without -m, or let torchrun or SLURM start the ranks (torchrun ... -m "
            "ch12_lightning.train -m ..., srun, or launcher=submitit_slurm): each of their "
            "processes runs the sweep as one rank of every job."
        )


def run(cfg: DictConfig, in_sweep: bool = False) -> dict[str, float]:
    """Fit and/or test as the config says; write ``metrics.json`` and return the final metrics.

    ``in_sweep``: this run is one job of a Hydra multirun.
    """
    validate(cfg)
    _continue_interrupted_run(cfg)
    prepare(cfg)
    output_dir = Path(cfg.paths.output_dir)
    with full_disk_explained(output_dir, Path(cfg.paths.cache_dir).expanduser()):
        return _run(cfg, output_dir, in_sweep)


def _run(cfg: DictConfig, output_dir: Path, in_sweep: bool) -> dict[str, float]:
    datamodule, model, trainer = build(cfg)
    if in_sweep:
        _refuse_script_ddp_in_sweep(trainer)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    with _refusals_as_config_errors():
        if cfg.get("train", True):
            _fit(trainer, model, datamodule, ckpt_path, output_dir)
            ckpt_path = _best_checkpoint(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        epochs = trainer.current_epoch
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    if trainer.is_global_zero:
        write_json_atomic(
            output_dir / "metrics.json",
            {"metrics": metrics, "checkpoint": ckpt_path, "epochs": epochs},
        )
        log.info("Final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
        log.info("Run folder: %s", output_dir)
    return metrics


def _fit(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None,
    output_dir: Path,
) -> None:
    """``trainer.fit``, saying how to resume when a signal stops it. Lightning ends a run on
    SIGTERM with exit status 0, as if it had finished; scripts must see a failure (143)."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit as stop:  # Ctrl-C (Lightning exits with 1) or SIGTERM
        if trainer.is_global_zero:
            log.error(
                "Training was stopped in epoch %d; the checkpoints of finished epochs are kept. "
                "Resume with ckpt_path=%s (or ckpt_path=last)%s.",
                trainer.current_epoch + 1,
                output_dir,
                "; a requeued SLURM job resumes by itself" if on_slurm() else "",
            )
        code = 128 + signal.SIGTERM if isinstance(stop, SIGTERMException) else stop.code
        raise SystemExit(code) from stop


def _continue_interrupted_run(cfg: DictConfig) -> None:
    """``ckpt_path=last`` or ``ckpt_path=<run folder>``: continue from that run's furthest
    checkpoint that loads. Training goes on in the run's own folder (one TensorBoard log, one set
    of checkpoints); a test-only run (``train=false``) reads the checkpoint and writes into its
    own new folder.

    A job that SLURM requeued (or whose workers torchrun restarted) is back in its own folder:
    it continues from that folder's checkpoints by itself."""
    runs_dir = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    own = Path(cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and cfg.get("train", True) and restarted_by_launcher():
        ckpt_path = str(own) if has_checkpoints(own) else None
    checkpoint = resume_checkpoint(ckpt_path, runs_dir)
    if checkpoint is None:
        return
    cfg.ckpt_path = str(checkpoint)
    if cfg.get("train", True):
        folder = checkpoint.parent.parent
        where = "" if folder == own else f" (this command's own log stays in {own})"
        log.info("Resuming %s from %s%s", folder, checkpoint.relative_to(folder), where)
        remove_leftover_temporaries(folder)
        cfg.paths.output_dir = str(folder)
        _hide_logs_after(cfg, _logged_step(checkpoint))


def _logged_step(checkpoint: Path) -> int | None:
    """The logging step a checkpoint was saved at (Lightning logs against training batches
    that stepped), or None if the checkpoint does not say."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return (
        state.get("loops", {})
        .get("fit_loop", {})
        .get("epoch_loop.state_dict", {})
        .get("_batches_that_stepped")
    )


def _hide_logs_after(cfg: DictConfig, step: int | None) -> None:
    """A run stopped between logging an epoch and saving its checkpoint logged an epoch that the
    resumed run repeats; TensorBoard's ``purge_step`` hides what was logged after the checkpoint,
    so each curve continues without a repeated point."""
    if step is None:
        return
    for entry in (cfg.get("logger") or {}).values():
        if entry and str(entry.get("_target_", "")).endswith("TensorBoardLogger"):
            with open_dict(entry):
                entry.purge_step = step


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by a monitored metric, or None to test the weights as they are."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and callback.best_model_path:
            return callback.best_model_path
    return None
