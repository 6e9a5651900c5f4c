"""Chapter 12 of *Machine Learning with PyTorch and Scikit-Learn* as a Lightning + Hydra project."""

import os
from pathlib import Path

from omegaconf import OmegaConf

# The configs resolve folders against the working directory with ${ch12.cwd:}. Hydra's own
# ${hydra:runtime.cwd} cannot serve: sweepers resolve hydra.sweep.dir before a job exists.
OMEGACONF_RESOLVERS = {"ch12.cwd": os.getcwd}
for _name, _resolver in OMEGACONF_RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _resolver, replace=True)


def config_dir() -> Path:
    """Return the folder holding the Hydra configs.

    A wheel ships them inside the package (``ch12_lightning/conf``); a source checkout or an
    editable install keeps them at the top of the repository (``conf/``).
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"No Hydra configs (train.yaml) in {package / 'conf'} or {package.parents[1] / 'conf'}"
    )
