"""Caches as real machines leave them: cut short, overwritten, or built by two runs at once.

A cache is only derived data, so a damaged one is rebuilt with a warning rather than met with a
zip reader's traceback, and runs sharing a cache folder each end with correct data.
"""

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ch12_lightning.data.celeba import CelebADataModule
from ch12_lightning.data.mnist import MNISTDataModule
from ch12_lightning.errors import MissingDataError
from tests.helpers.celeba_tree import make_celeba


@pytest.fixture(scope="module")
def celeba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba"))


def _celeba(data_dir: Path, cache_dir: Path) -> CelebADataModule:
    dm = CelebADataModule(str(data_dir), str(cache_dir), n_per_class=15, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _with_other_settings(sidecar: Path) -> None:
    meta = json.loads(sidecar.read_text())
    meta["settings"]["image_size"] = 64
    sidecar.write_text(json.dumps(meta))


def _other_pixels(cache: Path) -> None:
    cached = torch.load(cache, weights_only=True)
    cached["pixels"] = cached["pixels"][:, :, :8]  # smaller images than its description says
    torch.save(cached, cache)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_cut_short, "does not load ("),
        (lambda cache: cache.unlink(), "does not load (FileNotFoundError"),
        (lambda cache: cache.with_suffix(".json").unlink(), "cannot be read (FileNotFoundError"),
        (lambda cache: _cut_short(cache.with_suffix(".json")), "cannot be read (JSONDecodeError"),
        (lambda cache: _with_other_settings(cache.with_suffix(".json")), "does not match its key"),
        (_other_pixels, "does not match its description (pixels (56, 1, 8, 32)"),
    ],
    ids=["truncated", "no cache file", "no sidecar", "sidecar truncated", "key", "content"],
)
def test_a_damaged_celeba_cache_is_rebuilt_with_a_warning(
    damage, message: str, celeba_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    first = _celeba(celeba_dir, tmp_path)
    # Copied: the splits map the cache file, which the damage changes in place.
    expected = {split: data.inputs.clone() for split, data in first.splits.items()}
    (cache,) = (tmp_path / "celeba").glob("*.pt")
    damage(cache)
    with caplog.at_level(logging.WARNING, logger="ch12_lightning.data.celeba"):
        again = _celeba(celeba_dir, tmp_path)
    assert f"The CelebA cache {cache} {message}" in caplog.text
    assert "building it again" in caplog.text
    assert not again.from_cache
    for split, inputs in expected.items():
        assert torch.equal(again.splits[split].inputs, inputs)
    caplog.clear()
    assert _celeba(celeba_dir, tmp_path).from_cache and not caplog.text  # whole again


def test_a_damaged_mnist_extraction_is_extracted_again(
    mnist_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    dm = MNISTDataModule(str(mnist_dir), str(tmp_path), val_size=100)
    dm.prepare_data()
    images = dm.root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    _cut_short(images)
    with caplog.at_level(logging.WARNING, logger="ch12_lightning.data.mnist"):
        dm.prepare_data()
    assert f"The extracted {images} in the cache is damaged (it has 235208 bytes" in caplog.text
    assert images.read_bytes() == whole
    dm.setup("fit")
    assert len(dm.splits["train"]) == 500


def test_the_data_folder_removed_mid_run_still_gives_the_test_split(
    mnist_dir: Path, tmp_path: Path
):
    data_dir = tmp_path / "data"
    shutil.copytree(mnist_dir, data_dir)
    dm = MNISTDataModule(str(data_dir), str(tmp_path / "cache"), val_size=100)
    dm.prepare_data()
    dm.setup("fit")
    shutil.rmtree(data_dir)  # unmounted or cleaned up while the run trains
    dm.setup("test")
    assert len(dm.splits["test"]) == 200
    # The extraction itself removed as well (a cache prune): a message, not a traceback.
    again = MNISTDataModule(str(mnist_dir), str(tmp_path / "cache2"), val_size=100)
    again.prepare_data()
    again.setup("fit")
    shutil.rmtree(tmp_path / "cache2")
    with pytest.raises(MissingDataError, match="t10k-images-idx3-ubyte is gone: it was there"):
        again.setup("test")


# Each process builds the caches once a "go" file appears, so both are past their imports and
# start at the same moment; each prints what it got.
PREPARE_AT_ONCE = """
import hashlib, sys, time
from pathlib import Path
from ch12_lightning.data.celeba import CelebADataModule
from ch12_lightning.data.mnist import MNISTDataModule

celeba_dir, mnist_dir, cache_dir, go = sys.argv[1:]
while not Path(go).exists():
    time.sleep(0.005)
mnist = MNISTDataModule(mnist_dir, cache_dir, val_size=100)
mnist.prepare_data()
mnist.setup("fit")
celeba = CelebADataModule(celeba_dir, cache_dir, n_per_class=15, num_workers=0)
celeba.prepare_data()
celeba.setup("fit")
digest = hashlib.sha256()
for data in (mnist.splits["train"], *celeba.splits.values()):
    digest.update(data.inputs.numpy().tobytes())
print(celeba.from_cache, digest.hexdigest())
"""


@pytest.mark.slow
def test_two_runs_building_the_same_caches_at_once_both_get_correct_data(
    celeba_dir: Path, mnist_dir: Path, tmp_path: Path
):
    go = tmp_path / "go"
    command = [sys.executable, "-c", PREPARE_AT_ONCE, celeba_dir, mnist_dir, tmp_path / "cache", go]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(1)  # well before the imports are done; the processes then wait for "go"
    go.touch()
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    (from_cache_1, digest_1), (from_cache_2, digest_2) = (out.split() for out, _ in results)
    # One built the CelebA cache while the other waited for it, then used it.
    assert sorted([from_cache_1, from_cache_2]) == ["False", "True"]
    assert digest_1 == digest_2
    alone = tmp_path / "alone"
    reference = subprocess.run(
        [*command[:5], alone / "cache", go], capture_output=True, text=True, timeout=120
    )
    assert reference.stdout.split() == ["False", digest_1], reference.stderr[-2000:]
    # One cache (its tensors, its description, its lock), no temporary file left behind.
    kinds = sorted(p.suffix for p in (tmp_path / "cache" / "celeba").iterdir())
    assert kinds == [".json", ".lock", ".pt"]
    assert not list((tmp_path / "cache").rglob("*.tmp"))
