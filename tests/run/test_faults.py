"""Faults lose nothing: interrupted runs resume in their own folder, a diverging loss stops the
run and keeps the good checkpoints, and results are written whole or not at all."""

import errno
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ch12_lightning.errors import ConfigError, DiskFullError
from ch12_lightning.files.atomic import NoSpaceError, write_json_atomic
from ch12_lightning.models.module import NonFiniteLossError
from ch12_lightning.run.build import build
from ch12_lightning.run.disk import full_disk_explained
from ch12_lightning.run.pipeline import run
from ch12_lightning.run.resume import resume_checkpoint
from tests.helpers.runs import compose_config, quick, run_folders, train, train_here


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

    # Resumed and compared in this process: the signal is what needs a process of its own.
    train_here(*quick(mnist_dir, tmp_path), "trainer.max_epochs=4", "ckpt_path=last", cwd=tmp_path)
    resuming = run_folders(tmp_path)[-1]  # the resuming command's own folder, for its log
    assert f"Resuming {folder}" in (resuming / "train.log").read_text()
    results = json.loads((folder / "metrics.json").read_text())
    assert results["epochs"] == 4
    # One TensorBoard log, its curve continuing: each epoch once, in order.
    steps = _val_acc_steps(folder)
    assert len(steps) == 4 and steps == sorted(set(steps)), steps

    uninterrupted = train_here(*slow_epochs, "trainer.max_epochs=4", cwd=tmp_path)
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    assert expected["epochs"] == 4
    for name in ("test/acc", "val/acc_best"):
        assert results["metrics"][name] == pytest.approx(expected["metrics"][name], abs=0.1)


