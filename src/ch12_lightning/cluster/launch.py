"""Runs whose processes a cluster starts: torchrun, SLURM's srun, several nodes.

Lightning's own DDP launcher hands its children the parent's run folder. Processes started by
torchrun or srun each compose their config themselves, so everything they must agree on is
derived here from what their launcher gives all of them alike: the job's id on SLURM, rank 0's
choice shared through torchrun's own store. The environments are Lightning's, detected in
Lightning's order, so this module and the Trainer always agree on who started the processes.
"""

import functools
import logging
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from types import FrameType

import lightning as L
import torch.distributed as dist
from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch.callbacks import Callback

from ch12_lightning.errors import ConfigError

log = logging.getLogger(__name__)

LAUNCHER_NAMES = {SLURMEnvironment: "SLURM", TorchElasticEnvironment: "torchrun"}


def external_environment() -> ClusterEnvironment | None:
    """The environment of a launcher that started this process itself (SLURM first, as in
    Lightning's accelerator connector), or None when Lightning starts the processes."""
    for kind in LAUNCHER_NAMES:
        if kind.detect():
            return kind()
    return None


def on_slurm() -> bool:
    """Whether SLURM started this process (as Lightning detects it)."""
    return isinstance(external_environment(), SLURMEnvironment)


def is_rank_zero() -> bool:
    """Whether this process is the run's rank 0, as its launcher says: torchrun and srun set the
    rank of every process; Lightning's launcher sets ``LOCAL_RANK`` in the children it starts
    and ``NODE_RANK`` tells the nodes apart."""
    environment = external_environment()
    if environment is not None:
        return environment.global_rank() == 0
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def run_name(own_stamp: str) -> str:
    """The name of this run's folder, the same in every process of the run.

    ``own_stamp`` is this process's own timestamp (Hydra's ``${now:}``). Under srun the folder
    is named after the job and its step: every ``srun`` of a job script is a step of its own,
    and a requeued job runs the same steps again, so it finds its folders again. A command the
    job script runs without srun (one task, SLURM's batch step) keeps its timestamp, as several
    such commands in one script would otherwise share a folder. Under torchrun rank 0's
    timestamp is shared through the store torchrun runs for its workers (the first name
    published stays, so a restarted worker group keeps its folder).
    """
    environment = external_environment()
    if isinstance(environment, SLURMEnvironment) and _slurm_step() is not None:
        return f"slurm-{_slurm_job()}.{_slurm_step()}"
    if isinstance(environment, TorchElasticEnvironment) and environment.world_size() > 1:
        return _shared_through_torchrun(own_stamp, environment.global_rank())
    return own_stamp


