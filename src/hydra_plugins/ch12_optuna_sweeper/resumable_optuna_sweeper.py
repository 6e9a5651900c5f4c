"""The project's Hydra sweeper for Optuna searches, on the current Optuna.

It asks the study for trials (``n_jobs`` at a time), has Hydra's launcher run them as jobs, and
tells the study how each ended. Beyond a plain search loop:

- **Resumable**: a study kept in a database (``storage``, by default ``optuna.db`` in the sweep
  folder) is reopened by the same command, which adds ``n_trials`` trials. Job N is trial N, so
  the new jobs get folders of their own, and the sampler's seed is offset by the number of the
  command's first trial, so the new trials do not repeat the first command's random start-up
  trials, nor do two commands started at once on one study (``sweeps/samplers.py``). A study
  kept in memory cannot be resumed; a second such search in the same folder would write its
  jobs over the first one's: it is refused. A second command on a study folder while one runs
  is refused (the folder is locked, ``run/folder_lock.py``).
- **Failures recorded, not fatal**: a job that fails, or whose metric is missing, NaN or
  infinite, is a FAIL trial with its reason in the sweep summary; so is a trial whose config
  cannot be composed (its job never starts). The search goes on (``max_failure_rate``: unless
  more than that share of a batch failed), and the command exits with status 1 at the end. One
  line per trial as it ends (state, value or reason, best so far), and the best trial at the end.
- **Config groups**: ``model=choice(mlp,cnn)`` chooses a trial's groups first; a parameter whose
  key the trial's composed config lacks (``model.hidden_sizes`` for a CNN) is not its setting.
- **Killed searches**: trials left RUNNING by a search whose process is gone (``kill -9``) are
  marked FAIL, ``interrupted``, when the study is next opened (``sweeps/interrupted.py``: Optuna's
  heartbeat, recorded while trials run, and the process that asked for each trial).
- **Pruning**: each trial reports its metric at every validation (``sweeps/pruning.py``) and
  stops early when ``pruner`` says so; it is then a PRUNED trial, listed with its last value.
- **One study for cluster-started ranks**: under torchrun or srun every process runs this
  command; rank 0 alone asks and tells, and the others train the trials it asked for.
- **Pictures**: after each batch of trials, the study's plots as PNG in the sweep folder.

Hydra imports this module at every start: Optuna and Lightning are imported only for a search.
"""

import logging
import math
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_plugins.ch12_optuna_sweeper.search_space import SearchSpace, search_space

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"


class SearchError(CompactHydraException):
    """Shown by Hydra as its message alone, as the project's other refusals are."""


