"""The search space against the reference Hydra Optuna sweeper (facebookresearch/hydra,
plugins/hydra_optuna_sweeper): its override -> distribution cases, its older mapping form, its
example configs' ``params``, and where a sweep cannot be a distribution, the message naming its
key. The expected distributions are the reference's; a config brought from it must search the
same values here."""

import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ch12_lightning.errors import ConfigError
from hydra_plugins.ch12_optuna_sweeper.search_space import distribution_from_config, search_space


def only_distribution(line: str):
    (found,) = search_space({}, [line]).distributions.values()
    return found


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("key=choice(1,2)", CategoricalDistribution([1, 2])),
        ("key=choice(true, false)", CategoricalDistribution([True, False])),
        ("key=choice('hello', 'world')", CategoricalDistribution(["hello", "world"])),
        ("key=shuffle(range(1,3))", CategoricalDistribution([1, 2])),
        ("key=range(1,3)", IntDistribution(1, 3)),
        ("key=interval(1, 5)", FloatDistribution(1, 5)),
        ("key=int(interval(1, 5))", IntDistribution(1, 5)),
        ("key=tag(log, interval(1, 5))", FloatDistribution(1, 5, log=True)),
        ("key=tag(log, int(interval(1, 5)))", IntDistribution(1, 5, log=True)),
        ("key=range(0.5, 5.5, step=1)", FloatDistribution(0.5, 5.5, step=1)),
    ],
)
def test_the_reference_sweepers_override_cases(line: str, expected):
    assert only_distribution(line) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "categorical", "choices": [1, 2, 3]}, CategoricalDistribution([1, 2, 3])),
        ({"type": "int", "low": 0, "high": 10}, IntDistribution(0, 10)),
        ({"type": "int", "low": 0, "high": 10, "step": 2}, IntDistribution(0, 10, step=2)),
        ({"type": "int", "low": 0, "high": 5}, IntDistribution(0, 5)),
        ({"type": "int", "low": 1, "high": 100, "log": True}, IntDistribution(1, 100, log=True)),
        ({"type": "float", "low": 0, "high": 1}, FloatDistribution(0, 1)),
        ({"type": "float", "low": 0, "high": 10, "step": 2}, FloatDistribution(0, 10, step=2)),
        (
            {"type": "float", "low": 1, "high": 100, "log": True},
            FloatDistribution(1, 100, log=True),
        ),
    ],
)
def test_the_reference_sweepers_mapping_form(spec: dict, expected):
    assert distribution_from_config("key", spec) == expected
    assert search_space({"key": spec}, []).distributions == {"key": expected}


@pytest.mark.parametrize(
    ("lines", "distributions", "fixed"),
    [
        (["key=choice(1,2)"], {"key": CategoricalDistribution([1, 2])}, []),
        (["key1=choice(1,2)", "key2=5"], {"key1": CategoricalDistribution([1, 2])}, ["key2=5"]),
        (
            ["key1=choice(1,2)", "key2=5", "key3=range(1,3)"],
            {"key1": CategoricalDistribution([1, 2]), "key3": IntDistribution(1, 3)},
            ["key2=5"],
        ),
        (["key=choice(1,2)", "~z"], {"key": CategoricalDistribution([1, 2])}, ["~z"]),
        (["key=choice(1,2)", "~z=10"], {"key": CategoricalDistribution([1, 2])}, ["~z=10"]),
    ],
)
def test_the_reference_sweepers_split_into_searched_and_fixed(lines, distributions, fixed):
    space = search_space({}, lines)
    assert space.distributions == distributions
    assert space.fixed == fixed


