"""How the processes of one run, started by a cluster, agree on its folder and its size (fast:
the launchers' variables are set in this process; tests/test_clusters.py starts real ones)."""

import pytest

from ch12_lightning.cluster.launch import is_rank_zero, process_count_mismatch, run_name
from tests.helpers.clusters import LAUNCHER_VARIABLES

STAMP = "2026-12-02_10-00-00-000000"
SRUN = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
        "SLURM_NODEID": "0", "SLURM_STEP_ID": "3"}  # fmt: skip


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch):
    """Set a launcher's variables, after clearing any this test process inherited."""
    import os

    for name in list(os.environ):
        if name.startswith(LAUNCHER_VARIABLES):
            monkeypatch.delenv(name)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({}, STAMP),  # Lightning's own launcher passes its folder to the ranks it starts
        (SRUN, "slurm-4242.3"),
        ({**SRUN, "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "7"}, "slurm-100_7.3"),
        # The job script itself (SLURM's batch step): each command keeps its own folder.
        ({**SRUN, "SLURM_NTASKS": "1", "SLURM_STEP_ID": str(0xFFFFFFFB)}, STAMP),
        ({key: v for key, v in SRUN.items() if key != "SLURM_STEP_ID"}, STAMP),
        # An interactive allocation is not SLURM to Lightning either.
        ({**SRUN, "SLURM_JOB_NAME": "bash"}, STAMP),
    ],
)
def test_run_folder_name(launched, variables: dict[str, str], name: str):
    launched(**variables)
    assert run_name(STAMP) == name


def test_rank_zero_is_the_launchers(launched):
    launched(**SRUN)
    assert not is_rank_zero()
    launched(SLURM_PROCID="0")
    assert is_rank_zero()


def test_process_count_must_be_devices_times_nodes(launched):
    launched(**{**SRUN, "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4(x2)"})
    assert process_count_mismatch(4, 2) is None
    assert process_count_mismatch(4, 1) == (
        "SLURM started 8 processes (4 per node on 2 node(s)), but trainer.devices x "
        "trainer.num_nodes = 4 x 1 = 4. Set trainer.devices=4 trainer.num_nodes=2 with a DDP "
        "accelerator (accelerator=ddp on GPUs, ddp_cpu on CPUs), or start one process per device."
    )


def test_no_launcher_no_count_to_check(launched):
    assert process_count_mismatch(1, 1) is None
