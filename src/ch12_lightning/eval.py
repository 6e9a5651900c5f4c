"""Entry point: ``python -m ch12_lightning.eval ckpt_path=<checkpoint or run folder> [split=val]``.

Evaluates a trained checkpoint with the dataset config of the run that wrote it; torch is
imported only once Hydra hands over a composed config.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.checks.override_keys import unknown_keys_explained
from ch12_lightning.errors.messages import errors_as_messages


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Evaluate one checkpoint: print the metrics, write them to this command's folder."""
    from ch12_lightning.run.disk import full_disk_explained
    from ch12_lightning.trained.evaluate import evaluate

    cache_dir = cfg.paths.cache_dir and Path(cfg.paths.cache_dir).expanduser()
    with errors_as_messages(), full_disk_explained(Path(cfg.paths.output_dir), cache_dir):
        evaluate(cfg)


if __name__ == "__main__":
    with unknown_keys_explained():
        main()
