"""The networks a task's LightningModule trains, each built from its description: plain data.

A network is a class in a module of its own (``mlp.py``, ``cnn.py``, or a module of yours anywhere
on the Python path) whose constructor takes

- ``input_shape``: one input's shape as the data module gives it: ``(channels, height, width)``
  for pictures, ``(features,)`` for a table;
- ``num_outputs``: the numbers the task needs per input (a logit per class, or one logit, or the
  regression targets);
- its own settings, keyword arguments of plain data (numbers, strings, lists).

A model config (``conf/model/<name>.yaml``) names the class, ``net: <module>.<Class>``, and sets
its settings beside the task's (``model.channels=[16,32]`` next to ``model.loss``). The task's
LightningModule receives the description, ``{"_target_": "<module>.<Class>", <setting>: <value>,
...}``, keeps it in its hyperparameters, so that a checkpoint alone rebuilds the network (and
loads with ``weights_only=True``), and builds the network with ``build_net``.

A network may declare ``setting_rules`` (``errors.rules.Rule``s of its settings, by setting name),
checked with the run's other config values before anything is built. A setting that cannot work
with the input (a kernel larger than the picture) is refused by the constructor, with
``invalid_setting``, before any data is read.
"""

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from torch import nn

from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.errors.rules import Rule, one_of

# What every network is given, from the data and the task, rather than set in its config.
GIVEN = ("input_shape", "num_outputs")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}
ACTIVATION_RULE: Rule = one_of("activation", ACTIVATIONS)


def network_class(target: str) -> Callable[..., nn.Module]:
    """The network that ``target`` (``<module>.<Class>``) names, imported."""
    if not isinstance(target, str) or "." not in target:
        raise ValueError("not a dotted path <module>.<Class>")
    module, _, name = target.rpartition(".")
    network = getattr(importlib.import_module(module), name)
    if isinstance(network, ModuleType) or not callable(network):
        raise TypeError(f"{target} is a {type(network).__name__}, not a network class")
    return network


def settings_of(network: Callable[..., nn.Module]) -> list[str]:
    """The names of the network's own settings: its keyword arguments but the given ones."""
    parameters = inspect.signature(network).parameters.values()
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.name not in GIVEN and p.kind not in kinds]


def rules_of(network: Callable[..., nn.Module]) -> Sequence[Rule]:
    """The rules the network declares for its settings (none if it declares none)."""
    return getattr(network, "setting_rules", ())


def describe_net(model_settings: dict[str, Any]) -> dict[str, Any]:
    """Take the network's description out of a model config's settings (changed in place): its
    class (``net``) and the settings that class takes; what is left is the task's."""
    target = model_settings.pop("net")
    taken = [name for name in settings_of(network_class(target)) if name in model_settings]
    return {"_target_": target, **{name: model_settings.pop(name) for name in taken}}


def build_net(
    description: Mapping[str, Any], input_shape: Sequence[int], num_outputs: int
) -> nn.Module:
    """The network a description names, for inputs of ``input_shape``."""
    settings = dict(description)
    network = network_class(settings.pop("_target_"))
    return network(input_shape=tuple(input_shape), num_outputs=num_outputs, **settings)


def as_config_names(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """A model's hyperparameters named as its config names them: the network's class as ``net``
    and its settings beside the task's (``hidden_sizes``, not ``net/hidden_sizes``)."""
    flat = dict(hparams)
    description = flat.pop("net", None)
    if isinstance(description, Mapping):
        settings = dict(description)
        flat = {"net": settings.pop("_target_", None), **settings, **flat}
    return flat


def invalid_setting(name: str, value: Any, reason: str) -> ConfigError:
    """The error for a network setting that cannot work, named as the config names it."""
    return ConfigError(invalid(f"model.{name}", value, reason))


def activation_layer(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
