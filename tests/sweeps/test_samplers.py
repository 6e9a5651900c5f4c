"""Samplers by name on the search config as composed (``hydra/sweeper/sampler=<name>``), their
own settings, the grid from the search's values, and seeds: one command reproducible, two
commands on one study apart. Each study runs a trivial objective, no training."""

import logging
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from optuna.trial import TrialState

from ch12_lightning.errors import ConfigError
from ch12_lightning.sweeps.samplers import grid, make_sampler
from hydra_plugins.ch12_optuna_sweeper.resumable_optuna_sweeper import (
    ResumableOptunaSweeper,
    one_objective,
)
from hydra_plugins.ch12_optuna_sweeper.search_space import SearchSpace, search_space
from tests.helpers.runs import config_dir

SEARCH = ["hparams_search=mnist_optuna"]
# The grid takes values, not intervals: the learning rate as a choice.
FINITE_LR = "optimizer.lr=choice(0.001,0.01,0.1)"


def sweeper_of(overrides: list[str], tmp_path: Path, storage: str | None = None):
    """The sweeper as Hydra builds it from the composed config, on a study in ``tmp_path``."""
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    # (Hydra's plugin scan imports the sweeper's module again: its class is not the one here.)
    sweeper = instantiate(cfg.hydra.sweeper)
    assert type(sweeper).__name__ == ResumableOptunaSweeper.__name__
    sweeper.config, sweeper.sweep_dir = cfg, tmp_path
    sweeper.sampler = cfg.hydra.sweeper.sampler
    sweeper.storage = storage or f"sqlite:///{tmp_path / 'optuna.db'}"
    return sweeper


