"""The CelebA DataModule on generated trees (both layouts) and on the real partial copy."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ch12_lightning.data import picture_decode
from ch12_lightning.data.celeba import CelebADataModule
from ch12_lightning.data.celeba_files import CelebAFormatError
from ch12_lightning.data.picture_cache import CorruptImageError
from ch12_lightning.data.picture_decode import file_pixels, picture_pixels
from ch12_lightning.data.recorded_split import SplitChangedError
from ch12_lightning.data.room import NoRoomError
from ch12_lightning.errors import ConfigError
from tests.helpers.celeba_tree import ATTRIBUTES, make_celeba
from tests.helpers.runs import REAL_DATA


@pytest.fixture(scope="module")
def celeba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba"))


def _prepared(data_dir: Path, cache_dir: Path, **kwargs) -> CelebADataModule:
    dm = CelebADataModule(str(data_dir), str(cache_dir), **{"n_per_class": 15, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _counts(dm: CelebADataModule) -> dict[str, list[int]]:
    return {split: data.targets.bincount(minlength=2).tolist() for split, data in dm.splits.items()}


def test_official_layout_subset_and_transforms(celeba_dir: Path, tmp_path: Path):
    dm = _prepared(celeba_dir, tmp_path)
    # 15 + 15 drawn for training; validation and test balanced to the rarer class.
    assert _counts(dm) == {"train": [15, 15], "val": [6, 6], "test": [7, 7]}
    assert dm.splits["train"].inputs.dtype == torch.uint8  # held as 8-bit pixels
    train, _ = dm.splits["train"].served()
    assert train.shape == (30, 1, 32, 32) and dm.input_shape == (1, 32, 32)
    assert train.dtype == torch.float32
    assert train.min() >= -1.0 and train.max() <= 1.0  # normalized with mean 0.5, std 0.5
    male = train[dm.splits["train"].targets == 1]
    female = train[dm.splits["train"].targets == 0]
    assert male[:, :, :16].mean() > female[:, :, :16].mean() + 0.5
    assert dm.class_names == ["female", "male"]


def test_csv_layout_gives_the_same_data(celeba_dir: Path, tmp_path: Path):
    csv_dir = make_celeba(tmp_path / "csv", layout="csv")
    official = _prepared(celeba_dir, tmp_path / "a")
    csv = _prepared(csv_dir, tmp_path / "b")
    for split in ("train", "val", "test"):
        assert torch.equal(official.splits[split].targets, csv.splits[split].targets)
        assert torch.equal(official.splits[split].inputs, csv.splits[split].inputs)


def test_found_counts_skip_missing_images(celeba_dir: Path, tmp_path: Path, caplog):
    caplog.set_level("INFO")
    _prepared(celeba_dir, tmp_path)
    assert "found train 30 female / 20 male, val 8 female / 6 male, test 9 female / 7 male" in (
        caplog.text
    )


def test_other_settings(celeba_dir: Path, tmp_path: Path):
    rgb = _prepared(celeba_dir, tmp_path, grayscale=False, image_size=16, eval_per_class="all")
    assert rgb.splits["val"].inputs.shape == (14, 3, 16, 16) and rgb.input_shape == (3, 16, 16)
    assert _counts(rgb)["test"] == [9, 7]
    fixed = _prepared(celeba_dir, tmp_path, eval_per_class=5)
    assert _counts(fixed)["val"] == [5, 5]
    smiling = _prepared(celeba_dir, tmp_path, attribute="Smiling", n_per_class=8)
    assert smiling.class_names == ["not_smiling", "smiling"]
    assert _counts(smiling)["train"] == [8, 8]


def test_unknown_attribute_lists_the_valid_names(celeba_dir: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="dataset.attribute=Beard is not valid") as err:
        _prepared(celeba_dir, tmp_path, attribute="Beard")
    assert "one of the 40 attributes in list_attr_celeba.txt" in str(err.value)
    assert all(name in str(err.value) for name in ATTRIBUTES)


def test_too_few_images_gives_the_counts(celeba_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="n_per_class=21") as err:
        _prepared(celeba_dir, tmp_path, n_per_class=21)
    assert "train 30 female / 20 male" in str(err.value) and "at most 20" in str(err.value)
    with pytest.raises(ValueError, match="eval_per_class=7"):
        _prepared(celeba_dir, tmp_path, eval_per_class=7)


def test_corrupt_image_is_named_or_skipped(tmp_path: Path, caplog):
    broken = make_celeba(tmp_path / "broken", corrupt=True)
    with pytest.raises(CorruptImageError, match="000085.jpg"):
        _prepared(broken, tmp_path / "cache", eval_per_class="all")
    caplog.set_level("INFO")
    dm = _prepared(broken, tmp_path / "cache", eval_per_class="all", skip_corrupt=True)
    assert _counts(dm)["test"] == [9, 6]
    assert "skipped 1 unreadable pictures: 000085.jpg" in caplog.text


def test_cache_serves_later_runs_and_follows_changes(celeba_dir: Path, tmp_path: Path):
    tree = make_celeba(tmp_path / "tree")
    before = {p: p.stat().st_mtime_ns for p in tree.rglob("*")}
    first = _prepared(tree, tmp_path / "cache")
    again = _prepared(tree, tmp_path / "cache")
    assert (first.from_cache, again.from_cache) == (False, True)
    assert torch.equal(first.splits["train"].inputs, again.splits["train"].inputs)
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*")} == before  # nothing written there
    assert not _prepared(tree, tmp_path / "cache", image_size=24).from_cache
    assert not _prepared(tree, tmp_path / "cache", seed=2).from_cache
    unused = tree / "img_align_celeba" / "000001.jpg"  # a picture the selection leaves out
    assert "000001.jpg" not in {name for name, *_ in first.state_dict()["split"]["train"]}
    os.utime(unused, ns=(unused.stat().st_atime_ns, unused.stat().st_mtime_ns + 10**9))
    assert _prepared(tree, tmp_path / "cache").from_cache
    used = tree / "img_align_celeba" / first.state_dict()["split"]["train"][0][0]
    os.utime(used, ns=(used.stat().st_atime_ns, used.stat().st_mtime_ns + 10**9))
    assert not _prepared(tree, tmp_path / "cache").from_cache


def test_a_recorded_split_is_kept_when_faces_are_removed(tmp_path: Path):
    """CelebA's selection depends on the faces present: a run's own split is served again
    after one it did not use is removed, and a removed test face is said."""
    tree = make_celeba(tmp_path / "tree")
    recorded = _prepared(tree, tmp_path / "cache").state_dict()["split"]
    used = {name for files in recorded.values() for name, *_ in files}
    faces = sorted((tree / "img_align_celeba").glob("*.jpg"))
    next(face for face in faces if face.name not in used).unlink()
    again = CelebADataModule(str(tree), str(tmp_path / "cache"), n_per_class=15)
    again.use_recorded_split(recorded, ("test",))
    again.prepare_data()
    assert again.state_dict()["split"] == recorded and again.from_cache
    (tree / "img_align_celeba" / recorded["test"][0][0]).unlink()
    gone = CelebADataModule(str(tree), str(tmp_path / "cache"), n_per_class=15)
    gone.use_recorded_split(recorded, ("test",))
    with pytest.raises(
        SplitChangedError, match=f"1 of its 14 pictures is gone .{recorded['test'][0][0]}"
    ):
        gone.prepare_data()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list_attr_celeba.txt", "3\r\nMale Smiling\r\n000001.jpg 1\r\n", "data row 1"),
        ("list_attr_celeba.txt", "", "too short"),
        ("list_eval_partition.txt", "000001.jpg 7\r\n", "partition 0, 1 or 2"),
    ],
)
def test_malformed_metadata_names_file_and_row(tmp_path: Path, name: str, content: str, message):
    tree = make_celeba(tmp_path / "tree")
    (tree / name).write_text(content)
    with pytest.raises(CelebAFormatError, match=message) as err:
        _prepared(tree, tmp_path / "cache")
    assert name in str(err.value)


def test_missing_copy_says_what_is_expected(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt") as err:
        _prepared(tmp_path / "nothing", tmp_path / "cache")
    assert "not downloaded automatically" in str(err.value)


def _as_downloaded(celeba_dir: Path, folder: Path) -> Path:
    """The official download: the lists beside img_align_celeba.zip, not extracted."""
    folder.mkdir()
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        shutil.copy(celeba_dir / name, folder)
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as archive:
        for path in sorted((celeba_dir / "img_align_celeba").iterdir()):
            archive.write(path, f"img_align_celeba/{path.name}")
    return folder


def test_the_official_zip_is_read_without_extracting_it(celeba_dir: Path, tmp_path: Path, caplog):
    """The book's readers hit an unextracted img_align_celeba.zip (rasbt/machine-learning-book
    #57, #146): it is read as it is, with the same pixels as the extracted folder's."""
    caplog.set_level("INFO")
    zipped = _as_downloaded(celeba_dir, tmp_path / "celeba")
    from_zip = _prepared(zipped, tmp_path / "zip_cache", num_workers=2)
    from_folder = _prepared(celeba_dir, tmp_path / "folder_cache")
    for split in ("train", "val", "test"):
        assert torch.equal(from_zip.splits[split].inputs, from_folder.splits[split].inputs)
        assert torch.equal(from_zip.splits[split].targets, from_folder.splits[split].targets)
    archive = zipped / "img_align_celeba.zip"
    assert f"CelebA Male in {archive} (member img_align_celeba): found" in caplog.text
    assert not (zipped / "img_align_celeba").exists()  # nothing extracted


