"""One list of picture formats for training and predict, one decoder: GIF and AVIF are trained
on as predict reads them, HEIC is read with pillow-heif or counted apart with what to do, tiny
pictures are warned of in both, predict reads nested folders as training does, and a bad zip
member is named. Functions are tested directly (no training run), to stay fast."""

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from ch12_lightning.data import picture_decode, picture_store
from ch12_lightning.data.image_folder import ImageFolderDataModule
from ch12_lightning.data.picture_decode import (
    HEIF_EXTENSIONS,
    HEIF_HINT,
    decode_all,
    file_pixels,
    open_picture,
)
from ch12_lightning.data.picture_folder import scan_folder
from ch12_lightning.data.picture_store import PictureStore
from ch12_lightning.trained.predict import Inputs, _summary, image_files, image_format
from tests.helpers.picture_folders import make_folder, picture

SIZE = 16


def scanned(root: Path) -> set[str]:
    """The pictures training takes from ``root`` (names relative to it)."""
    scan = scan_folder(PictureStore(root).listing(), str(root))
    return {name for pictures in scan.pictures.values() for name, _ in pictures}


def predicted(root: Path) -> list[str]:
    """The pictures predict reads from ``root``, in its order (names relative to it)."""
    return [p.relative_to(root).as_posix() for p in image_files(str(root)).files]


