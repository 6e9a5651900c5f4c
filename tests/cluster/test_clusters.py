"""Runs started as clusters start them, with CPU processes on this machine: torchrun on one node
and on two "nodes" on 127.0.0.1, SLURM tasks (the variables srun sets), a requeued job, a
process count that does not fit, a rank that fails and one that is killed."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers.clusters import clean_env
from tests.helpers.runs import free_port, quick, run_folders
from tests.helpers.searches import PRUNE_AT_SECOND, optuna_search, study_of

pytestmark = pytest.mark.slow

TRAIN = ["-m", "ch12_lightning.train"]


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=out)


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in processes]
    finally:
        for p in processes:
            p.kill()


def torchrun(*args: str) -> list[str]:
    return ["-m", "torch.distributed.run", *args, *TRAIN]


def slurm_env(rank: int, ntasks: int, port: int, job: str = "4242", **extra: str):
    return clean_env(
        SLURM_JOB_ID=job, SLURM_JOB_NAME="train", SLURM_STEP_ID="0", SLURM_NTASKS=str(ntasks),
        SLURM_NTASKS_PER_NODE=str(ntasks), SLURM_NNODES="1", SLURM_NODELIST="127.0.0.1",
        SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0",
        MASTER_PORT=str(port), **extra,
    )  # fmt: skip


def srun(
    args: list[str], cwd: Path, ntasks: int = 2, attempt: int = 0, **extra: str
) -> list[subprocess.Popen]:
    """``ntasks`` processes started as ``srun --ntasks-per-node=N`` starts them."""
    port = free_port()
    return [
        start(
            [*TRAIN, *args],
            cwd,
            slurm_env(rank, ntasks, port, **extra),
            cwd / f"attempt{attempt}_task{rank}.log",
        )  # fmt: skip
        for rank in range(ntasks)
    ]


def logs(cwd: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(cwd.glob("*.log")))


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def one_run(cwd: Path) -> Path:
    """The run folder, asserting that the ranks wrote one between them, recorded once."""
    (folder,) = run_folders(cwd)
    assert (folder / ".hydra" / "config.yaml").is_file()
    return folder


def ddp_args(mnist_dir: Path, cwd: Path) -> list[str]:
    # 101 validation samples: a padded split would count 102 on two ranks.
    return [*quick(mnist_dir, cwd), "accelerator=ddp_cpu", "dataset.val_size=101"]


def test_torchrun_processes_write_one_run(mnist_dir: Path, tmp_path: Path):
    args = torchrun("--standalone", "--nproc_per_node=2")
    (code,) = finish([start([*args, *ddp_args(mnist_dir, tmp_path)], tmp_path, clean_env(),
                            tmp_path / "torchrun.log")])  # fmt: skip
    assert code == 0, logs(tmp_path)[-3000:]
    run = metrics(one_run(tmp_path))["metrics"]
    assert (run["val/samples"], run["test/samples"]) == (101, 200)


def test_two_torchrun_nodes_write_one_run(mnist_dir: Path, tmp_path: Path):
    port = free_port()
    nodes = [
        start(
            [
                *torchrun(
                    "--nnodes=2",
                    f"--node_rank={node}",
                    "--nproc_per_node=1",
                    "--master_addr=127.0.0.1",
                    f"--master_port={port}",
                ),
                *ddp_args(mnist_dir, tmp_path),
                "trainer.devices=1",
                "trainer.num_nodes=2",
            ],
            tmp_path,
            clean_env(),
            tmp_path / f"node{node}.log",
        )  # fmt: skip
        for node in range(2)
    ]
    assert finish(nodes) == [0, 0], logs(tmp_path)[-3000:]
    run = metrics(one_run(tmp_path))["metrics"]
    assert (run["val/samples"], run["test/samples"]) == (101, 200)


def test_slurm_tasks_write_one_run_named_after_the_job(mnist_dir: Path, tmp_path: Path):
    assert finish(srun(ddp_args(mnist_dir, tmp_path), tmp_path)) == [0, 0], logs(tmp_path)[-3000:]
    folder = one_run(tmp_path)
    assert folder.name == "slurm-4242.0"
    run = metrics(folder)["metrics"]
    assert (run["val/samples"], run["test/samples"]) == (101, 200)


def test_ddp_sweep_on_slurm_runs_each_job_across_the_tasks(mnist_dir: Path, tmp_path: Path):
    # What submitit_slurm or `srun python -m ch12_lightning.train -m ...` does: every task runs
    # the sweep, job by job, each job one DDP run over all tasks (nothing re-runs a command).
    args = ["-m", *ddp_args(mnist_dir, tmp_path), "optimizer=sgd,adam"]
    assert finish(srun(args, tmp_path)) == [0, 0], logs(tmp_path)[-3000:]
    (sweep,) = run_folders(tmp_path, kind="multiruns")
    assert sweep.name == "slurm-4242.0"
    for job in ("0_optimizer=sgd", "1_optimizer=adam"):
        assert metrics(sweep / job)["metrics"]["val/samples"] == 101
    assert (sweep / "summary.csv").read_text().count("completed") == 2


def fake_scontrol(tmp_path: Path) -> Path:
    """An ``scontrol`` that records its arguments and, as SLURM does when it requeues a
    running job, sends SIGTERM to the job's tasks (listed in ``pids``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.calls\n'
                      f"kill -TERM $(cat {tmp_path}/pids)\n")  # fmt: skip
    script.chmod(0o755)
    return bin_dir


