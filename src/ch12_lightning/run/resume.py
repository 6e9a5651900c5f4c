"""Finding the checkpoint that ``ckpt_path=last`` or ``ckpt_path=<run folder>`` continues from.

A run killed mid-epoch keeps the checkpoints of its finished epochs. Resuming it in its own folder
(not in the new folder Hydra made for the resuming command) keeps one TensorBoard log whose curves
go on where they stopped, and one set of checkpoints. It resumes from the furthest-trained
checkpoint that loads: a damaged one (a truncated copy, a disk that filled while it was written
by an older version) is skipped with a warning, not met with a zip reader's traceback.
"""

import logging
import re
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from ch12_lightning.cluster.launch import restarted_by_launcher
from ch12_lightning.errors import ConfigError
from ch12_lightning.run.checkpoints import FoundCheckpoint, checkpoints_in
from ch12_lightning.run.folder_lock import hold

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


def resume_checkpoint(ckpt_path: str | None, runs_dir: Path) -> Path | None:
    """The checkpoint to continue from, for ``ckpt_path=last`` (the most recently written run
    below ``runs_dir`` with a checkpoint that loads) or a run folder; None for a checkpoint file
    or none."""
    if ckpt_path == "last":
        folders = _runs_newest_first(runs_dir)
        if not folders:
            raise ConfigError(
                f"ckpt_path=last is not valid: no run below {runs_dir} has a {CHECKPOINTS}/ "
                "folder with checkpoints. Give a run folder or a checkpoint file instead."
            )
        damaged: list[FoundCheckpoint] = []
        for folder in folders:
            found = checkpoints_in(folder / CHECKPOINTS)
            if found[0].loads:
                _warn_skipped(damaged + [c for c in found if not c.loads], found[0])
                return found[0].path
            damaged += found
        raise ConfigError(
            f"ckpt_path=last is not valid: no checkpoint below {runs_dir} loads: "
            + "; ".join(f"{c.path.parent.parent.name}/{c.describe()}" for c in damaged)
        )
    if ckpt_path and Path(ckpt_path).is_dir():
        folder = Path(ckpt_path).resolve()
        found = checkpoints_in(folder / CHECKPOINTS)
        if not found:
            raise ConfigError(
                f"ckpt_path={ckpt_path} is not valid: the folder has no {CHECKPOINTS}/*.ckpt; "
                "give a run folder (outputs/<task>/runs/<date>_<time>) or a checkpoint file."
            )
        if not found[0].loads:
            raise ConfigError(
                f"ckpt_path={ckpt_path} is not valid: none of its checkpoints loads: "
                + "; ".join(c.describe() for c in found)
            )
        _warn_skipped([c for c in found if not c.loads], found[0])
        return found[0].path
    return None


def has_checkpoints(folder: Path) -> bool:
    return any((folder / CHECKPOINTS).glob("*.ckpt"))


