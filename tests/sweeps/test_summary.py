"""The sweep's tables from its job folders: every job, and jobs that differ only by seed
grouped with their mean and spread (fast: job records written here; test_sweeps.py runs sweeps)."""

import csv
import json
import statistics
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from ch12_lightning.api import load_sweep
from ch12_lightning.errors import FolderInUse
from ch12_lightning.errors.messages import InvalidInput
from ch12_lightning.sweeps.summary import SweepSummary, write_summary


def record(sweep: Path, job: int, overrides: list[str], acc: float | None) -> None:
    """A job folder as a finished job leaves it: job.json, and metrics.json if it completed."""
    folder = sweep / str(job)
    folder.mkdir(parents=True)
    status = "completed" if acc is not None else "failed"
    error = "" if acc is not None else "ValueError: diverged"
    job_record = {"job": job, "overrides": overrides, "status": status, "error": error}
    (folder / "job.json").write_text(json.dumps(job_record))
    if acc is not None:
        metrics = {"val/acc_best": acc, "val/acc": acc - 0.01, "test/acc": acc - 0.02}
        (folder / "metrics.json").write_text(json.dumps({"metrics": metrics}))


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_jobs_that_differ_only_by_seed_are_grouped_with_mean_and_spread(tmp_path: Path):
    accs = {
        ("sgd", 1): 0.90, ("sgd", 2): 0.92, ("sgd", 3): 0.91,
        ("adam", 1): 0.95, ("adam", 2): 0.97, ("adam", 3): None,  # failed
    }  # fmt: skip
    for job, ((optimizer, seed), acc) in enumerate(accs.items()):
        overrides = [f"optimizer={optimizer}", f"seed={seed}", "trainer.max_epochs=3"]
        record(tmp_path, job, overrides, acc)
    write_summary(tmp_path, "val/acc_best")

    assert len(rows_of(tmp_path / "summary.csv")) == 6  # the per-job table stays
    adam, sgd = rows_of(tmp_path / "summary_by_setting.csv")  # best mean first
    assert (adam["setting"], adam["seeds"]) == ("optimizer=adam", "1 2 3")
    assert (adam["completed"], adam["failed"]) == ("2", "1")
    assert (sgd["setting"], sgd["completed"], sgd["failed"]) == ("optimizer=sgd", "3", "0")
    for row, values in ((adam, [0.95, 0.97]), (sgd, [0.90, 0.92, 0.91])):
        assert float(row["val/acc_best mean"]) == pytest.approx(statistics.mean(values), abs=1e-4)
        assert float(row["val/acc_best std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        test_mean = statistics.mean(values) - 0.02
        assert float(row["test/acc mean"]) == pytest.approx(test_mean, abs=1e-4)
        assert row["test/loss mean"] == row["test/loss std"] == ""  # no job logged it
    markdown = (tmp_path / "summary_by_setting.md").read_text().splitlines()
    assert markdown[0].startswith("| rank | setting | seeds | completed | failed | val/acc_best |")
    assert "| 1 | optimizer=adam | 1 2 3 | 2 | 1 | 0.9600 ± 0.0141 |" in markdown[2]


def test_a_sweep_over_seeds_alone_is_one_setting(tmp_path: Path):
    for job, seed in enumerate((1, 2, 3, 4, 5)):
        overrides = ["experiment=celeba_practice", f"seed={seed}"]
        record(tmp_path, job, overrides, 0.80 + 0.01 * seed)
    record(tmp_path, 5, ["experiment=celeba_practice", "+seed=6"], 0.86)  # "+" adds the key
    write_summary(tmp_path, "val/acc_best")
    (row,) = rows_of(tmp_path / "summary_by_setting.csv")
    assert (row["setting"], row["seeds"], row["completed"]) == (
        "experiment=celeba_practice", "1 2 3 4 5 6", "6"
    )  # fmt: skip
    assert float(row["val/acc_best mean"]) == pytest.approx(0.835, abs=1e-4)


def test_settings_without_seeds_are_rows_of_one_job(tmp_path: Path):
    record(tmp_path, 0, ["optimizer=sgd"], 0.9)
    record(tmp_path, 1, ["optimizer=adam"], 0.95)
    write_summary(tmp_path, "val/acc")
    rows = rows_of(tmp_path / "summary_by_setting.csv")
    summary = [(r["setting"], r["completed"], r["val/acc std"]) for r in rows]
    assert summary == [("optimizer=adam", "1", ""), ("optimizer=sgd", "1", "")]


def test_a_search_that_minimizes_lists_the_lowest_first(tmp_path: Path):
    # The tables as the Hydra callback writes them after a job of a search that minimized.
    for job, (lr, acc) in enumerate((("0.1", 0.95), ("0.2", 0.90), ("0.3", None))):
        record(tmp_path, job, [f"optimizer.lr={lr}", "seed=1"], acc)
    config = OmegaConf.create({
        "optimized_metric": "val/acc",
        "hydra": {"mode": RunMode.MULTIRUN, "job": {"num": 0}, "sweep": {"dir": str(tmp_path)},
                  "runtime": {"output_dir": str(tmp_path / "0")},
                  "sweeper": {"direction": "minimize"}},
    })  # fmt: skip
    job_return = JobReturn(overrides=["optimizer.lr=0.1", "seed=1"], status=JobStatus.COMPLETED)
    SweepSummary().on_job_end(config, job_return)
    ranked = [(r["job"], r["status"]) for r in rows_of(tmp_path / "summary.csv")]
    assert ranked == [("1", "completed"), ("0", "completed"), ("2", "failed")]
    settings = [r["setting"] for r in rows_of(tmp_path / "summary_by_setting.csv")]
    assert settings == ["optimizer.lr=0.2", "optimizer.lr=0.1", "optimizer.lr=0.3"]
    # A notebook reads it back in the same order; without the direction, highest first.
    assert [row["job"] for row in load_sweep(tmp_path, "val/acc", "minimize").jobs] == [1, 0, 2]
    assert [row["job"] for row in load_sweep(tmp_path, "val/acc").jobs] == [0, 1, 2]


def test_a_job_refused_its_folder_writes_nothing_into_it(tmp_path: Path):
    """Another process's job writes into that folder: neither its record nor the tables change."""
    record(tmp_path, 0, ["seed=1"], 0.9)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    config = OmegaConf.create({
        "hydra": {"mode": RunMode.MULTIRUN, "job": {"num": 0}, "sweep": {"dir": str(tmp_path)},
                  "runtime": {"output_dir": str(tmp_path / "0")}},
    })  # fmt: skip
    in_use = FolderInUse(f"{tmp_path / '0'} is in use")
    as_the_command_line_has_it = InvalidInput(str(in_use))
    as_the_command_line_has_it.__cause__ = in_use
    for error in (in_use, as_the_command_line_has_it):
        job_return = JobReturn(overrides=["seed=1"], status=JobStatus.FAILED, _return_value=error)
        SweepSummary().on_job_end(config, job_return)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