def _checkpoint(path: Path, step: int, mtime: float | None = None) -> Path:
    """A small file that loads as a Lightning checkpoint trained ``step`` steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "epoch": step // 10, "global_step": step}, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_resume_finds_the_newest_run_and_its_furthest_checkpoint_that_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match="ckpt_path=last is not valid: no run below"):
        resume_checkpoint("last", runs)
    old, new, empty = (runs / f"2026-01-0{day}_10-00-00-000000" for day in (1, 2, 3))
    _checkpoint(old / "checkpoints" / "last.ckpt", 90, mtime=1)
    best = _checkpoint(new / "checkpoints" / "epoch_000.ckpt", 10)
    # Copied without keeping times, the less trained checkpoint can look newer.
    last = _checkpoint(new / "checkpoints" / "last.ckpt", 20, mtime=2)
    empty.mkdir()  # the resuming command's own, new folder
    assert resume_checkpoint("last", runs) == last
    assert resume_checkpoint(str(new), runs) == last.resolve()
    assert resume_checkpoint(str(best), runs) is None  # a file is used as it is

    # Truncated, as a full disk or a killed copy leaves it: skipped, with a warning.
    last.write_bytes(last.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="ch12_lightning.run.resume"):
        assert resume_checkpoint(str(new), runs) == best.resolve()
    assert f"Skipping {last.resolve()}, which does not load (RuntimeError: " in caplog.text
    assert (
        "failed finding central directory); resuming from 2026-01-02_10-00-00-000000/"
        "checkpoints/epoch_000.ckpt (epoch 1, step 10) instead." in caplog.text
    )
    best.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="none of its checkpoints loads: epoch_000.ckpt, which"):
        resume_checkpoint(str(new), runs)
    # ckpt_path=last moves on to the newest run that has a checkpoint that loads.
    assert resume_checkpoint("last", runs) == old / "checkpoints" / "last.ckpt"
    (old / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no checkpoint below .* loads: .*01_.*\(EOFError\)"):
        resume_checkpoint("last", runs)
    with pytest.raises(ConfigError, match="the folder has no checkpoints/\\*.ckpt"):
        resume_checkpoint(str(empty), runs)


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


def _writes_fail(monkeypatch: pytest.MonkeyPatch, name: str, error: BaseException) -> None:
    """Make writing ``name`` (through its temporary file beside it) stop halfway with ``error``."""
    write_bytes = Path.write_bytes

    def half_then_fail(self: Path, data: bytes) -> int:
        if not self.name.startswith(f".{name}."):
            return write_bytes(self, data)
        write_bytes(self, bytes(data)[: len(data) // 2])
        raise error

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)


def test_a_checkpoint_write_that_fails_leaves_the_previous_one_and_no_temporary(
    quick_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    run(compose_config([*quick_overrides, "trainer.max_epochs=1", "test=false"]))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    _writes_fail(monkeypatch, "last.ckpt", OSError(errno.ENOSPC, "No space left on device"))
    datamodule, model, trainer = build(compose_config([*quick_overrides, "trainer.max_epochs=1"]))
    trainer.strategy.connect(model)
    with pytest.raises(NoSpaceError) as failed:
        trainer.save_checkpoint(last)
    assert failed.value.filename == str(last)
    assert failed.value.needed > 25_818 * 4  # at least the weights (no optimizer state yet)
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


def test_a_full_disk_stops_the_run_with_one_message_listing_intact_checkpoints(
    quick_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(logging, "raiseExceptions", True)  # the run turns it off on its way out
    # Epoch 0's best checkpoint is written; its last.ckpt finds the disk full.
    _writes_fail(monkeypatch, "last.ckpt", OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(DiskFullError) as full:
        run(compose_config(quick_overrides))
    folder = tmp_path / "run"
    message = str(full.value)
    assert message.startswith(
        f"The disk is full: writing {folder}/checkpoints/last.ckpt needed 3"
    ), message
    assert "free there (No space left on device). Nothing was left half-written." in message
    assert f"Intact checkpoints in {folder}/checkpoints: epoch_000.ckpt (epoch 0, step 16)." in (
        message
    )
    assert f"resume with ckpt_path=<run folder> (here: ckpt_path={folder})" in message
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["epoch_000.ckpt"]
    assert not (folder / "metrics.json").exists()


def test_checkpoints_written_in_a_thread_are_whole_too(
    quick_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(logging, "raiseExceptions", True)
    _writes_fail(monkeypatch, "last.ckpt", OSError(errno.ENOSPC, "No space left on device"))
    in_a_thread = "+trainer.plugins=[{_target_:lightning.pytorch.plugins.io.AsyncCheckpointIO}]"
    with pytest.raises(DiskFullError, match="The disk is full: writing .*last.ckpt needed"):
        run(compose_config([*quick_overrides, in_a_thread]))
    checkpoints = tmp_path / "run" / "checkpoints"
    # The thread's error comes out at the next save: epoch 1's best is written by then.
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000.ckpt", "epoch_001.ckpt"]
    for epoch in (0, 1):
        assert (
            torch.load(checkpoints / f"epoch_00{epoch}.ckpt", weights_only=True)["epoch"] == epoch
        )


def test_a_full_disk_at_a_picture_keeps_the_checkpoints_and_says_so(
    quick_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(logging, "raiseExceptions", True)
    _writes_fail(monkeypatch, "learning_curves.png", OSError(errno.ENOSPC, "No space left"))
    with pytest.raises(DiskFullError) as full:
        run(compose_config(quick_overrides))
    folder = tmp_path / "run"
    assert str(full.value).startswith(f"The disk is full: writing {folder}/learning_curves.png")
    # Drawn when training ends, after both epochs' checkpoints.
    assert "checkpoints: last.ckpt (epoch 1, step 32), epoch_001.ckpt (epoch 1" in str(full.value)
    assert not (folder / "learning_curves.png").exists() and not list(folder.glob(".*.tmp"))


def test_a_full_cache_disk_says_how_to_make_room(tmp_path: Path):
    cache = tmp_path / "cache"
    with pytest.raises(DiskFullError) as full, full_disk_explained(tmp_path / "run", cache):
        raise NoSpaceError(cache / "celeba" / "0123.pt", 2_500_000_000)
    message = str(full.value)
    assert message.startswith(f"The disk is full: writing {cache}/celeba/0123.pt needed 2.50 GB")
    assert f"The cache folder {cache} is on that disk" in message
    assert "./ch12 cache prune" in message and "paths.cache_dir" in message
    assert "checkpoint" not in message  # a cache, not the run's checkpoints


def test_interrupted_json_write_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"test/acc": 0.9})
    _writes_fail(monkeypatch, "metrics.json", KeyboardInterrupt())
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


# A run folder on a disk of its own, as small as we like: a private mount namespace (root only)
# with a tmpfs of SIZE. What the run left there is copied out before the namespace goes.
ON_A_SMALL_DISK = """
mount -t tmpfs -o size="$SIZE" tmpfs "$RUN" || exit 97
"$PYTHON" -m ch12_lightning.train hydra.run.dir="$RUN" "$@"
status=$?
cp -a "$RUN/." "$KEPT"
exit $status
"""


def _no_private_disk(folder: Path) -> str | None:
    """Why this machine cannot give a test a small private filesystem, or None if it can."""
    if shutil.which("unshare") is None:
        return "needs util-linux's unshare"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(folder)],
        capture_output=True,
        text=True,
    )
    return (
        f"cannot mount a private tmpfs here: {probe.stderr.strip()}" if probe.returncode else None
    )


def _full_disk_message(size: str, overrides: list[str], tmp_path: Path) -> tuple[str, Path, Path]:
    """Train with the run folder on a private disk of ``size``; the disk-full message, the
    folder's path there and a copy of what the run left in it."""
    small_disk, copy = tmp_path / "small_disk", tmp_path / "copy"
    small_disk.mkdir()
    copy.mkdir()
    reason = _no_private_disk(small_disk)
    if reason:
        pytest.skip(reason)
    variables = {"SIZE": size, "RUN": str(small_disk), "KEPT": str(copy), "PYTHON": sys.executable}
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", ON_A_SMALL_DISK, "sh", *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **variables},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    # One message, no traceback (not even a background thread's, and no log line that failed
    # to reach the full disk).
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    message = re.search(r"The disk is full: .*?\n\n", result.stderr, re.DOTALL).group(0)
    return message, small_disk, copy


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "full_at", "kept"),
    [("200k", "epoch_000.ckpt", []), ("600k", "last.ckpt", ["epoch_000.ckpt"])],
    ids=["at the first checkpoint", "at a later checkpoint"],
)
def test_a_full_disk_at_a_checkpoint_keeps_whole_checkpoints_and_resumes_on_a_larger_one(
    size: str, full_at: str, kept: list[str], mnist_dir: Path, tmp_path: Path
):
    overrides = [*quick(mnist_dir, tmp_path), "trainer.max_epochs=3"]
    message, small_disk, copy = _full_disk_message(size, overrides, tmp_path)
    assert message.startswith(
        f"The disk is full: writing {small_disk}/checkpoints/{full_at} needed 3"
    ), message
    assert re.search(r"and \d+ kB are free there \(No space left on device\)", message), message
    # Every checkpoint left loads; no temporary file is left beside them.
    checkpoints = copy / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == kept
    for name in kept:
        assert torch.load(checkpoints / name, weights_only=True)["epoch"] == 0
    if not kept:
        assert "No checkpoint of this run was written yet." in message
        return
    assert f"Intact checkpoints in {small_disk}/checkpoints: epoch_000.ckpt (epoch 0, step 8)." in (
        message
    )
    assert f"(here: ckpt_path={small_disk})" in message

    # Moved to a larger disk, the run resumes and finishes (in this process).
    train_here(*overrides, f"ckpt_path={copy}", cwd=tmp_path)
    (resuming,) = run_folders(tmp_path)  # the resuming command's own folder, for its log
    assert f"Resuming {copy}" in (resuming / "train.log").read_text()
    assert json.loads((copy / "metrics.json").read_text())["epochs"] == 3
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_a_full_disk_under_ddp_is_one_message_from_rank_zero(mnist_dir: Path, tmp_path: Path):
    overrides = [*quick(mnist_dir, tmp_path), "trainer.max_epochs=3", "accelerator=ddp_cpu"]
    message, small_disk, copy = _full_disk_message("600k", overrides, tmp_path)
    assert message.startswith(f"The disk is full: writing {small_disk}/checkpoints/last.ckpt"), (
        message
    )
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["epoch_000.ckpt"]


