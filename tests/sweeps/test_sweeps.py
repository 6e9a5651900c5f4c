"""DDP that counts every sample once, and sweeps: summaries (per job and per setting over seeds),
failures, launchers, Optuna (resumed from its SQLite file), guard."""

import csv
import json
import time
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState

from tests.helpers.runs import quick, run_folders, train
from tests.helpers.searches import PRUNE_AT_SECOND, optuna_search, study_of

pytestmark = pytest.mark.slow


def summary_rows(sweep: Path, table: str = "summary") -> list[dict[str, str]]:
    with open(sweep / f"{table}.csv", newline="") as f:
        return list(csv.DictReader(f))


def final_metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


@pytest.mark.parametrize("model", [["model=mlp"], ["model=cnn", "model.channels=[4,8]"]])
def test_ddp_counts_every_sample_once_and_matches_one_process(
    model: list[str], mnist_dir: Path, tmp_path: Path
):
    # 101 validation and 200 test samples: a padded split would count 102 on two ranks.
    common = [*quick(mnist_dir, tmp_path), "dataset.val_size=101", "trainer.max_epochs=3"]
    common += ["optimizer=sgd", "optimizer.lr=0.05", *model]
    for folder in ("single", "ddp"):
        (tmp_path / folder).mkdir()
    single = train(*common, "dataset.batch_size=32", cwd=tmp_path / "single", timeout=600)
    ddp = train(*common, "dataset.batch_size=16", "accelerator=ddp_cpu", cwd=tmp_path / "ddp")
    assert single.returncode == 0 and ddp.returncode == 0, ddp.stderr[-3000:]
    (one,) = run_folders(tmp_path / "single")
    (two,) = run_folders(tmp_path / "ddp")
    one, two = final_metrics(one), final_metrics(two)
    assert (two["val/samples"], two["test/samples"]) == (101, 200)
    # Same seed, same global batch (32 = 2 x 16); only the order of the samples differs.
    for name in ("val/acc_best", "test/acc"):
        assert two[name] == pytest.approx(one[name], abs=0.05), name


def test_sweep_summary_lists_failed_jobs_and_keeps_the_others(mnist_dir: Path, tmp_path: Path):
    result = train("-m", *quick(mnist_dir, tmp_path), "optimizer.lr=0.001,-1,0.01", cwd=tmp_path)
    assert result.returncode != 0  # scripts notice the failed job
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    rows = summary_rows(sweep)
    assert [row["status"] for row in rows] == ["completed", "completed", "failed"]
    assert rows[0]["val/acc_best"] >= rows[1]["val/acc_best"]  # best first
    assert rows[2]["overrides"] == "optimizer.lr=-1"
    assert "optimizer.lr=-1 is not valid: must be a positive number" in rows[2]["error"]
    for row in rows[:2]:
        assert final_metrics(sweep / row["folder"])["test/acc"] >= 0
        assert list((sweep / row["folder"] / "tensorboard").glob("events.out.tfevents.*"))
    assert (sweep / "summary.md").read_text().count("\n") == 2 + 3


def test_joblib_launcher_runs_jobs_in_parallel(mnist_dir: Path, tmp_path: Path):
    result = train("-m", "launcher=joblib", *quick(mnist_dir, tmp_path), "optimizer=sgd,adam",
                   cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    rows = summary_rows(sweep)
    assert sorted(row["overrides"] for row in rows) == ["optimizer=adam", "optimizer=sgd"]
    assert {row["status"] for row in rows} == {"completed"}


SUMMARY_STATUS = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}


