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
KEPT = 6  # characters a shortened value keeps, before its "..."


def job_folder(
    number: int, sweep_dir: str, overrides: Iterable[str], params: Mapping[str, str] | None
) -> str:
    """``<job number>_<swept key>=<value>,...`` in the job's override order, or the number alone
    where nothing is swept (``-m`` with single values)."""
    parser = OverridesParser.create()
    swept = swept_keys(parser, Path(sweep_dir), params)
    own = [
        override.input_line.split("=", 1)
        for override in parser.parse_overrides(list(overrides))
        if override.key_or_group in swept and override.input_line
    ]
    if not own:
        return str(number)
    room = MAX_LENGTH - len(f"{number}_") - sum(len(key) + 2 for key, _ in own)
    values = _shortened([value for _, value in own], room)
    # A "/" in a value (a path) would make a folder below the job's folder.
    named = ",".join(f"{key}={value}" for (key, _), value in zip(own, values, strict=True))
    return f"{number}_{named}".replace("/", "_")


def _shortened(values: list[str], room: int) -> list[str]:
    """The values cut, longest first, to fit ``room`` characters together, each to no fewer
    than ``KEPT`` characters and ``...``: every key stays whole in the name (``optimizer=sgd``
    after a long learning rate is what tells two jobs apart)."""
    values = list(values)
    while sum(map(len, values)) > room:
        longest = max(range(len(values)), key=lambda i: len(values[i]))
        value = values[longest].removesuffix("...")
        if len(value) <= KEPT:
            break
        cut = max(KEPT, len(value) - (sum(map(len, values)) - room) - 3)
        values[longest] = value[:cut] + "..."
    return values


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
