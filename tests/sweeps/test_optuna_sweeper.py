"""The resumable Optuna sweeper's own checks, without running a search (test_sweeps.py runs
real ones): how many trials a stored study holds, and the refusal to overwrite earlier jobs."""

import json
from pathlib import Path

import optuna
import pytest
from hydra.errors import CompactHydraException

from hydra_plugins.ch12_optuna_sweeper.resumable_optuna_sweeper import (
    refuse_earlier_jobs,
    trials_stored,
)


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