def remove_leftover_temporaries(folder: Path) -> None:
    """A run killed while writing a checkpoint leaves its temporary file (``.<name>.<random>.tmp``,
    never under the real name); the resumed run removes it."""
    leftovers = list((folder / CHECKPOINTS).glob(".*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        names = ", ".join(path.name for path in leftovers)
        log.info("Removed %d unfinished checkpoint write(s): %s", len(leftovers), names)


def _runs_newest_first(runs_dir: Path) -> list[Path]:
    newest: dict[Path, float] = {}
    for path in runs_dir.glob(f"*/{CHECKPOINTS}/*.ckpt"):
        folder = path.parent.parent
        newest[folder] = max(newest.get(folder, 0.0), path.stat().st_mtime)
    return sorted(newest, key=lambda folder: newest[folder], reverse=True)


def _warn_skipped(damaged: list[FoundCheckpoint], chosen: FoundCheckpoint) -> None:
    for checkpoint in damaged:
        log.warning(
            "Skipping %s, which %s; resuming from %s instead.",
            checkpoint.path,
            checkpoint.problem,
            chosen.path.parent.parent.name + "/" + CHECKPOINTS + "/" + chosen.describe(),
        )


def resumes(cfg: DictConfig) -> bool:
    """Whether the run goes on in an earlier run's folder (``ckpt_path=last`` or a run folder),
    rather than starting in its own."""
    ckpt_path = cfg.get("ckpt_path")
    return bool(
        cfg.get("train", True) and ckpt_path and (ckpt_path == "last" or Path(ckpt_path).is_dir())
    )


def continue_interrupted_run(cfg: DictConfig) -> None:
    """``ckpt_path=last`` or ``ckpt_path=<run folder>``: continue from that run's furthest
    checkpoint that loads. Training goes on in the run's own folder (one TensorBoard log, one set
    of checkpoints); a test-only run (``train=false``) reads the checkpoint and writes into its
    own new folder.

    A job that SLURM requeued (or whose workers torchrun restarted) is back in its own folder:
    it continues from that folder's checkpoints by itself."""
    runs_dir = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    own = Path(cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and cfg.get("train", True) and restarted_by_launcher():
        ckpt_path = str(own) if has_checkpoints(own) else None
    checkpoint = resume_checkpoint(ckpt_path, runs_dir)
    if checkpoint is None:
        return
    cfg.ckpt_path = str(checkpoint)
    if cfg.get("train", True):
        folder = checkpoint.parent.parent
        hold(folder, "resume")  # not while that run still writes into it
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _check_epochs_left(cfg, checkpoint, state)
        where = "" if folder == own else f" (this command's own log stays in {own})"
        log.info("Resuming %s from %s%s", folder, checkpoint.relative_to(folder), where)
        remove_leftover_temporaries(folder)
        cfg.paths.output_dir = str(folder)
        _hide_logs_after(cfg, _logged_step(state))
        # Lightning warns that the run's checkpoints/ "exists and is not empty": here it must.
        ours = re.escape(str(folder / CHECKPOINTS))
        warnings.filterwarnings("ignore", f"Checkpoint directory {ours} exists and is not empty")


def _check_epochs_left(cfg: DictConfig, checkpoint: Path, state: dict) -> None:
    """Lightning refuses a ``max_epochs`` below the epoch a checkpoint restores, but only once
    fitting starts, after the run's folder has its new ``config_resolved.yaml`` and TensorBoard
    file: the finished run's record would no longer say what it trained. The same rule, first."""
    max_epochs = cfg.get("trainer", {}).get("max_epochs")
    fit_loop = state.get("loops", {}).get("fit_loop", {})
    restored = fit_loop.get("epoch_progress", {}).get("current", {}).get("completed")
    if max_epochs in (None, -1) or restored is None or restored <= max_epochs:
        return
    trained = int(state.get("epoch", restored)) + 1
    raise ConfigError(
        f"trainer.max_epochs={max_epochs} is not valid: the run in {checkpoint.parent.parent} has "
        f"trained {trained} epochs ({checkpoint.name}); give trainer.max_epochs={trained + 1} or "
        "more to train on. Nothing of the run was changed."
    )


def _logged_step(state: dict) -> int | None:
    """The logging step a checkpoint was saved at (Lightning logs against training batches
    that stepped), or None if the checkpoint does not say."""
    return (
        state.get("loops", {})
        .get("fit_loop", {})
        .get("epoch_loop.state_dict", {})
        .get("_batches_that_stepped")
    )


def _hide_logs_after(cfg: DictConfig, step: int | None) -> None:
    """A run stopped between logging an epoch and saving its checkpoint logged an epoch that the
    resumed run repeats; TensorBoard's ``purge_step`` hides what was logged after the checkpoint,
    so each curve continues without a repeated point."""
    if step is None:
        return
    for entry in (cfg.get("logger") or {}).values():
        if entry and str(entry.get("_target_", "")).endswith("TensorBoardLogger"):
            with open_dict(entry):
                entry.purge_step = step
