"""One run per folder: a second process given a folder that a run is writing into is refused
before it writes anything there; a run killed with kill -9 leaves its folder resumable."""

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ch12_lightning import api
from ch12_lightning.errors import FolderInUse
from ch12_lightning.run.folder_lock import LOCK_FILE, hold, released_at_end
from tests.helpers.runs import quick, train, train_here

# Another process holding a folder's lock, as a run's process does; it prints once it has it.
HOLDER = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], sys.argv[2]), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} elsewhere".encode())
print("held", flush=True)
time.sleep(600)
"""


@contextmanager
def held_by_the_test(folder: Path) -> Iterator[None]:
    """The folder's lock taken as another run's process takes it (its own open file)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242 otherhost\n")
        lock.flush()
        yield


def is_locked(folder: Path) -> bool:
    with open(folder / LOCK_FILE) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def first_runs_files(folder: Path) -> dict[str, bytes]:
    """What a first run left in its folder: its log, metrics and a checkpoint."""
    (folder / "checkpoints").mkdir(parents=True)
    files = {
        "train.log": b"the first run's log\n",
        "metrics.json": b'{"metrics": {"test/acc": 0.5}}',
        "checkpoints/last.ckpt": b"the first run's weights",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def everything_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_into_a_folder_in_use_is_refused_before_writing_there(
    tmp_path: Path, mnist_dir: Path
):
    folder = tmp_path / "run"
    first_runs_files(folder)
    with held_by_the_test(folder):
        before = everything_in(folder)
        with pytest.raises(FolderInUse) as refused:
            api.train(quick(mnist_dir, tmp_path), output_dir=folder)
        # paths.output_dir (the run's files) in a folder of its own, Hydra's in another
        hydra_dir = tmp_path / "hydra"
        with pytest.raises(FolderInUse):
            api.train([*quick(mnist_dir, tmp_path), f"paths.output_dir={folder}"], hydra_dir)
        assert everything_in(folder) == before  # no .hydra/, nothing appended to train.log
    message = str(refused.value)
    assert message.startswith(f"{folder} is in use: another run (process 4242 on otherhost)")
    assert "one run at a time" in message and "\n" not in message
    assert not (hydra_dir / "metrics.json").exists()


def test_the_command_line_refuses_a_folder_in_use_with_its_message_alone(
    tmp_path: Path, mnist_dir: Path
):
    folder = tmp_path / "run"
    files = first_runs_files(folder)
    with held_by_the_test(folder):
        result = train(*quick(mnist_dir, tmp_path), f"hydra.run.dir={folder}", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        f"{folder} is in use: another run (process 4242 on otherhost) is writing into it, and a "
        "folder holds one run at a time. Give this run a folder of its own (another output_dir "
        "or hydra.run.dir), or leave the folder out for a new one."
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert {name: (folder / name).read_bytes() for name in files} == files
    assert not (folder / ".hydra").exists()


def test_a_run_resumes_once_the_process_writing_it_is_killed(tmp_path: Path, mnist_dir: Path):
    """Refused while its process lives, resumed in its own folder after kill -9: the lock went
    with the process."""
    folder = train_here(*quick(mnist_dir, tmp_path), "hydra.run.dir=run", cwd=tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), LOCK_FILE],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        more = [*quick(mnist_dir, tmp_path, epochs=2), f"ckpt_path={folder}"]
        with pytest.raises(FolderInUse, match=f"process {holder.pid} on elsewhere.*still going"):
            api.train(more)
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.kill()
        holder.wait()
    resumed = train_here(*more, cwd=tmp_path)
    assert resumed == folder and api.load_run(folder).metrics["test/acc"] > 0
    assert json.loads((folder / "metrics.json").read_text())["epochs"] == 2


def test_only_rank_zero_locks_and_a_process_holds_a_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The ranks that Lightning, torchrun or srun start share rank 0's folder."""
    with held_by_the_test(tmp_path / "shared"):
        monkeypatch.setenv("LOCAL_RANK", "1")
        hold(tmp_path / "shared")  # another rank of the run that holds it: no refusal
    monkeypatch.delenv("LOCAL_RANK")
    with released_at_end():
        hold(tmp_path / "own")
        hold(tmp_path / "own")  # a requeued SLURM job resumes in the folder it holds already
        assert is_locked(tmp_path / "own")
    assert not is_locked(tmp_path / "own")  # released at the end of the block
