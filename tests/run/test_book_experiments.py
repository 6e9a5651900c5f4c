"""The chapter's own small experiments, offline: the ten-point linear regression and the Iris
MLP, with the regression head that shares the classifier's LightningModule design."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ch12_lightning.errors import ConfigError
from ch12_lightning.run.pipeline import run
from tests.helpers.runs import compose_config

BOOK_WEIGHT, BOOK_BIAS = 2.6496, 4.8771  # the book's learned parameters after 200 epochs


def _fitted_line(overrides: list[str], folder: Path) -> tuple[dict[str, float], float, float]:
    metrics = run(compose_config([*overrides, f"paths.output_dir={folder}"]))
    state = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return metrics, state["net.1.weight"].item(), state["net.1.bias"].item()


def _least_squares() -> tuple[float, float]:
    x = np.arange(10, dtype=np.float64)
    y = np.array([1.0, 1.3, 3.1, 2.0, 5.0, 6.3, 6.6, 7.4, 8.0, 9.0])
    x = (x - x.mean()) / x.std()
    weight, bias = np.linalg.lstsq(np.stack([x, np.ones_like(x)], axis=1), y, rcond=None)[0]
    return weight, bias


def test_linear_regression_lands_near_the_books_parameters(
    path_overrides: list[str], tmp_path: Path
):
    metrics, weight, bias = _fitted_line(
        [*path_overrides, "experiment=toy_regression_book"], tmp_path / "book"
    )
    assert weight == pytest.approx(BOOK_WEIGHT, abs=0.05)
    assert bias == pytest.approx(BOOK_BIAS, abs=0.05)
    # A regression head: loss metrics only, the best validation loss tracked, no accuracy.
    assert {"train/loss", "val/loss", "val/loss_best", "test/loss"} <= set(metrics)
    assert not [name for name in metrics if "acc" in name]
    assert metrics["val/loss_best"] <= metrics["val/loss"] + 1e-6


@pytest.mark.slow
def test_linear_regression_converges_to_least_squares(path_overrides: list[str], tmp_path: Path):
    quiet = ["logger=none", "trainer.check_val_every_n_epoch=600", "test=false"]
    _, weight, bias = _fitted_line(
        [*path_overrides, "experiment=toy_regression_book", "trainer.max_epochs=600", *quiet],
        tmp_path / "long",
    )
    expected_weight, expected_bias = _least_squares()
    assert weight == pytest.approx(expected_weight, abs=0.01)
    assert bias == pytest.approx(expected_bias, abs=0.01)


# The Iris recipe (experiment=iris_book, 0.98 as in the book) is trained and checked by
# tests/api/test_api.py, in a fresh process as a notebook would.


def test_a_classifier_cannot_take_a_regression_data_set(path_overrides: list[str]):
    with pytest.raises(ConfigError, match="is a regression data set; use model=linear_regression"):
        run(compose_config([*path_overrides, "dataset=toy_regression"]))
