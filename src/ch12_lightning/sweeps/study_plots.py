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


def write_study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Draw what the trials of a single-objective ``study`` allow into ``folder``, and return the
    files written: ``optimization_history.png`` and ``parallel_coordinate.png`` once a trial has
    completed, ``param_importances.png`` once two differ in value and in a parameter. Failed,
    pruned and running trials are left out of all three."""
    trials = _finished(study)
    if not trials:
        return []
    plots: dict[str, Plot] = {"optimization_history": optuna_plots.plot_optimization_history}
    if _importances_tell(trials):
        # PED-ANOVA, Optuna 5's default, named so that a new default does not change the pictures:
        # deterministic without a seed, a few milliseconds at 50 trials (fANOVA: 0.5 s), and it
        # does not raise where fANOVA does (no variance in the values of the trials).
        evaluator = PedAnovaImportanceEvaluator()
        plots["param_importances"] = partial(
            optuna_plots.plot_param_importances, evaluator=evaluator
        )
    else:
        log.debug("No parameter importances yet: no two trials differ in parameters and value.")
    plots["parallel_coordinate"] = optuna_plots.plot_parallel_coordinate
    return [_draw(plot, study, folder / f"{name}.png") for name, plot in plots.items()]


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


def _draw(plot: Plot, study: optuna.Study, path: Path) -> Path:
    """Draw ``plot`` of ``study`` into the PNG file ``path``, whole or not at all."""
    opened = set(plt.get_fignums())
    with warnings.catch_warnings(), matplotlib.rc_context(), plt.ioff():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            figure = plot(study).figure
            write_serialized_atomic(
                path, partial(figure.savefig, format="png", bbox_inches="tight")
            )
        finally:
            for number in set(plt.get_fignums()) - opened:  # also where Optuna failed half-way
                plt.close(number)
    return path
