"""The project's Hydra sweeper for Optuna searches, on the current Optuna.

It asks the study for trials (``n_jobs`` at a time), has Hydra's launcher run them as jobs, and
tells the study how each ended. Beyond a plain search loop:

- **Resumable**: a study kept in a database (``storage``, by default ``optuna.db`` in the sweep
  folder) is reopened by the same command, which adds ``n_trials`` trials. Job N is trial N, so
  the new jobs get folders of their own, and the sampler's seed is offset by the trials already
  stored, so the new trials do not repeat the first command's random start-up trials. A study
  kept in memory cannot be resumed; a second such search in the same folder would write its
  jobs over the first one's: it is refused. A second command on a study folder while one runs
  is refused (the folder is locked, ``run/folder_lock.py``).
- **Failures recorded, not fatal**: a job that fails, or whose metric is missing, NaN or
  infinite, is a FAIL trial with its reason in the sweep summary; the search goes on, and the
  command exits with status 1 at the end.
- **Pruning**: each trial reports its metric at every validation (``sweeps/pruning.py``) and
  stops early when ``pruner`` says so; it is then a PRUNED trial, listed with its last value.
- **One study for cluster-started ranks**: under torchrun or srun every process runs this
  command; rank 0 alone asks and tells, and the others train the trials it asked for.
- **Pictures**: after each batch of trials, the study's plots as PNG in the sweep folder.

Hydra imports this module at every start: Optuna and Lightning are imported only for a search.
"""

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.ch12_optuna_sweeper.search_space import SearchSpace, search_space

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"


class SearchError(CompactHydraException):
    """Shown by Hydra as its message alone, as the project's other refusals are."""


