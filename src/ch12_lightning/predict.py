"""Entry point: ``python -m ch12_lightning.predict ckpt_path=... inputs=<image files or folder>``.

Prints the predicted class and its probability per image; torch is imported only once Hydra
hands over a composed config.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ch12_lightning import config_dir
from ch12_lightning.checks.override_keys import unknown_keys_explained
from ch12_lightning.errors.messages import errors_as_messages


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="predict")
def main(cfg: DictConfig) -> None:
    """Predict the class of each image; print them and write the CSV."""
    from ch12_lightning.run.disk import full_disk_explained
    from ch12_lightning.trained.predict import predict_files

    cache_dir = cfg.paths.cache_dir and Path(cfg.paths.cache_dir).expanduser()
    with errors_as_messages(), full_disk_explained(Path(cfg.paths.output_dir), cache_dir):
        predict_files(cfg)


if __name__ == "__main__":
    with unknown_keys_explained():
        main()
