"""Hydra's sweep syntax as Optuna distributions, and a trial's parameters as a job's overrides.

The syntax is the one Hydra's Optuna sweeper reads, in ``hydra.sweeper.params`` or on the
command line: ``interval(a, b)`` is a float, ``int(interval(a, b))`` an integer and
``tag(log, ...)`` samples either on a log scale; ``range(a, b, step)`` is the range's values in
order (an integer or a stepped float); ``choice(...)`` and ``a,b,c`` are categories. Values that
Optuna cannot store as categories (lists such as ``[64,32]``) are kept as Hydra writes them.
Anything else is a fixed override, given to every trial. Optuna is imported only here, when a
search starts, never by Hydra's plugin scan.
"""

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from ch12_lightning.errors import ConfigError

PRIMITIVES = (str, int, float, bool, type(None))


class SearchSpace(NamedTuple):
    distributions: dict[str, Any]  # parameter name (the key) -> Optuna distribution
    keys: dict[str, str]  # parameter name -> the key as the override writes it (``+x``)
    fixed: list[str]  # overrides every trial gets
    as_written: set[str]  # parameters whose categories are override text (``[64,32]``)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's job overrides: the fixed ones, then one per parameter, as Hydra reads them."""
        chosen = [
            f"{key}={params[name] if name in self.as_written else _as_override(params[name])}"
            for name, key in self.keys.items()
        ]
        return [*self.fixed, *chosen]


def search_space(params: Mapping[str, Any] | None, arguments: Iterable[str]) -> SearchSpace:
    """The space of ``hydra.sweeper.params`` and the command line's arguments (which win)."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*lines, *arguments])
    by_key = {override.key_or_group: override for override in parsed}  # the last one wins
    distributions, keys, fixed, as_written = {}, {}, [], set()
    for name, override in by_key.items():
        if override.is_sweep_override():
            distributions[name] = distribution(override)
            keys[name] = override.get_key_element()
            if _as_text(override):
                as_written.add(name)
        else:
            fixed.append(override.input_line)
    if not distributions:
        raise ConfigError(
            "The Optuna search has nothing to search: give hydra.sweeper.params or a sweep on "
            "the command line, e.g. 'optimizer.lr=tag(log, interval(0.0001, 0.1))' or "
            "'dataset.batch_size=choice(32,64)'."
        )
    return SearchSpace(distributions, keys, fixed, as_written)


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    sweep = override.value()
    if override.is_interval_sweep():
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(sweep.start, sweep.end, log=log)
    values = list(override.sweep_iterator())
    if override.is_range_sweep():
        values.sort()
        if len(values) > 1 and all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=abs(sweep.step))
        if len(values) > 1:
            step = abs(sweep.step)
            high = round(values[0] + step * (len(values) - 1), 12)
            return FloatDistribution(values[0], high, step=step)
    if _as_text(override):
        return CategoricalDistribution(list(override.sweep_string_iterator()))
    return CategoricalDistribution(values)


def _as_text(override: Override) -> bool:
    """Whether a sweep's categories must be kept as override text: Optuna stores only plain
    values (strings, numbers, booleans, null) as categories."""
    if not override.is_choice_sweep():
        return False
    return not all(isinstance(v, PRIMITIVES) for v in override.sweep_iterator())


def _as_override(value: Any) -> str:
    """A plain value as an override writes it (``a\\ b`` for the string ``a b``)."""
    return Override._get_value_element_as_str(value)
