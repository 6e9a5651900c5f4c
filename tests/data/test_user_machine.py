"""CelebA and image-folder preparation under an ordinary machine's limits: 1024 open files (a
Linux login's ``ulimit -n``) and, where the workplace's ``as-user-machine`` tool can apply it (as
root), a 64 MB /dev/shm (Docker's default). Decoding thousands of images must fit in both."""

import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.celeba_tree import make_celeba
from tests.helpers.picture_folders import make_folder
from tests.helpers.runs import REAL_DATA, REPO

TOOL = REPO.parent / "shared" / "tools" / "as-user-machine"
OPEN_FILES = 1024


def _as_user_machine(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` with at most 1024 open files, and the small /dev/shm where the tool is
    at hand and may mount one."""
    if TOOL.is_file() and os.geteuid() == 0:
        command = [str(TOOL), *command]

    def limit_open_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=900,
        preexec_fn=limit_open_files,
    )  # fmt: skip


PREPARE = """
import json, sys
from ch12_lightning.data.celeba import CelebADataModule
dm = CelebADataModule(sys.argv[1], sys.argv[2], n_per_class=int(sys.argv[3]),
                      eval_per_class="all", image_size=32, grayscale=False, num_workers=2)
dm.prepare_data()
dm.setup("fit")
print(json.dumps({split: len(data) for split, data in dm.splits.items()}))
"""


@pytest.mark.slow
def test_thousands_of_images_prepare_under_user_machine_limits(tmp_path: Path):
    counts = {0: (900, 800), 1: (300, 250), 2: (300, 250)}  # 2,800 images, 178 x 218 JPEGs
    tree = make_celeba(tmp_path / "celeba", counts=counts, size=(178, 218))
    command = [sys.executable, "-c", PREPARE, str(tree), str(tmp_path / "cache"), "800"]
    result = _as_user_machine(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    splits = json.loads(result.stdout.strip().splitlines()[-1])
    assert splits == {"train": 1600, "val": 550, "test": 550}
    (cache,) = (tmp_path / "cache" / "celeba").glob("*.pt")
    per_image = cache.stat().st_size / sum(splits.values())
    assert 3 * 32 * 32 <= per_image < 3 * 32 * 32 * 1.05  # 8-bit RGB, little else


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_practice_run_under_user_machine_limits(tmp_path: Path):
    command = [
        sys.executable, "-m", "ch12_lightning.train", "experiment=celeba_practice",
        f"paths.data_dir={REAL_DATA}", f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=2",
    ]  # fmt: skip
    result = _as_user_machine(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CelebA: decoded 2,750 images" in result.stderr + result.stdout
    (metrics,) = tmp_path.rglob("metrics.json")
    assert json.loads(metrics.read_text())["metrics"]["test/acc"] > 0.7


@pytest.mark.slow
def test_a_zipped_folder_of_thousands_of_pictures_trains_under_user_machine_limits(
    tmp_path: Path,
):
    """2,500 pictures of mixed formats, zipped with their folder: decoded by two processes that
    each open the archive once, within 1024 open files and a 64 MB /dev/shm."""
    folder = make_folder(tmp_path / "pets", {"Cat": 1300, "dog": 1200})
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            zipped.write(path, path.relative_to(tmp_path).as_posix())
    shutil.rmtree(folder)
    command = [
        sys.executable, "-m", "ch12_lightning.train", "dataset=image_folder",
        f"dataset.root={archive}", "dataset.image_size=16", f"paths.root_dir={tmp_path}",
        f"paths.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=2",
    ]  # fmt: skip
    result = _as_user_machine(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "image-folder: decoded 2,500 images" in result.stderr + result.stdout
    (metrics,) = tmp_path.rglob("metrics.json")
    assert json.loads(metrics.read_text())["metrics"]["test/acc"] > 0.9
