"""A rank's failure told where the user looks: in rank 0's message and in the run's log.

When one process of a DDP run fails, the others learn only that a peer went away (gloo:
"Connection closed by peer"), or torchrun stops them; rank 0's message then says nothing of the
cause. Each failing rank other than 0 leaves a one-line report in the run folder, which every
rank shares, and logs it (all ranks log into the run's ``train.log``); rank 0 gathers the reports
into its message when a peer's failure stopped it (its own errors Hydra prints anyway). A rank
killed outright (kill -9, the out-of-memory killer) leaves none, and rank 0 says so: the
launcher's summary (torchrun's "Root Cause", SLURM's job state) names it. Under torchrun the
exception also goes into the error file torchrun reads for that summary.
"""

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

from ch12_lightning.cluster.launch import external_environment
from ch12_lightning.errors import PeerLostError
from ch12_lightning.files.atomic import write_text_atomic

log = logging.getLogger(__name__)

REPORTS = "rank_failures"
# Ranks start within seconds of each other; a report older than this process (less this margin)
# is from an earlier attempt of the same run (a requeued job's first try).
START_SKEW_S = 30


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the run's process count, from the process group once it exists,
    before that from the launcher (torchrun, srun, or Lightning's own, which sets WORLD_SIZE)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    environment = external_environment()
    if environment is not None:
        return environment.global_rank(), environment.world_size()
    return int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextmanager
def failures_reported(run_folder: Path) -> Iterator[None]:
    """Report an exception leaving the block, if this process is one rank of several."""
    started = time.time()
    try:
        yield
    except Exception as err:
        ErrorHandler().record_exception(err)  # only where torchrun asked for it
        rank, world = rank_and_world()
        if world > 1:
            _report(err, rank, world, run_folder, since=started - START_SKEW_S)
            if rank != 0 and _lost_a_peer(err):
                # Where it waited is no news; the rank that failed first tells the cause.
                raise PeerLostError(
                    f"Rank {rank} of {world} lost contact with the other ranks ({_one_line(err)}); "
                    "the rank that failed first says why: rank 0's message, or the launcher's "
                    "summary if a rank was killed."
                ) from err
        raise


def _one_line(err: Exception) -> str:
    return f"{type(err).__name__}: {err}".strip().splitlines()[0]


def _report(err: Exception, rank: int, world: int, run_folder: Path, since: float) -> None:
    what = _one_line(err)
    if rank != 0:
        # On a full disk the report cannot be written; the rank's own error must still go up.
        with suppress(OSError):
            write_text_atomic(run_folder / REPORTS / f"rank_{rank}.txt", what + "\n")
        log.error("Rank %d of %d failed: %s", rank, world, what)
        return
    reports = [
        p for p in sorted((run_folder / REPORTS).glob("rank_*.txt")) if p.stat().st_mtime > since
    ]
    if reports:
        first = "; ".join(f"{p.stem.replace('_', ' ')}: {p.read_text().strip()}" for p in reports)
        log.error("Rank 0 of %d stopped because another rank failed (%s); rank 0 then saw %s",
                  world, first, what)  # fmt: skip
    elif _lost_a_peer(err):
        log.error(
            "Rank 0 of %d lost contact with the other ranks (%s). None of them reported an "
            "error, so one was probably killed (kill -9, the out-of-memory killer) or lost its "
            "node; the launcher's summary (torchrun's Root Cause, SLURM's job state) names it.",
            world,
            what,
        )


def _lost_a_peer(err: Exception) -> bool:
    """A collective that failed because another process went away (gloo says "by peer")."""
    return isinstance(err, dist.DistError) or "by peer" in str(err)
