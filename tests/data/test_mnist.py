"""The MNIST DataModule: torchvision's parser, the book's splits, batched serving, clear errors."""

import os
from pathlib import Path

import pytest
import torch
from torchvision.datasets import MNIST

from ch12_lightning.data.mnist import MissingDataError, MNISTDataModule
from ch12_lightning.data.tensor_batches import TensorBatches, batch_loader
from tests.helpers.runs import REAL_DATA


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _datamodule(data_dir: Path, cache_dir: Path, **kwargs) -> MNISTDataModule:
    return MNISTDataModule(str(data_dir), str(cache_dir), **{"val_size": 100, **kwargs})


def test_splits_and_normalization(mnist_dir: Path, tmp_path: Path):
    dm = _datamodule(mnist_dir, tmp_path / "cache")
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    train, val, test = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert (len(train), len(val), len(test)) == (500, 100, 200)
    assert train.inputs.shape[1:] == (1, 28, 28) and train.inputs.dtype == torch.float32
    # Normalized with the configured mean and std: a 0 pixel maps to -mean/std.
    assert torch.isclose(train.inputs.min(), torch.tensor(-0.1307 / 0.3081), atol=1e-5)
    # The split is a partition of the 600 training images, the same for the same seed.
    raw = MNIST(dm.root, train=True).data.unsqueeze(1).float().div(255).sub(0.1307).div(0.3081)
    merged = torch.cat([train.inputs, val.inputs]).flatten(1)
    assert torch.equal(merged.sort(0).values, raw.flatten(1).sort(0).values)
    again = _datamodule(mnist_dir, tmp_path / "cache")
    again.setup("fit")
    assert torch.equal(again.splits["val"].targets, val.targets)
    assert dm.input_shape == (1, 28, 28) and dm.num_classes == 10


def test_archives_are_extracted_into_the_cache_not_the_data_folder(mnist_dir: Path, tmp_path: Path):
    before = _snapshot(mnist_dir)
    dm = _datamodule(mnist_dir, tmp_path / "cache")
    dm.prepare_data()
    assert _snapshot(mnist_dir) == before
    assert dm.root.is_relative_to(tmp_path / "cache")
    assert (dm.root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_read_only_data_folder(mnist_dir: Path, tmp_path: Path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    os.symlink(mnist_dir / "MNIST", readonly / "MNIST")
    for folder in (readonly, mnist_dir / "MNIST" / "raw"):
        folder.chmod(0o555)
    try:
        dm = _datamodule(readonly, tmp_path / "cache")
        dm.prepare_data()
        dm.setup("test")
        assert len(dm.splits["test"]) == 200
    finally:
        for folder in (readonly, mnist_dir / "MNIST" / "raw"):
            folder.chmod(0o755)


def test_missing_data_without_download_names_folder_and_files(tmp_path: Path):
    dm = _datamodule(tmp_path / "nowhere", tmp_path / "cache", download=False)
    with pytest.raises(MissingDataError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert "CH12_DATA_DIR" in message


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Port 9 on loopback refuses at once: a download attempt that cannot reach anything.
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    dm = _datamodule(tmp_path / "offline", tmp_path / "cache", download=True)
    with pytest.raises(MissingDataError, match="the download failed"):
        dm.prepare_data()


def test_batches_come_whole_and_reshuffle_each_epoch():
    data = TensorBatches(torch.arange(100).float().unsqueeze(1), torch.arange(100))
    loader = batch_loader(data, 16, shuffle=True)
    first = [y for _, y in loader]
    second = [y for _, y in loader]
    assert [len(y) for y in first] == [16] * 6 + [4]
    assert sorted(torch.cat(first).tolist()) == list(range(100))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    x, y = next(iter(loader))
    assert torch.equal(x.squeeze(1).long(), y)


def test_workers_serve_the_same_batches():
    data = TensorBatches(torch.arange(50).float().unsqueeze(1), torch.arange(50))
    loader = batch_loader(data, 8, shuffle=False, num_workers=1)
    assert torch.cat([y for _, y in loader]).tolist() == list(range(50))


@pytest.mark.parametrize("world_size", [2, 3])
def test_evaluation_shards_count_every_sample_once(world_size: int):
    data = TensorBatches(torch.zeros(101, 1), torch.arange(101))
    seen = [
        y
        for rank in range(world_size)
        for _, y in batch_loader(data, 10, shuffle=False, world_size=world_size, rank=rank)
    ]
    assert sorted(torch.cat(seen).tolist()) == list(range(101))


@pytest.mark.slow  # the real data sets: slow tier only
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_real_mnist(tmp_path: Path):
    dm = MNISTDataModule(REAL_DATA, str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    assert dm.splits["train"].targets.bincount().min() > 4000
