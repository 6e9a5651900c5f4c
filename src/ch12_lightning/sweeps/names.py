"""Names of a sweep's job folders that say what differs between the jobs (``0_optimizer=sgd``).

TensorBoard names a run by its folder, so the job folders name the sweep's runs. A job's own
overrides include what every job shares (``trainer.max_epochs=3``); the swept keys are those the
command line sweeps (``optimizer=sgd,adam``, read from the ``multirun.yaml`` that Hydra's basic
sweeper writes into the sweep folder before any job starts) and those of ``hydra.sweeper.params``
(a basic sweeper's ``params`` or an Optuna search space). Imports no torch: Hydra resolves the
name as it starts each job.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

MAX_LENGTH = 120  # characters of a folder name, well under file systems' 255


def job_folder(
    number: int, sweep_dir: str, overrides: Iterable[str], params: Mapping[str, str] | None
) -> str:
    """``<job number>_<swept key>=<value>,...`` in the job's override order, or the number alone
    where nothing is swept (``-m`` with single values)."""
    parser = OverridesParser.create()
    swept = swept_keys(parser, Path(sweep_dir), params)
    own = [
        override.input_line
        for override in parser.parse_overrides(list(overrides))
        if override.key_or_group in swept and override.input_line
    ]
    if not own:
        return str(number)
    # A "/" in a value (a path) would make a folder below the job's folder.
    name = f"{number}_{','.join(own)}".replace("/", "_")
    return name if len(name) <= MAX_LENGTH else name[: MAX_LENGTH - 3] + "..."


def swept_keys(parser: OverridesParser, sweep_dir: Path, params: Mapping[str, str] | None) -> set:
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    recorded = sweep_dir / "multirun.yaml"
    if recorded.is_file():
        lines += list(OmegaConf.load(recorded).hydra.overrides.task)
    return {
        override.key_or_group
        for override in parser.parse_overrides(lines)
        if override.is_sweep_override()
    }
