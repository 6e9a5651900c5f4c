"""Hydra's Optuna sweeper, made to resume a study kept in a SQL database (a SQLite file).

Running the same command again reopens the study (the sweeper creates it with
``load_if_exists``) and adds ``n_trials`` trials. Three things would go wrong with the plain
sweeper (hydra-optuna-sweeper 1.3.0), and this subclass sets them right before the search:

- it numbers each command's jobs from 0, so the new trials would take the job numbers, and
  with the same parameters the folders, of the first command's: here job N is Optuna's trial N;
- its sampler starts from the same seed each time, so the new trials would repeat the first
  command's random start-up trials: here the seed is offset by the trials already stored;
- Optuna cannot create a SQLite file in a folder that does not exist yet: it is made first.

A study kept in memory (``storage: null``) cannot be resumed; since the folder is the study's,
a second such search there would write its jobs over the first one's: it is refused instead.

Imported by Hydra's plugin scan at every start: Optuna itself is imported only for a search.
"""

from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

SQLITE = "sqlite:///"


class ResumableOptunaSweeper(OptunaSweeper):
    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        search = self.sweeper
        if not isinstance(search.storage, str):
            refuse_earlier_jobs(Path(config.hydra.sweep.dir))
            return
        if search.storage.startswith(SQLITE):
            Path(search.storage.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
        done = trials_stored(search.storage, search.study_name)
        search.job_idx = done
        seed = config.hydra.sweeper.sampler.get("seed")
        if done and seed is not None:
            search.sampler = instantiate(config.hydra.sweeper.sampler, seed=seed + done)


class EarlierJobsError(CompactHydraException):
    """Shown by Hydra as its message alone, as the project's other refusals are."""


def refuse_earlier_jobs(sweep_dir: Path) -> None:
    """Stop an in-memory search whose folder already holds an earlier search's jobs."""
    earlier = sorted(path.parent.name for path in sweep_dir.glob("*/job.json"))
    if earlier:
        raise EarlierJobsError(
            f"{sweep_dir} holds the jobs of an earlier search ({len(earlier)}, e.g. "
            f"{earlier[0]}), and a study kept in memory (hydra.sweeper.storage=null) starts again "
            "from job 0, which would write over them. Keep the study in a database to resume it "
            "(the default storage), or give this search a folder of its own: "
            "hydra.sweeper.study_name=<new name> or hydra.sweep.dir=<folder>."
        )


def trials_stored(storage: str, study_name: Any) -> int:
    """How many trials (finished, failed or cut off) the study of that name has stored."""
    import optuna

    for study in optuna.get_all_study_summaries(storage):
        if study.study_name == study_name:
            return study.n_trials
    return 0