@pytest.mark.parametrize("lines", [["key=5"], ["~z"], ["~z=10"]])
def test_nothing_to_search_is_refused_where_the_reference_runs_fixed_trials(lines):
    with pytest.raises(ConfigError, match="has nothing to search"):
        search_space({}, lines)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (  # example/conf/config.yaml (sphere)
            {"x": "range(-5.5, 5.5, step=0.5)", "y": "choice(-5 ,0 ,5)"},
            {"x": FloatDistribution(-5.5, 5.5, step=0.5), "y": CategoricalDistribution([-5, 0, 5])},
        ),
        (  # example/custom-search-space/config.yaml, without its custom_search_space function
            {"x": "range(-5.5, 5.5, 0.5)", "y": "choice(-5, 0, 5)"},
            {"x": FloatDistribution(-5.5, 5.5, step=0.5), "y": CategoricalDistribution([-5, 0, 5])},
        ),
        (  # example/multi-objective-conf/config.yaml
            {"x": "range(0, 5, step=0.5)", "y": "range(0, 3, step=0.5)"},
            {"x": FloatDistribution(0, 5, step=0.5), "y": FloatDistribution(0, 3, step=0.5)},
        ),
        (  # tests/conf/test_grid.yaml
            {"x": "choice(-1, 1)", "y": "range(-1.0, 1.0, step=1)", "z": 'choice("foo", "bar")'},
            {
                "x": CategoricalDistribution([-1, 1]),
                "y": FloatDistribution(-1, 1, step=1),
                "z": CategoricalDistribution(["foo", "bar"]),
            },
        ),
    ],
)
def test_the_reference_examples_params_run_unchanged(params: dict, expected: dict):
    assert search_space(params, []).distributions == expected


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("n=range(1,3)", [1, 2, 3]),
        ("n=range(1, 8, 3)", [1, 4, 7]),
        ("n=range(5, 1, -1)", [1, 2, 3, 4, 5]),  # counting down: the same values
        ("n=range(10, 0, -3)", [1, 4, 7, 10]),  # from 10 down, the last one reached is 1
        ("p=range(0.5, 5.5, step=1)", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),
        ("p=range(0.1, 0.5, 0.1)", [0.1, 0.2, 0.3, 0.4, 0.5]),
        ("p=range(1.0, 0.05, -0.2)", [0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_a_range_includes_its_end_as_the_reference_does(line: str, values: list):
    """Every value the range names can be drawn, the end included: a grid over the
    distribution is exactly the values."""
    found = only_distribution(line)
    count = round((found.high - found.low) / found.step) + 1
    assert [round(found.low + i * found.step, 9) for i in range(count)] == values


def test_a_range_not_ending_on_its_step_stops_at_its_last_step_without_a_warning():
    """The reference gives [0, 10] and Optuna moves it to [0, 9] with a UserWarning: the same
    values, said once per trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert only_distribution("n=range(0, 10, 3)") == IntDistribution(0, 9, step=3)
        assert only_distribution("p=range(0.0, 1.0, 0.3)") == FloatDistribution(0, 0.9, step=0.3)


@pytest.mark.parametrize(
    ("line", "choices"),
    [
        ("n=shuffle(range(1,4))", [1, 2, 3]),  # Python's range inside shuffle, as the reference
        ("n=shuffle(range(0.5, 2.0, 0.5))", [0.5, 1.0, 1.5]),
        ("s=shuffle(choice(c, a, b))", ["c", "a", "b"]),
        ("s=shuffle(choice([1,2], [3]))", ["[1,2]", "[3]"]),
    ],
)
def test_shuffle_is_a_categorical_in_written_order(line: str, choices: list):
    """Categories, as the reference gives; in written order every time (Optuna refuses a stored
    study whose categories come in another order, so a resumed search must give the same)."""
    for _ in range(5):
        assert only_distribution(line) == CategoricalDistribution(choices)


def test_a_log_range_of_integers_is_a_log_distribution():
    assert only_distribution("n=tag(log, range(1, 64))") == IntDistribution(1, 64, log=True)


@pytest.mark.parametrize(
    ("params", "arguments", "message"),
    [
        (
            {"optimizer.lr": "tag(log, interval(0, 0.1))"},
            [],
            r"optimizer\.lr=tag\(log, interval\(0, 0\.1\)\) is not valid: a log scale needs "
            r"both ends above 0, e\.g\. tag\(log, interval\(0\.0001, 0\.1\)\)",
        ),
        (
            {},
            ["+model.units=tag(log, int(interval(0, 64)))"],
            r"\+model\.units=.* above 0, e\.g\. tag\(log, int\(interval\(1, 64\)\)\)",
        ),
        ({}, ["optimizer.lr=interval(0.1, 0.001)"], r"optimizer\.lr=.* e\.g\. interval\(0\.001"),
        ({}, ["trainer.max_epochs=range(5, 1)"], r"max_epochs=range\(5, 1\) .* range\(1, 5, 1\)"),
        ({}, ["trainer.max_epochs=range(1, 5, 0)"], r"max_epochs=.* the step must not be 0"),
        ({}, ["n=shuffle(range(3, 3))"], r"n=shuffle\(range\(3, 3\)\) .* holds no value"),
        ({}, ["n=tag(log, range(1, 9, 2))"], r"n=.* a log scale takes integers with step 1"),
        ({}, ["model=glob(*)"], r"model=glob\(\*\) .* choice\(a,b\)"),
        (
            {"optimizer.lr": {"type": "float", "low": 0, "high": 1, "log": True}},
            [],
            r"optimizer\.lr=\{type:float,low:0,high:1,log:true\} is not valid: `low > 0`",
        ),
        ({"n": {"type": "integer", "low": 0}}, [], r"n=\{type:integer,low:0\} .* type: int,"),
    ],
)
def test_a_sweep_that_cannot_be_a_distribution_names_its_key(params, arguments, message):
    with pytest.raises(ConfigError, match=message):
        search_space(params, arguments)


def test_the_reference_ranges_are_searched_to_their_end():
    """A study drawing from range(0.5, 5.5, step=1) reaches 5.5, the value Python's range
    would have left out."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = search_space({}, ["p=range(0.5, 5.5, step=1)"])
    drawn = {study.ask(space.distributions).params["p"] for _ in range(60)}
    assert drawn == {0.5, 1.5, 2.5, 3.5, 4.5, 5.5}
