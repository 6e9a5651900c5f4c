"""What a run writes for TensorBoard, read back with TensorBoard's own EventAccumulator: the
CUSTOM SCALARS layout, no made-up points, one step axis, the confusion matrices and pictures;
and the sweep job names (fast: the name is computed here; tests/test_tensorboard.py serves a
real sweep)."""

import gzip
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from ch12_lightning.callbacks.publish import DISPLAY_WIDTH
from ch12_lightning.run.pipeline import run
from ch12_lightning.sweeps.names import job_folder
from tests.helpers.runs import compose_config

STEPS_PER_EPOCH = 16  # 500 training samples of the generated MNIST in batches of 32


def events_of(folder: Path) -> EventAccumulator:
    guidance = {"scalars": 0, "images": 0, "tensors": 0}
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance=guidance)
    events.Reload()
    return events


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("events")
    overrides = [
        f"hydra.run.dir={folder}",
        f"paths.output_dir={folder}",
        f"paths.data_dir={mnist_dir}",
        "dataset.val_size=100",
        "dataset.batch_size=32",
        "trainer.max_epochs=2",
    ]
    run(compose_config(overrides))
    return folder


@pytest.fixture(scope="module")
def finished_run(run_folder: Path) -> EventAccumulator:
    return events_of(run_folder)


def test_custom_scalars_overlay_train_and_validation(finished_run: EventAccumulator):
    (config,) = finished_run.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    charts = {
        chart.title: list(chart.multiline.tag)
        for category in layout.category
        for chart in category.chart
    }
    assert charts == {
        "loss: train and val": ["^train/loss$", "^val/loss$"],
        "accuracy: train and val": ["^train/acc$", "^val/acc$"],
        "learning rate": ["^lr-"],
    }
    # Each pattern picks exactly the curve it names (val/acc, not val/acc_best or val/acc_3).
    scalars = finished_run.Tags()["scalars"]
    for patterns in charts.values():
        for pattern in patterns:
            matched = [tag for tag in scalars if re.search(pattern, tag)]
            assert len(matched) == 1, (pattern, matched)


def test_no_made_up_points_and_one_step_axis(finished_run: EventAccumulator):
    last_step = 2 * STEPS_PER_EPOCH
    epoch_ends = [STEPS_PER_EPOCH - 1, last_step - 1]
    steps = {
        tag: [e.step for e in finished_run.Scalars(tag)] for tag in finished_run.Tags()["scalars"]
    }
    for tag, tag_steps in steps.items():
        if tag.startswith("lr-"):
            assert tag_steps[0] == 0  # the rate the optimizer starts with is real
        elif tag.startswith("test/"):
            assert tag_steps == [last_step], tag
        elif tag.startswith(("train/", "val/")) and tag != "train/loss_step":
            assert tag_steps == epoch_ends, tag
        assert all(0 <= step <= last_step for step in tag_steps), tag
    assert not any(tag.startswith("hp") for tag in steps)
    # Values are the metrics' own: a validation accuracy of 0 would be a placeholder.
    assert min(e.value for e in finished_run.Scalars("val/acc")) > 0
    images = {
        tag: [e.step for e in finished_run.Images(tag)] for tag in finished_run.Tags()["images"]
    }
    assert images["test/misclassified"] == [last_step]
    assert images["test/confusion_matrix"] == [last_step]
    for tag, image_steps in images.items():
        assert set(image_steps) <= {*epoch_ends, last_step}, tag