def test_a_damaged_zip_says_how_to_extract_it(celeba_dir: Path, tmp_path: Path):
    zipped = _as_downloaded(celeba_dir, tmp_path / "celeba")
    archive = zipped / "img_align_celeba.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # download cut
    with pytest.raises(CelebAFormatError) as err:
        _prepared(zipped, tmp_path / "cache")
    assert str(err.value).startswith(f"{archive} cannot be read as a zip archive")
    assert f"`unzip {archive} -d {zipped}`" in str(err.value)


@pytest.mark.slow  # the real data sets: slow tier only
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_real_partial_copy(tmp_path: Path, caplog):
    caplog.set_level("INFO")
    dm = _prepared(Path(REAL_DATA) / "celeba", tmp_path, n_per_class=1000)
    assert "found train 3227 female / 1364 male, val 561 female / 219 male, " in caplog.text
    assert "test 504 female / 156 male" in caplog.text
    assert _counts(dm) == {"train": [1000, 1000], "val": [219, 219], "test": [156, 156]}


def test_pixels_are_cached_as_bytes_and_normalized_when_served(celeba_dir: Path, tmp_path: Path):
    dm = _prepared(celeba_dir, tmp_path, grayscale=False, image_size=16)
    (cache,) = (tmp_path / "celeba").glob("*.pt")
    images = sum(len(split) for split in dm.splits.values())
    # One byte per pixel and channel (float32 was four), and little else.
    assert images * 3 * 16 * 16 < cache.stat().st_size < images * 3 * 16 * 16 * 1.05 + 8192
    sidecar = json.loads(cache.with_suffix(".json").read_text())
    assert sidecar["images"] == images and sidecar["bytes"] == cache.stat().st_size
    assert sidecar["settings"]["image_size"] == 16
    split = dm.splits["val"]
    inputs, targets = split.__getitems__([3, 0])
    expected = split.inputs[[3, 0]].float().div(255).sub(0.5).div(0.5)
    assert torch.allclose(inputs, expected) and torch.equal(targets, split.targets[[3, 0]])
    # Normalization is applied when serving: other settings reuse the same cache.
    other = _prepared(celeba_dir, tmp_path, grayscale=False, image_size=16, mean=0.4, std=0.2)
    assert other.from_cache
    served, _ = other.splits["val"].served()
    assert torch.allclose(served, split.inputs.float().div(255).sub(0.4).div(0.2))


