"""The sweeper's config, registered with Hydra as ``hydra/sweeper: optuna`` (the name of Hydra's
Optuna sweeper, so that ``override /hydra/sweeper: optuna`` in a search config keeps working)
and its samplers as ``hydra/sweeper/sampler: tpe | random | qmc | grid | cmaes | nsgaii``.

A search config may set one sampler's settings (``n_startup_trials`` for TPE) and still run with
another sampler chosen on the command line: the sweeper drops settings that belong to another
sampler, with a log line, and refuses unknown ones (``ch12_lightning/sweeps/samplers.py``).

Hydra imports every module of ``hydra_plugins`` at each start: no Optuna here.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": None, "n_startup_trials": 10},
    "random": {"_target_": "optuna.samplers.RandomSampler", "seed": None},
    "qmc": {"_target_": "optuna.samplers.QMCSampler", "seed": None, "qmc_type": "sobol"},
    # Its search_space is built from the search's choices and ranges (hydra.sweeper.params).
    "grid": {"_target_": "optuna.samplers.GridSampler", "seed": None},
    # Needs the cmaes package (in the optuna extra); categorical parameters are sampled at random.
    "cmaes": {"_target_": "optuna.samplers.CmaEsSampler", "seed": None},
    # A genetic algorithm (Optuna's multi-objective default); here on the one metric searched.
    "nsgaii": {"_target_": "optuna.samplers.NSGAIISampler", "seed": None},
}


@dataclass
class OptunaSweeperConf:
    _target_: str = (
        "hydra_plugins.ch12_optuna_sweeper.resumable_optuna_sweeper.ResumableOptunaSweeper"
    )
    # The sampler and a pruner config stay configs: the sweeper builds them (the sampler per
    # command, without another sampler's settings), Hydra would build them with every setting.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}])
    sampler: Any = None
    # maximize or minimize the value the task returns (train.py: ``optimized_metric``). Any, not
    # str: a list (a multi-objective search, refused) gets the sweeper's message, not OmegaConf's.
    direction: Any = "minimize"
    # Optuna's name for a multi-objective search's directions: refused with the same message.
    directions: Any = None
    # An SQLAlchemy URL (sqlite:///<file>) keeps the study, so the same command resumes it;
    # null keeps it in memory.
    storage: Any = None
    study_name: str | None = None
    # Trials per command, and how many the launcher runs at once.
    n_trials: int = 20
    n_jobs: int = 1
    # Stop hopeless trials early: median, hyperband, none, or a pruner's own config (_target_).
    pruner: Any = "none"
    # The search space, key: Hydra's sweep syntax (interval, tag(log, ...), int, range, choice).
    params: dict[str, str] | None = None
    # The reference sweeper's setting: the share of a batch's trials (n_jobs) that may fail
    # before the search stops. 1.0 here (failures are recorded, not fatal); 0.0 there.
    max_failure_rate: float = 1.0
    # A trial left RUNNING by a search that was killed is marked FAIL (interrupted) when the
    # study is next opened; this many times it is queued again with its parameters.
    retry_interrupted: int = 0


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="ch12")
    for name, sampler in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=sampler, provider="ch12")


register()
