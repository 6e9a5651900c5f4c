"""Tables of a sweep, best first, kept up to date in the sweep folder: every job, and every
setting with the mean and spread of its jobs over seeds.

Registered as a Hydra callback (``hydra.callbacks`` in conf/train.yaml). Each job, when it ends,
records its overrides, status and error in ``<job>/job.json``; then the table is rebuilt from all
the records and ``metrics.json`` files of the sweep folder. Rebuilding per job (rather than once at
the end) works for launchers that run jobs in other processes, and leaves a complete table even
when a failed job makes the sweep exit with an error. Imports no torch: it runs at Hydra start-up.
"""

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.errors import FolderInUse
from ch12_lightning.files.atomic import write_json_atomic, write_text_atomic

METRICS = ("val/acc_best", "val/acc", "test/acc", "test/loss")
STATUS_ORDER = {"completed": 0, "pruned": 1, "failed": 2}


class SweepSummary(Callback):
    """Writes ``summary.csv`` and ``summary.md`` (every job) and ``summary_by_setting.csv`` and
    ``summary_by_setting.md`` (jobs that differ only by ``seed`` grouped) into the sweep folder
    after every job.

    Where torchrun or srun runs the sweep in every process (each job one DDP run over all of
    them), rank 0 writes it."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from ch12_lightning.cluster.launch import is_rank_zero  # imports Lightning: jobs have it

        if config.hydra.mode != RunMode.MULTIRUN or not is_rank_zero():
            return
        failed = job_return.status == JobStatus.FAILED
        # JobReturn keeps a failed job's exception where its return value would be.
        exception = getattr(job_return, "_return_value", None)
        if failed and FolderInUse in (type(exception), type(exception.__cause__)):
            return  # another process's job writes into that folder (and its record)
        error = f"{type(exception).__name__}: {exception}" if failed else ""
        record = {
            "job": int(config.hydra.job.num),
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "completed",
            "error": error,
        }
        write_json_atomic(Path(config.hydra.runtime.output_dir) / "job.json", record)
        write_summary(Path(config.hydra.sweep.dir), *ranking(config))


def ranking(config: DictConfig) -> tuple[str, str]:
    """The metric a sweep's jobs are ranked by (the one a search optimizes) and which way is
    better: an Optuna search says; other sweeps rank higher values first."""
    metric = config.get("optimized_metric") or METRICS[0]
    return metric, OmegaConf.select(config, "hydra.sweeper.direction", default="maximize")


def record_outcome(job_dir: Path, metric: str, direction: str, status: str, error: str) -> None:
    """Record what a search made of a job that ran to its end (a trial ``pruned``, or ``failed``
    for a metric that came back missing or not finite) and rebuild the tables."""
    record_file = job_dir / "job.json"
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        write_json_atomic(record_file, {**record, "status": status, "error": error})
        write_summary(job_dir.parent, metric, direction)


def record_trial(
    job_dir: Path, number: int, overrides: list[str], metric: str, direction: str, error: str
) -> None:
    """Record a failed trial whose job never recorded itself (its config could not be composed,
    so it never started; or its search was killed while it ran) and rebuild the tables, so that
    every trial of a search has its row. Overrides of a job that had started are taken from
    Hydra's record of it (``.hydra/overrides.yaml``) where there is one."""
    saved = job_dir / ".hydra" / "overrides.yaml"
    if saved.is_file():
        overrides = list(OmegaConf.load(saved))
    record = {"job": number, "overrides": overrides, "status": "failed", "error": error}
    job_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / "job.json", record)
    write_summary(job_dir.parent, metric, direction)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder that has a ``job.json``, with its final metrics when it has them."""
    rows = []
    for record_file in sweep_dir.glob("*/job.json"):
        row = json.loads(record_file.read_text())
        metrics_file = record_file.parent / "metrics.json"
        if metrics_file.is_file():
            row["metrics"] = json.loads(metrics_file.read_text())["metrics"]
        row["folder"] = record_file.parent.name
        rows.append(row)
    return rows


def write_summary(
    sweep_dir: Path, metric: str, direction: str = "maximize"
) -> list[dict[str, Any]]:
    """Write the tables, completed jobs or settings by ``metric`` (best first: the highest, or
    the lowest where ``direction`` is ``minimize``), then the trials a search pruned, failed
    last."""
    rows = best_first(collect(sweep_dir), metric, direction)
    metrics = [metric, *(m for m in METRICS if m != metric)]
    # Overrides that every job shares say nothing about the differences between them.
    shared = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    header = ["rank", "job", "status", "overrides", *metrics, "folder", "error"]
    table = [
        [
            str(rank),
            str(row["job"]),
            row["status"],
            _differing(row["overrides"], shared),
            *(_number(row.get("metrics", {}).get(m)) for m in metrics),
            row["folder"],
            row["error"],
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    # The error (last column) on one line, and not too long, in the Markdown table.
    shown = [[*line[:-1], " / ".join(line[-1].splitlines())[:300]] for line in table]
    _write_tables(sweep_dir / "summary", header, table, header, shown)
    _write_settings(sweep_dir / "summary_by_setting", rows, metrics, shared, direction)
    return rows


def best_first(
    rows: list[dict[str, Any]], metric: str, direction: str = "maximize"
) -> list[dict[str, Any]]:
    """Completed jobs by ``metric``, best first, then the trials a search pruned, failed last."""

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get("metrics", {}).get(metric)
        return STATUS_ORDER.get(row["status"], len(STATUS_ORDER)), _worse_later(value, direction)

    return sorted(rows, key=key)


def _worse_later(value: float | None, direction: str) -> float:
    """A sort key that puts the best ``value`` first and a missing one last."""
    if value is None:
        return math.inf
    return value if direction == "minimize" else -value


class Setting(NamedTuple):
    overrides: tuple[str, ...]  # a job's overrides less seed
    seeds: list[str]  # in job order
    completed: int
    failed: int
    values: dict[str, list[float]]  # per metric, of the completed jobs that logged it

    def mean(self, metric: str) -> float | None:
        values = self.values[metric]
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        values = self.values[metric]
        return statistics.stdev(values) if len(values) > 1 else None


def settings_of(
    rows: list[dict[str, Any]], metrics: list[str], direction: str = "maximize"
) -> list[Setting]:
    """The jobs grouped by their overrides less ``seed``, best mean of ``metrics[0]`` first."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["job"]):
        setting = tuple(o for o in row["overrides"] if _key(o) != "seed")
        groups.setdefault(setting, []).append(row)
    settings = []
    for overrides, members in groups.items():
        done = [m.get("metrics", {}) for m in members if m["status"] == "completed"]
        seeds = [o.split("=", 1)[1] for m in members for o in m["overrides"] if _key(o) == "seed"]
        values = {metric: [d[metric] for d in done if metric in d] for metric in metrics}
        settings.append(Setting(overrides, seeds, len(done), len(members) - len(done), values))

    return sorted(settings, key=lambda setting: _worse_later(setting.mean(metrics[0]), direction))


