"""CelebA runs through the real pipeline, and the pictures every run leaves behind."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ch12_lightning.callbacks.pictures import COLUMNS, TILE
from ch12_lightning.callbacks.publish import DISPLAY_WIDTH
from ch12_lightning.run.pipeline import run
from tests.helpers.celeba_tree import make_celeba
from tests.helpers.runs import REAL_DATA, compose_config, with_output_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_celeba(root / "celeba")
    return root


@pytest.fixture
def celeba_overrides(data_dir: Path, path_overrides: list[str]) -> list[str]:
    return [
        *path_overrides,
        "experiment=celeba_practice",
        f"paths.data_dir={data_dir}",
        "dataset.n_per_class=15",
        "dataset.batch_size=8",
        "dataset.num_workers=0",
        "trainer.max_epochs=4",
    ]


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits"])
def test_celeba_run_metrics_and_pictures(loss: str, celeba_overrides: list[str], tmp_path: Path):
    metrics = run(compose_config([*celeba_overrides, f"model.loss={loss}"]))
    for stage in ("val", "test"):
        assert {f"{stage}/acc", f"{stage}/acc_female", f"{stage}/acc_male"} <= set(metrics)
    assert metrics["test/acc"] > 0.7  # generated male faces are bright on top
    # Balanced test set: overall accuracy is the mean of the two per-class accuracies.
    per_class = (metrics["test/acc_female"] + metrics["test/acc_male"]) / 2
    assert metrics["test/acc"] == pytest.approx(per_class, abs=1e-6)
    folder = tmp_path / "run"
    with Image.open(folder / "learning_curves.png") as curves:
        assert curves.size == (1000, 400)
    hparams = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert hparams["hyper_parameters"]["loss"] == loss


def test_building_the_cache_does_not_change_training(celeba_overrides: list[str], tmp_path: Path):
    built = run(compose_config(celeba_overrides))
    cached = run(compose_config(with_output_dir(celeba_overrides, tmp_path / "again")))
    assert cached == built


def test_misclassified_grid_shows_wrong_predictions(celeba_overrides: list[str], tmp_path: Path):
    # One epoch of a tiny network leaves mistakes to show.
    overrides = [*celeba_overrides, "trainer.max_epochs=1", "model.hidden_sizes=[2]"]
    metrics = run(compose_config(overrides))
    assert metrics["test/acc"] < 1.0
    wrong = round((1 - metrics["test/acc"]) * 14)  # 7 + 7 test images
    rows = (wrong + COLUMNS - 1) // COLUMNS
    with Image.open(tmp_path / "run" / "misclassified.png") as grid:
        # As wide as TensorBoard shows it; a row of TILE-pixel images and captions per 3.
        assert grid.width == DISPLAY_WIDTH and grid.height % rows == 0
        assert TILE < grid.height // rows <= TILE + 50
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert "test/misclassified" in events.Tags()["images"]


def test_learning_curves_survive_a_resume(celeba_overrides: list[str], tmp_path: Path):
    run(compose_config([*celeba_overrides, "trainer.max_epochs=2", "test=false"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = [*celeba_overrides, "trainer.max_epochs=3", f"ckpt_path={last}", "test=false"]
    run(compose_config(with_output_dir(resumed, tmp_path / "resumed")))
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    (history,) = [v["history"] for k, v in state["callbacks"].items() if "LearningCurves" in k]
    assert history["epoch"] == [1, 2, 3]


def test_mnist_runs_leave_pictures_too(quick_overrides: list[str], tmp_path: Path):
    metrics = run(compose_config([*quick_overrides, "trainer.max_epochs=1"]))
    assert (tmp_path / "run" / "learning_curves.png").is_file()
    assert (tmp_path / "run" / "misclassified.png").is_file() == (metrics["test/acc"] < 1.0)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_chapter_practice_run_on_real_celeba(tmp_path: Path):
    """32x32 grayscale, MLP 1024-256-64-2, Adam 1e-3, batch 16, 20 epochs, 1000 per class."""
    overrides = [
        "experiment=celeba_practice",
        f"paths.data_dir={REAL_DATA}",
        f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    first = run(compose_config([*overrides, f"paths.output_dir={tmp_path / 'first'}"]))
    # Balanced test set (156 female, 156 male). The book reports about 0.85; measured here
    # 0.830-0.869 over seeds 1-5, and 0.8365 (seed 1) on a CPU other than the 0.8686 one.
    assert first["test/acc"] >= 0.82
    log = (tmp_path / "first" / "config_resolved.yaml").read_text()
    assert "n_per_class: 1000" in log
    again = compose_config([*overrides, f"paths.output_dir={tmp_path / 'again'}"])
    assert run(again) == first  # same seed, same data from the cache, same result
    assert len(list((tmp_path / "cache" / "celeba").glob("*.pt"))) == 1
    written = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert written["metrics"]["test/acc"] == first["test/acc"]
