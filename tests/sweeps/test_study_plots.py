"""The pictures of an Optuna search, drawn from studies built in memory (no training): what is
drawn at each age of a study, that each file is a whole PNG, and that the caller's pyplot is left
as it was."""

import math
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pytest
from matplotlib.axes import Axes
from PIL import Image

from ch12_lightning.sweeps.study_plots import write_study_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL = ["optimization_history.png", "intermediate_values.png", "parallel_coordinate.png",
       "param_importances.png"]  # fmt: skip
HISTORY = ["optimization_history.png"]


@pytest.fixture(autouse=True)
def quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def complete(study: optuna.Study, number: int) -> None:
    """Add a completed trial over four parameters, as a search of this project has: a log-scaled
    float and categorical ones; the value depends on the learning rate."""
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_categorical("batch_size", [32, 64, 128])
    trial.suggest_categorical("width", [64, 128, 256])
    trial.suggest_categorical("optimizer", ["adam", "sgd", "adamw"])
    study.tell(trial, 0.9 - abs(math.log10(lr) + 3) / 10 + number / 1000)


def study_with(completed: int, *, others: bool = False) -> optuna.Study:
    """A study of ``completed`` trials, and with ``others`` a failed, a pruned (with intermediate
    values) and a still running trial among them."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for number in range(completed):
        complete(study, number)
        if others and number == 1:
            study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
            pruned = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)})
            pruned.report(0.2, step=0)
            pruned.report(0.3, step=1)
            study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    if others:
        study.ask()  # running
    return study


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()  # reads the whole file: a cut-off one fails here
        width, height = image.size
    assert 300 < width < 3000 and 200 < height < 3000


def test_a_study_with_trials_of_every_state_gets_all_four(tmp_path: Path) -> None:
    study = study_with(5, others=True)
    states = {trial.state for trial in study.trials}
    assert states == set(optuna.trial.TrialState) - {optuna.trial.TrialState.WAITING}

    written = write_study_plots(study, tmp_path / "plots")

    assert written == [tmp_path / "plots" / name for name in ALL]
    # Exactly those: no temporary file is left next to them.
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(ALL)
    for path in written:
        assert_png(path)


def test_a_study_without_completed_trials_gets_the_pruned_trials_curves(tmp_path: Path) -> None:
    assert write_study_plots(study_with(0), tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    study = study_with(0, others=True)
    pruned = study.ask()
    pruned.report(0.2, step=0)
    pruned.report(0.3, step=1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    assert write_study_plots(study, tmp_path) == [tmp_path / "intermediate_values.png"]


def test_few_completed_trials_get_no_parallel_coordinates_nor_importances(tmp_path: Path) -> None:
    written = write_study_plots(study_with(2, others=True), tmp_path)
    assert written == [tmp_path / name for name in ALL[:2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ALL[:2])
    for path in written:
        assert_png(path)
    assert len(write_study_plots(study_with(4, others=True), tmp_path / "four")) == 3


def test_parallel_coordinates_leave_out_a_parameter_some_trials_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search over models: a CNN trial has no model.hidden_sizes to draw an axis for."""
    from ch12_lightning.sweeps import study_plots

    study = optuna.create_study(direction="maximize")
    study.add_trials([trial({"lr": 1e-3, "optimizer": "adam"}, 0.5), trial({"lr": 1e-2}, 0.6),
                      trial({"lr": 1e-4, "optimizer": "sgd"}, 0.7)])  # fmt: skip
    asked = {}
    real = study_plots.optuna_plots.plot_parallel_coordinate

    def recording(study: optuna.Study, params: list[str], **kwargs) -> Axes:
        asked["params"] = params
        return real(study, params, **kwargs)

    monkeypatch.setattr(study_plots.optuna_plots, "plot_parallel_coordinate", recording)
    write_study_plots(study, tmp_path)
    assert asked["params"] == ["lr"]


def test_every_picture_names_the_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ch12_lightning.sweeps import study_plots

    titles, labels = [], []
    real = study_plots.write_serialized_atomic

    def recording(path: Path, save) -> None:
        axes = save.func.__self__.axes[0]  # partial(figure.savefig, ...)
        shown = [axes.get_title(loc=place) for place in ("left", "center", "right")]
        (title,) = [text for text in shown if text]  # one title: two would be drawn over
        titles.append(title)
        labels.append(axes.get_ylabel())
        real(path, save)

    monkeypatch.setattr(study_plots, "write_serialized_atomic", recording)
    write_study_plots(study_with(5, others=True), tmp_path, "val/acc_best")
    assert len(titles) == 4 and all(title.endswith(": val/acc_best") for title in titles)
    assert labels[0] == labels[1] == "val/acc_best"  # the history's and the epoch curves' axis


def trial(params: dict[str, object], value: float) -> optuna.trial.FrozenTrial:
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        "optimizer": optuna.distributions.CategoricalDistribution(["adam", "sgd"]),
    }
    return optuna.trial.create_trial(
        params=params, distributions={k: distributions[k] for k in params}, value=value
    )


@pytest.mark.parametrize(
    "trials",
    [
        [
            trial({"lr": 1e-3, "optimizer": "adam"}, 0.5),
            trial({"lr": 1e-3, "optimizer": "adam"}, 0.6),
        ],
        [
            trial({"lr": 1e-3, "optimizer": "adam"}, 0.5),
            trial({"lr": 1e-2, "optimizer": "sgd"}, 0.5),
        ],
        [trial({"lr": 1e-3}, 0.5), trial({"lr": 1e-2}, math.inf)],
    ],
    ids=["same-parameters", "same-values", "one-finite-value"],
)
def test_trials_that_tell_nothing_apart_get_no_importances(
    tmp_path: Path, trials: list[optuna.trial.FrozenTrial]
) -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials * 3)  # enough trials, and still nothing told apart
    written = write_study_plots(study, tmp_path)
    assert tmp_path / "param_importances.png" not in written


def test_five_trials_that_differ_get_importances(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trials([trial({"lr": 1e-3}, 0.5), trial({"lr": 1e-2, "optimizer": "sgd"}, 0.6)] * 3)
    assert tmp_path / "param_importances.png" in write_study_plots(study, tmp_path)


def test_pyplot_is_left_as_it_was(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    style = dict(matplotlib.rcParams)
    own = plt.figure()  # the caller's figure: neither closed nor drawn into
    try:
        figures = plt.get_fignums()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_study_plots(study_with(3), tmp_path)
        assert plt.get_fignums() == figures
        assert plt.gcf() is own and not own.axes
        assert matplotlib.get_backend() == backend
        assert dict(matplotlib.rcParams) == style  # Optuna sets the ggplot style
        kinds = {type(w.message) for w in caught}
        assert optuna.exceptions.ExperimentalWarning not in kinds
    finally:
        plt.close(own)


def test_drawn_again_the_same_study_gives_the_same_pictures(tmp_path: Path) -> None:
    study = study_with(6)
    first = [path.read_bytes() for path in write_study_plots(study, tmp_path / "a")]
    second = [path.read_bytes() for path in write_study_plots(study, tmp_path / "b")]
    assert first == second  # importances included: they need no random seed


def test_a_later_trial_replaces_the_pictures(tmp_path: Path) -> None:
    study = study_with(1)
    write_study_plots(study, tmp_path)
    history = (tmp_path / "optimization_history.png").read_bytes()
    complete(study, 1)
    assert write_study_plots(study, tmp_path) == [tmp_path / name for name in HISTORY]
    assert sorted(p.name for p in tmp_path.iterdir()) == HISTORY
    assert (tmp_path / "optimization_history.png").read_bytes() != history
