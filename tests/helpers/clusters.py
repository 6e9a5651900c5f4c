"""The environment of processes that a cluster launcher (torchrun, srun) starts."""

import os

LAUNCHER_VARIABLES = ("SLURM_", "TORCHELASTIC_", "MASTER_", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                      "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """This test process's environment without any launcher's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    return {**env, **extra}
