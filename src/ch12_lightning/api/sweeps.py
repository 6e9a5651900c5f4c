"""Sweeps from Python: run one as ``./ch12 train -m`` runs it, or read a sweep folder back as
rows: the tables ``summary.md`` and ``summary_by_setting.md`` show, as plain data for a
notebook (``sweeps/summary.py`` computes both)."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.types import RunMode

from ch12_lightning.api.hydra_jobs import (
    SWEEP_FLAGS,
    composed_sweep,
    listed,
    path_override,
    run_multirun,
)
from ch12_lightning.api.training import QUIET_CONSOLE, TrainingStopped
from ch12_lightning.errors import Explained
from ch12_lightning.run.folder_lock import hold, released_at_end
from ch12_lightning.sweeps.summary import METRICS, best_first, collect, ranking, settings_of
from ch12_lightning.train import job


@dataclass(frozen=True)
class Sweep:
    """``jobs``: one row per job (``job``, ``status``, ``overrides``, ``metrics``, ``folder``,
    ``error``), best first by ``metric``; ``settings``: the jobs that differ only by ``seed``
    grouped (``overrides``, ``seeds``, ``completed``, ``failed``, and per metric ``mean`` and
    ``std``), best mean first. Best is highest, or lowest where ``direction`` is ``minimize``."""

    folder: Path
    metric: str
    direction: str
    jobs: list[dict[str, Any]]
    settings: list[dict[str, Any]]

    def __repr__(self) -> str:
        """A line a cell can show (the rows are in ``jobs`` and ``settings``)."""
        done = sum(job["status"] == "completed" for job in self.jobs)
        scored = [job for job in self.jobs if self.metric in (job.get("metrics") or {})]
        best = ""
        if scored:
            top = scored[0]
            best = f"; best {self.metric} {top['metrics'][self.metric]:.4f}: {top['overrides']}"
        return f"Sweep({self.folder}, {len(self.jobs)} jobs, {done} completed{best})"


def load_sweep(folder: str | Path, metric: str = METRICS[0], direction: str = "maximize") -> Sweep:
    """The jobs of the sweep in ``folder`` (``outputs/<task>/multiruns/<time>``); a search
    that minimized ``metric`` (``hydra.sweeper.direction=minimize``) reads best first with
    ``direction="minimize"``."""
    folder = Path(folder)
    rows = collect(folder)
    if not rows:
        reason = "no */job.json: give a sweep folder, outputs/<task>/multiruns/<time>"
        raise FileNotFoundError(f"{folder} holds no sweep jobs ({reason})")
    rows = best_first(rows, metric, direction)
    metrics = [metric, *(m for m in METRICS if m != metric)]
    settings = [
        {
            "overrides": list(setting.overrides),
            "seeds": setting.seeds,
            "completed": setting.completed,
            "failed": setting.failed,
            **{f"{m} mean": setting.mean(m) for m in metrics},
            **{f"{m} std": setting.std(m) for m in metrics},
        }
        for setting in settings_of(rows, metrics, direction)
    ]
    return Sweep(folder, metric, direction, rows, settings)


def sweep(overrides: Sequence[str] | None = None, sweep_dir: str | Path | None = None) -> Sweep:
    """Run the sweep that ``./ch12 train -m <overrides>`` runs, here, and return its jobs as
    ``load_sweep`` reads them, ranked as its summary ranks them.

    Whatever ``-m`` takes: values to sweep (``seed=1,2``), a launcher (``launcher=joblib`` and
    ``submitit_*`` run the jobs in processes of their own), an Optuna search
    (``hparams_search=mnist_optuna``). The sweep folder is the command line's
    (``outputs/<task_name>/multiruns/<time>``, a search's study folder) or ``sweep_dir``, with
    the same job folders, ``job.json`` records and summary tables. Jobs that fail raise
    ``SweepFailed`` once the other jobs have run (its ``sweep`` lists them all). Stopped (the
    kernel's stop button, Ctrl-C), it raises ``KeyboardInterrupt`` saying how many jobs
    finished; the stopped job keeps the checkpoints of its finished epochs."""
    given = [override for override in listed(overrides) if override not in SWEEP_FLAGS]
    if sweep_dir is not None:
        given.append(path_override("hydra.sweep.dir", Path(sweep_dir)))
    cfg = composed_sweep("train", given)
    # Named here (the time in its name is taken once), so that this call can read it back.
    folder = Path(cfg.hydra.sweep.dir).resolve()
    jobs = [*given, QUIET_CONSOLE, path_override("hydra.sweep.dir", folder)]
    if cfg.hydra.mode != RunMode.MULTIRUN:  # what -m adds, unless the config says so itself
        jobs.append("hydra.mode=MULTIRUN")
    try:
        with released_at_end():
            hold(folder, "sweep")  # before Hydra writes into it
            run_multirun("train", jobs, job)
    except SystemExit as stop:  # Lightning ends an interrupted fit with SystemExit
        finished = len(collect(folder))
        read = f": api.load_sweep({str(folder)!r}) reads them" if finished else ""
        raise TrainingStopped(
            f"The sweep was stopped after {finished} finished job(s), in {folder}{read}."
        ) from stop
    except Exception as err:
        failed = sorted((row for row in collect(folder) if row["status"] == "failed"),
                        key=lambda row: row["job"])  # fmt: skip
        if not failed:
            raise
        done = load_sweep(folder, *ranking(cfg))
        first = f"job {failed[0]['job']}: {failed[0]['error'].splitlines()[0][:200]}"
        raise SweepFailed(
            f"{len(failed)} of {len(done.jobs)} jobs failed ({first}); the other jobs ran. Every "
            f"job is listed in {folder / 'summary.md'}, and in this error's .sweep (as "
            f"api.load_sweep({str(folder)!r}) reads them).",
            done,
        ) from err
    return load_sweep(folder, *ranking(cfg))


class SweepFailed(Explained):
    """Jobs of a sweep failed, as the command line then exits with status 1, while the other
    jobs ran: ``sweep`` holds every job, as ``load_sweep`` reads them."""

    def __init__(self, message: str, sweep: Sweep) -> None:
        super().__init__(message)
        self.sweep = sweep
