"""Short fits through the real pipeline: every optimizer, checkpoints, metrics, TensorBoard."""

import json
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from ch12_lightning.models.classifier import Classifier
from ch12_lightning.run.build import build
from ch12_lightning.run.pipeline import run
from tests.helpers.runs import compose_config, with_output_dir

METRICS = (
    "train/loss",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/acc_best",
    "test/loss",
    "test/acc",
)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_fit_validate_test(optimizer: str, quick_overrides: list[str], tmp_path: Path):
    metrics = run(compose_config([*quick_overrides, f"optimizer={optimizer}"]))
    assert set(METRICS) <= set(metrics)
    assert metrics["test/acc"] > 0.5, metrics  # the generated digits are easy to tell apart
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["metrics"]["test/acc"] == pytest.approx(metrics["test/acc"])
    assert written["epochs"] == 2
    assert (tmp_path / "run" / "config_resolved.yaml").is_file()


def test_checkpoints_hold_plain_data_and_reload(quick_overrides: list[str], tmp_path: Path):
    run(compose_config([*quick_overrides, "model.hidden_sizes=[24,12]", "optimizer=sgd"]))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["checkpoint"]
    assert Path(best).parent == checkpoints
    for path in checkpoints.glob("*.ckpt"):
        state = torch.load(path, weights_only=True, map_location="cpu")
        assert state["hyper_parameters"]["net"]["hidden_sizes"] == [24, 12]
        assert state["hyper_parameters"]["optimizer"]["name"] == "sgd"
    model = Classifier.load_from_checkpoint(best, weights_only=True)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_resume_from_checkpoint_continues_to_max_epochs(quick_overrides: list[str], tmp_path: Path):
    run(compose_config([*quick_overrides, "trainer.max_epochs=1", "test=false"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = [*quick_overrides, "trainer.max_epochs=2", f"ckpt_path={last}", "test=false"]
    run(compose_config(with_output_dir(resumed, tmp_path / "resumed")))
    after = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert after["epochs"] == 2
    before = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    best = max(before["val/acc_best"], after["metrics"]["val/acc"])
    assert after["metrics"]["val/acc_best"] == pytest.approx(best)


def test_the_best_validation_value_so_far_survives_a_checkpoint(quick_overrides: list[str]):
    """torchmetrics' states are not in the state dict: the checkpoint carries the best."""
    first = build(compose_config(quick_overrides))[1]
    first.val_best.update(torch.tensor(0.9))
    checkpoint: dict = {}
    first.on_save_checkpoint(checkpoint)
    resumed = build(compose_config(quick_overrides))[1]
    resumed.on_load_checkpoint(checkpoint)
    resumed.on_train_start()
    resumed.val_best.update(torch.tensor(0.5))  # a worse epoch after the resume
    assert float(resumed.val_best.compute()) == pytest.approx(0.9)


def test_same_seed_same_metrics(quick_overrides: list[str], tmp_path: Path):
    first = run(compose_config([*quick_overrides, "model.dropout=0.2"]))
    again = with_output_dir([*quick_overrides, "model.dropout=0.2"], tmp_path / "again")
    assert run(compose_config(again)) == first


@pytest.mark.parametrize("logger", ["none", "csv"])
def test_other_loggers(logger: str, quick_overrides: list[str]):
    metrics = run(compose_config([*quick_overrides, f"logger={logger}", "trainer.max_epochs=1"]))
    assert metrics["test/acc"] > 0


def test_backward_hooks_reach_callbacks_once_per_optimizer_step(quick_overrides: list[str]):

    class CountBackward(Callback):
        calls = 0

        def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            CountBackward.calls += 1

    cfg = compose_config([*quick_overrides, "trainer.max_epochs=1"])
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(CountBackward())
    trainer.fit(model, datamodule=datamodule)
    assert CountBackward.calls == trainer.global_step == 16


def test_tensorboard_has_scalars_and_an_hparams_session_without_made_up_points(
    quick_overrides: list[str], tmp_path: Path
):
    run(compose_config(quick_overrides))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert set(METRICS) <= scalars
    # No declared hp/* columns (each began with a 0.0 at step 0): HPARAMS shows the metrics.
    assert not any(tag.startswith("hp/") or tag == "hp_metric" for tag in scalars)
    content = events.PluginTagToContent("hparams")
    # No experiment summary: TensorBoard then builds one from all the runs it shows, with the
    # hyperparameters that differ between them first (backend_context.py).
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert session.hparams["optimizer/lr"].number_value == pytest.approx(1e-3)
    assert session.hparams["optimizer/name"].string_value == "adam"
    assert session.hparams["data/batch_size"].number_value == 32
    assert session.hparams["hidden_sizes"].string_value == "[32, 16]"


# Spawned ranks import Lightning anew: 7 to 25 s on 2 cores. (Forked ones, ddp_cpu_notebook, go
# through the same launcher, but cannot be forked from a process whose autograd has run, as
# this one's has in the tests before.)
@pytest.mark.slow
def test_spawned_ranks_record_the_epochs_they_trained(quick_overrides: list[str], tmp_path: Path):
    """Lightning's spawn and fork launchers train in processes of their own and bring back the
    metrics, not the loop's progress: this process's trainer still says epoch 0."""
    run(compose_config([*quick_overrides, "accelerator=ddp_cpu_spawn", "test=false"]))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 2


def test_values_already_reduced_over_processes_are_logged_as_such(path_overrides: list[str]):
    """Under DDP Lightning warns, once per name, that a tensor logged per epoch without
    ``sync_dist`` should be synced: 7 lines for Iris, 23 for MNIST, in a notebook's cell too.
    The best accuracy and the accuracy per class come from metrics already reduced over every
    process; they are logged as synced, with the values they had (DDP of one process here;
    tests/sweeps compares two with one)."""
    overrides = [*path_overrides, "experiment=iris_book", "trainer.max_epochs=1"]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics = run(compose_config([*overrides, "accelerator=ddp_cpu", "trainer.devices=1"]))
    finally:
        torch.distributed.destroy_process_group()
    assert [str(w.message) for w in caught if "sync_dist" in str(w.message)] == []
    assert metrics["val/acc_best"] == metrics["val/acc"]  # one epoch: the best is the only one
    for stage in ("val", "test"):
        for name in ("setosa", "versicolor", "virginica"):
            assert 0 <= metrics[f"{stage}/acc_{name}"] <= 1
