"""Every check of a run's config values, in one place, before anything is read, built or trained.

A bad value would otherwise surface late and far from its cause: a zero batch size deep inside
the DataLoader, an unknown activation as a KeyError, 64 CPU "devices" as 64 processes.
``validate`` raises one ``ConfigError`` with a line per bad value, ``key=value is not valid:
<what would be>``. Checks that need the data files (an unknown CelebA attribute, too few images,
damaged files) stay in the data modules, which read them.
"""

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.checks.keys import unknown_key_problems
from ch12_lightning.data.iris import STANDARDIZE
from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.errors.rules import (
    POSITIVE_INT,
    Rule,
    boolean,
    number,
    one_of,
    positive_int,
)
from ch12_lightning.models.classifier import LOSSES
from ch12_lightning.models.nets import network_class, rules_of
from ch12_lightning.models.optim import NO_SCHEDULER, OPTIMIZERS, SCHEDULERS

_ABSENT = object()

# Keys absent from the config (n_per_class with MNIST) are skipped. The network's own settings
# (model.hidden_sizes, model.channels, ...) follow the rules its class declares (models/nets).
RULES: tuple[Rule, ...] = (
    ("optimizer.lr", lambda v: number(v) and v > 0, "must be a positive number"),
    ("optimizer.fused", lambda v: v in ("auto", True, False), "must be auto, true or false"),
    ("dataset.batch_size", positive_int, POSITIVE_INT),
    (
        "dataset.eval_batch_size",
        lambda v: v is None or positive_int(v),
        "must be a positive integer or null (the training batch_size)",
    ),
    ("dataset.val_size", positive_int, POSITIVE_INT),
    (
        "dataset.n_per_class",
        lambda v: v is None or positive_int(v),
        "must be a positive integer, or null (all of them)",
    ),
    (
        "dataset.root",
        lambda v: isinstance(v, str) and bool(v.strip()),
        "give the folder of your pictures (root/<class>/<picture>), or a .zip of it",
    ),
    ("dataset.val_fraction", lambda v: number(v) and 0 < v < 1, "must be between 0 and 1"),
    ("dataset.test_fraction", lambda v: number(v) and 0 < v < 1, "must be between 0 and 1"),
    ("dataset.grayscale", boolean, "must be true or false"),
    ("dataset.skip_corrupt", boolean, "must be true or false"),
    ("dataset.image_size", positive_int, POSITIVE_INT),
    (
        "dataset.eval_per_class",
        lambda v: v in ("balanced", "all") or positive_int(v),
        "must be balanced, all or a positive integer",
    ),
    ("dataset.num_workers", lambda v: isinstance(v, int) and v >= 0, "must be 0 or more"),
    (
        "dataset.memory_limit_gb",
        lambda v: v is None or (number(v) and v > 0),
        "must be a positive number of GB, or null (the memory this machine has available)",
    ),
    ("model.compile", boolean, "must be true or false"),
    ("scheduler.interval", lambda v: v in ("epoch", "step"), "must be epoch or step"),
    ("scheduler.frequency", positive_int, POSITIVE_INT),
    ("scheduler.step_size", positive_int, POSITIVE_INT),
    ("scheduler.T_max", positive_int, POSITIVE_INT),
    ("scheduler.max_lr", lambda v: number(v) and v > 0, "must be a positive number"),
    one_of("model.loss", LOSSES),
    one_of("dataset.standardize", STANDARDIZE),
    one_of("optimizer.name", OPTIMIZERS),
    one_of("scheduler.name", {NO_SCHEDULER, *SCHEDULERS}),
)


def validate(cfg: DictConfig) -> None:
    """Raise one ``ConfigError`` naming every bad value of ``cfg``; return if there is none."""
    problems = _rule_problems(cfg, RULES)
    problems += _network_problems(cfg)
    problems += _run_length_problems(cfg)
    problems += _split_fraction_problems(cfg)
    problems += _unvalidated_monitor_problems(cfg)
    problems += unknown_key_problems(cfg)
    problems += _device_problems(_value(cfg, "trainer.accelerator"), _value(cfg, "trainer.devices"))
    problems += _notebook_ddp_problems(
        _value(cfg, "trainer.strategy"), _value(cfg, "trainer.accelerator")
    )
    problems += _output_problems(_value(cfg, "paths.output_dir"))
    if problems:
        raise ConfigError("\n".join(problems))


def _rule_problems(cfg: DictConfig, rules: Iterable[Rule], prefix: str = "") -> list[str]:
    return [
        invalid(prefix + key, value, reason)
        for key, test, reason in rules
        if (value := _value(cfg, prefix + key)) is not _ABSENT and not test(value)
    ]


def _network_problems(cfg: DictConfig) -> list[str]:
    """``model.net`` must name a network class; its settings follow the rules it declares."""
    target = _value(cfg, "model.net")
    if target is _ABSENT:
        return []
    try:
        network = network_class(target)
    except (ImportError, AttributeError, ValueError, TypeError) as err:
        reason = (
            f"no network can be imported from it ({type(err).__name__}: {err}); give "
            "<module>.<Class> of a module on the Python path, e.g. "
            "ch12_lightning.models.nets.cnn.CNN"
        )
        return [invalid("model.net", target, reason)]
    return _rule_problems(cfg, rules_of(network), prefix="model.")


