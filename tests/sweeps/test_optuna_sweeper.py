"""The Optuna sweeper's own parts, without training (test_sweeps.py runs real searches): the
search space from Hydra's syntax, the pruners, how a trial's job is told to the study, how many
trials a stored study holds, and the refusal to overwrite earlier jobs."""

import json
import math
import re
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ch12_lightning.errors import ConfigError
from ch12_lightning.sweeps.pruning import TrialPruning, make_pruner
from ch12_lightning.sweeps.study_storage import OldStudySchemaError
from hydra_plugins.ch12_optuna_sweeper.resumable_optuna_sweeper import (
    ResumableOptunaSweeper,
    refuse_earlier_jobs,
    trials_stored,
)
from hydra_plugins.ch12_optuna_sweeper.search_space import search_space


def test_trials_stored_counts_every_trial_of_the_named_study(tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert trials_stored(storage, "search") == 0  # a new file: nothing stored yet
    study = optuna.create_study(study_name="search", storage=storage)
    for value in (0.5, 0.7):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    study.ask()  # cut off before it was told: still a trial, with its number taken
    other = optuna.create_study(study_name="other", storage=storage)
    other.tell(other.ask(), 0.1)
    assert trials_stored(storage, "search") == 4
    assert trials_stored(storage, "missing") == 0


def test_a_study_in_memory_may_not_write_over_an_earlier_search(tmp_path: Path):
    refuse_earlier_jobs(tmp_path)  # an empty folder is fine
    job = tmp_path / "0_optimizer.lr=0.01"
    job.mkdir()
    (job / "job.json").write_text(json.dumps({"job": 0}))
    # Hydra shows a CompactHydraException as its message alone. (Hydra's plugin scan runs this
    # module again when a config is composed, so the subclass imported here may be stale.)
    with pytest.raises(
        CompactHydraException, match="holds the jobs of an earlier search .1, e.g. 0_"
    ):
        refuse_earlier_jobs(tmp_path)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lr=interval(0.001, 0.1)", FloatDistribution(0.001, 0.1)),
        ("lr=tag(log, interval(0.0001, 0.05))", FloatDistribution(0.0001, 0.05, log=True)),
        ("units=int(interval(8, 64))", IntDistribution(8, 64)),
        ("units=tag(log, int(interval(8, 64)))", IntDistribution(8, 64, log=True)),
        ("layers=range(1, 8, 3)", IntDistribution(1, 7, step=3)),
        ("p=range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.5, step=0.1)),  # end included
        ("batch=choice(32, 64)", CategoricalDistribution([32, 64])),
        ("optimizer=sgd,adam", CategoricalDistribution(["sgd", "adam"])),
        ("sizes=choice([32,16], [64,32])", CategoricalDistribution(["[32,16]", "[64,32]"])),
    ],
)
def test_hydra_sweep_syntax_becomes_optuna_distributions(line: str, expected):
    space = search_space({}, [line])
    assert list(space.distributions.values()) == [expected]


def test_a_trial_becomes_overrides_hydra_reads_back(tmp_path: Path):
    params = {"optimizer.lr": "tag(log, interval(0.0001, 0.05))", "model.activation": "relu"}
    arguments = ["+model.hidden_sizes=choice([32,16], [64,32])", "dataset.name=choice('a b', c)",
                 "model.activation=choice(relu, gelu)", "trainer.max_epochs=3"]  # fmt: skip
    space = search_space(params, arguments)
    # The command line wins over hydra.sweeper.params; fixed overrides go to every trial.
    assert sorted(space.distributions) == [
        "dataset.name", "model.activation", "model.hidden_sizes", "optimizer.lr",
    ]  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask(space.distributions)
    trial_params = {**trial.params, "model.hidden_sizes": "[64,32]", "dataset.name": "a b"}
    overrides = space.overrides(trial_params)
    assert overrides[0] == "trainer.max_epochs=3"
    parsed = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(overrides)}
    assert parsed["model.hidden_sizes"].value() == [64, 32]
    assert parsed["model.hidden_sizes"].get_key_element() == "+model.hidden_sizes"
    assert parsed["dataset.name"].value() == "a b"
    assert parsed["optimizer.lr"].value() == trial.params["optimizer.lr"]


def test_a_search_with_nothing_to_search_is_refused():
    with pytest.raises(ConfigError, match="has nothing to search"):
        search_space({}, ["trainer.max_epochs=3"])


def test_pruners_by_name_and_by_target():
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    hyperband = make_pruner("hyperband", validations=20)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert hyperband._max_resource == 20
    spec = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5}
    assert isinstance(make_pruner(spec), optuna.pruners.ThresholdPruner)
    with pytest.raises(ConfigError, match="hydra.sweeper.pruner=medain is not valid: one of"):
        make_pruner("medain")


def job_return(tmp_path: Path, status: JobStatus, value) -> JobReturn:
    job_dir = tmp_path / "0"
    job_dir.mkdir(exist_ok=True)
    record = {"job": 0, "overrides": ["optimizer.lr=0.1"], "status": "completed", "error": ""}
    (job_dir / "job.json").write_text(json.dumps(record))
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job_dir)}}})
    return JobReturn(hydra_cfg=hydra_cfg, status=status, _return_value=value)


