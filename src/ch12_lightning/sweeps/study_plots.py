"""Pictures of an Optuna search, redrawn in its folder after every trial: how the best value
improved, which parameters mattered, and where the good trials lie. They let a person follow a
search, and judge when to stop it, without running a dashboard.

Optuna draws through pyplot and sets its own style: each figure is drawn with interactive mode
off and the rcParams restored afterwards, saved as a PNG (which Agg renders, whatever the backend)
and closed, so the caller's pyplot keeps its backend, style and figures.
"""

import logging
import math
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
from matplotlib.axes import Axes
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from ch12_lightning.files.atomic import write_serialized_atomic

log = logging.getLogger(__name__)

Plot = Callable[[optuna.Study], Axes]


# Completed trials below which a picture says nothing a person can read: a parallel coordinate
# plot of two lines, importances from fewer trials than parameters.
FEW_FOR_PARALLEL = 3
FEW_FOR_IMPORTANCES = 5


def write_study_plots(study: optuna.Study, folder: Path, metric: str | None = None) -> list[Path]:
    """Draw what the trials of a single-objective ``study`` allow into ``folder``, and return the
    files written, each naming ``metric`` (default: the study's metric name) on its axis and in
    its title:

    - ``optimization_history.png`` once a trial has completed;
    - ``intermediate_values.png`` (the metric per epoch of every trial, pruned ones included:
      where a search spends its epochs) once a trial has reported twice;
    - ``parallel_coordinate.png`` from ``FEW_FOR_PARALLEL`` completed trials;
    - ``param_importances.png`` from ``FEW_FOR_IMPORTANCES``, once they differ in value and in a
      parameter.

    Failed and running trials are left out; pruned ones appear only in the epoch curves."""
    trials = _finished(study)
    name = metric or (study.metric_names or ["objective value"])[0]
    plots: dict[str, Plot] = {}
    if trials:
        plots["optimization_history"] = partial(
            optuna_plots.plot_optimization_history, target_name=name
        )
    if any(len(t.intermediate_values) > 1 for t in study.get_trials(deepcopy=False)):
        plots["intermediate_values"] = optuna_plots.plot_intermediate_values
    if len(trials) >= FEW_FOR_PARALLEL:
        # The parameters every completed trial has: one a model of the search lacks
        # (model.hidden_sizes for a CNN) would be an axis with a "None" tick for its trials.
        shared = sorted(set.intersection(*(set(trial.params) for trial in trials)))
        plots["parallel_coordinate"] = partial(
            optuna_plots.plot_parallel_coordinate, params=shared, target_name=name
        )
    if len(trials) >= FEW_FOR_IMPORTANCES and _importances_tell(trials):
        # PED-ANOVA, Optuna 5's default, named so that a new default does not change the pictures:
        # deterministic without a seed, a few milliseconds at 50 trials (fANOVA: 0.5 s), and it
        # does not raise where fANOVA does (no variance in the values of the trials).
        evaluator = PedAnovaImportanceEvaluator()
        plots["param_importances"] = partial(
            optuna_plots.plot_param_importances, evaluator=evaluator, target_name=name
        )
    return [_draw(plot, study, folder / f"{file}.png", name) for file, plot in plots.items()]


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    """The completed trials with a finite value: those that Optuna's plots draw."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [trial for trial in trials if math.isfinite(trial.value)]


def _importances_tell(trials: list[FrozenTrial]) -> bool:
    """Whether the trials differ both in value and in a parameter (or in which parameters they
    have): otherwise importances are all equal, or undefined."""
    if len({trial.value for trial in trials}) < 2:
        return False
    names = {name for trial in trials for name in trial.params}
    return any(len({trial.params.get(name) for trial in trials}) > 1 for name in names)


def _name_in_title(axes: Axes, metric: str) -> None:
    """Add ``: <metric>`` to the title where Optuna put it (left or centre): another title
    beside it would be drawn over it."""
    for place in ("left", "center", "right"):
        if axes.get_title(loc=place):
            axes.set_title(f"{axes.get_title(loc=place)}: {metric}", loc=place)
            return
    axes.set_title(metric)


def _draw(plot: Plot, study: optuna.Study, path: Path, metric: str) -> Path:
    """Draw ``plot`` of ``study`` into the PNG file ``path``, whole or not at all, its title
    naming ``metric``."""
    opened = set(plt.get_fignums())
    with warnings.catch_warnings(), matplotlib.rc_context(), plt.ioff():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # One trial, or one epoch's values: matplotlib widens the axis itself, and says so.
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        try:
            axes = plot(study)
            _name_in_title(axes, metric)
            if path.stem == "intermediate_values":  # what a trial reports (sweeps/pruning.py)
                axes.set_ylabel(metric)
                axes.set_xlabel("validation (0: the first)")
            figure = axes.figure
            write_serialized_atomic(
                path, partial(figure.savefig, format="png", bbox_inches="tight")
            )
        finally:
            for number in set(plt.get_fignums()) - opened:  # also where Optuna failed half-way
                plt.close(number)
    return path
