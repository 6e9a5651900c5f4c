"""The Optuna search's sampler, built from its config (``hydra/sweeper/sampler=<name>``).

**Settings of another sampler are dropped, with one log line; unknown settings are refused.**
A search config tunes the sampler it names (``mnist_optuna.yaml`` gives TPE 5 start-up trials),
and ``hydra/sweeper/sampler=random`` on the command line asks for the same search with another
sampler. Refusing ``n_startup_trials`` then would make every search config that tunes one
sampler unusable with the others (or make the user remove the setting with ``~key``), while the
setting cannot mean anything to the new sampler: dropping it loses nothing the user could want.
A setting that no known sampler has (``n_startup_trail``) is a typo whose intent would be lost
silently: it is refused, with the sampler's settings listed.

**Seeds: two commands on one study never share one.** A command's sampler is seeded with
``seed + N``, N the number of the first trial it asks for. A single search with seed S starts at
trial 0 with seed S (as before this rule); the same command again on the stored study starts at
trial N with seed S + N, so its trials are new; and two commands started at once on a new study
get different first trials (the storage numbers trials one by one), so different seeds, where
both used to take S and repeat each other's trials. The grid and QMC samplers keep seed S in
every command: their seed fixes one order of points (the grid's shuffle, the Sobol sequence's
scramble), and the storage hands each trial its own place in that order (the grid's trial N is
its N-th point; QMC counts its samples in the study), so one shared seed is what keeps two
commands apart.
"""

import inspect
import itertools
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, GridSampler, QMCSampler
from optuna.trial import FrozenTrial, TrialState

from ch12_lightning.errors import ConfigError, invalid

log = logging.getLogger(__name__)

KEY = "hydra.sweeper.sampler"
# The samplers by name (config.py registers their configs): the settings each takes are read
# from its class, so that a setting of one is known when another is chosen.
NAMED = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "grid": "optuna.samplers.GridSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
}
# Samplers whose seed orders points that the storage then hands out one per trial.
SHARED_SEED = (GridSampler, QMCSampler)


def make_sampler(config: Any, distributions: Mapping[str, BaseDistribution]) -> BaseSampler:
    """The sampler of ``hydra.sweeper.sampler``, seeded per command (module docstring)."""
    if isinstance(config, str):
        names = "|".join(NAMED)
        raise ConfigError(
            f"{KEY}={config} replaces the sampler's config (its seed and settings) with a "
            f"string. Choose a sampler by its config group: hydra/sweeper/sampler={config} "
            f"(one of {names}), which keeps the search's seed."
        )
    if not isinstance(config, Mapping | DictConfig) or "_target_" not in config:
        raise ConfigError(
            invalid(KEY, config, f"a sampler: hydra/sweeper/sampler={'|'.join(NAMED)}")
        )
    settings = OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)
    target = settings.pop("_target_")
    try:
        cls = get_class(target)
    except Exception as err:  # Hydra's message names the module or class it could not find.
        raise ConfigError(invalid(f"{KEY}._target_", target, f"not a class ({err})")) from err
    settings = _own_settings(cls, settings)
    if issubclass(cls, GridSampler):
        if "search_space" in settings:
            reason = "the grid is built from the search's choices and ranges (hydra.sweeper.params)"
            raise ConfigError(invalid(f"{KEY}.search_space", settings["search_space"], reason))
        settings["search_space"] = grid(distributions)
    if "seed" not in _parameters(cls):  # a sampler of the user's own, without a seed
        return SeededPerCommand(lambda _: cls(**settings), None)
    return SeededPerCommand(lambda seed: cls(**{**settings, "seed": seed}), settings.get("seed"))


def _own_settings(cls: type, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings ``cls`` takes; another named sampler's are dropped, unknown ones refused."""
    own = _parameters(cls)
    others = {name: _parameters(get_class(path)) for name, path in NAMED.items()}
    kept, dropped = {}, []
    for key, value in settings.items():
        if key in own:
            kept[key] = value
        elif any(key in params for params in others.values()):
            owners = ", ".join(name for name, params in others.items() if key in params)
            dropped.append(f"{key} ({owners})")
        else:
            reason = f"not a setting of {cls.__name__}: one of {', '.join(sorted(own))}"
            raise ConfigError(invalid(f"{KEY}.{key}", value, reason))
    if dropped:
        log.info("%s: settings of other samplers dropped: %s", cls.__name__, ", ".join(dropped))
    return kept


def _parameters(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}


def grid(distributions: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of each parameter: a grid needs finite values, so a float ``interval`` (a
    continuum) is refused, naming its key; ``range`` and ``int(interval(...))`` give each of
    their values, ``choice`` its categories."""
    values: dict[str, list[Any]] = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            values[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            values[name] = [round(dist.low + i * dist.step, 12) for i in range(count)]
        else:
            written = f"interval({dist.low}, {dist.high})"
            written = f"tag(log, {written})" if getattr(dist, "log", False) else written
            reason = (
                "the grid sampler needs finite values: give this key choice(...) or "
                "range(a, b, step), or use another sampler (hydra/sweeper/sampler=tpe)"
            )
            raise ConfigError(invalid(name, written, reason))
    return values


def grid_points_left(sampler: BaseSampler, study: optuna.Study) -> int | None:
    """How many of the grid's points no trial has taken yet; None for other samplers."""
    inner = sampler.inner if isinstance(sampler, SeededPerCommand) else sampler
    if not isinstance(inner, GridSampler):
        return None
    names = sorted(inner._search_space)
    points = set(itertools.product(*(inner._search_space[n] for n in names)))
    taken = {
        tuple(trial.params.get(n) for n in names)
        for trial in study.get_trials(deepcopy=False)
        if trial.state != TrialState.WAITING
    }
    return len(points - taken)


class SeededPerCommand(BaseSampler):
    """A sampler built with ``seed``, built again with ``seed + N`` when the first trial this
    command asks for is trial N > 0 (module docstring): the trial's number is known only once
    the storage has created it, which is when Optuna calls ``before_trial``, before any value
    is sampled. Everything else is the built sampler's own."""

    def __init__(self, build: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._build, self._seed = build, seed
        self.inner = self._built(seed)  # built now: a bad setting stops the search before a trial
        self._first = True

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._first:
            self._first = False
            shared = isinstance(self.inner, SHARED_SEED)
            if self._seed is not None and trial.number > 0 and not shared:
                self.inner = self._built(self._seed + trial.number)
                log.info("Sampler seed %d (%d + first trial %d)",
                         self._seed + trial.number, self._seed, trial.number)  # fmt: skip
        self.inner.before_trial(study, trial)

    def _built(self, seed: int | None) -> BaseSampler:
        """The sampler, without Optuna's "experimental" warning (QMC, BruteForce): chosen by
        name, it is what the user asked for, and the warning only says its interface may change."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._build(seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        try:
            self.inner.after_trial(study, trial, state, values)
        except RuntimeError as err:
            # The grid sampler calls study.stop() once every point is taken, which Optuna allows
            # only inside study.optimize; the sweeper asks and tells, and stops after n_trials.
            if not isinstance(self.inner, GridSampler) or "Study.stop" not in str(err):
                raise
            log.info("Every point of the grid has been tried")

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def __repr__(self) -> str:
        return repr(self.inner)
