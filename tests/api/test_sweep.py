"""``api.sweep``: the command line's ``-m`` from Python, in this process, its sweep folder the
command line's; ``api.train`` pointing sweeps to it."""

import fcntl
import logging
import os
import re
from pathlib import Path

import pytest

from ch12_lightning import api
from ch12_lightning.api.sweeps import SweepFailed
from ch12_lightning.errors import ConfigError, FolderInUse
from ch12_lightning.run.folder_lock import LOCK_FILE
from tests.helpers.runs import quick

IRIS = ["experiment=iris_book", "trainer.max_epochs=1"]


def test_a_sweep_runs_here_into_the_command_lines_sweep_folder(tmp_path: Path):
    from hydra.core.global_hydra import GlobalHydra

    handlers = list(logging.getLogger().handlers)
    sweep = api.sweep(["-m", *IRIS, "seed=1,2"])  # -m as on the command line, or without
    folder = sweep.folder
    assert folder.parent == tmp_path / "outputs" / "iris_book" / "multiruns"
    assert [job["folder"] for job in sorted(sweep.jobs, key=lambda job: job["job"])] == [
        "0_seed=1",
        "1_seed=2",
    ]
    assert {job["status"] for job in sweep.jobs} == {"completed"}
    best = [job["metrics"]["val/acc_best"] for job in sweep.jobs]
    assert best == sorted(best, reverse=True) and sweep.metric == "val/acc_best"
    assert [(s["seeds"], s["completed"]) for s in sweep.settings] == [(["1", "2"], 2)]
    top = f"best val/acc_best {best[0]:.4f}: {sweep.jobs[0]['overrides']}"
    assert repr(sweep) == f"Sweep({folder}, 2 jobs, 2 completed; {top})"  # a cell's one line
    for name in ("summary.md", "summary_by_setting.csv", "multirun.yaml"):
        assert (folder / name).is_file(), name
    for job in ("0_seed=1", "1_seed=2"):
        for name in ("job.json", "metrics.json", ".hydra/config.yaml", "train.log"):
            assert (folder / job / name).is_file(), f"{job}/{name}"
    assert os.getcwd() == str(tmp_path)
    assert logging.getLogger().handlers == handlers and not GlobalHydra.instance().is_initialized()
    again = api.sweep([*IRIS, "seed=3"], sweep_dir=tmp_path / "mine")
    assert again.folder == tmp_path / "mine" and [j["folder"] for j in again.jobs] == ["0"]


def test_a_sweep_folder_that_another_sweep_writes_into_is_refused(tmp_path: Path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    with open(folder / LOCK_FILE, "w") as lock:  # as another sweep's process holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FolderInUse, match="another sweep .* one sweep at a time"):
            api.sweep([*IRIS, "seed=1,2"], sweep_dir=folder)
    assert [path.name for path in folder.iterdir()] == [LOCK_FILE]  # nothing of it written


def test_failed_jobs_raise_once_the_others_ran_with_every_job(tmp_path: Path):
    with pytest.raises(SweepFailed) as failed:
        api.sweep([*IRIS, "optimizer.lr=-1,0.01"], sweep_dir="sweep")
    folder = tmp_path / "sweep"
    assert str(failed.value) == (
        "1 of 2 jobs failed (job 0: InvalidInput: optimizer.lr=-1 is not valid: must be a "
        f"positive number); the other jobs ran. Every job is listed in {folder / 'summary.md'}, "
        f"and in this error's .sweep (as api.load_sweep({str(folder)!r}) reads them)."
    )
    assert failed.value.sweep == api.load_sweep(folder)
    assert [(job["overrides"][-1], job["status"]) for job in failed.value.sweep.jobs] == [
        ("optimizer.lr=0.01", "completed"),
        ("optimizer.lr=-1", "failed"),
    ]


def test_an_optuna_search_runs_here_ranked_by_its_direction(tmp_path: Path):
    search = ["hparams_search=mnist_optuna", "hydra.sweeper.n_trials=2"]
    minimize = ["optimized_metric=val/loss", "hydra.sweeper.direction=minimize"]
    study = api.sweep([*IRIS, *search, *minimize])
    assert study.folder == tmp_path / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    assert (study.folder / "optuna.db").is_file()
    assert (study.metric, study.direction) == ("val/loss", "minimize")
    losses = [job["metrics"]["val/loss"] for job in study.jobs]
    assert len(losses) == 2 and losses == sorted(losses)  # best (lowest) first


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["-m", "seed=1"], "-m asks for a sweep"),
        (["seed=1,2"], "seed=1,2 is a sweep (one job per value)"),
        (["optimizer.lr=interval(0.001,0.1)"], "optimizer.lr=interval(0.001,0.1) is a sweep"),
        (["hparams_search=mnist_optuna"], "This config is a sweep (hydra.mode=MULTIRUN"),
    ],
)
def test_train_points_a_sweep_to_api_sweep_in_one_line(overrides: list[str], named: str):
    with pytest.raises(
        ConfigError, match=f"^{re.escape(named)}.*run sweeps with api.sweep"
    ) as refused:
        api.train(overrides)
    assert "\n" not in str(refused.value)


@pytest.mark.slow
def test_a_launcher_with_processes_of_its_own_writes_the_same_sweep_folder(
    tmp_path: Path, mnist_dir: Path
):
    """joblib runs the jobs in its worker processes; the summaries are the command line's."""
    jobs = [*quick(mnist_dir, tmp_path), "launcher=joblib", "seed=1,2"]
    sweep = api.sweep(jobs, sweep_dir="sweep")
    assert sorted(job["folder"] for job in sweep.jobs) == ["0_seed=1", "1_seed=2"]
    assert {job["status"] for job in sweep.jobs} == {"completed"}
    assert (tmp_path / "sweep" / "summary.md").read_text().count("| completed |") == 2
