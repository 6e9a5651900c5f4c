"""The project run as tests need it: the command line in a new process (where the command, its
output, exit status, signals or separate processes are what is tested), or the same run in this
process (everywhere else: no new process pays Lightning's import of about 5 s)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ch12_lightning import config_dir

REPO = Path(__file__).resolve().parents[2]
# The real data sets (../shared/data), set by .ci/run; the tests that need them skip without.
REAL_DATA = os.environ.get("CH12_REAL_DATA")


def quick(
    mnist_dir: Path, tmp_path: Path, epochs: int = 1, batch_size: int | None = None
) -> list[str]:
    """Overrides for a run of a few seconds on the generated MNIST data (``mnist_dir``: 500
    training, 100 validation and 200 test digits), its cache below ``tmp_path``. Every quick
    run of the suite starts from these; the run folder is the command's (below its ``cwd``)
    unless the overrides add one (``in_folder``)."""
    overrides = [
        f"paths.data_dir={mnist_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.val_size=100",
        f"trainer.max_epochs={epochs}",
    ]
    return [*overrides, f"dataset.batch_size={batch_size}"] if batch_size else overrides


def in_folder(tmp_path: Path) -> list[str]:
    """Overrides that keep everything a run writes below ``tmp_path``; its folder ``run``."""
    return [
        f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'run'}",
    ]


def command(
    module: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess:
    """``python -m ch12_lightning.<module> args...`` in ``cwd`` (None: the test's own folder),
    as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"ch12_lightning.{module}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def train(
    *overrides: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``python -m ch12_lightning.train overrides...`` in ``cwd``."""
    return command("train", *overrides, cwd=cwd, env=env, timeout=timeout)


def train_here(*overrides: str, cwd: Path) -> Path:
    """In this process, the run that ``train(*overrides, cwd=cwd)`` makes: the same Hydra job
    (config, checks, pipeline, run folder below ``cwd/outputs`` with its log file), as
    ``api.train`` runs it; the folder trained in (a resumed run's own). Errors are raised."""
    from ch12_lightning.api.hydra_jobs import run_job
    from ch12_lightning.run.pipeline import run

    def job(cfg: DictConfig) -> Path:
        run(cfg)
        return Path(cfg.paths.output_dir)

    return run_job("train", [f"paths.root_dir={cwd}", *overrides], job)


def run_folders(cwd: Path, task: str = "train", kind: str = "runs") -> list[Path]:
    """The run (or sweep) folders that commands run in ``cwd`` made, oldest first."""
    return sorted((cwd / "outputs" / task / kind).iterdir())


def compose_config(overrides: list[str], name: str = "train") -> DictConfig:
    """Compose conf/<name>.yaml as the command line would, without starting a Hydra run."""
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(name, overrides=overrides)


def trained_run_config(name: str, tmp_path: Path, *overrides: str) -> DictConfig:
    """conf/<name>.yaml (eval, predict, export) as the command line composes it, writing below
    ``tmp_path/out``."""
    return compose_config([*overrides, f"paths.output_dir={tmp_path / 'out'}"], name)


def with_output_dir(overrides: list[str], output_dir: Path) -> list[str]:
    """The same overrides with another run folder."""
    kept = [o for o in overrides if not o.startswith("paths.output_dir=")]
    return [*kept, f"paths.output_dir={output_dir}"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (tests may run side by side)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
