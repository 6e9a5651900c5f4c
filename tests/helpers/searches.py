"""Optuna searches over quick runs, and their studies read back."""

from pathlib import Path

import optuna

from tests.helpers.runs import quick

# Prunes every trial at its second validation: what pruning does, without depending on chance.
PRUNE_AT_SECOND = (
    "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:2,n_warmup_steps:1}"
)


def optuna_search(mnist_dir: Path, tmp_path: Path, trials: int) -> list[str]:
    return ["hparams_search=mnist_optuna", f"hydra.sweeper.n_trials={trials}",
            *quick(mnist_dir, tmp_path)]  # fmt: skip


def study_of(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name="mnist_optuna", storage=f"sqlite:///{sweep}/optuna.db")