@pytest.mark.slow
def test_a_full_disk_during_tensorboard_writes_keeps_the_curves_so_far(
    mnist_dir: Path, tmp_path: Path
):
    # No checkpoints or pictures: TensorBoard's event file, written by a background thread,
    # is what fills the disk.
    logging_only = ["callbacks=none", "+trainer.enable_checkpointing=false"]
    overrides = [*quick(mnist_dir, tmp_path), *logging_only, "trainer.max_epochs=200"]
    overrides.append("trainer.log_every_n_steps=1")
    message, small_disk, copy = _full_disk_message("60k", overrides, tmp_path)
    assert message.startswith(f"The disk is full: a write into {small_disk} found no room"), message
    assert "a TensorBoard event file keeps every record before the cut" in message
    assert "No checkpoint of this run was written yet." not in message  # none was to be written
    events = EventAccumulator(str(copy / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/loss")) >= 5  # epochs before the disk filled


# Loaded at start-up (sitecustomize): the second write of last.ckpt is killed halfway, with
# SIGKILL, which no handler sees, as the out-of-memory killer or `kill -9` would.
KILLED_IN_SECOND_LAST_CKPT_WRITE = """
import os, pathlib, signal

write_bytes = pathlib.Path.write_bytes
writes = 0


def write_half_then_die(self, data):
    global writes
    if self.name.startswith(".last.ckpt."):
        writes += 1
        if writes == 2:
            with open(self, "wb") as f:
                f.write(bytes(data)[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return write_bytes(self, data)


pathlib.Path.write_bytes = write_half_then_die
"""


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write_leaves_the_previous_one_whole(
    mnist_dir: Path, tmp_path: Path
):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLED_IN_SECOND_LAST_CKPT_WRITE)
    overrides = [*quick(mnist_dir, tmp_path), "trainer.max_epochs=3"]
    path = os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))
    killed = train(*overrides, cwd=tmp_path, env={"PYTHONPATH": path})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (folder,) = run_folders(tmp_path)
    checkpoints = folder / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0
    (unfinished,) = checkpoints.glob(".last.ckpt.*.tmp")  # the half-written new one

    train_here(*overrides, "ckpt_path=last", cwd=tmp_path)  # resumed in this process
    said = (run_folders(tmp_path)[-1] / "train.log").read_text()  # the resuming command's log
    assert f"Removed 1 unfinished checkpoint write(s): {unfinished.name}" in said
    assert not list(checkpoints.glob("*.tmp"))
    assert json.loads((folder / "metrics.json").read_text())["epochs"] == 3
