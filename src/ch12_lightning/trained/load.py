"""A trained run read back for eval, predict and export: its checkpoint, config, data and model.

The run's own config decides everything that shaped the model (dataset, transforms, sizes), so
a checkpoint is always fed data prepared as in training. It is read from ``.hydra/config.yaml``,
whose interpolations are kept (``paths.data_dir=...`` still reaches ``dataset.data_dir``), with
the folders the run resolved to (``config_resolved.yaml``); the command then replaces what is
its own: output folders, the trainer, loggers, threads, and the dataset values the user gave.
"""

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ch12_lightning.checks.checkpoint_file import check_checkpoint
from ch12_lightning.checks.config import validate
from ch12_lightning.data.image_folder import ImageFolderDataModule
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.run.build import build_model
from ch12_lightning.run.resume import CHECKPOINTS, resume_checkpoint

log = logging.getLogger(__name__)

RUN_CONFIG = Path(".hydra") / "config.yaml"
RESOLVED_CONFIG = Path("config_resolved.yaml")
# Keys of the command's config that replace the run's.
OWN_KEYS = ("trainer", "logger", "callbacks", "torch_num_threads")
# Settings of runs made by earlier versions that changed only speed and no longer exist.
RETIRED_DATASET_KEYS = ("batches_per_call",)
# Model classes of earlier versions, with the chapter's MLP built in: now the task's
# LightningModule, whose network the config names (``model.net``); the settings keep their names.
RETIRED_MODELS = {
    "ch12_lightning.models.classifier.MLPClassifier": "ch12_lightning.models.classifier.Classifier",
    "ch12_lightning.models.regressor.MLPRegressor": "ch12_lightning.models.regressor.Regressor",
}
BUILT_IN_NETWORK = "ch12_lightning.models.nets.mlp.MLP"


@dataclass
class TrainedRun:
    """A checkpoint, the run folder that wrote it, and the run's config as this command uses it."""

    checkpoint: Path
    folder: Path
    config: DictConfig

    def datamodule(self) -> L.LightningDataModule:
        """The run's data module; it reads nothing until prepared. It takes what the
        checkpoint kept of the data: an image folder's classes (so labels keep the run's
        meaning, and predict and export, which never touch the data, need no pictures where
        training found them), and the data module's own saved state
        (``state_dict``, which Lightning writes under the class's name: a table's
        standardization, the pictures of a run's split), handed to its ``load_state_dict`` as
        Lightning does on resuming, but before the data is prepared."""
        datamodule = instantiate(self.config.dataset, _convert_="all")
        checkpoint = self._checkpoint
        saved = checkpoint.get("hyper_parameters")
        names = saved.get("class_names") if isinstance(saved, dict) else None
        if isinstance(datamodule, ImageFolderDataModule) and isinstance(names, list) and names:
            datamodule.use_classes([str(name) for name in names])
        state = self.saved_state(datamodule)
        if state:
            datamodule.load_state_dict(state)
        return datamodule

    def saved_state(self, datamodule: L.LightningDataModule) -> dict[str, Any]:
        """What the checkpoint holds of ``datamodule``'s state (empty if nothing)."""
        state = self._checkpoint.get(type(datamodule).__qualname__)
        return state if isinstance(state, dict) else {}

    @cached_property
    def _checkpoint(self) -> dict[str, Any]:
        """The checkpoint's contents (empty for a bad file: ``model`` says what is wrong)."""
        try:
            checkpoint = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception:
            return {}
        return checkpoint if isinstance(checkpoint, dict) else {}

    def model(self, datamodule: L.LightningDataModule) -> L.LightningModule:
        """The checkpoint's model, in eval mode on the CPU, once the checkpoint is vetted: read
        with ``weights_only=True`` only, and its weights must fit the model that the run's
        config and ``datamodule`` describe (a data override that changes the input is caught)."""
        expected = build_model(self.config, datamodule)
        saved = check_checkpoint(self.checkpoint, expected).get("hyper_parameters") or {}
        # The checkpoint's hyperparameters rebuild its network. One of an earlier version lacks
        # the network's description and the input shape: the run's config gives them, and
        # Lightning leaves out the hyperparameters that the model no longer takes.
        missing = {key: value for key, value in expected.hparams.items() if key not in saved}
        model = type(expected).load_from_checkpoint(
            self.checkpoint, map_location="cpu", weights_only=True, **missing
        )
        return model.eval()