class ResumableOptunaSweeper(Sweeper):
    """Hydra instantiates the sweeper with its config's keys, the sampler and pruner as configs
    (``_recursive_: false``): the sampler is built for the study (``sweeps/samplers.py``: its own
    settings, its seed per command), the pruner in each trial's job."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        pruner: Any,
        params: DictConfig | None,
        max_failure_rate: float = 1.0,
        retry_interrupted: int = 0,
        directions: Any = None,
    ) -> None:
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.directions = directions
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate = max_failure_rate  # the reference's setting; see config.py
        self.params = OmegaConf.to_container(params) if params else {}
        self.retry_interrupted = retry_interrupted  # how often an interrupted trial runs again
        self.config_loader: Any = None  # Hydra's, from setup: composes each trial's config

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.sampler = config.hydra.sweeper.sampler
        self.pruner = OmegaConf.to_container(config.hydra.sweeper, resolve=True)["pruner"]
        self.config_loader = hydra_context.config_loader
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
            # What the command line swept, as Hydra's basic sweeper records it: the job folders
            # are named by it (``sweeps/names.py``), ``model=cnn`` as ``optimizer.lr=...``.
            OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
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
        one_objective(self.direction, self.directions, self.config.get("optimized_metric"))
        if not self.config.get("optimized_metric"):
            reason = "the search optimizes the metric it names, e.g. val/acc_best"
            raise ConfigError(invalid("optimized_metric", None, reason))
        for key in ("n_trials", "n_jobs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                reason = "a whole number of at least 1"
                raise ConfigError(invalid(f"hydra.sweeper.{key}", getattr(self, key), reason))
        rate = self.max_failure_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            reason = "a fraction from 0 (stop at the first failed trial) to 1 (never stop)"
            raise ConfigError(invalid("hydra.sweeper.max_failure_rate", rate, reason))
        retries = self.retry_interrupted
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            reason = "a whole number of at least 0 (how often an interrupted trial runs again)"
            raise ConfigError(invalid("hydra.sweeper.retry_interrupted", retries, reason))

    def _search(self, space: SearchSpace, share: Any) -> None:
        self._check_settings()
        study = self._study(space)
        from optuna.trial import TrialState

        from ch12_lightning.sweeps.interrupted import (
            fail_interrupted,
            heartbeat_storage,
            heartbeats,
        )

        beats = heartbeat_storage(self.storage) if self.storage else None
        for trial in fail_interrupted(study, beats, self.retry_interrupted):
            self._record_missing(trial.number, _overrides(space, trial.params), trial)
        remaining, failures = self.n_trials, []
        while remaining > 0:
            asked = [self._ask(study, space) for _ in range(min(self.n_jobs, remaining))]
            first = asked[0].trial.number
            if [a.trial.number for a in asked] != list(range(first, first + len(asked))):
                for each in asked:
                    study.tell(each.trial, state=TrialState.FAIL)
                raise SearchError(
                    f"Another search is adding trials to study {study.study_name!r} at the same "
                    "time; job N must be trial N: run one command per study at a time."
                )
            with heartbeats(beats, [a.trial._trial_id for a in asked]):
                try:
                    failed = self._run_batch(study, asked, share)
                except BaseException as err:  # Ctrl-C, a launcher's error: no trial left RUNNING
                    self._fail_untold(study, asked, f"interrupted ({type(err).__name__}: {err})")
                    raise
            failures += failed
            remaining -= len(asked)
            self._write_results(study)
            if failed and len(failed) / len(asked) > self.max_failure_rate:
                self._announce_best(study)
                raise SearchError(
                    f"{len(failed)} of the {len(asked)} trials of a batch failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the search stopped "
                    f"({'; '.join(failed[:3])}). Every trial is listed in "
                    f"{self.sweep_dir / 'summary.md'}."
                )
        self._announce_best(study)
        if failures:
            more = "; ..." if len(failures) > 3 else ""
            raise SearchError(
                f"{len(failures)} of {self.n_trials} trials failed, the search went on "
                f"({'; '.join(failures[:3])}{more}). Every trial is listed in "
                f"{self.sweep_dir / 'summary.md'}."
            )

    def _ask(self, study: Any, space: SearchSpace) -> "Asked":
        """A new trial and its job's overrides, or the reason its config cannot be composed.

        Where the search chooses config groups (``model=choice(mlp,cnn)``), the groups are
        chosen first and the trial's config composed with them, as the command line composes
        it (an experiment's settings for the model chosen included); a parameter whose key that
        config lacks (``model.hidden_sizes`` for a CNN) is not a setting of this trial: it is
        neither suggested nor given (a key written with ``+``, which adds it, always is). Then
        the whole config is composed: a trial whose config Hydra or the project's checks refuse
        is a FAIL trial with the reason, and its job never starts."""
        from ch12_lightning.sweeps.interrupted import OWNER, this_process

        groups = [name for name in space.distributions if self._is_group(space.keys[name])]
        trial = study.ask() if groups else study.ask(space.distributions)
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, this_process())
        params = {name: suggest(trial, name, space.distributions[name]) for name in groups}
        overrides = _overrides(space, params)
        try:
            if groups:
                cfg = self._compose(overrides)
                for name, dist in space.distributions.items():
                    key = space.keys[name]
                    if name not in params and (key.startswith("+") or _has_key(cfg, key)):
                        params[name] = suggest(trial, name, dist)
            else:
                params = dict(trial.params)
            overrides = _overrides(space, params)
            self._compose(overrides)
        except Exception as err:
            return Asked(trial, overrides, _reason(err))
        return Asked(trial, overrides, None)

    def _is_group(self, key: str) -> bool:
        """Whether an override of ``key`` chooses a config group's option (``model``), rather
        than setting a value (``model.activation``)."""
        if self.config_loader is None:
            return False
        name = key.lstrip("+~").replace(".", "/")
        return bool(self.config_loader.get_group_options(name))

    def _compose(self, overrides: list[str]) -> DictConfig | None:
        """The trial's config as its job will compose it (errors raised as Hydra raises them)."""
        if self.config_loader is None:  # the sweeper's parts tested without Hydra
            return None
        return self.config_loader.load_sweep_config(self.config, list(overrides))

    def _run_batch(self, study: Any, asked: list["Asked"], share: Any) -> list[str]:
        """Run the batch's trials whose config was composed (consecutive jobs together, job N
        being trial N), fail the others with their reason, and tell the study how each ended;
        one line per trial. The failures, as ``trial N: reason``."""
        failures = []
        for each in asked:
            if each.reason:
                self._fail_unbuilt(study, each)
        runnable = [each for each in asked if not each.reason]
        for run in _consecutive(runnable):
            first = run[0].trial.number
            overrides = [each.overrides for each in run]
            if share:
                share((first, overrides))
            returns = self.launcher.launch(overrides, initial_job_idx=first)
            for each, job in zip(run, returns, strict=True):
                self._tell(study, each.trial, job)
                self._announce(study, each.trial.number)
        for each in asked:
            reason = _stored(study, each.trial.number).user_attrs.get("fail_reason")
            if reason:
                failures.append(f"trial {each.trial.number}: {reason.splitlines()[0][:200]}")
        return failures

    def _fail_unbuilt(self, study: Any, each: "Asked") -> None:
        """A trial whose config cannot be composed: FAIL with its reason, listed in the
        summary (in a job folder of its own, which holds only its record)."""
        from optuna.trial import TrialState

        each.trial.set_user_attr("fail_reason", each.reason)
        study.tell(each.trial, state=TrialState.FAIL)
        self._record_missing(each.trial.number, each.overrides, _stored(study, each.trial.number))
        self._announce(study, each.trial.number)

    def _fail_untold(self, study: Any, asked: list["Asked"], reason: str) -> None:
        """Fail the batch's trials that were asked but not told (the search is stopping)."""
        from optuna.trial import TrialState

        for each in asked:
            if _stored(study, each.trial.number).state != TrialState.RUNNING:
                continue
            try:
                each.trial.set_user_attr("fail_reason", reason)
                study.tell(each.trial, state=TrialState.FAIL)
            except Exception:  # another process marked it first
                continue
            self._record_missing(each.trial.number, each.overrides, None, reason)

    def _record_missing(
        self, number: int, overrides: list[str], trial: Any, reason: str | None = None
    ) -> None:
        """A row in the summary for a failed trial whose job recorded none (its job folder:
        the one that job started in, or a new one named as Hydra would have named it)."""
        from ch12_lightning.sweeps.names import job_folder
        from ch12_lightning.sweeps.summary import record_trial

        if trial is not None:
            reason = trial.user_attrs.get("fail_reason", reason)
        folder = _job_dir(self.sweep_dir, number)
        if folder is None:
            folder = self.sweep_dir / job_folder(
                number, str(self.sweep_dir), overrides, self.params
            )
        elif (folder / "job.json").is_file():
            return
        metric = self.config.optimized_metric
        record_trial(folder, number, overrides, metric, self.direction, reason or "")

    def _announce(self, study: Any, number: int) -> None:
        """One line per trial as it ends: its number, state, value, why it failed, and the
        best trial so far."""
        from optuna.trial import TrialState

        trial = _stored(study, number)
        metric = self.config.optimized_metric
        line = f"Trial {number} {trial.state.name}"
        if trial.state == TrialState.COMPLETE:
            line += f": {metric}={trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            pruned = trial.user_attrs.get("pruned", {})
            line += f" after epoch {pruned.get('epoch', '?')}: {metric}={trial.value:.4f}"
        else:
            line += f": {trial.user_attrs.get('fail_reason', 'no reason recorded')}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            best = study.best_trial
            line += f"; best so far: trial {best.number}, {metric}={best.value:.4f}"
        else:
            line += "; no trial completed yet"
        log.info("%s", " / ".join(line.splitlines())[:600])

    def _announce_best(self, study: Any) -> None:
        """The search's best trial: value, parameters and folder."""
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            log.warning("No trial of study %r completed: there is no best trial", study.study_name)
            return
        best = study.best_trial
        folder = _job_dir(self.sweep_dir, best.number)
        log.info(
            "Best trial %d: %s=%.4f, parameters %s, folder %s",
            best.number,
            self.config.optimized_metric,
            best.value,
            best.params,
            folder or "(not found in this sweep folder)",
        )

    def _study(self, space: SearchSpace | None = None) -> Any:
        """The study, created or reopened, with the sampler seeded after the command's first
        trial; a grid's search caps its trials at the points no trial has taken."""
        import optuna

        from ch12_lightning.sweeps import pruning
        from ch12_lightning.sweeps.samplers import grid_points_left, make_sampler
        from ch12_lightning.sweeps.study_storage import refuse_old_schema

        # Built first: a sampler that cannot work is refused before a study file is created.
        sampler = make_sampler(self.sampler, space.distributions if space else {})
        storage = self.storage
        if storage is None:
            refuse_earlier_jobs(self.sweep_dir)
            storage = optuna.storages.InMemoryStorage()
            pruning.IN_MEMORY[self.study_name] = storage
        elif storage.startswith(SQLITE):
            Path(storage.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
            refuse_old_schema(storage)
        done = trials_stored(storage, self.study_name)
        study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            study_name=self.study_name,
            direction=self.direction,
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # Optuna calls metric names experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([self.config.optimized_metric])  # the dashboard's axis
        if done:
            log.info("Study %r resumed: %d trials stored", study.study_name, done)
        left = grid_points_left(sampler, study)
        if left is not None and left < self.n_trials:
            log.info("The grid has %d points no trial has taken: %d trials, not %d",
                     left, left, self.n_trials)  # fmt: skip
            self.n_trials = left
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
        write_study_plots(study, self.sweep_dir, self.config.optimized_metric)


class Asked(NamedTuple):
    """A trial asked for, its job's overrides, and why its config cannot be composed (None:
    it can)."""

    trial: Any
    overrides: list[str]
    reason: str | None


def _overrides(space: SearchSpace, params: dict[str, Any]) -> list[str]:
    """The job overrides of a trial that has ``params`` (of the space's parameters, those that
    are its settings): the fixed ones, then one per parameter it has."""
    keys = {name: key for name, key in space.keys.items() if name in params}
    return space._replace(keys=keys).overrides(params)


def suggest(trial: Any, name: str, distribution: Any) -> Any:
    """The trial's value of ``name`` from ``distribution``, through Optuna's public suggest
    methods (a trial asked without its distributions takes them one by one)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    low, high, step, log_scale = (
        distribution.low,
        distribution.high,
        distribution.step,
        distribution.log,
    )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, low, high, step=step, log=log_scale)
    return trial.suggest_float(name, low, high, step=step, log=log_scale)


def _has_key(cfg: DictConfig | None, key: str) -> bool:
    """Whether the composed config has ``key`` (a ``~key`` deletion: its key)."""
    if cfg is None:
        return True
    missing = object()
    return OmegaConf.select(cfg, key.lstrip("~"), default=missing) is not missing


def _reason(err: BaseException) -> str:
    """A failed composition's reason, as the command line would print it."""
    cause = err.__cause__
    text = f"{type(err).__name__}: {err}"
    if cause is not None and str(cause) and str(cause) not in str(err):
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _consecutive(asked: list[Asked]) -> list[list[Asked]]:
    """The trials split into runs of consecutive numbers (a launcher numbers its jobs so)."""
    runs: list[list[Asked]] = []
    for each in asked:
        if runs and runs[-1][-1].trial.number + 1 == each.trial.number:
            runs[-1].append(each)
        else:
            runs.append([each])
    return runs


def _stored(study: Any, number: int) -> Any:
    """Trial ``number`` as the study stores it now."""
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == number:
            return frozen
    raise KeyError(number)


def _job_dir(sweep_dir: Path, number: int) -> Path | None:
    """The folder of job ``number`` in the sweep folder (``<number>`` or ``<number>_...``)."""
    if not sweep_dir.is_dir():
        return None
    for path in sorted(sweep_dir.iterdir()):
        if path.is_dir() and (path.name == str(number) or path.name.startswith(f"{number}_")):
            return path
    return None


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


def one_objective(direction: Any, directions: Any, metric: Any) -> None:
    """Refuse a multi-objective search: each trial's job returns one value (train.py's
    ``optimized_metric``), and the summary, plots, pruning and best trial all rank by it."""
    from ch12_lightning.errors import ConfigError, invalid

    reason = (
        "maximize or minimize: a search optimizes one metric (optimized_metric); multi-objective "
        "searches (a list of directions and of metrics) are not supported"
    )
    if directions is not None:
        raise ConfigError(invalid("hydra.sweeper.directions", list(directions), reason))
    if direction not in ("maximize", "minimize"):
        value = list(direction) if isinstance(direction, ListConfig | list) else direction
        raise ConfigError(invalid("hydra.sweeper.direction", value, reason))
    if isinstance(metric, ListConfig | list):
        reason = "one metric's name, e.g. val/acc_best: multi-objective searches are not supported"
        raise ConfigError(invalid("optimized_metric", list(metric), reason))