def _write_settings(
    stem: Path, rows: list[dict[str, Any]], metrics: list[str], shared: set[str], direction: str
) -> None:
    """One row per setting: its seeds, how many jobs completed and failed, and each metric's
    mean and sample standard deviation over the completed ones."""
    header = ["rank", "setting", "seeds", "completed", "failed"]
    header += [f"{m} {what}" for m in metrics for what in ("mean", "std")]
    table, shown = [], []
    for rank, setting in enumerate(settings_of(rows, metrics, direction), start=1):
        # What sets this setting apart; a sweep over seeds alone has one setting: say it all.
        overrides = setting.overrides
        label = _differing(overrides, shared) or " ".join(overrides) or "(defaults)"
        counts = [str(setting.completed), str(setting.failed)]
        first = [str(rank), label, " ".join(setting.seeds), *counts]
        spreads = [(setting.mean(m), setting.std(m)) for m in metrics]
        table.append([*first, *(_number(x) for pair in spreads for x in pair)])
        shown.append([*first, *(_plus_minus(mean, std) for mean, std in spreads)])
    _write_tables(stem, header, table, [*header[:5], *metrics], shown)


def _write_tables(
    stem: Path,
    header: list[str],
    table: list[list[str]],
    md_header: list[str],
    md_rows: list[list[str]],
) -> None:
    """``<stem>.csv`` (``header`` and ``table``) and ``<stem>.md`` (``md_header``, ``md_rows``)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *table])
    write_text_atomic(stem.with_suffix(".csv"), buffer.getvalue())
    lines = [_md_row(md_header), _md_row(["---"] * len(md_header))]
    lines += [_md_row(row) for row in md_rows]
    write_text_atomic(stem.with_suffix(".md"), "\n".join(lines) + "\n")


def _key(override: str) -> str:
    """The key an override sets: ``seed`` for ``seed=3``, ``+seed=3`` and ``++seed=3``."""
    return override.split("=", 1)[0].lstrip("+~")


def _differing(overrides: Any, shared: set[str]) -> str:
    return " ".join(o for o in overrides if o not in shared)


def _plus_minus(mean: float | None, std: float | None) -> str:
    return _number(mean) if std is None else f"{mean:.4f} ± {std:.4f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