def load_run(cfg: DictConfig) -> TrainedRun:
    """The run that ``cfg.ckpt_path`` names, with ``cfg``'s own settings and overrides applied,
    checked by ``checks.config.validate`` like a training config."""
    checkpoint, folder = locate_checkpoint(cfg.get("ckpt_path"), Path(cfg.runs_dir))
    config = merged_config(folder, cfg)
    with open_dict(config):
        config.ckpt_path = str(checkpoint)
    validate(config)
    log.info("Checkpoint %s of run %s", checkpoint, folder)
    return TrainedRun(checkpoint, folder, config)


def locate_checkpoint(ckpt_path: str | None, runs_dir: Path) -> tuple[Path, Path]:
    """(checkpoint, run folder) for a checkpoint file, a run folder, or ``last``."""
    if not ckpt_path:
        reason = "give a checkpoint (<run folder>/checkpoints/<name>.ckpt), a run folder or last"
        raise ConfigError(invalid("ckpt_path", ckpt_path, reason))
    furthest = resume_checkpoint(str(ckpt_path), runs_dir)
    if furthest is not None:
        folder = furthest.parent.parent
        return _best_checkpoint(folder) or furthest, folder
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(invalid("ckpt_path", ckpt_path, "no such file or folder"))
    path = path.resolve()
    if path.parent.name != "checkpoints":
        reason = (
            "no run config found: the checkpoint is not in a checkpoints/ folder of a run, "
            "whose config says how its data was prepared. Give it where train wrote it "
            "(<run folder>/checkpoints/), or the run folder."
        )
        raise ConfigError(invalid("ckpt_path", ckpt_path, reason))
    return path, path.parent.parent


def _best_checkpoint(folder: Path) -> Path | None:
    """The checkpoint that ``metrics.json`` names (the best by val/acc), if the run finished.

    Looked up by name in the folder's own ``checkpoints/``, so a moved run folder still works.
    """
    metrics = folder / "metrics.json"
    named = json.loads(metrics.read_text()).get("checkpoint") if metrics.is_file() else None
    if named and (folder / CHECKPOINTS / Path(named).name).is_file():
        return folder / CHECKPOINTS / Path(named).name
    return None


def merged_config(folder: Path, cfg: DictConfig) -> DictConfig:
    """The run's config with this command's folders, trainer, loggers and overrides."""
    missing = [name for name in (RUN_CONFIG, RESOLVED_CONFIG) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} is not valid: no run config found: the run folder "
            f"{folder} lacks {' and '.join(map(str, missing))}, which train writes into every "
            "run folder. Give a checkpoint or folder of a run made by ch12_lightning.train."
        )
    config = OmegaConf.load(folder / RUN_CONFIG)
    resolved = OmegaConf.load(folder / RESOLVED_CONFIG)
    with open_dict(config):
        for key in RETIRED_DATASET_KEYS:
            config.dataset.pop(key, None)
        if config.model.get("_target_") in RETIRED_MODELS:
            config.model._target_ = RETIRED_MODELS[config.model._target_]
            config.model.net = BUILT_IN_NETWORK
        config.paths = OmegaConf.merge(resolved.paths, _given(cfg.paths))
        config.dataset = OmegaConf.merge(config.dataset, _dataset_overrides(cfg, config.dataset))
        for key in OWN_KEYS:
            config[key] = cfg.get(key)
    return config


def _given(node: DictConfig) -> dict[str, Any]:
    """The values of ``node`` that are set (null means: keep the run's)."""
    values = OmegaConf.to_container(node, resolve=True)
    return {key: value for key, value in values.items() if value is not None}


def _dataset_overrides(cfg: DictConfig, dataset: DictConfig) -> dict[str, Any]:
    """The user's dataset values; each must be a setting the run's dataset has."""
    given = _given(cfg.dataset)
    unknown = sorted(given.keys() - dataset.keys())
    if unknown:
        kind = str(dataset.get("_target_", "?")).rsplit(".", 1)[-1]
        known = ", ".join(key for key in dataset if key != "_target_")
        reason = f"the run's dataset ({kind}) has no such setting; it has {known}"
        problems = [invalid(f"dataset.{key}", given[key], reason) for key in unknown]
        raise ConfigError("\n".join(problems))
    return given
