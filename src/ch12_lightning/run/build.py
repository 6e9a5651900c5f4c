"""The pieces of a run, built from a composed config: data module, LightningModule, Trainer.

``build`` is what ``run.pipeline`` fits and tests; ``trained/`` rebuilds the same pieces for a
trained run. The data module is built first: the model takes its sizes (and class names) from
it, and the Trainer decides the device the optimizer's kernels are chosen for.
"""

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback, Checkpoint, LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.cluster.launch import (
    OneRunFolder,
    SignalsWithoutCollectives,
    process_count_mismatch,
)
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.models.nets import describe_net
from ch12_lightning.models.optim import choose_optimizer_kernels
from ch12_lightning.run.checkpoints import write_checkpoints_atomically
from ch12_lightning.run.profiler import QuietProfiler
from ch12_lightning.sweeps.pruning import trial_callbacks


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate each ``_target_`` entry of a group such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate data, trainer and model (the model once the trainer knows its device)."""
    datamodule = instantiate(cfg.dataset, _convert_="all")
    if cfg.get("ckpt_path"):
        _restore_data_state(datamodule, cfg.ckpt_path)
    trainer = build_trainer(cfg)
    clips_in_mixed = bool(trainer.gradient_clip_val) and isinstance(
        trainer.precision_plugin, MixedPrecision
    )
    choose_optimizer_kernels(
        cfg.get("optimizer"), trainer.strategy.root_device.type, clips_in_mixed
    )
    return datamodule, build_model(cfg, datamodule), trainer


def _restore_data_state(datamodule: L.LightningDataModule, ckpt_path: str) -> None:
    """Hand the data module its state saved in the checkpoint being resumed (a picture run's
    recorded split, and where it found its pictures) before anything reads the data: Lightning
    restores it only after ``prepare_data`` and ``setup``, too late for a resumed run to keep
    training and validating on the pictures it started with. A checkpoint that does not load is
    left to ``check_checkpoint``'s message."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception:
        return
    state = checkpoint.get(type(datamodule).__qualname__) if isinstance(checkpoint, dict) else None
    if isinstance(state, dict) and state:
        datamodule.load_state_dict(state)


def build_model(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The model ``cfg.model`` describes: the task's LightningModule (``_target_``) with the
    description of its network (``net`` and the settings that network takes, ``models/nets``),
    the input shape and classes taken from the data. Built directly rather than by Hydra's
    ``instantiate``, so that a setting the model refuses is the model's own message."""
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    target = settings.pop("_target_")
    _check_task(target, datamodule)
    if "net" in settings:  # a LightningModule of one's own may build its network itself
        settings["net"] = describe_net(settings)
    return get_class(target)(**settings, **datamodule.model_arguments)


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
    callbacks += [OneRunFolder(), SignalsWithoutCollectives(), *trial_callbacks(cfg)]
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
LEAF_SPEC_DEPRECATED = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
# The loggers that ``import lightning`` may give console handlers of their own.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


@contextmanager
def refusals_as_config_errors() -> Iterator[None]:
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
    twice on the console. Imported before Hydra configured logging (a notebook imports the API
    first), ``lightning.pytorch`` and ``lightning.fabric`` also stop propagating: their info lines
    (model summary, devices, tips) would reach the cell and never the run's log file.
    """
    if logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True


def prepare(cfg: DictConfig) -> None:
    """Process-wide settings of a run: logging, CPU threads, seeds."""
    _log_once()
    # Lightning 2.6 builds torch's deprecated LeafSpec at every stage, and torch 2.9 says so:
    # nothing a user of this project can act on, in every run's output.
    warnings.filterwarnings("ignore", LEAF_SPEC_DEPRECATED, FutureWarning)
    if cfg.get("torch_num_threads"):
        torch.set_num_threads(cfg.torch_num_threads)
    L.seed_everything(cfg.seed, workers=True)