@pytest.mark.parametrize(
    ("status", "value", "reason"),
    [
        (JobStatus.FAILED, ValueError("optimizer.lr=-1 is not valid"), "ValueError: optimizer"),
        (JobStatus.COMPLETED, None, "the job returned no val/acc_best"),
        (JobStatus.COMPLETED, math.nan, "val/acc_best is nan"),
        (JobStatus.COMPLETED, math.inf, "val/acc_best is inf"),
    ],
)
def test_a_failed_job_or_a_metric_missing_or_not_finite_is_a_failed_trial(
    tmp_path: Path, status, value, reason: str
):
    sweeper = ResumableOptunaSweeper(None, "maximize", None, "s", 2, 1, "none", None)
    sweeper.config = OmegaConf.create({"optimized_metric": "val/acc_best"})
    study = optuna.create_study(study_name="s", direction="maximize")
    trial = study.ask({"optimizer.lr": FloatDistribution(0.001, 0.1)})
    assert sweeper._tell(study, trial, job_return(tmp_path, status, value)).startswith(reason)
    (told,) = study.trials
    assert told.state == optuna.trial.TrialState.FAIL
    assert told.user_attrs["fail_reason"].startswith(reason)
    # The summary shows the reason; a second trial is asked and told as usual (the search goes on).
    record = json.loads((tmp_path / "0" / "job.json").read_text())
    assert (record["status"], record["error"][: len(reason)]) == ("failed", reason)
    assert "failed" in (tmp_path / "summary.md").read_text()
    trial = study.ask({"optimizer.lr": FloatDistribution(0.001, 0.1)})
    assert sweeper._tell(study, trial, job_return(tmp_path, JobStatus.COMPLETED, 0.9)) is None
    assert study.best_value == 0.9


def test_a_trial_its_job_marked_pruned_is_told_pruned_with_its_last_value(tmp_path: Path):
    sweeper = ResumableOptunaSweeper(None, "maximize", None, "s", 1, 1, "median", None)
    sweeper.config = OmegaConf.create({"optimized_metric": "val/acc_best"})
    study = optuna.create_study(study_name="s", direction="maximize")
    trial = study.ask({"optimizer.lr": FloatDistribution(0.001, 0.1)})
    # What the job's callback does, through a study object of its own.
    own = optuna.load_study(study_name="s", storage=study._storage)
    reported = optuna.trial.Trial(own, trial._trial_id)
    reported.report(0.8, 0)
    reported.report(0.85, 1)
    reported.set_user_attr("pruned", {"epoch": 2, "step": 1, "value": 0.85})
    sweeper._tell(study, trial, job_return(tmp_path, JobStatus.COMPLETED, 0.85))
    (told,) = study.trials
    assert (told.state, told.value) == (optuna.trial.TrialState.PRUNED, 0.85)
    record = json.loads((tmp_path / "0" / "job.json").read_text())
    assert record["status"] == "pruned"
    assert record["error"] == "pruned after epoch 2 (val/acc_best 0.8500)"


def test_a_search_refuses_a_study_of_optuna_2_and_leaves_it_as_it_is(tmp_path: Path):
    study_file = tmp_path / "optuna.db"
    study_file.write_bytes((Path(__file__).parent / "data" / "optuna-2.10.db").read_bytes())
    before = study_file.read_bytes()
    sweeper = ResumableOptunaSweeper(None, "maximize", f"sqlite:///{study_file}", "mnist_optuna",
                                     2, 1, "median", None)  # fmt: skip
    sweeper.sweep_dir = tmp_path
    sweeper.sampler = OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": 1})
    with pytest.raises(OldStudySchemaError, match="one-way .*optuna storage upgrade --storage"):
        sweeper._study()
    assert study_file.read_bytes() == before


def test_a_trial_of_a_study_in_memory_cannot_report_from_another_process():
    # In the sweeper's process the study's storage is registered; a spawned rank has none.
    pruning = TrialPruning(None, "elsewhere", 0, "val/acc_best", "median")
    with pytest.raises(ConfigError, match="keep the study in a database .* or set hydra.sweeper"):
        pruning._open_trial(make_pruner("median"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"direction": "maximise"}, "hydra.sweeper.direction=maximise is not valid: maximize or"),
        ({"n_trials": 0}, "hydra.sweeper.n_trials=0 is not valid: a whole number of at least 1"),
        ({"n_jobs": -1}, "hydra.sweeper.n_jobs=-1 is not valid: a whole number of at least 1"),
        ({"pruner": "medain"}, "hydra.sweeper.pruner=medain is not valid"),
        ({"metric": None}, "optimized_metric=null is not valid: the search optimizes the metric"),
    ],
)
def test_bad_search_settings_are_refused_before_any_trial(tmp_path: Path, settings, message):
    given = {"direction": "maximize", "n_trials": 2, "n_jobs": 1, "pruner": "median", **settings}
    sweeper = ResumableOptunaSweeper(None, given["direction"], None, "s", given["n_trials"],
                                     given["n_jobs"], given["pruner"], None)  # fmt: skip
    sweeper.config = OmegaConf.create({"optimized_metric": given.get("metric", "val/acc_best")})
    sweeper.pruner = given["pruner"]
    sweeper.sweep_dir = tmp_path
    with pytest.raises(ConfigError, match=re.escape(message)):
        sweeper._search(search_space({}, ["optimizer.lr=interval(0.001, 0.1)"]), None)
    assert list(tmp_path.iterdir()) == []  # no trial ran
