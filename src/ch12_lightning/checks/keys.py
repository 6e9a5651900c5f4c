"""Every key of a config node must be a setting of what that node builds.

Hydra refuses a misspelled key that the config already has (``trainer.max_epoch=3``), but a key
added with ``+`` (``+optimizer.lrr=0.1``, ``+trainer.gradient_clip_vall=0.5``) passes
composition and would surface as a TypeError deep inside the run, after the data is prepared.
Here each node's keys are checked against the signature of the class it instantiates (with, for
the model, the settings of the network that ``model.net`` names; for the optimizer and scheduler
groups, of the torch class their ``name`` picks).
"""

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.errors import invalid
from ch12_lightning.models.nets import network_class, settings_of
from ch12_lightning.models.optim import (
    LIGHTNING_SCHEDULER_KEYS,
    NO_SCHEDULER,
    OPTIMIZERS,
    SCHEDULERS,
)

# Keys Hydra's instantiate reads itself.
HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
# Node paths (groups with one _target_ per entry are expanded to their entries).
TARGET_NODES = ("dataset", "model", "trainer")
TARGET_GROUPS = ("callbacks", "logger")


def unknown_key_problems(cfg: DictConfig) -> list[str]:
    """One ``key=value is not valid`` line per key that the thing it configures does not take."""
    problems = []
    for path, node, accepted, owner in _nodes(cfg):
        for key in node:
            if key in accepted or key in HYDRA_KEYS:
                continue
            value = OmegaConf.select(node, str(key), throw_on_missing=False)
            reason = f"{owner} has no setting {key}" + suggest(str(key), accepted)
            problems.append(invalid(f"{path}.{key}", _plain(value), reason))
    return problems


def owners(cfg: DictConfig) -> dict[str, str]:
    """What takes the keys of each node whose keys are checked, by the node's path."""
    return {path: owner for path, _, _, owner in _nodes(cfg)}


def _nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig, set[str], str]]:
    """(path, node, accepted keys, what takes them) for each node whose keys can be checked."""
    for path in TARGET_NODES:
        node = cfg.get(path)
        if isinstance(node, DictConfig) and "_target_" in node:
            yield from _target_node(path, node)
    for group in TARGET_GROUPS:
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, DictConfig) and "_target_" in node:
                yield from _target_node(f"{group}.{name}", node)
    yield from _named_node(cfg, "optimizer", OPTIMIZERS, extra={"name"})
    scheduler = cfg.get("scheduler")
    if isinstance(scheduler, DictConfig) and scheduler.get("name") == NO_SCHEDULER:
        yield "scheduler", scheduler, {"name"}, "scheduler=none (a constant learning rate)"
    else:
        yield from _named_node(
            cfg, "scheduler", SCHEDULERS, extra={"name", *LIGHTNING_SCHEDULER_KEYS}
        )


def _target_node(path: str, node: DictConfig) -> Iterator[tuple[str, DictConfig, set[str], str]]:
    try:
        target = get_object(node._target_)
    except Exception:  # an unknown target is Hydra's to report when it instantiates it
        return
    accepted = _parameters(target)
    if accepted is None:
        return
    owner = _name(target)
    if path == "model" and "net" in node:  # the model node holds its network's settings too
        try:
            network = network_class(node.net)
        except Exception:  # reported by the value checks (checks/config.py)
            return
        accepted |= set(settings_of(network))
        owner += f" with its network {_name(network)}"
    yield path, node, accepted, owner


def _named_node(
    cfg: DictConfig, path: str, classes: dict[str, Callable], extra: set[str]
) -> Iterator[tuple[str, DictConfig, set[str], str]]:
    """A node whose ``name`` picks a torch class that gets the optimizer (or the parameters)
    first and the node's other keys as keyword arguments."""
    node = cfg.get(path)
    if not isinstance(node, DictConfig):
        return
    name = node.get("name")
    if name not in classes:
        return  # an unknown name (or none) is reported by the name check
    accepted = _parameters(classes[name], skip=1)
    if accepted is not None:
        yield path, node, accepted | extra, f"{path}={name} ({_name(classes[name])})"


def _parameters(target: Callable, skip: int = 0) -> set[str] | None:
    """The keyword arguments ``target`` takes (after the first ``skip``), None if it takes any."""
    try:
        parameters = list(inspect.signature(target).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _name(target: Any) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def suggest(key: str, accepted: set[str]) -> str:
    """The hint for a key that ``accepted`` lacks: the closest keys, then all of them."""
    close = difflib.get_close_matches(key, sorted(accepted), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else "."
    return f"{hint} It takes: {', '.join(sorted(accepted))}"


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
