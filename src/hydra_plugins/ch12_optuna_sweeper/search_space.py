"""Hydra's sweep syntax as Optuna distributions, and a trial's parameters as a job's overrides.

The syntax and its meaning are those of Hydra's Optuna sweeper (``hydra_optuna_sweeper``'s
``create_optuna_distribution_from_override``), so that a search written for it runs here as it
ran there, in ``hydra.sweeper.params`` or on the command line:

- ``interval(a, b)`` is a float in [a, b], ``int(interval(a, b))`` an integer, and
  ``tag(log, ...)`` samples either on a log scale.
- ``range(a, b, step)`` is a stepped integer (a float where any of the three is a float) from
  ``a`` to ``b`` *with* ``b``: ``range(1, 3)`` is 1, 2 or 3, unlike Python's and Hydra's basic
  sweeper's range. Configs brought from the reference rely on it (its sphere example searches
  ``range(-5.5, 5.5, step=0.5)`` up to 5.5).
- ``shuffle(range(...))`` and ``shuffle(choice(...))`` are categories, the range's values being
  Python's (``shuffle(range(1, 3))`` is 1 or 2), as the reference has it. The categories keep
  their written order instead of a shuffled one: Optuna refuses a stored study whose categories
  come in another order, so a shuffled order would break resuming.
- ``choice(...)`` and ``a,b,c`` are categories. Values that Optuna cannot store as categories
  (lists such as ``[64,32]``) are kept as Hydra writes them (the reference refuses them).
- A mapping ``{type: int|float|categorical, low, high, step, log, choices}`` is the reference's
  older ``search_space`` form (``create_optuna_distribution_from_config``), accepted as a value.

Anything else is a fixed override, given to every trial. A sweep that cannot be a distribution
(a log scale with a bound at 0, an empty range, a step of 0) is a ConfigError naming its key, the
value and what would work, before any trial runs. Optuna is imported only here, when a search
starts, never by Hydra's plugin scan.
"""

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)

from ch12_lightning.errors import ConfigError, invalid

PRIMITIVES = (str, int, float, bool, type(None))
CONFIG_TYPES = ("int", "float", "categorical")


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
    given = dict(params or {})
    specs = {key: value for key, value in given.items() if isinstance(value, Mapping)}
    lines = [f"{key}={value}" for key, value in given.items() if key not in specs]
    parsed = OverridesParser.create().parse_overrides([*lines, *arguments])
    by_key: dict[str, Override | Mapping[str, Any]] = {
        str(key).lstrip("+"): spec for key, spec in specs.items()
    }
    written = {str(key).lstrip("+"): str(key) for key in specs}
    for override in parsed:  # the last one wins
        by_key[override.key_or_group] = override
        written[override.key_or_group] = override.get_key_element()
    distributions, keys, fixed, as_written = {}, {}, [], set()
    for name, override in by_key.items():
        if isinstance(override, Mapping):
            distributions[name] = distribution_from_config(written[name], override)
            keys[name] = written[name]
        elif override.is_sweep_override():
            distributions[name] = distribution(override)
            keys[name] = written[name]
            if _as_text(override):
                as_written.add(name)
        else:
            fixed.append(str(override.input_line))
    if not distributions:
        raise ConfigError(
            "The Optuna search has nothing to search: give hydra.sweeper.params or a sweep on "
            "the command line, e.g. 'optimizer.lr=tag(log, interval(0.0001, 0.1))' or "
            "'dataset.batch_size=choice(32,64)'."
        )
    return SearchSpace(distributions, keys, fixed, as_written)


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override, as the reference sweeper reads it."""
    from optuna.distributions import CategoricalDistribution

    sweep = override.value()
    try:
        if isinstance(sweep, IntervalSweep):
            return _interval(override, sweep)
        if isinstance(sweep, RangeSweep) and sweep.step == 0:
            raise ConfigError(_invalid(override, "the step must not be 0, e.g. range(1, 5, 1)"))
        if isinstance(sweep, RangeSweep) and not sweep.shuffle:
            return _range(override, sweep)
        if isinstance(sweep, RangeSweep) and not list(sweep.range()):
            raise ConfigError(_invalid(override, "the range holds no value"))
        if override.value_type is not None and override.value_type.name == "GLOB_CHOICE_SWEEP":
            reason = "glob() is not searched by the Optuna sweeper; list the options: choice(a,b)"
            raise ConfigError(_invalid(override, reason))
        if _as_text(override):
            return CategoricalDistribution([Transformer.str(v) for v in _in_order(override)])
        return CategoricalDistribution(_in_order(override))
    except ValueError as err:  # Optuna's own check, for a case not foreseen above
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(_invalid(override, str(err))) from err


def distribution_from_config(key: str, spec: Mapping[str, Any]) -> Any:
    """The reference's mapping form (``{type: float, low: 0, high: 1, log: true}``): ``int``
    and ``float`` with ``low``, ``high`` and optionally ``step`` or ``log``; ``categorical``
    with ``choices``."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = spec.get("type")
    allowed = {"type", "low", "high", "step", "log", "choices"}
    unknown = sorted(set(spec) - allowed)
    if kind not in CONFIG_TYPES or unknown:
        reason = (
            f"a mapping needs type: {', '.join(CONFIG_TYPES)} and only the keys "
            f"{', '.join(sorted(allowed))}, e.g. {{type: float, low: 0.0001, high: 0.1, "
            "log: true}"
        )
        raise ConfigError(invalid(key, _mapping_text(spec), reason))
    try:
        if kind == "categorical":
            return CategoricalDistribution(list(spec.get("choices") or []))
        low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log")
        if low is None or high is None:
            raise ValueError(f"type: {kind} needs low and high")
        if kind == "int":
            return IntDistribution(int(low), int(high), log=bool(log), step=int(step or 1))
        return FloatDistribution(
            float(low), float(high), log=bool(log), step=None if step is None else float(step)
        )
    except ValueError as err:
        raise ConfigError(invalid(key, _mapping_text(spec), str(err))) from err


