"""Entry point: ``python -m ch12_lightning.train [group=option ...] [key=value ...]``.

Composing configs must stay cheap (``--help`` and ``--cfg job`` never import torch), so the
training code is imported only once Hydra hands over a composed config.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.checks.override_keys import unknown_keys_explained
from ch12_lightning.errors.messages import errors_as_messages


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train (and test) one run; return the metric that sweepers optimize, if one is named."""
    return job(cfg)


def job(cfg: DictConfig) -> float | None:
    """What ``main`` runs as each job, also for a sweep started from Python (``api.sweep``):
    a module-level function, which launchers that run jobs in other processes can pickle."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ch12_lightning.cluster.rank_failures import failures_reported
    from ch12_lightning.run.pipeline import run

    with errors_as_messages(), failures_reported(Path(cfg.paths.output_dir)):
        metrics = run(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    with unknown_keys_explained():
        main()
