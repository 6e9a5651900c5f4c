"""Checkpoints written whole or not at all, and read back knowing which ones load.

Lightning writes a checkpoint through fsspec into the system's temporary folder and then moves it
to its name; across filesystems that move is a copy, which a full disk (or a kill) leaves
truncated under the real name, ``last.ckpt`` included. Here a checkpoint is serialized in memory
(as Lightning does too), written beside its final path and renamed into place, so the previous
file stays whole until the new one is.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.plugins.io import AsyncCheckpointIO

from ch12_lightning.files.atomic import write_serialized_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, but a local checkpoint file is written beside its path
    and renamed into place; a full disk raises ``files.atomic.NoSpaceError`` with the size needed.
    Remote paths (``s3://`` and the like) keep Lightning's own way."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        write_serialized_atomic(path, partial(torch.save, checkpoint))


def write_checkpoints_atomically(trainer: L.Trainer) -> None:
    """Give the trainer ``AtomicCheckpointIO`` where it would use Lightning's default, also
    inside ``AsyncCheckpointIO`` (``+trainer.plugins=[...]``), which writes through it in a
    thread; any other ``CheckpointIO`` plugin the user chose is left as it is."""
    io = trainer.strategy.checkpoint_io
    if type(io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    elif type(io) is AsyncCheckpointIO and type(io.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AsyncCheckpointIO(AtomicCheckpointIO())


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint file on disk: how far it had trained, or why it does not load."""

    path: Path
    epoch: int = -1
    step: int = -1
    problem: str | None = None
    # Epochs whose training batches all ran: Lightning's own count (the fit loop's ``processed``),
    # right also for a checkpoint saved mid-epoch, where ``epoch + 1`` would count one too many.
    epochs_trained: int = 0

    @property
    def loads(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """``last.ckpt (epoch 2, step 60)``, or ``last.ckpt, which does not load (...)``."""
        if self.problem:
            return f"{self.path.name}, which {self.problem}"
        return f"{self.path.name} (epoch {self.epoch}, step {self.step})"


def inspect(path: Path) -> FoundCheckpoint:
    """Load ``path`` as resuming would (``weights_only=True``) and say how far it had trained."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, unsafe objects: all "does not load"
        # Its first sentence: torch goes on to explain weights_only or miniz at length.
        reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")
        error = f"{type(err).__name__}: {reason}" if reason else type(err).__name__
        return FoundCheckpoint(path, problem=f"does not load ({error})")
    if not isinstance(state, dict) or "state_dict" not in state:
        return FoundCheckpoint(path, problem="is not a Lightning checkpoint (no state_dict)")
    loop = state.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return FoundCheckpoint(
        path,
        int(state.get("epoch", -1)),
        int(state.get("global_step", -1)),
        epochs_trained=int(loop.get("processed", 0)),
    )


def checkpoints_in(folder: Path) -> list[FoundCheckpoint]:
    """Every ``*.ckpt`` in ``folder``: those that load first, the furthest trained first (by
    step, then epoch, then modification time: a copied folder's times say little), then the
    damaged ones."""
    found = [inspect(path) for path in folder.glob("*.ckpt") if path.is_file()]
    return sorted(
        found,
        key=lambda c: (c.loads, c.step, c.epoch, c.path.stat().st_mtime, c.path.name),
        reverse=True,
    )
