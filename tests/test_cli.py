"""The command line as a user runs it: run folders, errors, DDP, the book recipe, a wheel."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REAL_DATA

REPO = Path(__file__).resolve().parents[1]


def train(*overrides: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "ch12_lightning.train", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def quick(mnist_dir: Path, tmp_path: Path) -> list[str]:
    return [
        f"paths.data_dir={mnist_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.val_size=100",
        "trainer.max_epochs=1",
    ]


def run_folders(cwd: Path, task: str = "train", kind: str = "runs") -> list[Path]:
    return sorted((cwd / "outputs" / task / kind).iterdir())


def test_run_folder_holds_config_logs_checkpoints_metrics(mnist_dir: Path, tmp_path: Path):
    for _ in range(2):
        result = train(*quick(mnist_dir, tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    first, second = run_folders(tmp_path)  # two runs, two folders, even within one second
    assert first.name[:10].count("-") == 2 and len(first.name.split("_")[1].split("-")) == 4
    for name in (
        ".hydra/config.yaml",
        "config_resolved.yaml",
        "metrics.json",
        "checkpoints/last.ckpt",
    ):
        assert (second / name).is_file(), name
    assert list((second / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((second / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["test/acc"] <= 1.0
    # A log file gets whole lines, one per epoch, not carriage-return redraws.
    assert "\r" not in result.stdout + result.stderr
    assert "epoch 1/1" in result.stdout + result.stderr


def test_missing_data_stops_before_training(tmp_path: Path):
    result = train(
        f"paths.data_dir={tmp_path / 'empty'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.download=false",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "MNIST was not found in" in result.stderr
    assert "train-images-idx3-ubyte.gz" in result.stderr
    assert "epoch 1/" not in result.stdout + result.stderr


def test_data_dir_from_environment(mnist_dir: Path, tmp_path: Path):
    result = train(
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.val_size=100",
        "trainer.max_epochs=1",
        cwd=tmp_path,
        env={"CH12_DATA_DIR": str(mnist_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_ddp_cpu_two_processes_one_run_folder(mnist_dir: Path, tmp_path: Path):
    ddp = ["accelerator=ddp_cpu", "trainer.max_epochs=3", "dataset.batch_size=16"]
    result = train(*quick(mnist_dir, tmp_path), *ddp, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = run_folders(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] > 0.5
    # Only rank 0 writes logs: every event file carries the same process id.
    event_files = list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert event_files and len({name.name.split(".")[-2] for name in event_files}) == 1


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_book_recipe_on_real_mnist(tmp_path: Path):
    """784-32-16-10 ReLU, Adam 1e-3, batch 64, 20 epochs: the book reports 0.9645."""
    args = [f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = train("experiment=mnist_book", *args, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = run_folders(tmp_path, task="mnist_book")
    written = json.loads((folder / "metrics.json").read_text())
    assert written["epochs"] == 20
    assert written["metrics"]["test/acc"] >= 0.96


@pytest.mark.slow
def test_installed_wheel_finds_its_configs(tmp_path: Path):
    build = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "ch12_lightning" / "conf" / "train.yaml").is_file()
    plugin = site / "hydra_plugins" / "ch12_optuna_sweeper" / "resumable_optuna_sweeper.py"
    assert plugin.is_file() and not (site / "hydra_plugins" / "__init__.py").exists()  # namespace
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import ch12_lightning; print(ch12_lightning.__file__, ch12_lightning.config_dir())"
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert where.stdout.split() == [
        str(site / "ch12_lightning" / "__init__.py"),
        str(site / "ch12_lightning" / "conf"),
    ], where.stderr
    result = train("--cfg", "job", "optimizer=sgd", cwd=elsewhere, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0 and "name: sgd" in result.stdout, result.stderr
