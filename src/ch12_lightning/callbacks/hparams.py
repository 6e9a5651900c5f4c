"""The run's hyperparameters in TensorBoard's HPARAMS tab, and its CUSTOM SCALARS layout."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from ch12_lightning.callbacks.publish import tensorboards
from ch12_lightning.models.nets import as_config_names

TITLES = {"acc": "accuracy"}


def plain_hparams(params: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested hyperparameters as ``optimizer/lr``-style names with values of the types HPARAMS
    shows (lists and None as their text), as Lightning's ``log_hyperparams`` flattens them."""
    flat: dict[str, bool | int | float | str] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat.update(plain_hparams(value, f"{prefix}{name}/"))
        else:
            plain = value if isinstance(value, bool | int | float | str) else str(value)
            flat[f"{prefix}{name}"] = plain
    return flat


class TensorBoardHparams(Callback):
    """Write the run's hyperparameters as an HPARAMS session, without metric declarations.

    Lightning's ``log_hyperparams`` writes an *experiment* summary into every run and logs each
    declared metric at step 0. TensorBoard then takes the experiment of whichever run it reads
    first: its columns hide what other runs have, it cannot say which hyperparameters differ
    (they are sorted by name), and each metric starts with a made-up point. With the session
    alone TensorBoard builds the experiment from all the runs it shows: the hyperparameters that
    differ between them come first, and every metric the runs logged is a column with its last
    value (``val/acc_best``, ``test/acc``, ...). ``hparams.yaml`` is still written by Lightning.
    """

    def __init__(self) -> None:
        self._registered = False

    def _register(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._registered or not trainer.is_global_zero:
            return
        # Named as the config names them: the network's settings beside the task's.
        params = as_config_names(pl_module.hparams)
        if trainer.datamodule is not None:
            params.update({f"data/{k}": v for k, v in trainer.datamodule.hparams.items()})
        params = plain_hparams(params)
        for logger in tensorboards(trainer):
            logger.log_hyperparams(params)  # hparams.yaml (no summary without metrics)
            # The classes' names are the data's, not a setting to compare runs by: left out,
            # they leave one of the five columns HPARAMS shows at first to a hyperparameter.
            compared = {name: value for name, value in params.items() if name != "class_names"}
            _, session_start, session_end = hparams_summaries(compared, {})
            writer = logger.experiment._get_file_writer()
            writer.add_summary(session_start)
            writer.add_summary(session_end)
        self._registered = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module)
        for logger in tensorboards(trainer) if trainer.is_global_zero else []:
            logger.experiment.add_custom_scalars(train_and_val_layout(pl_module))

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._register(trainer, pl_module)


def train_and_val_layout(pl_module: L.LightningModule) -> dict[str, dict[str, list[Any]]]:
    """CUSTOM SCALARS charts with the training and validation curve of each quantity the
    model measures per epoch (loss, and accuracy for a classifier) overlaid, and the learning
    rate. Tags are regular expressions: anchored, so ``val/acc`` is not ``val/acc_best``."""
    quantities = list(pl_module.stage_metric_names())
    charts = {
        f"{TITLES.get(quantity, quantity)}: train and val": [
            "Multiline",
            [f"^train/{quantity}$", f"^val/{quantity}$"],
        ]
        for quantity in quantities
    }
    charts["learning rate"] = ["Multiline", ["^lr-"]]
    return {"train and validation": charts}
