"""Entry point: ``python -m ch12_lightning.eval ckpt_path=<checkpoint or run folder> [split=val]``.

Evaluates a trained checkpoint with the dataset config of the run that wrote it; torch is
imported only once Hydra hands over a composed config.
"""

import hydra
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.cli import input_errors_as_messages


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    """Evaluate one checkpoint: print the metrics, write them to this command's folder."""
    from ch12_lightning.trained.evaluate import evaluate

    with input_errors_as_messages():
        evaluate(cfg)


if __name__ == "__main__":
    main()
