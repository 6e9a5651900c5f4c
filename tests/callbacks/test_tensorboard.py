"""TensorBoard serves what a finished run and a finished sweep logged, read over its HTTP API.

Each test makes its run or sweep with the real command line on the generated MNIST data, starts
TensorBoard on 127.0.0.1 over the folder, and reads scalars, hyperparameters and images back
through the routes its dashboards use (tensorboard/plugins/*/*_plugin.py).
"""

import contextlib
import json
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from tests.helpers.runs import quick, run_folders, train

EPOCHS = 2
PER_EPOCH = ["train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"]
ONCE = ["test/loss", "test/acc"]
# HPARAMS columns: every metric the runs logged, at its last value (no hp/* copies).
COLUMNS = ["val/acc_best", "test/acc", "test/loss"]
# Sessions written by Lightning end as STATUS_SUCCESS; ask for every status so none is hidden.
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
# A local server must not be reached through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TensorBoard:
    """A TensorBoard process on 127.0.0.1 and JSON calls to its data routes."""

    def __init__(self, logdir: Path, log: Path) -> None:
        self.log = log
        with socket.socket() as s:  # a free port, chosen here
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        where = ["--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
        # The Python loader, read once: the runs are finished.
        how = ["--load_fast=false", "--reload_interval=0"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tensorboard.main", *where, *how],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def get(self, route: str, **params: Any) -> bytes:
        url = f"{self.base}{route}?{urllib.parse.urlencode(params)}"
        with OPENER.open(url, timeout=30) as response:
            return response.read()

    def get_json(self, route: str, **params: Any) -> Any:
        return json.loads(self.get(route, **params))

    def post_json(self, route: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base + route,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with OPENER.open(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_until_loaded(self, runs: set[str], images: list[str], timeout: float = 90) -> None:
        """Poll until every run is listed with the tags written last (at test end)."""
        deadline = time.monotonic() + timeout
        seen: Any = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"TensorBoard exited:\n{self.output()}"
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                seen = (
                    self.get_json("/data/runs"),
                    self.get_json("/data/plugin/scalars/tags"),
                    self.get_json("/data/plugin/images/tags"),
                )
                listed, scalars, image_tags = seen
                if set(listed) == runs and all(
                    set(ONCE) <= set(scalars.get(run, {}))
                    and set(images) <= set(image_tags.get(run, {}))
                    for run in runs
                ):
                    return
            time.sleep(0.25)
        pytest.fail(f"TensorBoard did not serve {sorted(runs)} in {timeout} s; last: {seen}")

    def scalars(self, run: str, tag: str) -> list[tuple[int, float]]:
        rows = self.get_json("/data/plugin/scalars/scalars", run=run, tag=tag)
        return [(step, value) for _wall_time, step, value in rows]

    def experiment(self) -> dict[str, Any]:
        return self.post_json("/data/plugin/hparams/experiment", {"experimentName": ""})

    def session_groups(self) -> dict[str, dict[str, Any]]:
        body = {"experimentName": "", "allowedStatuses": STATUSES, "sliceSize": 1000}
        answer = self.post_json("/data/plugin/hparams/session_groups", body)
        groups = answer.get("sessionGroups", [])
        assert answer.get("totalSize") == len(groups)
        return {group["name"]: group for group in groups}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def tensorboard(logdir: Path, runs: set[str], images: list[str]) -> Iterator[TensorBoard]:
    board = TensorBoard(logdir, logdir.parent / f"tensorboard-{logdir.name}.log")
    try:
        board.wait_until_loaded(runs, images)
        yield board
    finally:
        board.stop()


def written(folder: Path) -> tuple[dict[str, Any], Any]:
    """metrics.json (epochs, final metrics) and the composed config of a run folder."""
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics, OmegaConf.load(folder / ".hydra" / "config.yaml")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


def check_scalars(board: TensorBoard, run: str, folder: Path) -> None:
    """One value per epoch (one for test/*), ending at the values in metrics.json."""
    metrics, _ = written(folder)
    assert metrics["epochs"] == EPOCHS
    final = metrics["metrics"]
    per_epoch = {tag: board.scalars(run, tag) for tag in PER_EPOCH}
    for tag, points in per_epoch.items():
        steps = [step for step, _ in points]
        assert len(points) == EPOCHS and steps == sorted(set(steps)), (tag, points)
        assert points[-1][1] == pytest.approx(final[tag], abs=1e-6), tag
    val_acc = [value for _, value in per_epoch["val/acc"]]
    best = [max(val_acc[: i + 1]) for i in range(EPOCHS)]
    assert [value for _, value in per_epoch["val/acc_best"]] == pytest.approx(best, abs=1e-6)
    for tag in ONCE:
        ((_, value),) = board.scalars(run, tag)
        assert value == pytest.approx(final[tag], abs=1e-6), tag
    for tag in ("train/acc", "val/acc", "test/acc"):
        assert 0.0 <= final[tag] <= 1.0


def check_session(group: dict[str, Any], folder: Path) -> None:
    """A session group holds the run's hyperparameters and the final values of its metrics."""
    metrics, config = written(folder)
    hparams = group["hparams"]
    assert hparams["net"] == config.model.net
    for sizes in ("hidden_sizes", "channels"):  # the MLP's or the CNN's, under its config name
        if sizes in config.model:
            assert json.loads(hparams[sizes]) == list(config.model[sizes])
    assert hparams["optimizer/name"] == config.optimizer.name
    assert hparams["optimizer/lr"] == pytest.approx(config.optimizer.lr)
    assert hparams["data/batch_size"] == config.dataset.batch_size
    values = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
    for column in COLUMNS:
        assert values[column] == pytest.approx(metrics["metrics"][column], abs=1e-6), column


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensorboard")


def test_tensorboard_serves_a_run(mnist_run: Path):
    folder = mnist_run  # alone in its parent folder, trained for EPOCHS epochs
    run = f"{folder.name}/tensorboard"
    with tensorboard(folder.parent, {run}, ["test/misclassified"]) as board:
        check_scalars(board, run, folder)

        experiment = board.experiment()
        columns = {info["name"]["tag"] for info in experiment["metricInfos"]}
        assert set(COLUMNS) <= columns and not any(c.startswith("hp/") for c in columns)
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"hidden_sizes", "optimizer/name", "optimizer/lr", "dropout"} <= names
        assert "class_names" not in names  # the data's names, not a setting
        groups = board.session_groups()
        assert list(groups) == [run]
        check_session(groups[run], folder)

        (image,) = board.get_json("/data/plugin/images/images", run=run, tag="test/misclassified")
        served = board.get(f"/data/plugin/images/individualImage?{image['query']}")
        assert png_size(served) == png_size((folder / "misclassified.png").read_bytes())


@pytest.mark.slow  # sweeps are in the slow tier, as in test_sweeps.py
def test_tensorboard_serves_every_job_of_a_sweep(mnist_dir: Path, workdir: Path):
    cwd = workdir / "sweep"
    cwd.mkdir()
    args = ["-m", *quick(mnist_dir, workdir), f"trainer.max_epochs={EPOCHS}", "optimizer=sgd,adam"]
    result = train(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(cwd, kind="multiruns")
    jobs = {f"{job.name}/tensorboard": job for job in sweep.iterdir() if job.is_dir()}
    # TensorBoard names a run by its folder: the job's number and what the sweep varies.
    assert sorted(jobs) == ["0_optimizer=sgd/tensorboard", "1_optimizer=adam/tensorboard"]
    with tensorboard(sweep, set(jobs), []) as board:
        for run, folder in jobs.items():
            check_scalars(board, run, folder)

        groups = board.session_groups()
        assert sorted(groups) == sorted(jobs)  # one group per job: their hparams differ
        for run, folder in jobs.items():
            check_session(groups[run], folder)
        assert {g["hparams"]["optimizer/name"] for g in groups.values()} == {"sgd", "adam"}
        # HPARAMS lists the hyperparameters that differ between the jobs first (TensorBoard
        # computes "differs" itself because no run writes an experiment summary of its own).
        infos = board.experiment()["hparamInfos"]
        differs = [info["name"] for info in infos if info.get("differs")]
        assert {"optimizer/name", "optimizer/lr"} <= set(differs)
        assert [info["name"] for info in infos[: len(differs)]] == differs
        assert "hidden_sizes" not in differs


@pytest.mark.slow
def test_hparams_compare_runs_of_different_networks(mnist_dir: Path, workdir: Path):
    """Each network has settings of its own: HPARAMS shows the union, the network as ``net``."""
    cwd = workdir / "networks"
    cwd.mkdir()
    result = train("-m", *quick(mnist_dir, workdir), "model=mlp,cnn", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = run_folders(cwd, kind="multiruns")
    jobs = {f"{job.name}/tensorboard": job for job in sweep.iterdir() if job.is_dir()}
    assert sorted(jobs) == ["0_model=mlp/tensorboard", "1_model=cnn/tensorboard"]
    with tensorboard(sweep, set(jobs), []) as board:
        infos = board.experiment()["hparamInfos"]
        names = {info["name"] for info in infos}
        assert {"net", "hidden_sizes", "channels", "kernel_size", "batch_norm"} <= names
        assert "net" in [info["name"] for info in infos if info.get("differs")]
        groups = board.session_groups()
        mlp, cnn = groups["0_model=mlp/tensorboard"], groups["1_model=cnn/tensorboard"]
        assert mlp["hparams"]["net"] == "ch12_lightning.models.nets.mlp.MLP"
        assert mlp["hparams"]["hidden_sizes"] == "[32, 16]" and "channels" not in mlp["hparams"]
        assert cnn["hparams"]["channels"] == "[16, 32]" and "hidden_sizes" not in cnn["hparams"]
        for run, folder in jobs.items():
            check_session(groups[run], folder)