def _run_length_problems(cfg: DictConfig) -> list[str]:
    """``max_epochs`` bounds the run, unless ``max_steps`` or ``max_time`` does (with -1)."""
    epochs = _value(cfg, "trainer.max_epochs")
    if epochs is _ABSENT or positive_int(epochs):
        return []
    bounded = positive_int(_value(cfg, "trainer.max_steps")) or _value(
        cfg, "trainer.max_time"
    ) not in (_ABSENT, None)
    if epochs == -1 and bounded:
        return []
    reason = f"{POSITIVE_INT}, or -1 (no limit) with trainer.max_steps or trainer.max_time set"
    return [invalid("trainer.max_epochs", epochs, reason)]


def _split_fraction_problems(cfg: DictConfig) -> list[str]:
    """Validation and test drawn from one folder must leave pictures to train on."""
    val, test = _value(cfg, "dataset.val_fraction"), _value(cfg, "dataset.test_fraction")
    if not (number(val) and number(test)) or val + test < 1:
        return []
    reason = f"with dataset.val_fraction={val} nothing would be left to train on; together "
    return [invalid("dataset.test_fraction", test, reason + "they must be below 1")]


def _unvalidated_monitor_problems(cfg: DictConfig) -> list[str]:
    """Early stopping and ReduceLROnPlateau watch a validation metric: with no validation at
    all, Lightning would stop the run at the end of its first epoch."""
    if _value(cfg, "trainer.limit_val_batches") not in (0, 0.0):
        return []
    watchers = [
        f"callbacks.{name} (monitor={entry.get('monitor')})"
        for name, entry in (cfg.get("callbacks") or {}).items()
        if entry and str(entry.get("_target_", "")).endswith("EarlyStopping")
    ]
    if _value(cfg, "scheduler.name") == "plateau":
        watchers.append(f"scheduler=plateau (monitor={_value(cfg, 'scheduler.monitor')})")
    if not watchers:
        return []
    reason = (
        f"{' and '.join(watchers)} need a validation metric, and no validation runs; "
        "allow some validation batches, or drop what monitors them"
    )
    return [invalid("trainer.limit_val_batches", 0, reason)]


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _mps() -> int:
    return int(torch.backends.mps.is_available())


def _gpus() -> int:
    return torch.cuda.device_count() or _mps()


# Devices each accelerator has here. Lightning accepts any number of CPU "devices" (one process
# each), so trainer.devices=64 would start 64 processes; it checks GPUs only once the Trainer is
# built. Other accelerators (auto, xla, ...) are left to Lightning.
DEVICES: dict[str, tuple[Callable[[], int], str]] = {
    "cpu": (_cpu_cores, "CPU cores"),
    "gpu": (_gpus, "GPUs"),
    "cuda": (torch.cuda.device_count, "CUDA GPUs"),
    "mps": (_mps, "MPS GPUs"),
}


def _device_problems(accelerator: Any, devices: Any) -> list[str]:
    if accelerator not in DEVICES:
        return []
    count, unit = DEVICES[accelerator]
    available = count()
    if not available:
        return [
            invalid(
                "trainer.accelerator",
                accelerator,
                f"this machine has no {unit}; use accelerator=cpu, or accelerator=auto to take "
                "a GPU where there is one",
            )
        ]
    if devices == "auto" or (devices == -1 and accelerator != "cpu"):
        return []
    wanted = len(devices) if isinstance(devices, list) else devices
    if positive_int(wanted) and wanted <= available:
        return []
    also = "auto" if accelerator == "cpu" else "auto, -1 (all)"
    reason = f"must be {also} or 1 to {available}: this machine has {available} {unit}"
    return [invalid("trainer.devices", devices, reason)]


def _notebook_ddp_problems(strategy: Any, accelerator: Any) -> list[str]:
    """In a notebook (Lightning's own test: an interactive interpreter) Lightning starts DDP
    ranks only by forking the kernel, as its ``ddp_notebook`` does: it refuses ranks started by
    re-running the command line (``ddp``), which a kernel does not have, and spawned ones, when
    the Trainer is built, in a long chained traceback. Say what runs there instead."""
    from lightning.pytorch.trainer.connectors import accelerator_connector

    if not (accelerator_connector._IS_INTERACTIVE and isinstance(strategy, dict)):
        return []
    start_method = strategy.get("start_method", "popen")  # DDPStrategy's default
    if not str(strategy.get("_target_")).endswith("DDPStrategy") or start_method == "fork":
        return []
    option = "ddp_cpu_notebook" if accelerator == "cpu" else "ddp_notebook"
    reason = (
        "in a notebook (or any interactive Python) Lightning runs DDP only in processes forked "
        f"from it (its ddp_notebook); use accelerator={option} here, or run the same overrides "
        "with ./ch12 train in a terminal"
    )
    return [invalid("trainer.strategy.start_method", start_method, reason)]


def _output_problems(output_dir: Any) -> list[str]:
    """Whether the run folder can be created and written; nothing is created here.

    Checked by the path rather than by the permission bits alone: root may write anywhere, but
    not below a regular file.
    """
    if not isinstance(output_dir, str):
        return []
    folder = Path(output_dir).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        reason = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    else:
        return []
    return [invalid("paths.output_dir", output_dir, f"{reason}; choose a folder you can write")]
