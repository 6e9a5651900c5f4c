"""A sweep folder read back as rows: the tables ``summary.md`` and ``summary_by_setting.md``
show, as plain data for a notebook (``sweeps/summary.py`` computes both)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ch12_lightning.sweeps.summary import METRICS, best_first, collect, settings_of


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
