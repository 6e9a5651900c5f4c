"""Lightning's contract: every Trainer flag means what Lightning documents, counted in
mini-batches and optimizer steps, through the real pipeline.

The generated MNIST of ``quick_overrides`` has 500 training images in batches of 32: 16
mini-batches (and optimizer steps) per epoch, 100 validation and 200 test images.
"""

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from ch12_lightning.data.celeba import CelebADataModule
from ch12_lightning.data.iris import IrisDataModule
from ch12_lightning.data.mnist import MNISTDataModule
from ch12_lightning.data.toy_regression import ToyRegressionDataModule
from ch12_lightning.models.nets.mlp import MLP
from ch12_lightning.run.build import build
from ch12_lightning.run.pipeline import run
from tests.helpers.celeba_tree import make_celeba
from tests.helpers.runs import compose_config, train

STEPS_PER_EPOCH = 16


def _fit(overrides: list[str], tmp_path: Path, test: bool = False) -> dict:
    """Run the pipeline; return its metrics.json with the last checkpoint's global step."""
    run(compose_config([*overrides, f"test={str(test).lower()}"]))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if last.is_file():
        written["global_step"] = torch.load(last, weights_only=True)["global_step"]
    return written


def _scalars(run_folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_folder / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


# -- clipping and accumulation: the same weights as a plain LightningModule --------------------


class PlainModule(L.LightningModule):
    """What a Lightning user writes by hand: automatic optimization, one batch per step."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.net = MLP((1, 28, 28), 10, [32, 16], "relu")
        self.lr = lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        inputs, targets = batch
        return nn.functional.cross_entropy(self.net(inputs), targets)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        # Validating draws from the global RNG (each DataLoader iterator takes a base seed),
        # so the next epoch's shuffle depends on it: validate as our runs do.
        self.training_step(batch, batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, fused=True)


@pytest.mark.parametrize(
    "flags",
    [
        {"gradient_clip_val": 0.05},
        {"gradient_clip_val": 0.002, "gradient_clip_algorithm": "value"},
        {"accumulate_grad_batches": 3},
        {"accumulate_grad_batches": 2, "gradient_clip_val": 0.05},
    ],
    ids=["clip-norm", "clip-value", "accumulate", "accumulate+clip"],
)
def test_clipping_and_accumulation_train_like_a_plain_lightning_module(
    flags: dict, quick_overrides: list[str], tmp_path: Path
):
    plus = [f"+trainer.{key}={value}" for key, value in flags.items()]
    overrides = [*quick_overrides, "optimizer=sgd", *plus]
    ours = _fit(overrides, tmp_path)
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    ours_net = {k.removeprefix("net."): v for k, v in weights["state_dict"].items() if "net." in k}

    cfg = compose_config(overrides)
    datamodule, _, _ = build(cfg)  # the same data; our model is not used from here on
    plain, global_step = _plain_weights(cfg, datamodule, flags)
    assert ours["global_step"] == global_step
    expected_steps = 2 * math.ceil(STEPS_PER_EPOCH / flags.get("accumulate_grad_batches", 1))
    assert global_step == expected_steps
    for name, tensor in plain.items():
        assert torch.allclose(ours_net[name], tensor, atol=1e-6), name
    # The flags did something: without them the weights differ.
    unflagged, _ = _plain_weights(cfg, datamodule, {})
    assert not all(torch.allclose(ours_net[k], v, atol=1e-4) for k, v in unflagged.items())


def _plain_weights(cfg, datamodule, flags: dict) -> tuple[dict[str, torch.Tensor], int]:
    """``PlainModule`` trained with the same seed, data and Trainer flags; its weights."""
    L.seed_everything(cfg.seed, workers=True)
    plain = PlainModule(lr=cfg.optimizer.lr)
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, deterministic=True, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **flags,
    )  # fmt: skip
    trainer.fit(plain, datamodule=datamodule)
    return plain.net.state_dict(), trainer.global_step


# -- limits and lengths count mini-batches and optimizer steps ----------------------------------

EVAL_BATCHES_OF_16 = ["dataset.eval_batch_size=16"]  # training batches hold 32


@pytest.mark.parametrize(
    ("flags", "steps", "val_samples", "test_samples"),
    [
        (["+trainer.limit_train_batches=2"], 2 * 2, 100, 200),
        (["+trainer.limit_train_batches=0.25"], 2 * 4, 100, 200),
        # Evaluation batches hold dataset.eval_batch_size samples; the limits count those.
        (
            ["+trainer.limit_val_batches=2", "+trainer.limit_test_batches=3", *EVAL_BATCHES_OF_16],
            2 * 16,
            32,
            48,
        ),  # fmt: skip
        (["+trainer.overfit_batches=1", *EVAL_BATCHES_OF_16], 2 * 1, 16, 200),
        (["+trainer.max_steps=10"], 10, 0, 200),  # stops within the first epoch
        (["trainer.max_epochs=-1", "+trainer.max_steps=20"], 20, 100, 200),
    ],
    ids=["limit-int", "limit-fraction", "limit-val-test", "overfit", "max_steps", "only-steps"],
)
def test_lengths_count_mini_batches(
    flags: list[str], steps: int, val_samples: int, test_samples: int,
    quick_overrides: list[str], tmp_path: Path,
):  # fmt: skip
    written = _fit([*quick_overrides, *flags], tmp_path, test=True)
    metrics = written["metrics"]
    assert written["global_step"] == steps
    assert metrics.get("val/samples", 0) == val_samples
    assert metrics["test/samples"] == test_samples  # tested and written like any other run
    assert 0 <= metrics["test/acc"] <= 1 and "train/loss" in metrics
    assert (tmp_path / "run" / "learning_curves.png").is_file()


def test_fast_dev_run_is_one_batch_of_each(quick_overrides: list[str], tmp_path: Path):
    cfg = compose_config([*quick_overrides, "+trainer.fast_dev_run=true", *EVAL_BATCHES_OF_16])
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 1
    assert trainer.callback_metrics["val/samples"] == 16


def test_max_time_stops_mid_epoch_and_the_run_is_tested(quick_overrides: list[str], tmp_path: Path):
    flags = ["trainer.max_epochs=-1", "+trainer.max_time=00:00:00:02", "dataset.batch_size=1"]
    written = _fit([*quick_overrides, *flags], tmp_path, test=True)
    assert 0 < written["global_step"] < 500 * 20  # stopped by the clock, not by epochs
    assert written["metrics"]["test/samples"] == 200


def test_validation_intervals(quick_overrides: list[str], tmp_path: Path):
    flags = ["trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2"]
    run(compose_config([*quick_overrides, *flags, "test=false"]))
    scalars = _scalars(tmp_path / "run")
    # Validated after epochs 2 and 4 only (0-based step index of each epoch's last step).
    assert [step for step, _ in scalars["val/acc"]] == [31, 63]
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["checkpoint"]
    assert Path(best).name in ("epoch_001.ckpt", "epoch_003.ckpt")  # a validated epoch
    assert not (tmp_path / "run" / "checkpoints" / "epoch_000.ckpt").exists()

    twice = [*quick_overrides, "+trainer.val_check_interval=0.5", "test=false"]
    run(compose_config([*twice, f"paths.output_dir={tmp_path / 'twice'}"]))
    assert [step for step, _ in _scalars(tmp_path / "twice")["val/acc"]] == [7, 15, 23, 31]


def test_log_every_n_steps_logs_the_training_loss_per_step(
    quick_overrides: list[str], tmp_path: Path
):
    run(compose_config([*quick_overrides, "trainer.log_every_n_steps=1", "test=false"]))
    scalars = _scalars(tmp_path / "run")
    assert [step for step, _ in scalars["train/loss_step"]] == list(range(2 * STEPS_PER_EPOCH))
    assert len(scalars["train/loss"]) == 2  # the epoch's mean, once per epoch

    every_5 = [*quick_overrides, "trainer.log_every_n_steps=5", "test=false"]
    run(compose_config([*every_5, f"paths.output_dir={tmp_path / 'every_5'}"]))
    steps = [step for step, _ in _scalars(tmp_path / "every_5")["train/loss_step"]]
    assert steps[:3] == [4, 9, 14]


# -- one step axis ---------------------------------------------------------------------------


@pytest.mark.parametrize("logger", ["tensorboard", "csv"])
def test_every_curve_shares_the_optimizer_step_axis(
    logger: str, quick_overrides: list[str], tmp_path: Path
):
    run(compose_config([*quick_overrides, f"logger={logger}"]))
    folder = tmp_path / "run"
    if logger == "csv":
        import csv

        rows = list(csv.DictReader((folder / "csv" / "metrics.csv").open()))
        steps = {
            name: [int(row["step"]) for row in rows if row.get(name)]
            for name in ("train/acc", "val/acc", "test/acc")
        }
    else:
        scalars = _scalars(folder)
        steps = {tag: [step for step, _ in values] for tag, values in scalars.items()}
        events = EventAccumulator(str(folder / "tensorboard"))
        events.Reload()
        assert [image.step for image in events.Images("test/misclassified")] == steps["test/acc"]
        # Nothing before the first step but the learning rate the optimizer starts with.
        assert all(min(steps[tag]) > 0 for tag in steps if not tag.startswith("lr-")), steps
    # Epoch metrics at the index of the epoch's last optimizer step, test after the last one.
    assert steps["train/acc"] == steps["val/acc"] == [15, 31]
    assert steps["test/acc"] == [2 * STEPS_PER_EPOCH]


# -- schedulers ------------------------------------------------------------------------------


def _expected_lrs(name: str, count: int) -> list[float]:
    """The learning rate after 0, 1, ..., count steps of torch's own scheduler (Adam, lr 1e-3,
    3 epochs of 16 steps), stepped where Lightning steps it: per epoch, or per step."""
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-3)
    scheduler = {
        "step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3),
        "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.01, total_steps=3 * STEPS_PER_EPOCH
        ),
    }[name]()
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(count):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    return rates


@pytest.mark.parametrize("name", ["step", "cosine", "onecycle"])
def test_schedulers_step_checkpoint_and_resume(
    name: str, quick_overrides: list[str], tmp_path: Path
):
    settings = ["scheduler.step_size=1"] if name == "step" else []
    overrides = [
        *quick_overrides, f"scheduler={name}", *settings, "trainer.max_epochs=3",
        "trainer.log_every_n_steps=1", "test=false",
    ]  # fmt: skip
    cfg = compose_config(overrides)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    steps = 3 * STEPS_PER_EPOCH if name == "onecycle" else 3
    expected = _expected_lrs(name, steps)
    # The LR monitor shows each rate the optimizer trained with, at the scheduler's interval.
    shown = [value for _, value in _scalars(tmp_path / "run")["lr-Adam"]]
    assert shown == pytest.approx(expected[:-1], rel=1e-5)
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr() == pytest.approx(
        expected[-1:], rel=1e-5, abs=1e-12
    )
    whole = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert whole["lr_schedulers"], "the scheduler's state is in the checkpoint"

    # Stopped after its first epoch (as a signal would stop it) and resumed in its folder:
    # the schedule goes on where it was.
    split = compose_config([*overrides, f"paths.output_dir={tmp_path / 'split'}"])
    datamodule, model, trainer = build(split)
    trainer.callbacks.append(StopAfterFirstEpoch())
    trainer.fit(model, datamodule=datamodule)
    assert trainer.current_epoch == 1
    run(compose_config([*overrides, f"ckpt_path={tmp_path / 'split'}"]))
    resumed = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["lr_schedulers"] == whole["lr_schedulers"]
    assert resumed["global_step"] == whole["global_step"]
    shown = [value for _, value in _scalars(tmp_path / "split")["lr-Adam"]]
    assert shown == pytest.approx(expected[:-1], rel=1e-5)


class StopAfterFirstEpoch(L.Callback):
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.should_stop = True


def test_plateau_scheduler_watches_the_validation_loss(quick_overrides: list[str], tmp_path: Path):
    flags = ["scheduler=plateau", "scheduler.patience=0", "trainer.max_epochs=4"]
    datamodule, model, trainer = build(compose_config([*quick_overrides, *flags]))
    trainer.fit(model, datamodule=datamodule)
    plateau = trainer.lr_scheduler_configs[0].scheduler
    val_losses = [value for _, value in _scalars(tmp_path / "run")["val/loss"]]
    assert len(val_losses) == plateau.last_epoch == 4
    assert plateau.best == pytest.approx(min(val_losses))


# -- data, callbacks and presets ---------------------------------------------------------------


def test_every_train_dataloader_yields_plain_mini_batches(mnist_dir: Path, tmp_path: Path):
    make_celeba(tmp_path / "celeba")
    modules = [
        MNISTDataModule(str(mnist_dir), str(tmp_path / "cache"), batch_size=32, val_size=100),
        CelebADataModule(str(tmp_path / "celeba"), str(tmp_path / "cache"), n_per_class=15,
                         batch_size=8, num_workers=0),
        IrisDataModule(batch_size=4),
        ToyRegressionDataModule(batch_size=3),
    ]  # fmt: skip
    for datamodule in modules:
        datamodule.prepare_data()
        datamodule.setup("fit")
        x, y = next(iter(datamodule.train_dataloader()))
        assert isinstance(x, torch.Tensor) and len(x) == len(y) == datamodule.batch_size


def test_progress_bar_and_checkpointing_can_be_turned_off(
    quick_overrides: list[str], tmp_path: Path
):
    off = ["+trainer.enable_progress_bar=false", "+trainer.enable_checkpointing=false"]
    metrics = run(compose_config([*quick_overrides, *off]))
    assert metrics["test/acc"] > 0.5
    assert not (tmp_path / "run" / "checkpoints").exists()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["checkpoint"] is None  # tested as trained


def test_clipping_in_mixed_precision_trains_with_the_default_optimizer(
    quick_overrides: list[str], tmp_path: Path
):
    """Lightning refuses to clip a fused optimizer's gradients under mixed precision: fused=auto
    picks the plain kernels there, and the run trains."""
    flags = ["+trainer.gradient_clip_val=0.5", "+trainer.precision=bf16-mixed"]
    assert run(compose_config([*quick_overrides, *flags]))["test/acc"] > 0.5
    resolved = (tmp_path / "run" / "config_resolved.yaml").read_text()
    assert "fused: false" in resolved


def test_early_stopping_preset(quick_overrides: list[str], tmp_path: Path):
    flags = ["callbacks=early_stopping", "callbacks.early_stopping.patience=1"]
    written = _fit([*quick_overrides, *flags, "trainer.max_epochs=40"], tmp_path)
    assert written["epochs"] < 40  # the generated digits are learnt long before


@pytest.mark.parametrize(
    ("preset", "extra", "steps"),
    [
        ("fdr", [], 1),
        ("limit", ["dataset.batch_size=1"], 3 * 5),  # 1% of 500 batches, 3 epochs
        ("overfit", [], 20 * 3),
        ("profiler", [], STEPS_PER_EPOCH),
    ],
)
def test_debug_presets(
    preset: str, extra: list[str], steps: int, quick_overrides: list[str], tmp_path: Path
):
    # The preset's epochs, not the quick runs' (a command-line value would win over it).
    overrides = [o for o in quick_overrides if not o.startswith("trainer.max_epochs")]
    cfg = compose_config([*overrides, f"debug={preset}", *extra])
    assert cfg.task_name == "debug" and cfg.trainer.detect_anomaly
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == steps
    if preset == "profiler":
        assert "run_training_batch" in trainer.profiler.summary()


def test_plus_debug_is_refused_rather_than_ignored(tmp_path: Path):
    result = train("+debug=fdr", cwd=tmp_path)
    assert result.returncode == 1 and "Multiple values for debug" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_compiled_model_trains_and_saves_plain_weights(quick_overrides: list[str], tmp_path: Path):
    metrics = run(compose_config([*quick_overrides, "model.compile=true"]))
    assert metrics["test/acc"] > 0.5
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in key for key in state["state_dict"])
    assert "compile" not in state["hyper_parameters"]
