"""What a run writes for TensorBoard, read back with TensorBoard's own EventAccumulator: the
CUSTOM SCALARS layout, no made-up points, one step axis; and the sweep job names (fast: the
name is computed here; tests/test_tensorboard.py serves a real sweep)."""

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from ch12_lightning.pipeline import run
from ch12_lightning.sweep_names import job_folder
from tests.conftest import compose_config

STEPS_PER_EPOCH = 16  # 500 training samples of the generated MNIST in batches of 32


def events_of(folder: Path) -> EventAccumulator:
    guidance = {"scalars": 0, "images": 0, "tensors": 0}
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance=guidance)
    events.Reload()
    return events


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> EventAccumulator:
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
    return events_of(folder)


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
    for tag, image_steps in images.items():
        assert set(image_steps) <= {*epoch_ends, last_step}, tag


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
    assert name.startswith("7_task_name=xxx") and name.endswith("...") and len(name) == 120
