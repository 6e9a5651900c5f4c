"""A misspelled key in an override (``optimizer.lrr=0.1``) answered by the project's key check,
on the command line and from the API alike.

Hydra refuses an override of a key that the config lacks while it composes ("Key 'lrr' is not
in struct"), before any of the project's checks, with a hint (``+optimizer.lrr=0.1``) that adds
the key instead of catching the typo; only then would ``checks/keys.py`` say "no setting lrr; did
you mean lr?". Hydra has no hook between applying the overrides and raising that error, so
``unknown_keys_explained`` wraps the step that applies them (``ConfigLoaderImpl.
_apply_overrides_to_config``, the same in Hydra 1.1 to 1.3) while a command or an API call
composes: the key Hydra refused is explained on the config with the key added as ``+`` adds it.
Every other error, and every key Hydra accepts, is Hydra's as before.
"""

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.errors.messages import InvalidInput

APPLY = "_apply_overrides_to_config"


class UnknownKeyError(InvalidInput, ConfigError):
    """An override of a key the config does not have: the command line prints the message alone
    (a ``CompactHydraException``), the API raises it as the ``ConfigError`` it is."""


@contextmanager
def unknown_keys_explained() -> Iterator[None]:
    """While in the block, an override of a missing key stops with ``UnknownKeyError``."""
    hydras = ConfigLoaderImpl.__dict__[APPLY]
    apply = hydras.__func__

    def explained(overrides: list[Override], cfg: DictConfig) -> None:
        try:
            apply(overrides, cfg)
        except ConfigCompositionException as err:
            message = None
            if isinstance(err.__cause__, ConfigAttributeError | ConfigKeyError):
                message = _unknown_key_message(overrides, cfg)
            if message is None:
                raise
            raise UnknownKeyError(message) from None

    setattr(ConfigLoaderImpl, APPLY, staticmethod(explained))
    try:
        yield
    finally:
        setattr(ConfigLoaderImpl, APPLY, hydras)


def _unknown_key_message(overrides: list[Override], cfg: DictConfig) -> str | None:
    """The project's message for the first plain override whose key ``cfg`` lacks (the one
    Hydra stopped at: the overrides before it were applied)."""
    from ch12_lightning.checks.keys import owners, suggest, unknown_key_problems

    missing = object()
    for override in overrides:
        if override.is_add() or override.is_force_add() or override.is_delete():
            continue
        key = override.key_or_group
        if OmegaConf.select(cfg, key, default=missing, throw_on_missing=False) is not missing:
            continue
        added = copy.deepcopy(cfg)
        with open_dict(added):
            OmegaConf.update(added, key, override.value(), merge=True, force_add=True)
        problems = [line for line in unknown_key_problems(added) if line.startswith(f"{key}=")]
        if problems:
            return problems[0]
        parent, _, leaf = key.rpartition(".")
        owner = owners(added).get(parent)
        if owner:  # a setting of the class the node builds, which the config does not list
            reason = f"the config does not list {leaf}, which {owner} takes"
            return invalid(key, override.value(), f"{reason}: add it with +{override.input_line}")
        path, node, leaf = _deepest_node(cfg, key)
        keys = {str(k) for k in node if k != "hydra"}
        if not keys:  # not a node of the config (Hydra may leave an empty one behind)
            return None
        reason = f"{path or 'the config'} has no key {leaf}{suggest(leaf, keys)}"
        return invalid(key, override.value(), reason)
    return None


def _deepest_node(cfg: DictConfig, key: str) -> tuple[str, DictConfig, str]:
    """(path, node) of the deepest node of ``cfg`` on the way to ``key``, and the first part of
    ``key`` that it lacks."""
    path, node = "", cfg
    for part in key.split("."):
        child = node.get(part) if part in node else None
        if not isinstance(child, DictConfig):
            return path, node, part
        path, node = f"{path}.{part}".lstrip("."), child
    return path, node, key.rsplit(".", 1)[-1]
