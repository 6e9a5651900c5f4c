"""Optuna searches at their edges, as a person runs them: a search over config groups, and a
search killed with ``kill -9`` in the middle of a trial, then run again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.helpers.runs import train
from tests.helpers.searches import optuna_search, study_of
from tests.sweeps.test_sweeps import summary_rows

pytestmark = pytest.mark.slow


def test_a_search_over_config_groups_completes_every_trial(mnist_dir: Path, tmp_path: Path):
    # mnist_optuna searches model.hidden_sizes, which a CNN does not have.
    args = [*optuna_search(mnist_dir, tmp_path, trials=3), "model=choice(mlp,cnn)",
            "optimizer=choice(adam,sgd)"]  # fmt: skip
    result = train(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    trials = study_of(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.params["model"] for t in trials} == {"mlp", "cnn"}
    for trial in trials:
        assert ("model.hidden_sizes" in trial.params) == (trial.params["model"] == "mlp")
    rows = summary_rows(sweep)
    assert sorted(int(row["job"]) for row in rows) == [0, 1, 2]
    assert {row["status"] for row in rows} == {"completed"}
    for row in rows:  # the job folders say which model and optimizer each trial had
        trial = trials[int(row["job"])]
        assert f"model={trial.params['model']}" in row["folder"]
        assert f"optimizer={trial.params['optimizer']}" in row["folder"]
    for number in range(3):
        assert f"] Trial {number} COMPLETE: val/acc_best=" in result.stderr + result.stdout
    assert "Best trial " in result.stderr + result.stdout


def test_a_search_killed_mid_trial_then_run_again_leaves_no_trial_running(
    mnist_dir: Path, tmp_path: Path
):
    args = [*optuna_search(mnist_dir, tmp_path, trials=3), "trainer.max_epochs=20",
            "hydra.sweeper.pruner=none"]  # fmt: skip
    sweep = tmp_path / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    command = [sys.executable, "-m", "ch12_lightning.train", *args]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as search:  # fmt: skip
        deadline = time.monotonic() + 240
        while not list(sweep.glob("1_*/train.log")) and time.monotonic() < deadline:
            assert search.poll() is None, "the search ended before its second trial"
            time.sleep(0.2)
        time.sleep(1)  # inside trial 1's training (20 epochs: several seconds)
        os.kill(search.pid, signal.SIGKILL)
    assert [t.state for t in study_of(sweep).trials][-1] == TrialState.RUNNING
    result = train(*args, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = study_of(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.COMPLETE]  # fmt: skip
    assert trials[1].user_attrs["fail_reason"].startswith("interrupted (process ")
    rows = {int(row["job"]): row for row in summary_rows(sweep)}
    assert sorted(rows) == [0, 1, 2]  # every trial has its row
    assert rows[1]["status"] == "failed" and rows[1]["error"].startswith("interrupted")
    assert rows[1]["folder"].startswith("1_")