def without_heif(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without pillow-heif: HEIC is no picture name, and its decoder's
    failure is named as such."""
    kept = tuple(e for e in picture_store.PICTURE_EXTENSIONS if e not in HEIF_EXTENSIONS)
    monkeypatch.setattr(picture_store, "PICTURE_EXTENSIONS", kept)
    monkeypatch.setattr(picture_decode, "HEIF_READABLE", False)


def test_gif_and_avif_pictures_are_trained_on_as_predict_reads_them(tmp_path: Path):
    root = make_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    rng = np.random.default_rng(0)
    frames = [picture(True, rng), picture(False, rng)]
    frames[0].save(root / "cat" / "wave.GIF", save_all=True, append_images=frames[1:])
    formats = ["cat/wave.GIF"]
    if features.check("avif"):  # Pillow reads (and writes) AVIF where it was built with libavif
        picture(False, rng).save(root / "dog" / "photo.avif")
        formats.append("dog/photo.avif")
    taken = scanned(root)
    assert set(formats) <= taken
    assert sorted(taken) == predicted(root)
    for name in formats:  # decoded by training's path as predict decodes it: the first frame
        pixels = file_pixels(root / name, SIZE, False)
        direct = open_picture(root / name, SIZE * picture_decode.DRAFT_MARGIN)
        assert pixels.shape == (3, SIZE, SIZE)
        np.testing.assert_array_equal(
            pixels, picture_decode.picture_pixels(direct.image, SIZE, False)
        )
    assert open_picture(root / "cat" / "wave.GIF").notes == ("first of 2 frames",)
    assert ".gif" in picture_store.EXTENSIONS_HINT


def test_heic_without_pillow_heif_is_counted_apart_with_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    without_heif(monkeypatch)
    root = make_folder(tmp_path / "phone", {"cat": 2, "dog": 2})
    (root / "cat" / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (root / "dog" / "notes.txt").write_text("from my phone")
    scan = scan_folder(PictureStore(root).listing(), str(root))
    line = scan.skipped_line()
    assert f"1 HEIC pictures (IMG_0001.HEIC): {HEIF_HINT}" in line
    assert "1 not pictures (notes.txt)" in line
    found = image_files(str(root))
    assert found.heic == [root / "cat" / "IMG_0001.HEIC"]
    assert found.others == [root / "dog" / "notes.txt"]
    assert f"1 HEIC picture skipped (IMG_0001.HEIC): {HEIF_HINT}" in _summary([], [], found, None)
    # Named one by one (predict's line for each, a file given by name): the same hint.
    with pytest.raises(picture_decode.UnreadablePicture, match="a HEIC picture: convert to JPEG"):
        open_picture(root / "cat" / "IMG_0001.HEIC")


def test_a_folder_of_heic_pictures_only_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    without_heif(monkeypatch)
    for name in ("a", "b"):
        (tmp_path / "phone" / name).mkdir(parents=True)
        (tmp_path / "phone" / name / "IMG_0001.heic").write_bytes(b"\0")
    with pytest.raises(Exception, match=r"no pictures \(files ending in .*2 HEIC pictures found"):
        scan_folder(PictureStore(tmp_path / "phone").listing(), "phone")
    with pytest.raises(Exception, match="holds no image files .*2 HEIC pictures: convert"):
        image_files(str(tmp_path / "phone"))


def test_heic_pictures_are_read_with_pillow_heif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("pillow_heif")
    assert picture_decode.HEIF_READABLE and ".heic" in picture_store.PICTURE_EXTENSIONS
    root = make_folder(tmp_path / "phone", {"cat": 2, "dog": 2})
    colour = Image.new("RGB", (40, 30), (200, 30, 30))
    colour.save(root / "cat" / "IMG_0001.HEIC", format="HEIF")
    assert "cat/IMG_0001.HEIC" in scanned(root)
    assert "cat/IMG_0001.HEIC" in predicted(root)
    # In decoding processes too: the opener is registered as the module is imported there.
    fresh = subprocess.run(
        [sys.executable, "-c", f"import {picture_decode.__name__}; from PIL import Image; "
         "print(Image.registered_extensions().get('.heic'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert fresh.stdout.strip() == "HEIF"
    monkeypatch.setattr(picture_decode, "CHUNK", 1)  # two chunks: the pool of processes
    pixels, errors, _ = decode_all([str(root / "cat" / "IMG_0001.HEIC")] * 2, SIZE, False, 2)
    assert not errors
    assert np.abs(pixels[0, :, 5, 5].astype(int) - [200, 30, 30]).max() <= 3


def test_a_tiny_picture_is_warned_in_training_as_predict_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    root = make_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    Image.new("RGB", (1, 1), (90, 90, 90)).save(root / "dog" / "dot.png")
    Image.new("RGB", (8, 5)).save(root / "dog" / "thumb.png")
    sources = [str(root / name) for name in sorted(scanned(root))]
    with caplog.at_level(logging.WARNING, "ch12_lightning.data.picture_decode"):
        decode_all(sources, SIZE, False, 0, title="image-folder")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "image-folder: 2 pictures smaller than 16 pixels a side" in warnings[0]
    run = ImageFolderDataModule(str(root), str(tmp_path), str(tmp_path / "cache"), image_size=SIZE)
    prepare = image_format(run).prepare
    for name in ("dot.png", "thumb.png"):
        _, notes = prepare(open_picture(root / "dog" / name), "auto")
        (note,) = notes
        assert f"{root / 'dog' / name} ({note})" in warnings[0]  # predict's very words


def test_predict_reads_a_nested_folder_as_training_does(tmp_path: Path):
    root = make_folder(tmp_path / "pets", {"cat": 6, "dog": 6})  # every fourth one in more/
    (root / "cat" / "more" / "deeper").mkdir()
    picture(False, np.random.default_rng(1)).save(root / "cat" / "more" / "deeper" / "p.jpg")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "p-checkpoint.png").write_bytes(b"x")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._p000.jpg").write_bytes(b"x")
    (root / "dog" / ".DS_Store").write_bytes(b"x")
    names = predicted(root)
    assert "cat/more/deeper/p.jpg" in names and "dog/more/p003.Png" in names
    assert names == sorted(scanned(root))  # the same pictures, sorted by their path
    hidden = image_files(str(root)).hidden
    assert sorted(p.name for p in hidden) == [".DS_Store", "._p000.jpg", "p-checkpoint.png"]
    summary = _summary([], [], Inputs([], [], hidden), None)
    assert "3 hidden files skipped" in summary


def test_a_bad_zip_member_is_named_by_archive_and_member(tmp_path: Path):
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("pets/cat/p000.png", b"not a png")
    _, errors, _ = decode_all(["pets/cat/p000.png"], SIZE, False, 0, archive=str(archive))
    assert f"{archive} (member pets/cat/p000.png)" in errors[0]
    assert "BytesIO" not in errors[0]
