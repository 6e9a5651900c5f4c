"""One run per folder: a run (or sweep) folder is locked while a process writes into it.

Two processes given the same folder (``output_dir``, ``hydra.run.dir``, a resume of a run that
is still going) would mix one ``train.log``, write over each other's checkpoints,
``metrics.json`` and Hydra's record of the config, and both end with status 0. The second one
is refused instead, with the folder and the process that holds it.

The lock is the operating system's (``fcntl.flock`` on ``<folder>/.lock``): it goes with the
process, however the process ends, so a run killed with ``kill -9`` never leaves its folder
locked and its resume is never blocked. The file stays (removing it would let two processes
lock two different files of one name); it holds the process id and host of its last holder.

Hydra makes a job's folder, opens its log file there (to append) and saves its record of the
config (``.hydra/``) before the job's own code starts, and Hydra's callbacks cannot stop a job.
The lock is therefore taken where Hydra asks for the record's folder (``hydra.output_subdir``,
``hydra_record``): a folder that another process holds gets no record, and the job's code
(``run.pipeline``) refuses before writing anything, so that nothing is appended to the other
run's log and none of its files is replaced. Only rank 0 of a DDP run locks: the other ranks
(Lightning's re-run of the command, torchrun's, srun's) write into the folder their rank 0
holds, and forked or spawned ranks share its lock.
"""

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ch12_lightning.errors import FolderInUse

LOCK_FILE = ".lock"
# What a folder is held for: what the holder is called in the message, and what to do instead.
PURPOSES = {
    "run": (
        "run",
        "Give this run a folder of its own (another output_dir or hydra.run.dir), or leave the "
        "folder out for a new one.",
    ),
    "resume": ("run", "That run is still going: resume it once it has stopped."),
    "sweep": (
        "sweep",
        "Give this sweep a folder of its own (another sweep_dir or hydra.sweep.dir), or wait "
        "until the other one ends.",
    ),
}

# The folders this process holds, and the open lock file of each.
_held: dict[Path, int] = {}


def hold(folder: str | Path, purpose: str = "run") -> None:
    """Lock ``folder`` for this process, creating it; raise ``FolderInUse`` if another process
    holds it, saying what to do for ``purpose`` (``PURPOSES``). Holding it already, or not being
    rank 0, is not an error."""
    from ch12_lightning.cluster.launch import is_rank_zero  # imports Lightning: runs have it

    folder = Path(folder).resolve()
    if folder in _held or not is_rank_zero():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").split()
        os.close(fd)
        who = f"process {holder[0]} on {holder[1]}" if len(holder) == 2 else "another process"
        kind, advice = PURPOSES[purpose]
        raise FolderInUse(
            f"{folder} is in use: another {kind} ({who}) is writing into it, and a folder holds "
            f"one {kind} at a time. {advice}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _held[folder] = fd


def release(folder: str | Path) -> None:
    """Unlock ``folder`` if this process holds it."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)  # releases the lock, once the ranks forked from this process have ended


@contextmanager
def released_at_end() -> Iterator[None]:
    """The folders locked in the block are unlocked when it ends, however it ends: a notebook's
    process lives on after a run it started, also after an interrupted one."""
    before = set(_held)
    try:
        yield
    finally:
        for folder in set(_held) - before:
            release(folder)


def hydra_record() -> str | None:
    """Where Hydra records a job's config in its folder (``hydra.output_subdir``): ``.hydra``,
    the folder then held by this process; nowhere in a folder that another process holds, or
    in a rank other than 0 (rank 0 records it)."""
    from hydra.core.hydra_config import HydraConfig

    from ch12_lightning.cluster.launch import is_rank_zero

    if not is_rank_zero():
        return None
    try:
        hold(HydraConfig.get().runtime.output_dir)
    except FolderInUse:
        return None  # the job refuses as it starts
    return ".hydra"


class RunFolderLock(Callback):
    """Unlocks a job's folder when the job ends (registered in ``hydra.callbacks``,
    conf/train.yaml): the processes of a launcher (joblib's) live on and run other jobs."""

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(config.hydra.runtime.output_dir)
