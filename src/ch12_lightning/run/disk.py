"""A full disk, told in one message: where, how much was needed and is free, what is intact.

Without this, a disk that fills during a run ends it with a long traceback from whichever write
failed first (a checkpoint, an event file, a picture), and the user must work out what is left.
Every file of ours is written beside its path and renamed into place, so nothing is left
half-written; the message lists the checkpoints that load, to resume from once there is room.
"""

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from ch12_lightning.data.cache_folder import human_size
from ch12_lightning.errors import DiskFullError
from ch12_lightning.files.atomic import NO_SPACE, NoSpaceError
from ch12_lightning.run.checkpoints import checkpoints_in
from ch12_lightning.run.resume import CHECKPOINTS


@contextmanager
def full_disk_explained(run_folder: Path, cache_dir: Path | None) -> Iterator[None]:
    """Turn a write that found no space, anywhere in the block, into a ``DiskFullError``.

    ``cache_dir`` (None where the command takes it from a trained run) picks the advice for a
    cache write.
    """
    threads_hook = threading.excepthook
    threading.excepthook = partial(_quiet_when_full, threads_hook)
    try:
        yield
    except Exception as err:
        cause = _no_space(err)
        if cause is None:
            raise
        # Log lines cannot be written to the full disk either; Python's logging would print a
        # traceback for each one it drops on the way out.
        logging.raiseExceptions = False
        raise DiskFullError(_message(cause, run_folder, cache_dir)) from err
    finally:
        threading.excepthook = threads_hook


def _quiet_when_full(hook: Callable[[Any], None], args: Any) -> None:
    """Leave out a background writer's traceback for a full disk: TensorBoard's event writer
    hands its error to the main thread's next write, which this module then explains."""
    if _no_space(args.exc_value) is None:
        hook(args)


def _no_space(err: BaseException | None) -> OSError | None:
    """The out-of-space error behind ``err``, however Lightning or a logger wrapped it."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            return err
        err = err.__cause__ or err.__context__
    return None


def _message(cause: OSError, run_folder: Path, cache_dir: Path | None) -> str:
    path = Path(cause.filename) if cause.filename else None
    folder = path.parent if path else run_folder
    needed = getattr(cause, "needed", None)
    what = f"writing {path}" if path else f"a write into {folder} found no room"
    if needed is not None:
        what += f" needed {human_size(needed)}"
    lines = [
        f"The disk is full: {what}, and {_free(folder)} are free there ({cause.strerror}). "
        + (
            "Nothing was left half-written."
            if isinstance(cause, NoSpaceError)
            else "Checkpoints, metrics and pictures are written whole or not at all; a "
            "TensorBoard event file keeps every record before the cut (TensorBoard skips a "
            "partial last one)."
        )
    ]
    if path and cache_dir and path.is_relative_to(cache_dir):
        lines.append(
            f"The cache folder {cache_dir} is on that disk: free space there (./ch12 cache prune "
            "removes old CelebA caches) or point paths.cache_dir at a larger disk, and run again."
        )
        return "\n".join(lines)
    checkpoints = run_folder / CHECKPOINTS
    intact = [c for c in checkpoints_in(checkpoints) if c.loads]
    if intact:
        listed = ", ".join(c.describe() for c in intact)
        lines.append(f"Intact checkpoints in {checkpoints}: {listed}.")
        lines.append(
            "Free space on that disk, or move the run folder to a larger one, then resume with "
            f"ckpt_path=<run folder> (here: ckpt_path={run_folder})."
        )
    else:
        none = "No checkpoint of this run was written yet. " if checkpoints.is_dir() else ""
        lines.append(
            f"{none}Free space on that disk, or point hydra.run.dir (or paths.log_dir) at a "
            "larger one, and run again."
        )
    return "\n".join(lines)


def _free(folder: Path) -> str:
    """Free space on ``folder``'s disk (of its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return human_size(shutil.disk_usage(folder).free)