def test_worker_processes_decode_the_same_pixels_with_progress(
    celeba_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
):
    monkeypatch.setattr(picture_decode, "CHUNK", 8)  # several tasks for the pool
    monkeypatch.setattr(picture_decode, "PROGRESS_SECONDS", 0.0)
    caplog.set_level("INFO")
    pooled = _prepared(celeba_dir, tmp_path / "a", num_workers=2)
    assert "CelebA: decoded 8 of 56 images" in caplog.text and "about" in caplog.text
    alone = _prepared(celeba_dir, tmp_path / "b", num_workers=0)
    for split in ("train", "val", "test"):
        assert torch.equal(pooled.splits[split].inputs, alone.splits[split].inputs)
    assert "the cache folder" in caplog.text and "./ch12 cache prune" in caplog.text


def test_reduced_scale_decoding_stays_close_to_a_full_decode(tmp_path: Path):
    """Pillow's draft decodes JPEGs at 1/2 to 1/8 scale; asked for twice the target size, the
    pixels stay within a few levels of a full decode and resize."""
    tree = make_celeba(tmp_path / "tree", counts={0: (6, 6)}, size=(178, 218))
    for size, grayscale in ((32, True), (64, False)):
        drafted, full = [], []
        for path in sorted((tree / "img_align_celeba").glob("*.jpg")):
            drafted.append(file_pixels(path, size, grayscale).astype(int))
            with Image.open(path) as picture:
                picture.load()  # decoded in full: draft has no effect any more
                full.append(picture_pixels(picture, size, grayscale).astype(int))
        difference = np.abs(np.stack(drafted) - np.stack(full))
        assert difference.mean() < 1.0 and difference.max() <= 8, (size, difference.max())


def test_settings_that_do_not_fit_are_refused_before_decoding(celeba_dir: Path, tmp_path: Path):
    with pytest.raises(NoRoomError) as err:
        _prepared(celeba_dir, tmp_path, grayscale=False, memory_limit_gb=0.0001)
    message = str(err.value)
    assert "56 images of 3,072 bytes" in message and "dataset.memory_limit_gb" in message
    assert "At most 29 images of this size fit" in message and "dataset.image_size" in message
    assert "dataset.image_size=23 or less" in message  # 56 x 3 x 23^2 x 1.1 < 100 kB
    assert not list((tmp_path / "celeba").glob("*.pt"))  # nothing decoded or written
