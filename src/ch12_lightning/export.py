"""Entry point: ``python -m ch12_lightning.export ckpt_path=... [output=model.pt2]``.

Writes the trained model as one ``torch.export`` file that runs without this project; torch is
imported only once Hydra hands over a composed config.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.checks.override_keys import unknown_keys_explained
from ch12_lightning.errors.messages import errors_as_messages


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="export")
def main(cfg: DictConfig) -> None:
    """Export one checkpoint's model to a .pt2 file and print its path."""
    from ch12_lightning.run.disk import full_disk_explained
    from ch12_lightning.trained.export import export_run

    cache_dir = cfg.paths.cache_dir and Path(cfg.paths.cache_dir).expanduser()
    with errors_as_messages(), full_disk_explained(Path(cfg.paths.output_dir), cache_dir):
        export_run(cfg)


if __name__ == "__main__":
    with unknown_keys_explained():
        main()