class ResumableOptunaSweeper(Sweeper):
    """Hydra instantiates the sweeper with its config's keys, the sampler and a pruner given by
    ``_target_`` already built; both are built again from the config, the sampler with its seed
    offset, the pruner in each trial's job."""

    def __init__(
        self,
        sampler: Any,
        direction: str,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        pruner: Any,
        params: DictConfig | None,
        max_failure_rate: float = 1.0,
    ) -> None:
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate = max_failure_rate  # the reference's setting; see config.py
        self.params = OmegaConf.to_container(params) if params else {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.sampler = config.hydra.sweeper.sampler
        self.pruner = OmegaConf.to_container(config.hydra.sweeper, resolve=True)["pruner"]
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from ch12_lightning.cluster.rank_zero_says import cluster_rank, rank_zero_says
        from ch12_lightning.errors import Explained
        from ch12_lightning.run.folder_lock import hold

        rank = cluster_rank()
        if rank is not None and rank > 0:
            return self._follow(rank_zero_says)
        batches = rank_zero_says if rank == 0 else None
        try:
            hold(self.sweep_dir, "sweep")  # one search per study folder at a time
            self._search(search_space(self.params, arguments), batches)
        except Explained as err:
            raise SearchError(str(err)) from err
        finally:
            if batches:  # the other ranks stop with rank 0, also when it stops on an error
                batches(None)

    def _follow(self, rank_zero_says: Any) -> None:
        """Train the trials rank 0 asked for, each as one rank of its job."""
        while (batch := rank_zero_says(None)) is not None:
            first, overrides = batch
            self.launcher.launch(overrides, initial_job_idx=first)

    def _check_settings(self) -> None:
        """Refuse settings that cannot work before any trial runs."""
        from ch12_lightning.errors import ConfigError, invalid
        from ch12_lightning.sweeps.pruning import make_pruner

        make_pruner(self.pruner)
        if self.direction not in ("maximize", "minimize"):
            reason = "maximize or minimize (the search optimizes one metric)"
            raise ConfigError(invalid("hydra.sweeper.direction", self.direction, reason))
        if not self.config.get("optimized_metric"):
            reason = "the search optimizes the metric it names, e.g. val/acc_best"
            raise ConfigError(invalid("optimized_metric", None, reason))
        for key in ("n_trials", "n_jobs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                reason = "a whole number of at least 1"
                raise ConfigError(invalid(f"hydra.sweeper.{key}", getattr(self, key), reason))

    def _search(self, space: SearchSpace, share: Any) -> None:
        self._check_settings()
        study = self._study()
        remaining, failures = self.n_trials, []
        while remaining > 0:
            trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, remaining))]
            first = trials[0].number
            if [t.number for t in trials] != list(range(first, first + len(trials))):
                raise SearchError(
                    f"Another search is adding trials to study {study.study_name!r} at the same "
                    "time; job N must be trial N: run one command per study at a time."
                )
            overrides = [space.overrides(trial.params) for trial in trials]
            if share:
                share((first, overrides))
            returns = self.launcher.launch(overrides, initial_job_idx=first)
            for trial, job in zip(trials, returns, strict=True):
                failure = self._tell(study, trial, job)
                if failure:
                    failures.append(f"trial {trial.number}: {failure.splitlines()[0][:200]}")
            remaining -= len(trials)
            self._write_results(study)
        if failures:
            more = "; ..." if len(failures) > 3 else ""
            raise SearchError(
                f"{len(failures)} of {self.n_trials} trials failed, the search went on "
                f"({'; '.join(failures[:3])}{more}). Every trial is listed in "
                f"{self.sweep_dir / 'summary.md'}."
            )

    def _study(self) -> Any:
        """The study, created or reopened, with a sampler seeded after the stored trials."""
        import optuna

        from ch12_lightning.sweeps import pruning
        from ch12_lightning.sweeps.study_storage import refuse_old_schema

        storage = self.storage
        if storage is None:
            refuse_earlier_jobs(self.sweep_dir)
            storage = optuna.storages.InMemoryStorage()
            pruning.IN_MEMORY[self.study_name] = storage
        elif storage.startswith(SQLITE):
            Path(storage.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
            refuse_old_schema(storage)
        done = trials_stored(storage, self.study_name)
        sampler = self.sampler
        if done and sampler.get("seed") is not None:
            sampler = OmegaConf.merge(sampler, {"seed": sampler.seed + done})
        study = optuna.create_study(
            storage=storage,
            sampler=instantiate(sampler),
            study_name=self.study_name,
            direction=self.direction,
            load_if_exists=True,
        )
        if done:
            log.info("Study %r resumed: %d trials stored", study.study_name, done)
        return study

    def _tell(self, study: Any, trial: Any, job: JobReturn) -> str | None:
        """Tell the study how the trial's job ended; the reason, for a failed one."""
        from optuna.trial import TrialState

        from ch12_lightning.sweeps.summary import record_outcome

        metric = self.config.optimized_metric
        job_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
        value = job._return_value
        reason = None
        if job.status != JobStatus.COMPLETED:
            reason = f"{type(value).__name__}: {value}"
        elif not isinstance(value, int | float):
            reason = f"the job returned no {metric} (got {value!r})"
        elif not math.isfinite(value):
            reason = f"{metric} is {value}"
        if reason:
            trial.set_user_attr("fail_reason", reason)
            study.tell(trial, state=TrialState.FAIL)
            record_outcome(job_dir, metric, self.direction, "failed", reason)
            return reason
        pruned = _stored_attrs(study, trial).get("pruned")
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
            note = f"pruned after epoch {pruned['epoch']} ({metric} {pruned['value']:.4f})"
            record_outcome(job_dir, metric, self.direction, "pruned", note)
        else:
            study.tell(trial, value)
        return None

    def _write_results(self, study: Any) -> None:
        """``optimization_results.yaml`` (the best trial so far) and the study's plots."""
        from optuna.trial import TrialState

        from ch12_lightning.files.atomic import write_text_atomic
        from ch12_lightning.sweeps.study_plots import write_study_plots

        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = study.best_trial
            results = {"name": "optuna", "best_trial": best.number, "best_value": best.value}
            results["best_params"] = best.params
            write_text_atomic(
                self.sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(results)
            )
        write_study_plots(study, self.sweep_dir)


def _stored_attrs(study: Any, trial: Any) -> dict[str, Any]:
    """The trial's user attributes as stored: its job set them through a study of its own, of
    which the sweeper's ``Trial`` object knows nothing."""
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == trial.number:
            return frozen.user_attrs
    return {}


def refuse_earlier_jobs(sweep_dir: Path) -> None:
    """Stop an in-memory search whose folder already holds an earlier search's jobs."""
    earlier = sorted(path.parent.name for path in sweep_dir.glob("*/job.json"))
    if earlier:
        raise SearchError(
            f"{sweep_dir} holds the jobs of an earlier search ({len(earlier)}, e.g. "
            f"{earlier[0]}), and a study kept in memory (hydra.sweeper.storage=null) starts again "
            "from job 0, which would write over them. Keep the study in a database to resume it "
            "(the default storage), or give this search a folder of its own: "
            "hydra.sweeper.study_name=<new name> or hydra.sweep.dir=<folder>."
        )


def trials_stored(storage: Any, study_name: str | None) -> int:
    """How many trials (finished, failed or cut off) the study of that name has stored."""
    import optuna

    for study in optuna.get_all_study_summaries(storage):
        if study.study_name == study_name:
            return study.n_trials
    return 0
