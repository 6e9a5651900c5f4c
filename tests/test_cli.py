"""The command line as a user runs it: run folders, errors, DDP, the book recipe, a wheel."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ch12_lightning import api
from tests.helpers.runs import REAL_DATA, REPO, quick, run_folders, train, train_here


def test_run_folder_holds_config_logs_checkpoints_metrics(mnist_dir: Path, tmp_path: Path):
    result = train(*quick(mnist_dir, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = run_folders(tmp_path)
    assert folder.name[:10].count("-") == 2 and len(folder.name.split("_")[1].split("-")) == 4
    for name in (
        ".hydra/config.yaml",
        "config_resolved.yaml",
        "metrics.json",
        "checkpoints/last.ckpt",
    ):
        assert (folder / name).is_file(), name
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["test/acc"] <= 1.0
    # A log file gets whole lines, one per epoch, not carriage-return redraws.
    assert "\r" not in result.stdout + result.stderr
    assert "epoch 1/1" in result.stdout + result.stderr


def test_two_runs_started_within_one_second_get_two_folders(tmp_path: Path):
    """Run folders are named to the microsecond (Hydra's default, to the second, would put
    both runs into one folder)."""
    first, second = (Path(api.compose([f"paths.root_dir={tmp_path}"]).paths.output_dir)
                     for _ in range(2))  # fmt: skip
    assert first.parent == second.parent == tmp_path / "outputs" / "train" / "runs"
    assert first.name != second.name and first.name.rsplit("-", 1)[1].isdigit()


# The message in this process: tests/data/test_mnist.py; printed alone: tests/checks/.
@pytest.mark.slow
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


def test_data_dir_from_environment(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CH12_DATA_DIR", str(mnist_dir))
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    folder = train_here(cache, "dataset.val_size=100", "trainer.max_epochs=1", cwd=tmp_path)
    assert f"data_dir: {mnist_dir}\n" in (folder / "config_resolved.yaml").read_text()
    assert (folder / "metrics.json").is_file()


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