def _mapping_text(spec: Mapping[str, Any]) -> str:
    """A mapping as a Hydra override writes it: ``{type:float,low:0,high:1}``."""
    text = {k: str(v).lower() if isinstance(v, bool) else _as_override(v) for k, v in spec.items()}
    return "{" + ",".join(f"{k}:{v}" for k, v in text.items()) + "}"


def _interval(override: Override, sweep: IntervalSweep) -> Any:
    """``interval``: integers when both ends are (``int(interval(...))``), floats otherwise."""
    from optuna.distributions import FloatDistribution, IntDistribution

    start, end, log = sweep.start, sweep.end, "log" in sweep.tags
    assert start is not None and end is not None
    if start > end:
        valid = f"the start must not be above the end, e.g. interval({end}, {start})"
        raise ConfigError(_invalid(override, valid))
    whole = isinstance(start, int) and isinstance(end, int)
    if log and start <= 0:
        valid = "a log scale needs both ends above 0"
        if end > 0:
            example = f"int(interval(1, {end}))" if whole else f"interval({end / 1000:g}, {end:g})"
            valid += f", e.g. tag(log, {example})"
        raise ConfigError(_invalid(override, valid))
    if whole:
        return IntDistribution(start, end, log=log)
    return FloatDistribution(start, end, log=log)


def _range(override: Override, sweep: RangeSweep) -> Any:
    """``range(a, b, step)``: from ``a`` to ``b`` with ``b``, every ``step`` (the reference's
    meaning); a negative step counts down from ``a``, so its values are those from the last one
    reached up to ``a``. A range not ending on its step ends at its last step, as Optuna would
    make it. Log scale only for integers with step 1 (Optuna has no stepped log)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None
    if (stop - start) * step < 0:
        example = f"range({stop}, {start}, {step})"
        raise ConfigError(_invalid(override, f"the range holds no value; perhaps {example}"))
    last = _last_reached(start, stop, step)
    low, high = (start, last) if step > 0 else (last, start)
    log = "log" in sweep.tags
    if all(isinstance(v, int) for v in (start, stop, step)):
        if log and abs(step) != 1:
            reason = "a log scale takes integers with step 1, e.g. tag(log, int(interval(1, 64)))"
            raise ConfigError(_invalid(override, reason))
        return IntDistribution(int(low), int(high), step=abs(int(step)), log=log)
    if log:
        reason = "a log scale has no step for floats: tag(log, interval(a, b))"
        raise ConfigError(_invalid(override, reason))
    return FloatDistribution(float(low), float(high), step=abs(float(step)))


def _last_reached(start: float, stop: float, step: float) -> float:
    """The last value a count from ``start`` by ``step`` reaches without passing ``stop`` (the
    end Optuna would move the distribution's to, with a warning), in decimal arithmetic so that
    0.1 steps land on 0.1's multiples."""
    first, end, size = (Decimal(str(v)) for v in (start, stop, step))
    last = first + size * ((end - first) // size)
    return int(last) if isinstance(start, int) and isinstance(step, int) else float(last)


def _in_order(override: Override) -> list[Any]:
    """A choice's or range's values in written order, whatever ``shuffle`` says."""
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return list(sweep.list)
    if isinstance(sweep, RangeSweep):
        return list(sweep.range())
    return list(override.sweep_iterator())


def _as_text(override: Override) -> bool:
    """Whether a sweep's categories must be kept as override text: Optuna stores only plain
    values (strings, numbers, booleans, null) as categories."""
    if not override.is_choice_sweep():
        return False
    return not all(isinstance(v, PRIMITIVES) for v in _in_order(override))


def _invalid(override: Override, reason: str) -> str:
    """``key=value is not valid: reason``, the key and value as the override wrote them."""
    line = str(override.input_line)
    value = line.split("=", 1)[1] if "=" in line else line
    return invalid(override.get_key_element(), value, reason)


def _as_override(value: Any) -> str:
    """A plain value as an override writes it (``a\\ b`` for the string ``a b``)."""
    return Override._get_value_element_as_str(value)