def test_optuna_study_is_stored_and_resumed_by_the_same_command(mnist_dir: Path, tmp_path: Path):
    args = optuna_search(mnist_dir, tmp_path, trials=2)
    for _ in range(2):  # the second command adds 2 trials to the study of the first
        result = train(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(tmp_path, task="mnist_optuna", kind="multiruns")
    assert sweep.name == "mnist_optuna"  # one folder per study, not per command
    trials = study_of(sweep).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    # The default pruner (median) lets the first two trials run whole.
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    # The resumed command did not start over: new learning rates, not the first two again.
    assert len({t.params["optimizer.lr"] for t in trials}) == 4
    # Job N is trial N, in a folder of its own, and the summary lists all four.
    rows = summary_rows(sweep)
    assert sorted(int(row["job"]) for row in rows) == [0, 1, 2, 3]
    for row in rows:
        trial = trials[int(row["job"])]
        assert row["folder"].startswith(f"{trial.number}_optimizer.lr=")
        assert f"optimizer.lr={trial.params['optimizer.lr']}" in row["overrides"]
        assert float(row["val/acc_best"]) == pytest.approx(trial.value, abs=1e-4)
        assert row["status"] == SUMMARY_STATUS[trial.state]
        # Every validation was reported: the dashboard's intermediate values.
        epochs = json.loads((sweep / row["folder"] / "metrics.json").read_text())["epochs"]
        assert sorted(trial.intermediate_values) == list(range(epochs))
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(study_of(sweep).best_value)
    assert results.best_value == pytest.approx(float(rows[0]["val/acc_best"]), abs=1e-4)
    # The history (the other pictures come with more trials or epochs: test_study_plots.py).
    assert (sweep / "optimization_history.png").read_bytes().startswith(b"\x89PNG")
    assert study_of(sweep).metric_names == ["val/acc_best"]  # the dashboard's axis


def test_failed_trials_are_recorded_and_the_search_goes_on(mnist_dir: Path, tmp_path: Path):
    # Three trials queued in the study before the search, as a person may queue settings to try:
    # one fails (a bad learning rate), one has no val/acc_best (it only tests), one trains.
    sweep = tmp_path / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    sweep.mkdir(parents=True)
    study = optuna.create_study(
        study_name="mnist_optuna", storage=f"sqlite:///{sweep}/optuna.db", direction="maximize"
    )
    for lr, fit in ((-1.0, True), (0.01, False), (0.01, True)):
        study.enqueue_trial({"optimizer.lr": lr, "train": fit})
    args = [*optuna_search(mnist_dir, tmp_path, trials=3), "optimizer.lr=choice(0.01,-1.0)",
            "train=choice(true,false)"]  # fmt: skip
    result = train(*args, cwd=tmp_path)
    assert result.returncode == 1  # scripts notice the failed trials
    assert "2 of 3 trials failed, the search went on (trial 0: " in result.stderr
    trials = study_of(sweep).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "optimizer.lr=-1.0 is not valid" in trials[0].user_attrs["fail_reason"]
    assert trials[1].user_attrs["fail_reason"] == "the job returned no val/acc_best (got None)"
    rows = {int(row["job"]): row for row in summary_rows(sweep)}
    assert [rows[n]["status"] for n in range(3)] == ["failed", "failed", "completed"]
    assert rows[1]["error"] == "the job returned no val/acc_best (got None)"
    assert float(rows[2]["val/acc_best"]) == pytest.approx(trials[2].value, abs=1e-4)


def test_pruning_stops_every_spawned_rank_together(mnist_dir: Path, tmp_path: Path):
    args = [*optuna_search(mnist_dir, tmp_path, trials=1), "accelerator=ddp_cpu_spawn",
            "trainer.max_epochs=4", "test=false", PRUNE_AT_SECOND]  # fmt: skip
    result = train(*args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(tmp_path, task="mnist_optuna", kind="multiruns")
    trials = study_of(sweep).trials
    assert [t.state for t in trials] == [TrialState.PRUNED]
    for trial, row in zip(trials, summary_rows(sweep), strict=True):
        assert sorted(trial.intermediate_values) == [0, 1]  # rank 0 reported, once per epoch
        assert row["status"] == "pruned"
        assert row["error"].startswith("pruned after epoch 2 (val/acc_best ")
        # The last checkpoint is of epoch 2 (of 4): both ranks stopped there, or it would hang.
        last = torch.load(sweep / row["folder"] / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["epoch"] == 1
        assert final_metrics(sweep / row["folder"])["val/samples"] == 100


def test_ddp_that_reruns_the_command_line_is_refused_in_sweeps(mnist_dir: Path, tmp_path: Path):
    result = train("-m", "accelerator=ddp_cpu", *quick(mnist_dir, tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "cannot run inside a sweep" in result.stderr
    assert "accelerator=ddp_cpu_spawn" in result.stderr
    # No rank started a second sweep: one sweep folder, one job folder.
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    assert [p.name for p in sweep.iterdir() if p.is_dir() and p.name != ".hydra"] == ["0"]


def test_spawned_ddp_works_in_sweeps(mnist_dir: Path, tmp_path: Path):
    args = ["-m", "accelerator=ddp_cpu_spawn", *quick(mnist_dir, tmp_path), "dataset.val_size=101"]
    result = train(*args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    metrics = final_metrics(sweep / "0")
    assert (metrics["val/samples"], metrics["test/samples"]) == (101, 200)


def test_a_failing_rank_ends_the_ddp_run(mnist_dir: Path, tmp_path: Path):
    # Lightning starts rank 1 with LOCAL_RANK=1 in its environment: only that rank gets an
    # invalid dropout, so it dies before joining the process group that rank 0 waits in.
    dropout = "model.dropout='${oc.decode:${oc.env:LOCAL_RANK,0}}'"
    args = [*quick(mnist_dir, tmp_path), dropout, "accelerator=ddp_cpu"]
    start = time.monotonic()
    result = train(*args, cwd=tmp_path, timeout=240)
    assert result.returncode != 0
    assert "model.dropout=1 is not valid: must be in [0, 1)" in result.stderr
    assert time.monotonic() - start < 120, "the run should end well before the DDP timeout"


def test_sweep_over_seeds_gives_mean_and_spread_per_setting(mnist_dir: Path, tmp_path: Path):
    args = ["-m", *quick(mnist_dir, tmp_path), "optimizer=sgd,adam", "seed=1,2"]
    result = train(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert jobs == ["0_optimizer=sgd,seed=1", "1_optimizer=sgd,seed=2",
                    "2_optimizer=adam,seed=1", "3_optimizer=adam,seed=2"]  # fmt: skip
    settings = {row["setting"]: row for row in summary_rows(sweep, "summary_by_setting")}
    assert sorted(settings) == ["optimizer=adam", "optimizer=sgd"]
    for name, row in settings.items():
        values = [final_metrics(sweep / job)["test/acc"] for job in jobs if name in job]
        assert (row["seeds"], row["completed"]) == ("1 2", "2")
        assert float(row["test/acc mean"]) == pytest.approx(sum(values) / 2, abs=1e-4)
        spread = abs(values[0] - values[1]) / 2**0.5  # the sample standard deviation of two
        assert float(row["test/acc std"]) == pytest.approx(spread, abs=1e-4)
