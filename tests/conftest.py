"""Fixtures: data made in the test, quick run settings, and trained runs made once per session
(shared read-only by every test, and by every xdist worker, that reads them)."""

import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.helpers.digit_pictures import write_digit_set
from tests.helpers.mnist_files import make_mnist
from tests.helpers.runs import in_folder, quick, train_here


def shared_folder(factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this test run, shared by its xdist workers."""
    root = factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def once_per_session(
    factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Path]
) -> Path:
    """``make(folder)`` run once for the whole test run, even when xdist runs it in several
    processes (the first one makes it, the others wait and read it); what it returned."""
    root = shared_folder(factory)
    folder, answer = root / name, root / f"{name}.made"
    with FileLock(root / f"{name}.lock"):
        if not answer.is_file():
            folder.mkdir()
            answer.write_text(str(make(folder)))
    return Path(answer.read_text())


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated MNIST archives (600 training, 200 test digits), never written to."""
    return once_per_session(tmp_path_factory, "mnist", make_mnist)


@pytest.fixture(scope="session")
def mnist_run(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a two-epoch quick MNIST run (MLP 32-16), shared read-only: evaluate,
    predict, export and TensorBoard read it; a test that changes a run trains its own."""
    return once_per_session(
        tmp_path_factory,
        "mnist_run",
        lambda folder: train_here(*quick(mnist_dir, folder, epochs=2), cwd=folder),
    )


@pytest.fixture(scope="session")
def digit_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of an MLP trained on 1,500 digits rendered with a font (10 epochs), the
    reader of the pictures that tests/trained/test_pictures.py makes; shared read-only."""

    def make(folder: Path) -> Path:
        write_digit_set(folder / "data")
        data = [f"paths.data_dir={folder / 'data'}", f"paths.cache_dir={folder / 'cache'}"]
        return train_here(*data, "dataset.val_size=200", "trainer.max_epochs=10", cwd=folder)

    return once_per_session(tmp_path_factory, "digit_reader", make)


@pytest.fixture(autouse=True)
def _in_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own temporary folder with its own cache: a run or a command that
    names no folder writes there, never into the repository's outputs/ (which ./ch12
    tensorboard shows) nor ~/.cache, and tests side by side never share a file by accident."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CH12_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _alone_if_marked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A test marked ``alone`` runs with no other test beside it: it takes a lock that every
    other test holds shared while it runs (xdist workers wait). Signals to DDP ranks race with
    each other; on cores that another test keeps busy the ranks drift apart (issue 40)."""
    alone = request.node.get_closest_marker("alone") is not None
    with open(shared_folder(tmp_path_factory) / "alone.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield  # closing the file releases the lock


@pytest.fixture
def path_overrides(tmp_path: Path) -> list[str]:
    """Overrides that keep everything a run writes below tmp_path (its folder: tmp_path/run)."""
    return in_folder(tmp_path)


@pytest.fixture
def quick_overrides(mnist_dir: Path, tmp_path: Path) -> list[str]:
    """A quick run (tests.helpers.runs.quick) of 2 epochs of 16 batches of 32, in tmp_path/run."""
    return [*in_folder(tmp_path), *quick(mnist_dir, tmp_path, epochs=2, batch_size=32)]