def _slurm_job() -> str:
    """The job's id as ``scontrol`` takes it (``<array job>_<task>`` for an array's task)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


# SLURM numbers its special steps (batch script, extern, interactive) from 0xFFFFFFF0 up.
SPECIAL_STEPS = 0xFFFFFFF0


def _slurm_step() -> str | None:
    """The id of the srun step this process belongs to, or None in the job script itself."""
    step = os.environ.get("SLURM_STEP_ID", "")
    return step if step.isdigit() and int(step) < SPECIAL_STEPS else None


@functools.cache
def _shared_through_torchrun(own_stamp: str, rank: int) -> str:
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(minutes=5),
    )
    key = f"ch12_lightning/run_name/{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}"
    if rank == 0 and not store.check([key]):
        store.set(key, own_stamp)
    return store.get(key).decode()


def restarted_by_launcher() -> bool:
    """SLURM requeued this job or torchrun restarted its worker group: the run goes on."""
    return any(
        int(os.environ.get(name, 0)) > 0
        for name in ("SLURM_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT")
    )


def process_count_mismatch(devices: int, num_nodes: int) -> str | None:
    """Why ``devices x num_nodes`` does not fit the processes an external launcher started
    (each would otherwise train a whole run of its own, or wait for ranks that never come)."""
    environment = external_environment()
    if environment is None:
        return None
    processes = environment.world_size()
    if devices * num_nodes == processes:
        return None
    who = LAUNCHER_NAMES[type(environment)]
    per_node = _processes_per_node(environment)
    nodes = max(processes // per_node, 1)
    return (
        f"{who} started {processes} process{'es' if processes > 1 else ''} ({per_node} per "
        f"node on {nodes} node(s)), but "
        f"trainer.devices x trainer.num_nodes = {devices} x {num_nodes} = {devices * num_nodes}. "
        f"Set trainer.devices={per_node} trainer.num_nodes={nodes} with a DDP accelerator "
        "(accelerator=ddp on GPUs, ddp_cpu on CPUs), or start one process per device."
    )


def _processes_per_node(environment: ClusterEnvironment) -> int:
    if isinstance(environment, SLURMEnvironment):
        # srun writes tasks per node as e.g. "2" or "2(x3)".
        return int(os.environ.get("SLURM_NTASKS_PER_NODE", environment.world_size()).split("(")[0])
    return int(os.environ.get("LOCAL_WORLD_SIZE", environment.world_size()))


class SignalsWithoutCollectives(Callback):
    """Lightning's handlers of SIGTERM and SLURM's requeue signal, without their collectives.

    Lightning's SIGTERM handler broadcasts from inside the handler, and its SLURM handler
    (SIGUSR1) saves a checkpoint there; a signal arrives while a rank is anywhere, such as in a
    gradient all-reduce, so that collective meets another and every rank hangs until the DDP
    timeout (2 of 3 requeues hung here; Lightning #20806, #21406). Rank 0's stop reaches the
    other ranks anyway, through the broadcast Lightning makes at every training step.

    These handlers only note the signal. SIGTERM: the run stops at the next step, as Lightning
    stops it. SLURM's warning before the time limit (``sbatch --signal=USR1@90``): rank 0 asks
    SLURM to requeue the job; SLURM then sends SIGTERM, and the requeued job resumes in the same
    folder from the checkpoint of the last finished epoch. Lightning registers its handlers once
    fit has begun, so these replace them when training starts, and Lightning's teardown puts the
    original handlers back.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Single-device strategies have no cluster environment: Lightning's connector knows it.
        environment = trainer._accelerator_connector.cluster_environment
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            signum = environment.requeue_signal or signal.SIGUSR1
            signal.signal(signum, functools.partial(_requeue, trainer.global_rank))
        if trainer.world_size > 1:
            signal.signal(signal.SIGTERM, functools.partial(_note_sigterm, trainer))


def _note_sigterm(trainer: L.Trainer, signum: int, _: FrameType | None) -> None:
    log.info("[rank %d] Received SIGTERM: the run stops after this step", trainer.global_rank)
    connector = trainer._signal_connector  # Lightning's own flag, read by its loops
    if not connector.received_sigterm and trainer.strategy.launcher is not None:
        trainer.strategy.launcher.kill(signum)  # the ranks Lightning started, as Lightning does
    connector.received_sigterm = True


def _requeue(rank: int, signum: int, _: FrameType | None) -> None:
    if rank == 0:
        job = _slurm_job()
        log.warning("SLURM signal %d (time limit near): requeueing job %s", signum, job)
        try:
            subprocess.Popen(["scontrol", "requeue", job])
        except OSError as err:
            log.error("Could not requeue SLURM job %s: %s", job, err)


class OneRunFolder(Callback):
    """Stop a run whose ranks write into different folders, before it trains.

    torchrun and srun ranks agree on their folder by themselves; ranks that a person starts by
    hand on several nodes (``NODE_RANK=1 python -m ch12_lightning.train ...``) each name their
    own unless every node is given the same ``hydra.run.dir``.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not (dist.is_available() and dist.is_initialized()) or trainer.world_size == 1:
            return
        folders: list[str | None] = [None] * trainer.world_size
        dist.all_gather_object(folders, str(Path(trainer.default_root_dir).resolve()))
        if len(set(folders)) > 1:
            apart = ", ".join(
                f"rank {rank}: {where}" for rank, where in enumerate(folders) if where != folders[0]
            )
            raise ConfigError(
                f"The processes of this run write into different run folders (rank 0: "
                f"{folders[0]}; {apart}). Start the ranks with torchrun or srun, which agree on "
                "one folder, or give every node the same hydra.run.dir=<folder>."
            )
