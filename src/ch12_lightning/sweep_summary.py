"""A table of every job of a sweep, best first, kept up to date in the sweep folder.

Registered as a Hydra callback (``hydra.callbacks`` in conf/train.yaml). Each job, when it ends,
records its overrides, status and error in ``<job>/job.json``; then the table is rebuilt from all
the records and ``metrics.json`` files of the sweep folder. Rebuilding per job (rather than once at
the end) works for launchers that run jobs in other processes, and leaves a complete table even
when a failed job makes the sweep exit with an error. Imports no torch: it runs at Hydra start-up.
"""

import csv
import io
import json
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ch12_lightning.utils import write_json_atomic, write_text_atomic

METRICS = ("val/acc_best", "val/acc", "test/acc", "test/loss")


class SweepSummary(Callback):
    """Writes ``summary.csv`` and ``summary.md`` into the sweep folder after every job.

    Where torchrun or srun runs the sweep in every process (each job one DDP run over all of
    them), rank 0 writes it."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        from ch12_lightning.cluster import is_rank_zero  # imports Lightning: jobs have it

        if config.hydra.mode != RunMode.MULTIRUN or not is_rank_zero():
            return
        failed = job_return.status == JobStatus.FAILED
        # JobReturn keeps a failed job's exception where its return value would be.
        exception = getattr(job_return, "_return_value", None)
        error = f"{type(exception).__name__}: {exception}" if failed else ""
        record = {
            "job": int(config.hydra.job.num),
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "completed",
            "error": error,
        }
        write_json_atomic(Path(config.hydra.runtime.output_dir) / "job.json", record)
        write_summary(Path(config.hydra.sweep.dir), config.get("optimized_metric") or METRICS[0])


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


def write_summary(sweep_dir: Path, metric: str) -> list[dict[str, Any]]:
    """Write the table, completed jobs by ``metric`` (best first), failed jobs last."""
    rows = collect(sweep_dir)
    metrics = [metric, *(m for m in METRICS if m != metric)]
    rows.sort(
        key=lambda r: (r["status"] != "completed", -r.get("metrics", {}).get(metric, float("-inf")))
    )
    # Overrides that every job shares say nothing about the differences between them.
    shared = set.intersection(*(set(r["overrides"]) for r in rows)) if len(rows) > 1 else set()
    header = ["rank", "job", "status", "overrides", *metrics, "folder", "error"]
    table = [
        [
            str(rank),
            str(row["job"]),
            row["status"],
            " ".join(o for o in row["overrides"] if o not in shared),
            *(_number(row.get("metrics", {}).get(m)) for m in metrics),
            row["folder"],
            row["error"],
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *table])
    write_text_atomic(sweep_dir / "summary.csv", buffer.getvalue())
    markdown = [_md_row(header), _md_row(["---"] * len(header))]
    markdown += [_md_row([*line[:-1], " / ".join(line[-1].splitlines())[:300]]) for line in table]
    write_text_atomic(sweep_dir / "summary.md", "\n".join(markdown) + "\n")
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