def run_trials(study: optuna.Study, space: SearchSpace, n: int) -> list[dict]:
    """``n`` trials of a trivial objective, asked and told as the sweeper does."""
    for _ in range(n):
        trial = study.ask(space.distributions)
        study.tell(trial, sum(hash(str(v)) % 97 for v in trial.params.values()) / 97)
    return [t.params for t in study.trials]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("tpe", "TPESampler"), ("random", "RandomSampler"), ("qmc", "QMCSampler"),
     ("grid", "GridSampler"), ("cmaes", "CmaEsSampler"), ("nsgaii", "NSGAIISampler")],
)  # fmt: skip
def test_each_sampler_by_name_runs_the_search_config(name: str, cls: str, tmp_path: Path, caplog):
    sweeper = sweeper_of([*SEARCH, f"hydra/sweeper/sampler={name}"], tmp_path)
    space = search_space(sweeper.params, [FINITE_LR] if name == "grid" else [])
    with caplog.at_level(logging.INFO, logger="ch12_lightning.sweeps.samplers"):
        study = sweeper._study(space)
    assert type(study.sampler.inner).__name__ == cls
    trials = run_trials(study, space, 3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert len({str(sorted(p.items())) for p in trials}) == 3  # three different trials
    # mnist_optuna.yaml gives TPE 5 start-up trials: kept by TPE and CMA-ES (theirs too),
    # dropped with one line by the others.
    dropped = [r.message for r in caplog.records if "settings of other samplers" in r.message]
    if name in ("tpe", "cmaes"):
        assert study.sampler.inner._n_startup_trials == 5 and not dropped
    else:
        line = f"{cls}: settings of other samplers dropped: n_startup_trials (tpe, cmaes)"
        assert dropped == [line]


def test_the_dot_form_names_the_group_form(tmp_path: Path):
    sweeper = sweeper_of([*SEARCH, "hydra.sweeper.sampler=random"], tmp_path)
    with pytest.raises(ConfigError, match="Choose a sampler by its config group: hydra/sweeper/"
                       "sampler=random .one of tpe.random.qmc.grid.cmaes.nsgaii"):  # fmt: skip
        sweeper._study(search_space(sweeper.params, []))


def test_a_setting_no_sampler_has_is_refused(tmp_path: Path):
    overrides = [*SEARCH, "hydra/sweeper/sampler=random", "+hydra.sweeper.sampler.n_startup=3"]
    sweeper = sweeper_of(overrides, tmp_path)
    with pytest.raises(ConfigError, match="hydra.sweeper.sampler.n_startup=3 is not valid: not a "
                       "setting of RandomSampler: one of seed"):  # fmt: skip
        sweeper._study(search_space(sweeper.params, []))


def test_the_grid_refuses_an_interval_naming_its_key(tmp_path: Path):
    sweeper = sweeper_of([*SEARCH, "hydra/sweeper/sampler=grid"], tmp_path)
    with pytest.raises(ConfigError, match=r"^optimizer.lr=tag\(log, interval\(0.0001, 0.05\)\) "
                       "is not valid: the grid sampler needs finite values"):  # fmt: skip
        sweeper._study(search_space(sweeper.params, []))
    assert not (tmp_path / "optuna.db").exists()  # refused before the study was created


def test_the_grid_takes_every_value_of_choices_and_ranges():
    space = search_space({}, ["a=range(1, 8, 3)", "b=range(0.1, 0.35, 0.1)", "c=choice(x, y)",
                              "d=int(interval(2, 4))"])  # fmt: skip
    assert grid(space.distributions) == {
        "a": [1, 4, 7], "b": [0.1, 0.2, 0.3], "c": ["x", "y"], "d": [2, 3, 4],
    }  # fmt: skip


def test_a_grid_search_runs_its_points_once_and_stops(tmp_path: Path):
    overrides = [*SEARCH, "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=20"]
    sweeper = sweeper_of(overrides, tmp_path)
    space = search_space({}, ["optimizer.lr=choice(0.01,0.1)", "model.activation=relu,tanh"])
    study = sweeper._study(space)
    assert sweeper.n_trials == 4  # the grid's points, not 20
    trials = run_trials(study, space, 4)  # the last tell does not stop on Optuna's study.stop()
    assert len({str(sorted(p.items())) for p in trials}) == 4
    again = sweeper_of(overrides, tmp_path)
    again._study(space)
    assert again.n_trials == 0  # every point taken: the same command runs none


@pytest.mark.parametrize("name", ["tpe", "random", "qmc", "grid", "cmaes"])
def test_two_commands_at_once_on_a_new_study_never_repeat_a_trial(name: str, tmp_path: Path):
    overrides = [*SEARCH, f"hydra/sweeper/sampler={name}"]
    first, second = (sweeper_of(overrides, tmp_path) for _ in range(2))
    space = search_space(first.params, [FINITE_LR] if name == "grid" else [])
    # Both open the new study before either asks: both find 0 trials stored.
    studies = [first._study(space), second._study(space)]
    for _ in range(3):  # they take turns, as two processes at once would
        for study in studies:
            trial = study.ask(space.distributions)
            study.tell(trial, 0.5)
    trials = optuna.load_study(study_name="mnist_optuna", storage=first.storage).trials
    assert len(trials) == 6
    assert len({str(sorted(t.params.items())) for t in trials}) == 6


def test_one_seeded_command_gives_the_trials_it_gave_before(tmp_path: Path):
    # Before: seed S for a new study, S + (trials stored) for a resumed one. Still so.
    space = search_space(sweeper_of(SEARCH, tmp_path).params, [])

    def plain(seed: int, n: int) -> list[dict]:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        return run_trials(optuna.create_study(sampler=sampler), space, n)

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sweeper = sweeper_of(SEARCH, tmp_path / folder)
        assert run_trials(sweeper._study(space), space, 2) == plain(1, 2)
    resumed = sweeper_of(SEARCH, tmp_path / "b")
    assert run_trials(resumed._study(space), space, 2)[2:] == plain(1 + 2, 2)


@pytest.mark.parametrize(
    ("direction", "directions", "metric", "message"),
    [
        (["maximize", "minimize"], None, "val/acc_best",
         "hydra.sweeper.direction=[maximize,minimize] is not valid: maximize or minimize: a "
         "search optimizes one metric"),
        ("maximize", ["maximize", "minimize"], "val/acc_best",
         "hydra.sweeper.directions=[maximize,minimize] is not valid"),
        ("maximize", None, ["val/acc_best", "val/loss"],
         "optimized_metric=[val/acc_best,val/loss] is not valid: one metric's name"),
    ],
)  # fmt: skip
def test_a_multi_objective_search_is_refused_in_one_message(direction, directions, metric,
                                                             message: str):  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        one_objective(direction, directions, metric)


def test_a_list_of_directions_reaches_the_sweepers_message(tmp_path: Path):
    sweeper = sweeper_of([*SEARCH, "hydra.sweeper.direction=[maximize,minimize]"], tmp_path)
    sweeper.pruner = "none"
    with pytest.raises(ConfigError, match="multi-objective searches .* are not supported"):
        sweeper._check_settings()


def test_a_sampler_of_ones_own_is_built_as_given():
    sampler = make_sampler({"_target_": "optuna.samplers.BruteForceSampler", "seed": 3}, {})
    assert isinstance(sampler.inner, optuna.samplers.BruteForceSampler)
    with pytest.raises(ConfigError, match="hydra.sweeper.sampler._target_=optuna.samplers.Nope"):
        make_sampler({"_target_": "optuna.samplers.Nope"}, {})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "qmc"])
def test_the_readmes_samplers_run_the_search_config_end_to_end(name: str, tmp_path: Path):
    # Both exited 1 before any trial (TPE's n_startup_trials handed to their constructors).
    from ch12_lightning import api

    study = api.sweep(["experiment=iris_book", "trainer.max_epochs=1", *SEARCH,
                       f"hydra/sweeper/sampler={name}", "hydra.sweeper.n_trials=2"])  # fmt: skip
    assert [job["status"] for job in study.jobs] == ["completed"] * 2
