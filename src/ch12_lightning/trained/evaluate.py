"""Evaluating a trained checkpoint on a split, with the metrics that training computes.

A Lightning Trainer runs the model's own ``test_step`` / ``validation_step``, so the numbers are
the same torchmetrics objects over the whole split as in training, and match the run's
``metrics.json`` for the same checkpoint and split.
"""

import logging
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.callbacks.progress import in_jupyter_kernel
from ch12_lightning.data.picture_cache import PictureCacheDataModule
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.files.atomic import write_json_atomic, write_text_atomic
from ch12_lightning.run.build import build_trainer, prepare
from ch12_lightning.trained.load import TrainedRun, load_run

log = logging.getLogger(__name__)

SPLITS = ("test", "val")
CHANGED_PICTURES = ("stop", "skip")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; write ``metrics.json`` (and the config used)
    to ``cfg.paths.output_dir``, log to its TensorBoard folder, and return the metrics."""
    if cfg.split not in SPLITS:
        raise ConfigError(invalid("split", cfg.split, f"must be one of {', '.join(SPLITS)}"))
    if cfg.changed_pictures not in CHANGED_PICTURES:
        reason = f"must be one of {', '.join(CHANGED_PICTURES)}"
        raise ConfigError(invalid("changed_pictures", cfg.changed_pictures, reason))
    run = load_run(cfg)
    config = run.config
    prepare(config)
    datamodule = run.datamodule()
    _use_the_runs_split(run, datamodule, cfg.split, cfg.changed_pictures == "skip")
    model = run.model(datamodule)
    trainer = build_trainer(config)
    output_dir = Path(config.paths.output_dir)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        resolved = OmegaConf.to_yaml(config, resolve=True)
        write_text_atomic(output_dir / "config_resolved.yaml", resolved)
    if cfg.split == "test":
        # A notebook's bar says the result in a line (callbacks/progress.py).
        trainer.test(model, datamodule=datamodule, verbose=not in_jupyter_kernel())
    else:
        trainer.validate(model, datamodule=datamodule)
    prefix = f"{cfg.split}/"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}
    if trainer.is_global_zero:
        write_json_atomic(
            output_dir / "metrics.json",
            {
                "metrics": metrics,
                "split": cfg.split,
                "checkpoint": str(run.checkpoint),
                "run": str(run.folder),
                # changed_pictures=skip: the recorded pictures that were not evaluated
                **(
                    {"left_out": datamodule.left_out} if getattr(datamodule, "left_out", "") else {}
                ),
            },
        )
        log.info("Metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
        log.info("Written to %s", output_dir / "metrics.json")
    return metrics


def _use_the_runs_split(
    run: TrainedRun, datamodule: L.LightningDataModule, split: str, skip_changed: bool
) -> None:
    """Evaluate on the pictures of ``split`` that the run recorded, never on a split drawn
    again from a folder that may have changed since (its test pictures could be ones the model
    trained on). Runs of earlier versions recorded none: said, and drawn as they were."""
    if not isinstance(datamodule, PictureCacheDataModule):
        return  # fixed files: MNIST's, a table's
    recorded = run.saved_state(datamodule).get("split")
    if recorded:
        remedy = (
            "Other pictures would give figures that cannot be compared with the run's, and may "
            "be pictures it trained on. Put them back, or evaluate the {kept} still there, "
            "unchanged: changed_pictures=skip."
        )
        datamodule.use_recorded_split(recorded, (split,), skip_changed, remedy)
    else:
        log.warning(
            "The checkpoint %s records no split (made by an earlier version): the %s split is "
            "drawn again from the pictures as they are now. If pictures were added, removed or "
            "changed since the run, it holds others than the run's, maybe training pictures.",
            run.checkpoint,
            split,
        )
