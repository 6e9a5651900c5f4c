"""Predicting on pictures as people have them: decoding (EXIF, frames, 16-bit, transparency,
damaged files) and MNIST's form, on digits rendered here and saved in the ways of real files."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from sklearn.datasets import load_digits

from ch12_lightning.data.picture_decode import Picture, UnreadablePicture, open_picture
from ch12_lightning.errors import ConfigError, InputError
from ch12_lightning.trained.pictures import celeba_form, mnist_form
from tests.helpers.digit_pictures import (
    STYLES,
    accuracy,
    as_mnist,
    predictions,
    render,
    write_pictures,
)
from tests.helpers.mnist_files import read_idx
from tests.helpers.runs import REAL_DATA, run_folders, train


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, int]]]:
    folder = tmp_path_factory.mktemp("pictures")
    return folder, write_pictures(folder)


def test_pictures_in_mnists_form_are_read_far_better(digit_reader, pictures, tmp_path, capsys):
    folder, truth = pictures
    auto = {s: accuracy(predictions(digit_reader, folder / s, tmp_path), truth[s]) for s in STYLES}
    none = {s: accuracy(predictions(digit_reader, folder / s, tmp_path, "preprocess=none"),
                        truth[s]) for s in STYLES}  # fmt: skip
    print(f"accuracy, preprocess=auto: {auto}\naccuracy, preprocess=none: {none}")
    assert auto["mnist_like"] >= 0.8 and auto["mnist_like"] >= none["mnist_like"] - 0.03
    for style in ("ink_on_paper", "photo_crop"):
        assert auto[style] >= none[style] + 0.4, style
        assert auto[style] >= auto["mnist_like"] - 0.1, style
    # Decoding: read as well as the upright, opaque, 8-bit pictures (orientation and levels in
    # both modes; black ink on a transparent canvas becomes ink on white paper, not MNIST's form).
    for style in ("exif_rotated", "transparent", "16_bit"):
        assert auto[style] >= auto["mnist_like"] - 0.05, style
    for style in ("exif_rotated", "16_bit"):
        assert none[style] >= none["mnist_like"] - 0.05, style
    printed = capsys.readouterr().out
    assert "dark ink on light paper: inverted" in printed
    assert "turned upright (EXIF orientation)" in printed
    assert "transparent areas on white" in printed
    assert "16-bit levels scaled to 8 bits" in printed


def test_an_mnist_digit_keeps_its_form():
    rng = np.random.default_rng(3)
    for _ in range(20):
        digit = as_mnist(render(int(rng.integers(0, 10)), rng))
        again = as_mnist(np.asarray(digit, dtype=np.float32) / 255)
        assert np.abs(again.astype(int) - digit).mean() < 3  # levels of 255
        assert np.abs(again.astype(int) - digit).max() <= 64


def test_a_blank_page_has_no_ink():
    digit, notes = mnist_form(Picture(Image.new("L", (50, 50), 230)))
    assert not digit.any() and notes == ("dark ink on light paper: inverted", "no ink found")


def test_sixteen_bit_levels_are_scaled_not_clipped(tmp_path: Path):
    levels = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    picture = open_picture(tmp_path / "deep.png")
    assert picture.image.mode == "L"
    np.testing.assert_allclose(np.asarray(picture.image), levels / 257, atol=1)


def test_first_frame_of_an_animation_is_used_and_said(tmp_path: Path):
    frames = [Image.new("L", (30, 30), level) for level in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    picture = open_picture(tmp_path / "anim.gif")
    assert picture.notes == ("first of 3 frames",)
    assert np.asarray(picture.image.convert("L")).max() < 50


def test_light_ink_on_a_transparent_canvas_goes_on_black(tmp_path: Path):
    ink = np.zeros((28, 28), np.uint8)
    ink[8:20, 12:16] = 255
    white = Image.new("L", (28, 28), 255)
    Image.merge("RGBA", (white, white, white, Image.fromarray(ink))).save(tmp_path / "w.png")
    picture = open_picture(tmp_path / "w.png")
    assert picture.notes == ("transparent areas on black",)
    np.testing.assert_array_equal(np.asarray(picture.image.convert("L")), ink)


@pytest.mark.parametrize("content", [b"not a picture", None], ids=["not a picture", "truncated"])
def test_damaged_files_are_unreadable_pictures(content, tmp_path: Path):
    path = tmp_path / "bad.png"
    if content is None:
        Image.new("L", (64, 64), 128).save(path)
        path.write_bytes(path.read_bytes()[:60])
    else:
        path.write_bytes(content)
    with pytest.raises(UnreadablePicture):
        open_picture(path)


def test_a_face_photo_is_cropped_to_the_aligned_aspect():
    cropped, notes = celeba_form(Picture(Image.new("RGB", (400, 300))))
    assert cropped.size == (245, 300)
    assert notes == ("centre-cropped from 400x300 to 245x300 (178:218)",)
    assert celeba_form(Picture(Image.new("RGB", (178, 218))))[1] == ()


def test_a_folder_with_bad_files_predicts_the_good_ones(digit_reader, pictures, tmp_path, capsys):
    folder, truth = pictures
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in list(truth["mnist_like"])[:5]:
        (mixed / name).write_bytes((folder / "mnist_like" / name).read_bytes())
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.new("L", (1, 1), 255).save(mixed / "tiny.png")
    (mixed / "notes.txt").write_text("not a picture")
    with pytest.raises(InputError, match="1 of 7 pictures could not be read"):
        predictions(digit_reader, mixed, tmp_path, f"output_csv={tmp_path / 'p.csv'}")
    out = capsys.readouterr().out
    assert f"{mixed / 'broken.png'}: cannot be read (UnidentifiedImageError" in out
    assert "only 1x1 pixels: too small to hold a digit" in out
    assert "6 pictures predicted" in out and "1 could not be read" in out
    assert "1 other file in the folders skipped, not a picture (notes.txt)" in out
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 6  # the header, 6 rows
    skipped = predictions(digit_reader, mixed, tmp_path, "on_error=skip", "output_csv=null")
    assert len(skipped) == 6


def test_a_video_named_outright_or_a_zip_is_said_to_be_no_picture(digit_reader, tmp_path, capsys):
    video = tmp_path / "clip.MOV"
    video.write_bytes(b"\0\0\0\x14ftypqt  ")
    with pytest.raises(InputError, match="1 of 1 pictures could not be read .*none was predicted"):
        predictions(digit_reader, video, tmp_path, "output_csv=null")
    out = capsys.readouterr().out
    assert f"{video}: cannot be read (" in out
    assert "; .MOV is no picture format: pictures end in .jpg, .jpeg, .png" in out
    archive = tmp_path / "digits.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    with pytest.raises(ConfigError, match="a zip archive: .*unzip digits.zip -d digits"):
        predictions(digit_reader, archive, tmp_path, "output_csv=null")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_real_digits(tmp_path: Path):
    """MNIST's own test digits, exported as PNG, keep the model's accuracy; real handwritten
    digits that are not MNIST's (scikit-learn's 1,797), as ink on paper, gain."""
    args = [f"paths.data_dir={REAL_DATA}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = train(
        "experiment=mnist_book", "trainer.max_epochs=2", *args, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = run_folders(tmp_path, task="mnist_book")
    raw = Path(REAL_DATA) / "MNIST" / "raw"
    images, labels = (read_idx(raw / f"t10k-{kind}-idx{n}-ubyte.gz") for kind, n in
                      (("images", 3), ("labels", 1)))  # fmt: skip
    exported, truth = tmp_path / "mnist", {}
    exported.mkdir()
    for i in range(500):
        Image.fromarray(images[i]).save(exported / f"{i:03d}.png")
        truth[f"{i:03d}.png"] = int(labels[i])
    as_trained = accuracy(predictions(run, exported, tmp_path, "preprocess=none"), truth)
    assert accuracy(predictions(run, exported, tmp_path), truth) >= as_trained - 0.01
    paper, truth = tmp_path / "paper", {}
    paper.mkdir()
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:500], digits.target, strict=False)):
        scan = Image.fromarray(np.uint8(255 - image * 255 / 16)).resize((64, 64), Image.BICUBIC)
        ImageOps.expand(scan, 16, fill=255).save(paper / f"{i:03d}.png")
        truth[f"{i:03d}.png"] = int(label)
    none = accuracy(predictions(run, paper, tmp_path, "preprocess=none"), truth)
    assert accuracy(predictions(run, paper, tmp_path), truth) >= none + 0.4


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("preprocess=mnist", "preprocess=mnist is not valid: must be one of auto, none"),
        ("on_error=ignore", "on_error=ignore is not valid: must be one of fail, skip"),
    ],
)
def test_bad_predict_options_are_refused(option, message, digit_reader, pictures, tmp_path):
    with pytest.raises(ConfigError, match=message):
        predictions(digit_reader, pictures[0] / "mnist_like", tmp_path, option)


def test_pictures_benchmark_prints_its_table(digit_reader: Path):
    script = Path(__file__).parents[2] / "benchmarks" / "pictures.py"
    command = [sys.executable, str(script), "--run", str(digit_reader), "--limit", "20"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("scikit-learn digits")]
    assert [row.split(",")[1].split()[0] for row in rows] == list(STYLES)
    assert all(len(row.split()) == 9 and row.split()[7] == "->" for row in rows)
