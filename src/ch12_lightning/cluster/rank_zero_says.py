"""What rank 0 decides, given to the other processes that torchrun or srun started.

Each of those processes runs the whole command, a sweep included, as one rank of every job. A
sweep whose jobs are fixed in advance needs nothing more; an Optuna search asks its study for
each trial, and one process alone may: rank 0 asks and tells, and sends each batch of trials
to the others through torch.distributed. The process group it starts is the one the jobs' DDP
then uses (Lightning keeps a group it finds started): gloo on CPUs, NCCL for CUDA tensors.
"""

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist

from ch12_lightning.cluster.launch import external_environment


def cluster_rank() -> int | None:
    """This process's rank where torchrun or srun started several, else None."""
    environment = external_environment()
    if environment is None or environment.world_size() < 2:
        return None
    return environment.global_rank()


def rank_zero_says(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (the other ranks' own are ignored)."""
    if not dist.is_initialized():
        environment = external_environment()
        os.environ["MASTER_ADDR"] = environment.main_address
        os.environ["MASTER_PORT"] = str(environment.main_port)
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(
            backend, rank=environment.global_rank(), world_size=environment.world_size()
        )
        # As Lightning does for a group it starts: left to the interpreter's shutdown, the store
        # rank 0 hosts under srun aborts the process ("terminate called without an active
        # exception").
        atexit.register(_destroy_process_group)
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