def test_confusion_matrix_of_the_best_epoch_and_of_test(
    run_folder: Path, finished_run: EventAccumulator, mnist_dir: Path
):
    val_acc = finished_run.Scalars("val/acc")
    best = max(val_acc, key=lambda e: e.value)  # the first of equal values, as the checkpoint
    (val_picture,) = finished_run.Images("val/confusion_matrix")
    assert val_picture.step == best.step
    # The best checkpoint is that epoch's (epoch_NNN.ckpt, NNN counted from 0).
    results = json.loads((run_folder / "metrics.json").read_text())
    epoch = int(re.search(r"epoch_(\d+)\.ckpt$", results["checkpoint"]).group(1))
    assert (epoch + 1) * STEPS_PER_EPOCH - 1 == best.step
    # The matrix drawn is kept in the checkpoint (plain data): its diagonal share is val/acc.
    state = torch.load(run_folder / "checkpoints" / "last.ckpt", weights_only=True)
    (kept,) = [v["best"] for k, v in state["callbacks"].items() if "ConfusionMatrices" in k]
    matrix = np.array(kept["matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 100  # dataset.val_size
    assert np.trace(matrix) / matrix.sum() == pytest.approx(best.value, abs=1e-6)
    assert (kept["epoch"], kept["step"]) == (epoch, best.step)
    # Test: accuracy within each class (the matrix's diagonal share) weighs up to test/acc.
    with gzip.open(mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz") as f:
        counts = np.bincount(np.frombuffer(f.read()[8:], dtype=np.uint8), minlength=10)
    metrics = results["metrics"]
    weighed = sum(metrics[f"test/acc_{k}"] * counts[k] for k in range(10)) / counts.sum()
    assert weighed == pytest.approx(metrics["test/acc"], abs=1e-4)


@pytest.mark.parametrize(
    ("tag", "file"),
    [
        ("val/confusion_matrix", "confusion_matrix_val.png"),
        ("test/confusion_matrix", "confusion_matrix_test.png"),
        ("test/misclassified", "misclassified.png"),
    ],
)
def test_pictures_are_shown_pixel_for_pixel(
    run_folder: Path, finished_run: EventAccumulator, tag: str, file: str
):
    (event,) = finished_run.Images(tag)
    # TensorBoard's IMAGES tab draws every picture DISPLAY_WIDTH pixels wide, scaling others.
    assert event.width == DISPLAY_WIDTH
    shown = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
    saved = np.asarray(Image.open(run_folder / file).convert("RGB"))
    assert np.array_equal(shown, saved)
    assert event.height <= 1024  # TensorBoard's card scrolls beyond that


def write_multirun(sweep: Path, overrides: list[str]) -> Path:
    sweep.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"hydra": {"overrides": {"task": overrides}}}, sweep / "multirun.yaml")
    return sweep


@pytest.mark.parametrize(
    ("command", "job", "params", "name"),
    [
        (["optimizer=sgd,adam", "trainer.max_epochs=3"], ["optimizer=sgd", "trainer.max_epochs=3"],
         None, "0_optimizer=sgd"),
        (["+seed=1,2", "optimizer.lr=range(1,3)", "model.dropout=0.1"],
         ["+seed=2", "optimizer.lr=1", "model.dropout=0.1"], None, "0_+seed=2,optimizer.lr=1"),
        # Nothing swept (-m with single values): the number alone.
        (["trainer.max_epochs=3"], ["trainer.max_epochs=3"], None, "0"),
        # A path as a value would make a folder below the job's.
        (["paths.data_dir=/a,/b"], ["paths.data_dir=/a/b"], None, "0_paths.data_dir=_a_b"),
        # A sweeper's search space (Optuna; no multirun.yaml) names the keys it varies.
        (None, ["optimizer.lr=0.01", "dataset.batch_size=64", "trainer.max_epochs=3"],
         {"optimizer.lr": "tag(log, interval(0.0001, 0.05))",
          "dataset.batch_size": "choice(32, 64)"},
         "0_optimizer.lr=0.01,dataset.batch_size=64"),
    ],
)  # fmt: skip
def test_sweep_jobs_are_named_by_what_the_sweep_varies(
    tmp_path: Path, command: list[str] | None, job: list[str], params: dict | None, name: str
):
    sweep = write_multirun(tmp_path, command) if command is not None else tmp_path
    assert job_folder(0, str(sweep), job, params) == name


def test_long_job_names_are_cut_below_file_system_limits(tmp_path: Path):
    values = ",".join(f"{'x' * 200}{i}" for i in range(2))
    sweep = write_multirun(tmp_path, [f"task_name={values}"])
    name = job_folder(7, str(sweep), [f"task_name={'x' * 200}1"], None)
    assert name.startswith("7_task_name=xxx") and name.endswith("...") and len(name) <= 120


def test_long_job_names_keep_every_key_and_shorten_values(tmp_path: Path):
    lr = "0.000123456789012345678901234567890123456789012345678901234567890123456789"
    params = {"optimizer.lr": "interval(0.0001, 0.1)", "model.hidden_sizes": "choice([1],[2])",
              "optimizer": "choice(adam,sgd)"}  # fmt: skip
    job = [f"optimizer.lr={lr}", "model.hidden_sizes=[512,256,128,64,32,16,8]", "optimizer=sgd"]
    name = job_folder(3, str(tmp_path), job, params)
    assert len(name) <= 120 and name.endswith(",optimizer=sgd")
    assert name.startswith("3_optimizer.lr=0.0001") and ",model.hidden_sizes=[512," in name


def test_the_val_matrix_drawn_is_the_first_best_epoch_as_the_checkpoint_judges(tmp_path: Path):
    """Epochs of val/acc 0.5, 0.8, 0.8, 0.7: ModelCheckpoint keeps epoch 1 (a tie is not
    better), so the matrix kept is epoch 1's, at its step."""
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from ch12_lightning.callbacks.confusion import ConfusionMatrices

    callback = ConfusionMatrices(str(tmp_path))
    module = SimpleNamespace(confusion_matrices={})
    for epoch, score in enumerate([0.5, 0.8, 0.8, 0.7]):
        module.confusion_matrices["val"] = torch.full((2, 2), epoch)
        trainer = SimpleNamespace(
            sanity_checking=False,
            state=SimpleNamespace(fn=TrainerFn.FITTING),
            callback_metrics={"val/acc": torch.tensor(score)},
            current_epoch=epoch,
            fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=10 * epoch)),
        )
        callback.on_validation_end(trainer, module)
    best = callback.best
    assert (best["epoch"], best["step"], best["matrix"]) == (1, 10, [[1, 1], [1, 1]])
    assert best["score"] == pytest.approx(0.8)