def first_checkpoint(cwd: Path, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    """Wait until the run below ``cwd`` has finished its first epoch, its processes running."""
    deadline = time.monotonic() + timeout
    while not list(cwd.glob("outputs/train/runs/*/checkpoints/epoch_000.ckpt")):
        assert time.monotonic() < deadline, "no epoch finished in time"
        assert all(p.poll() is None for p in processes), "a process ended before the signal"
        time.sleep(0.05)


def logged_steps(folder: Path, tag: str) -> list[int]:
    steps = []
    for events in sorted((folder / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            steps += [event.step for event in accumulator.Scalars(tag)]
    return steps


@pytest.mark.alone
def test_requeued_slurm_job_resumes_in_its_folder(mnist_dir: Path, tmp_path: Path):
    # Batches of 2: epochs long enough to signal the job in the middle of its second epoch.
    args = [*ddp_args(mnist_dir, tmp_path), "dataset.batch_size=2", "trainer.max_epochs=3"]
    path = f"{fake_scontrol(tmp_path)}:{os.environ['PATH']}"
    tasks = srun(args, tmp_path, PATH=path)
    (tmp_path / "pids").write_text(" ".join(str(p.pid) for p in tasks))
    folder = tmp_path / "outputs" / "train" / "runs" / "slurm-4242.0"
    first_checkpoint(tmp_path, tasks)
    for task in tasks:  # SLURM's warning before the time limit (sbatch --signal=USR1@90)
        task.send_signal(signal.SIGUSR1)
    codes = finish(tasks, timeout=120)  # no hang: both tasks end
    assert codes == [128 + signal.SIGTERM] * 2, logs(tmp_path)[-3000:]
    assert (tmp_path / "scontrol.calls").read_text().split() == ["requeue", "4242"]

    requeued = srun(args, tmp_path, attempt=1, SLURM_RESTART_COUNT="1")
    assert finish(requeued) == [0, 0], logs(tmp_path)[-3000:]
    assert one_run(tmp_path) == folder
    assert "Resuming" in (folder / "train.log").read_text()
    assert metrics(folder)["epochs"] == 3
    steps = logged_steps(folder, "val/acc")  # one point per epoch, none repeated
    assert len(steps) == 3 and steps == sorted(set(steps))


@pytest.mark.parametrize(
    ("launch", "expected"),
    [
        ("torchrun", "torchrun started 2 processes (2 per node on 1 node(s)), but trainer.devices "
                     "x trainer.num_nodes = 1 x 1 = 1. Set trainer.devices=2 trainer.num_nodes=1"),
        ("srun", "SLURM started 1 process (1 per node on 1 node(s)), but trainer.devices x "
                 "trainer.num_nodes = 2 x 1 = 2. Set trainer.devices=1 trainer.num_nodes=1"),
    ],
)  # fmt: skip
def test_process_count_that_does_not_fit_is_refused(launch, expected, mnist_dir, tmp_path):
    if launch == "torchrun":  # two processes, each would train a whole run of its own
        args = [*torchrun("--standalone", "--nproc_per_node=2"), *quick(mnist_dir, tmp_path)]
        processes = [start(args, tmp_path, clean_env(), tmp_path / "torchrun.log")]
    else:  # one task for two devices: Lightning would wait for a rank that never comes
        processes = srun([*quick(mnist_dir, tmp_path), "accelerator=ddp_cpu_spawn"], tmp_path, 1)
    assert finish(processes, timeout=120) != [0]
    assert expected in logs(tmp_path)
    assert not list(tmp_path.glob("outputs/train/runs/*/metrics.json"))


def test_failing_rank_is_named_in_rank_zeros_message(mnist_dir: Path, tmp_path: Path):
    # Rank 1 finds no data: it fails in setup, once the ranks have met; rank 0 sees a peer go.
    (tmp_path / "data0").symlink_to(mnist_dir)
    per_rank = f"paths.data_dir={tmp_path}/data${{oc.env:SLURM_PROCID}}"
    args = [*ddp_args(mnist_dir, tmp_path), per_rank, "dataset.download=false"]
    assert finish(srun(args, tmp_path), timeout=240) != [0, 0]
    run_log = (one_run(tmp_path) / "train.log").read_text()
    (failure,) = re.findall(r"Rank 1 of 2 failed: (.*)", run_log)  # in the run's own log
    assert (
        f"Rank 0 of 2 stopped because another rank failed (rank 1: {failure})"
        in (tmp_path / "attempt0_task0.log").read_text()
    )


@pytest.mark.alone
def test_killed_rank_is_reported_by_rank_zero(mnist_dir: Path, tmp_path: Path):
    args = [*torchrun("--standalone", "--nproc_per_node=2"), *ddp_args(mnist_dir, tmp_path),
            "dataset.batch_size=2", "trainer.max_epochs=20"]  # fmt: skip
    agent = start(args, tmp_path, clean_env(), tmp_path / "torchrun.log")
    first_checkpoint(tmp_path, [agent])
    rank_one = [p for p in _children(agent.pid) if _environ(p).get("RANK") == "1"]
    os.kill(rank_one[0], signal.SIGKILL)
    assert finish([agent], timeout=120) != [0]
    out = logs(tmp_path)
    assert "Rank 0 of 2 lost contact with the other ranks" in out
    assert "probably killed" in out


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


FAKE_SRUN = """#!{python}
# srun on one node: starts SLURM_NTASKS_PER_NODE tasks of the command, with srun's variables.
import os, subprocess, sys
tasks = int(os.environ["SLURM_NTASKS_PER_NODE"])
procs = [
    subprocess.Popen(sys.argv[1:], env={{**os.environ, "SLURM_NTASKS": str(tasks), "SLURM_PROCID":
        str(r), "SLURM_LOCALID": str(r), "SLURM_NODEID": "0", "SLURM_STEP_ID": "0"}})
    for r in range(tasks)
]
sys.exit(max(p.wait() for p in procs))
"""


def test_the_sbatch_script_trains_one_ddp_run(mnist_dir: Path, tmp_path: Path):
    # The repository's example script, as sbatch runs it: in the submit folder, under srun.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable))
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    for script in (bin_dir / "srun", venv_python):
        script.chmod(0o755)
    env = slurm_env(0, 2, free_port(), job="77", SLURM_SUBMIT_DIR=str(tmp_path),
                    SLURM_JOB_NUM_NODES="1", ACCELERATOR="ddp_cpu",
                    PATH=f"{bin_dir}:{os.environ['PATH']}")  # fmt: skip
    sbatch = Path(__file__).parents[2] / "scripts" / "slurm_ddp.sbatch"
    args = [*quick(mnist_dir, tmp_path), "dataset.val_size=101"]
    result = subprocess.run(["bash", str(sbatch), *args], env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    folder = one_run(tmp_path)
    assert folder.name == "slurm-77.0"
    assert metrics(folder)["metrics"]["val/samples"] == 101


@pytest.mark.parametrize("same_folder", [False, True])
def test_nodes_started_by_hand_share_a_folder_or_stop(same_folder, mnist_dir, tmp_path):
    # Lightning's own multi-node route: each node runs the command with NODE_RANK set.
    port = free_port()
    args = [*TRAIN, *ddp_args(mnist_dir, tmp_path), "trainer.devices=1", "trainer.num_nodes=2"]
    if same_folder:
        args.append(f"hydra.run.dir={tmp_path}/outputs/train/runs/by_hand")
    nodes = [
        start(args, tmp_path, clean_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                                        NODE_RANK=str(node)), tmp_path / f"node{node}.log")
        for node in range(2)
    ]  # fmt: skip
    codes = finish(nodes, timeout=240)
    if same_folder:
        assert codes == [0, 0], logs(tmp_path)[-3000:]
        assert metrics(one_run(tmp_path))["metrics"]["val/samples"] == 101
    else:
        assert codes[0] != 0 and codes[1] != 0
        assert "The processes of this run write into different run folders" in logs(tmp_path)
        assert "give every node the same hydra.run.dir=<folder>" in logs(tmp_path)


@pytest.mark.alone
def test_sigterm_to_torchrun_stops_one_run_with_one_resume_hint(mnist_dir, tmp_path):
    args = [*torchrun("--standalone", "--nproc_per_node=2"), *ddp_args(mnist_dir, tmp_path),
            "dataset.batch_size=2", "trainer.max_epochs=20"]  # fmt: skip
    agent = start(args, tmp_path, clean_env(), tmp_path / "torchrun.log")
    first_checkpoint(tmp_path, [agent])
    agent.send_signal(signal.SIGTERM)  # torchrun passes it on to every worker
    assert finish([agent], timeout=120) != [0]
    folder = one_run(tmp_path)
    hints = re.findall(r"Resume with ckpt_path=(\S+) ", logs(tmp_path))
    assert hints == [str(folder)]
    assert (folder / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("launch", ["torchrun", "srun"])
def test_optuna_search_of_cluster_ranks_is_one_study_and_ranks_stop_together(
    launch: str, mnist_dir: Path, tmp_path: Path
):
    # Every process runs the search command; rank 0 alone asks the study for trials, and each
    # job is one DDP run of that trial over both processes, pruned on both at once.
    args = [*optuna_search(mnist_dir, tmp_path, 2), "accelerator=ddp_cpu", "dataset.val_size=101",
            "trainer.max_epochs=4", "test=false", PRUNE_AT_SECOND]  # fmt: skip
    if launch == "torchrun":
        command = [*torchrun("--standalone", "--nproc_per_node=2"), *args]
        processes = [start(command, tmp_path, clean_env(), tmp_path / "torchrun.log")]
    else:  # under srun, rank 0 hosts the process group's store: it must end cleanly too
        processes = srun(args, tmp_path)
    assert finish(processes) == [0] * len(processes), logs(tmp_path)[-3000:]
    (sweep,) = run_folders(tmp_path, task="mnist_optuna", kind="multiruns")
    trials = study_of(sweep).trials
    assert [(t.number, t.state.name) for t in trials] == [(0, "PRUNED"), (1, "PRUNED")]
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]  # one job per trial, not per rank
    for trial, job in zip(trials, jobs, strict=True):
        assert sorted(trial.intermediate_values) == [0, 1]
        run = metrics(job)
        # Both ranks trained this trial (their folders agreed) and stopped after epoch 2 of 4.
        assert (run["epochs"], run["metrics"]["val/samples"]) == (2, 101)
