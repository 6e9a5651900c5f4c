"""A trained model as one ``.pt2`` file that torch alone can run (``torch.export``).

``torch.export.load(path).module()`` gives back a module taking a batch of any size of inputs
prepared as the data module prepares them, normalized images (N, C, H, W) or standardized rows of
a table (N, F), and returning the logits (or the class probabilities, with
``returns=probabilities``), or a regression's values. The file also carries, as
``ch12_lightning.json``, what a user needs to prepare inputs and read outputs: the input shape,
normalization (a table's: its feature names and each column's mean and std, the run's own
standardization), class names and how logits become probabilities.

The graph takes prepared inputs and the metadata says how to prepare them, for tables as for
pictures: one rule for every exported model, and the network exported is the one trained.
"""

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from ch12_lightning.data.tables import TableData
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.files.atomic import write_serialized_atomic
from ch12_lightning.run.build import prepare
from ch12_lightning.trained.load import load_run
from ch12_lightning.trained.predict import image_format

log = logging.getLogger(__name__)

METADATA = "ch12_lightning.json"
RETURNS = ("logits", "probabilities")


class _Returning(nn.Module):
    """The model's forward, followed by its ``probabilities`` when asked for."""

    def __init__(self, model: nn.Module, probabilities: bool) -> None:
        super().__init__()
        self.model = model
        self.probabilities = probabilities

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(x)
        return self.model.probabilities(logits) if self.probabilities else logits


def export_model(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    returns: str = "logits",
    metadata: dict[str, Any] | None = None,
) -> torch.export.ExportedProgram:
    """Export ``model`` with a dynamic batch dimension to ``path`` (written whole or not at
    all) and check that the file, loaded back, computes what the model does."""
    module = _Returning(model, returns == "probabilities").eval()
    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}})
    extra = {METADATA: json.dumps({"returns": returns, **(metadata or {})}, indent=2)}
    # Into a file object: torch.export.save wants a file name ending in .pt2, and the temporary
    # file beside ``path`` has none.
    write_serialized_atomic(path, partial(torch.export.save, program, extra_files=extra))
    _check_round_trip(module, path, input_shape)
    return program


def _check_round_trip(module: nn.Module, path: str | Path, input_shape: tuple[int, ...]) -> None:
    """The saved file, loaded back, matches ``module`` on random inputs of several sizes."""
    loaded = torch.export.load(path).module()
    with torch.inference_mode():
        for size in (1, 3):
            inputs = torch.randn(size, *input_shape)
            torch.testing.assert_close(loaded(inputs), module(inputs))


def export_run(cfg: DictConfig) -> Path:
    """Export the model of ``cfg.ckpt_path`` to ``cfg.output``; return the file's path."""
    if cfg.returns not in RETURNS:
        reason = f"must be one of {', '.join(RETURNS)}"
        raise ConfigError(invalid("returns", cfg.returns, reason))
    if Path(cfg.output).suffix != ".pt2":
        reason = "must end in .pt2, as torch.export.load expects"
        raise ConfigError(invalid("output", cfg.output, reason))
    run = load_run(cfg)
    prepare(run.config)
    datamodule = run.datamodule()
    model = run.model(datamodule)
    if cfg.returns == "probabilities" and not hasattr(model, "probabilities"):
        reason = "a regression has no probabilities: its outputs are the values (logits)"
        raise ConfigError(invalid("returns", cfg.returns, reason))
    shape, metadata = _input_description(datamodule)
    metadata |= {**_output_description(model), "checkpoint": str(run.checkpoint)}
    path = Path(cfg.output)
    export_model(model, shape, path, cfg.returns, metadata)
    log.info("Exported %s (%s) to %s", run.checkpoint, cfg.returns, path)
    print(path)
    return path


def _input_description(
    datamodule: L.LightningDataModule,
) -> tuple[tuple[int, ...], dict[str, Any]]:
    """One input's shape, and how to prepare inputs, for the file's metadata."""
    if isinstance(datamodule, TableData):
        standardization = datamodule.standardization
        return tuple(datamodule.input_shape), {
            "input_shape": ["batch", *datamodule.input_shape],
            "input": "rows of raw values, columns in the order of feature_names, standardized "
            "column by column: (x - mean) / std",
            "feature_names": list(datamodule.feature_names),
            "mean": list(standardization.mean),
            "std": list(standardization.std),
        }
    input_format = image_format(datamodule)
    return input_format.shape, {
        "input_shape": ["batch", *input_format.shape],
        "input": (
            "images resized to the input shape, scaled to [0, 1], then normalized: (x - mean) / std"
        ),
        "mean": input_format.mean,
        "std": input_format.std,
    }


def _output_description(model: nn.Module) -> dict[str, Any]:
    """What the outputs are, for the file's metadata."""
    if not hasattr(model, "probabilities"):
        return {"outputs": "the predicted values, in the units of the targets"}
    return {
        "class_names": list(model.hparams.class_names),
        "probabilities": (
            "sigmoid of the single logit is the probability of class 1"
            if model.hparams.get("loss") == "bce_with_logits"
            else "softmax over the logits"
        ),
    }
