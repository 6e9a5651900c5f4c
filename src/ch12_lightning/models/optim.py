"""Optimizers and learning-rate schedulers by name, from the plain settings a model saves.

The ``optimizer`` and ``scheduler`` config groups hold a ``name`` and the keyword arguments of
the torch class it names; the scheduler also holds Lightning's own keys for when it steps
(``interval``, ``frequency``, ``monitor``), so Lightning steps, checkpoints and restores it.
"""

from typing import Any

import lightning as L
import torch
from torch.optim import lr_scheduler

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
SCHEDULERS: dict[str, type] = {
    "step": lr_scheduler.StepLR,
    "cosine": lr_scheduler.CosineAnnealingLR,
    "onecycle": lr_scheduler.OneCycleLR,
    "plateau": lr_scheduler.ReduceLROnPlateau,
}
NO_SCHEDULER = "none"
# Device types where torch has fused kernels for all of OPTIMIZERS: one kernel per parameter
# tensor for the whole update, instead of one per elementary operation.
FUSED_DEVICE_TYPES = ("cpu", "cuda")
# Keys of Lightning's lr_scheduler config, not of the torch class.
LIGHTNING_SCHEDULER_KEYS = ("interval", "frequency", "monitor", "strict")


def choose_optimizer_kernels(
    optimizer: Any, device_type: str, clips_in_mixed: bool = False
) -> None:
    """Settle ``fused: auto`` of an optimizer config (a dict or DictConfig, changed in place):
    the fused kernels where torch has them for the device that trains, so the run's resolved
    config records which implementation ran. Not where gradients are clipped under mixed
    precision (``clips_in_mixed``): a fused optimizer unscales its gradients inside its step,
    and Lightning's mixed precision refuses to clip them then (a RuntimeError at fit)."""
    if optimizer is not None and optimizer.get("fused") == "auto":
        optimizer["fused"] = device_type in FUSED_DEVICE_TYPES and not clips_in_mixed


def build_optimizers(
    module: L.LightningModule, optimizer: dict[str, Any], scheduler: dict[str, Any] | None
) -> Any:
    """What ``configure_optimizers`` returns: the optimizer, with its scheduler if one is named."""
    settings = dict(optimizer)
    choose_optimizer_kernels(settings, module.device.type)
    built = OPTIMIZERS[settings.pop("name")](module.parameters(), **settings)
    settings = dict(scheduler or {"name": NO_SCHEDULER})
    name = settings.pop("name")
    if name == NO_SCHEDULER:
        return built
    config = {key: settings.pop(key) for key in LIGHTNING_SCHEDULER_KEYS if key in settings}
    if name == "onecycle" and "total_steps" not in settings:
        # One cycle over the whole fit, however it is bounded (epochs, max_steps, limits,
        # accumulation): Lightning's own count of the optimizer steps to come.
        settings["total_steps"] = int(module.trainer.estimated_stepping_batches)
    config["scheduler"] = SCHEDULERS[name](built, **settings)
    return {"optimizer": built, "lr_scheduler": config}
