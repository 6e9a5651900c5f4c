"""Chapter 12 of *Machine Learning with PyTorch and Scikit-Learn* as a Lightning + Hydra project."""

import os
from pathlib import Path

from omegaconf import OmegaConf


def _run_name(own_stamp: str) -> str:
    from ch12_lightning.cluster.launch import run_name  # imports Lightning: only when a run starts

    return run_name(own_stamp)


def _output_subdir() -> str | None:
    from ch12_lightning.run.folder_lock import hydra_record

    return hydra_record()


def _job_folder(*args: object) -> str:
    from ch12_lightning.sweeps.names import job_folder

    return job_folder(*args)


# The configs resolve folders against the working directory with ${ch12.cwd:}. Hydra's own
# ${hydra:runtime.cwd} cannot serve: sweepers resolve hydra.sweep.dir before a job exists.
# ${ch12.run_name:<stamp>} names a run or sweep folder the same in every process of a run
# started by torchrun or srun. Cached, as Hydra's ${now:} is, so that a sweep's jobs (submitit
# copies the sweep's resolver cache into each job) see the name the sweep chose.
# ${ch12.job_folder:...} names a sweep's job folder by what the sweep varies.
OMEGACONF_RESOLVERS = {
    "ch12.cwd": (os.getcwd, False),
    "ch12.run_name": (_run_name, True),
    "ch12.output_subdir": (_output_subdir, False),
    "ch12.job_folder": (_job_folder, False),
}
for _name, (_resolver, _cached) in OMEGACONF_RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _resolver, replace=True, use_cache=_cached)


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
