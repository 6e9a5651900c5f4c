"""One training run from a composed config: build the pieces, fit, test, record the results."""

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.utils import write_json_atomic

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate each ``_target_`` entry of a group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate data, model and trainer; the model's input size comes from the data config."""
    datamodule = instantiate(cfg.dataset, _convert_="all")
    model = instantiate(
        cfg.model,
        input_size=datamodule.input_size,
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        _convert_="all",
    )
    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


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


class SweepStrategyError(ValueError):
    """A strategy that cannot run inside a sweep."""


def _refuse_script_ddp_in_sweep(trainer: L.Trainer) -> None:
    """Lightning's ``ddp`` starts ranks 1..N-1 by re-running the command line. Inside a sweep
    (``-m``) that command is the whole sweep: each extra rank would run its own sweep, with other
    settings, and nothing would fail. Spawned ranks (``ddp_spawn``) and ranks started by a
    cluster (SLURM) do not re-run the command, so they are fine."""
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise SweepStrategyError(
            "DDP that re-runs the command line (strategy ddp: accelerator=ddp or ddp_cpu) cannot "
            "run inside a sweep (-m): every extra rank would start the whole sweep again. Use "
            "accelerator=ddp_spawn or accelerator=ddp_cpu_spawn in sweeps, run one DDP job at a "
            "time without -m, or launch the sweep on SLURM (launcher=submitit_slurm), which "
            "starts each rank itself."
        )


def run(cfg: DictConfig, in_sweep: bool = False) -> dict[str, float]:
    """Fit and/or test as the config says; write ``metrics.json`` and return the final metrics.

    ``in_sweep``: this run is one job of a Hydra multirun.
    """
    prepare(cfg)
    output_dir = Path(cfg.paths.output_dir)
    datamodule, model, trainer = build(cfg)
    if in_sweep:
        _refuse_script_ddp_in_sweep(trainer)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, output_dir / "config_resolved.yaml", resolve=True)

    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
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


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by a monitored metric, or None to test the weights as they are."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and callback.best_model_path:
            return callback.best_model_path
    return None
