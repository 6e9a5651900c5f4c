"""Entry point: ``python -m ch12_lightning.train [group=option ...] [key=value ...]``.

Composing configs must stay cheap (``--help`` and ``--cfg job`` never import torch), so the
training code is imported only once Hydra hands over a composed config.
"""

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.errors import InputError


class InvalidInput(CompactHydraException):
    """Bad input (a config value, a data file, a checkpoint). Hydra prints the message of a
    ``CompactHydraException`` alone, without a traceback, exits with status 1, and shows the
    whole trace, the original error's included, with ``HYDRA_FULL_ERROR=1``."""


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train (and test) one run; return the metric that sweepers optimize, if one is named."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ch12_lightning.pipeline import run

    try:
        metrics = run(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    except InputError as err:
        raise InvalidInput(str(err)) from err
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
