"""Faults lose nothing: interrupted runs resume in their own folder, a diverging loss stops the
run and keeps the good checkpoints, and results are written whole or not at all."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import fsspec.implementations.local
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ch12_lightning.errors import ConfigError
from ch12_lightning.models.module import NonFiniteLossError
from ch12_lightning.pipeline import build, run
from ch12_lightning.runs import resume_folder
from ch12_lightning.utils import write_json_atomic
from tests.conftest import compose_config
from tests.test_cli import quick, run_folders, train


def _val_acc_steps(run_folder: Path) -> list[int]:
    """The steps at which the run's TensorBoard log holds val/acc (one per finished epoch)."""
    events = EventAccumulator(str(run_folder / "tensorboard"))
    events.Reload()
    return [event.step for event in events.Scalars("val/acc")]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_interrupted_run_resumes_in_its_folder(
    stop: signal.Signals, mnist_dir: Path, tmp_path: Path
):
    # batch 1: an epoch of 500 steps, long enough to stop in the middle.
    slow_epochs = [*quick(mnist_dir, tmp_path), "dataset.batch_size=1"]
    command = [sys.executable, "-m", "ch12_lightning.train", *slow_epochs, "trainer.max_epochs=50"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A shell's background jobs ignore SIGINT, and so would the run: give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("epoch 2/50"):
            process.send_signal(stop)  # during epoch 3
            break
    output.extend(process.stdout)
    assert process.wait(timeout=120) != 0, "".join(output)[-3000:]
    (folder,) = run_folders(tmp_path)
    last = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    # The last epoch whose checkpoint was written (Ctrl-C can land before epoch 2 is saved).
    assert last["epoch"] in (0, 1, 2)
    assert not (folder / "metrics.json").exists()
    # TensorBoard has every checkpointed epoch (and maybe the next, logged before its save).
    assert len(_val_acc_steps(folder)) in (last["epoch"] + 1, last["epoch"] + 2)

    resumed = train(
        *quick(mnist_dir, tmp_path), "trainer.max_epochs=4", "ckpt_path=last", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming {folder}" in resumed.stdout + resumed.stderr
    results = json.loads((folder / "metrics.json").read_text())
    assert results["epochs"] == 4
    # One TensorBoard log, its curve continuing: each epoch once, in order.
    steps = _val_acc_steps(folder)
    assert len(steps) == 4 and steps == sorted(set(steps)), steps

    uninterrupted = train(*slow_epochs, "trainer.max_epochs=4", cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    expected = json.loads((run_folders(tmp_path)[-1] / "metrics.json").read_text())
    assert expected["epochs"] == 4
    for name in ("test/acc", "val/acc_best"):
        assert results["metrics"][name] == pytest.approx(expected["metrics"][name], abs=0.1)


def test_resume_folder_finds_the_newest_run_with_a_last_checkpoint(tmp_path: Path):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="ckpt_path=last is not valid: no run below"):
        resume_folder("last", runs)
    for name in ("2026-01-01_10-00-00-000000", "2026-01-02_10-00-00-000000"):
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (runs / "2026-01-03_10-00-00-000000").mkdir()  # the resuming command's own, new folder
    newest = runs / "2026-01-02_10-00-00-000000"
    os.utime(runs / "2026-01-01_10-00-00-000000" / "checkpoints" / "last.ckpt", (1, 1))
    assert resume_folder("last", runs) == newest
    assert resume_folder(str(newest), runs) == newest.resolve()
    assert resume_folder(str(newest / "checkpoints" / "last.ckpt"), runs) is None
    with pytest.raises(ConfigError, match="the folder has no checkpoints/last.ckpt"):
        resume_folder(str(runs / "2026-01-03_10-00-00-000000"), runs)


class PoisonWeights(Callback):
    """Make the loss NaN from the first step of the second epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(math.nan)


@pytest.mark.parametrize(("accumulate", "step"), [(1, 17), (3, 7)])
def test_nan_loss_stops_naming_the_step_and_keeps_good_checkpoints(
    accumulate: int, step: int, quick_overrides: list[str], tmp_path: Path
):
    # 16 batches per epoch: 16 optimizer steps, or 6 when accumulating 3 (the last batch steps).
    flags = ["trainer.max_epochs=3", f"+trainer.accumulate_grad_batches={accumulate}"]
    datamodule, model, trainer = build(compose_config([*quick_overrides, *flags]))
    trainer.callbacks.append(PoisonWeights())
    match = rf"became nan at optimizer step {step} \(epoch 1\)"
    with pytest.raises(NonFiniteLossError, match=match):
        trainer.fit(model, datamodule=datamodule)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())


def test_interrupted_checkpoint_write_leaves_the_previous_one(
    quick_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run(compose_config([*quick_overrides, "trainer.max_epochs=1", "test=false"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def crash_midway(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(fsspec.implementations.local.LocalFileOpener, "write", crash_midway)
    datamodule, model, trainer = build(compose_config([*quick_overrides, "trainer.max_epochs=1"]))
    trainer.strategy.connect(model)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint(last)
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


def test_interrupted_json_write_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"test/acc": 0.9})
    write_text = Path.write_text

    def crash_midway(self: Path, text: str) -> int:
        write_text(self, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"test/acc": 0.1})
    assert json.loads(path.read_text()) == {"test/acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_writes_get_the_usual_permissions(tmp_path: Path):
    """Written through a temporary file, results still get the mode open() would give them."""
    mask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "metrics.json", {})
    finally:
        os.umask(mask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
