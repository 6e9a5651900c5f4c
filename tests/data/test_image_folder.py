"""``dataset=image_folder``: one's own pictures, in folders (or a zip) as people have them."""

import json
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ch12_lightning.data.image_folder import ImageFolderDataModule
from ch12_lightning.data.picture_cache import CorruptImageError
from ch12_lightning.data.picture_decode import open_picture
from ch12_lightning.data.picture_folder import scan_folder
from ch12_lightning.data.picture_store import PictureStore
from ch12_lightning.data.room import NoRoomError
from ch12_lightning.errors import ConfigError
from ch12_lightning.trained.predict import image_format
from tests.helpers.picture_folders import make_folder, picture
from tests.helpers.runs import command, train, train_here


def with_strays(root: Path) -> Path:
    """What file managers, notebooks and archivers leave, and a note beside the pictures."""
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "p000-checkpoint.jpg").write_bytes(b"not a picture")
    (root / "__MACOSX" / "Cat").mkdir(parents=True)
    (root / "__MACOSX" / "Cat" / "._p000.jpg").write_bytes(b"\0\5\26\7")
    (root / "README.txt").write_text("my pets")
    (root / "dog" / "notes.md").write_text("taken in 2024")
    return root


def module(root: Path, tmp_path: Path, **settings) -> ImageFolderDataModule:
    settings = {"num_workers": 0, "image_size": 16, **settings}
    return ImageFolderDataModule(str(root), str(tmp_path), str(tmp_path / "cache"), **settings)


def prepared(root: Path, tmp_path: Path, **settings) -> ImageFolderDataModule:
    dm = module(root, tmp_path, **settings)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def counts(dm: ImageFolderDataModule) -> dict[str, list[int]]:
    return {
        split: torch.bincount(batches.targets, minlength=dm.num_classes).tolist()
        for split, batches in dm.splits.items()
    }


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_strays(make_folder(tmp_path_factory.mktemp("pets"), {"Cat": 30, "dog": 20}))


# -- layouts ---------------------------------------------------------------------------------


def test_classes_are_sorted_folder_names_and_strays_are_counted(
    pets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    dm = prepared(pets, tmp_path)
    assert dm.class_names == ["Cat", "dog"]  # sorted as ImageFolder sorts: upper case first
    assert dm.input_shape == (3, 16, 16) and dm.num_classes == 2
    # Stratified: 10% of each class to validation and to test (at least one), the rest trains.
    assert counts(dm) == {"train": [24, 16], "val": [3, 2], "test": [3, 2]}
    assert "skipped 5 files: 3 hidden (.DS_Store, p000-checkpoint.jpg, ._p000.jpg)" in caplog.text
    assert "2 not pictures (README.txt, notes.md)" in caplog.text


def test_the_split_is_seeded_and_reproducible(pets: Path, tmp_path: Path):
    first, again = prepared(pets, tmp_path / "a"), prepared(pets, tmp_path / "b")
    other = prepared(pets, tmp_path / "c", seed=2)
    for split in ("train", "val", "test"):
        assert torch.equal(first.splits[split].inputs, again.splits[split].inputs)
    assert not torch.equal(first.splits["test"].inputs, other.splits["test"].inputs)


def test_split_folders_are_kept_and_a_missing_one_is_drawn_from_train(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    root = tmp_path / "split"
    make_folder(root / "Train", {"ants": 20, "bees": 12})
    make_folder(root / "valid", {"ants": 4, "bees": 3}, seed=1)
    with caplog.at_level(logging.INFO):
        dm = prepared(root, tmp_path, test_fraction=0.25)
    assert dm.class_names == ["ants", "bees"]
    assert counts(dm) == {"train": [15, 9], "val": [4, 3], "test": [5, 3]}
    assert f"Image folder {root} (split folders Train, valid): 2 classes" in caplog.text


def test_n_per_class_balances_the_training_pictures(pets: Path, tmp_path: Path):
    dm = prepared(pets, tmp_path, n_per_class=10)
    assert counts(dm)["train"] == [10, 10] and counts(dm)["test"] == [3, 2]
    with pytest.raises(ConfigError, match=r"n_per_class=17 .* dog has 16 .* Use at most 16"):
        prepared(pets, tmp_path, n_per_class=17)


def test_a_zip_is_read_as_it_is_with_or_without_its_own_folder(pets: Path, tmp_path: Path):
    from_folder = prepared(pets, tmp_path / "folder")
    for inner in ("", "pets/"):
        archive = tmp_path / f"pets{len(inner)}.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in sorted(pets.rglob("*")):
                zipped.write(path, inner + path.relative_to(pets).as_posix())
        from_zip = prepared(archive, tmp_path / archive.stem)
        assert from_zip.class_names == from_folder.class_names
        for split in ("train", "val", "test"):
            assert torch.equal(from_zip.splits[split].inputs, from_folder.splits[split].inputs)


def test_a_zip_by_windows_powershell_with_backslashes_is_read(pets: Path, tmp_path: Path):
    """PowerShell 5's Compress-Archive writes ``pets\\Cat\\p000.jpg`` as member names."""
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(pets.rglob("*")):
            if path.is_file():
                zipped.write(path, "pets\\" + str(path.relative_to(pets)).replace("/", "\\"))
    from_zip = prepared(archive, tmp_path / "zip")
    from_folder = prepared(pets, tmp_path / "folder")
    assert from_zip.class_names == ["Cat", "dog"] and counts(from_zip) == counts(from_folder)
    assert torch.equal(from_zip.splits["test"].inputs, from_folder.splits["test"].inputs)


def test_a_folder_above_the_one_meant_is_entered(pets: Path, tmp_path: Path):
    shutil.copytree(pets, tmp_path / "photos" / "pets")
    assert prepared(tmp_path / "photos", tmp_path).class_names == ["Cat", "dog"]


def test_labels_from_a_csv_as_the_chapter_labels_files_by_name(tmp_path: Path):
    """Section 12.2: cat and dog pictures in one folder, the label in each file's name."""
    root = tmp_path / "cat_dog_images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        kind = "dog" if i % 3 == 0 else "cat"
        picture(kind == "dog", rng).save(root / f"{kind}-{i:02d}.jpg")
    rows = ["file,label"] + [f"{p.name},{p.name.split('-')[0]}" for p in sorted(root.iterdir())]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    dm = prepared(root, tmp_path, labels_csv="labels.csv")
    assert dm.class_names == ["cat", "dog"] and counts(dm)["train"] == [12, 6]


def test_the_cache_is_reused_and_listed(pets: Path, tmp_path: Path):
    first = prepared(pets, tmp_path)
    again = prepared(pets, tmp_path)
    assert first.from_cache is False and again.from_cache is True
    result = _ch12("cache", "--cache-dir", str(tmp_path / "cache"), "list")
    assert "Image-folder caches in" in result and "Image folder " in result
    assert "  50 images  " in result  # every picture, in one cache


def _ch12(module: str, *args: str) -> str:
    """What ``python -m ch12_lightning.<module> args...`` prints; it must succeed."""
    result = command(module, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# -- pictures as people have them ------------------------------------------------------------


def test_training_decodes_a_picture_exactly_as_predict_does(tmp_path: Path):
    """A phone's EXIF rotation, a 16-bit PNG, a transparent PNG: trained as predicted."""
    root = make_folder(tmp_path / "odd", {"a": 6, "b": 6})
    rng = np.random.default_rng(3)
    rotated = picture(False, rng, (30, 40))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    rotated.save(root / "a" / "phone.jpg", exif=exif)
    deep = (np.asarray(picture(True, rng).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(root / "b" / "deep.png")
    clear = picture(True, rng).convert("RGBA")
    clear.putalpha(128)
    clear.save(root / "b" / "clear.png")
    dm = prepared(root, tmp_path, val_fraction=0.2, test_fraction=0.2)
    train_inputs = {tuple(row.flatten().tolist()) for row in dm.splits["train"].served()[0]}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    fmt = image_format(dm)
    pictures = [fmt.prepare(open_picture(p, fmt.draft_side), "auto")[0] for p in files]
    served = {tuple(t.flatten().tolist()) for t in pictures}
    assert train_inputs <= served  # every training tensor is one predict makes, bit for bit
    assert open_picture(root / "a" / "phone.jpg").image.size == (40, 30)  # upright


def test_every_damaged_picture_is_named_or_skipped_and_not_counted(
    pets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    root = shutil.copytree(pets, tmp_path / "damaged")
    for name in ("dog/p000.jpg", "Cat/p014.jpg"):  # uploads cut short
        (root / name).write_bytes((root / name).read_bytes()[:200])
    with pytest.raises(CorruptImageError) as refused:
        prepared(root, tmp_path)
    message = str(refused.value)
    assert message.startswith("Cannot decode 2 pictures:") and "skip_corrupt=true" in message
    assert f"{root}/dog/p000.jpg: " in message and f"{root}/Cat/p014.jpg: " in message
    caplog.set_level(logging.INFO)
    dm = prepared(root, tmp_path, skip_corrupt=True)
    assert sum(len(s) for s in dm.splits.values()) == 48
    used = next(r.message for r in caplog.records if "; using train" in r.message)
    counts = used.split("; using ")[1].split(";")[0]  # "train 23 / 15, val 3 / 2, test 3 / 2"
    assert (
        sum(int(n) for n in counts.replace(",", " ").replace("/", " ").split() if n.isdigit()) == 48
    )
    assert "skipped 2 unreadable pictures: Cat/p014.jpg, dog/p000.jpg" in used
    recorded = [name for files in dm.state_dict()["split"].values() for name, *_ in files]
    assert len(recorded) == 48 and "dog/p000.jpg" not in recorded


def test_many_damaged_pictures_are_listed_in_a_file_beside_the_message(tmp_path: Path):
    root = make_folder(tmp_path / "bad", {"a": 8, "b": 8})
    damaged = sorted(p for p in root.rglob("*") if p.is_file())[:13]
    for path in damaged:
        path.write_bytes(b"not a picture at all")
    with pytest.raises(CorruptImageError) as refused:
        prepared(root, tmp_path)
    message = str(refused.value)
    assert message.count(f"\n  {root}/") == 10 and "\n  and 3 more: see " in message
    listed = Path(message.split("see ")[1].splitlines()[0])
    assert len(listed.read_text().splitlines()) == 13


# -- bad input: one message naming it, before anything is decoded or written -----------------


def _bad_layouts(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    one = make_folder(tmp_path / "one", {"cat": 4})
    bare = make_folder(tmp_path / "bare", {"cat": 4, "dog": 4})
    (bare / "fish").mkdir()
    (bare / "fish" / "names.txt").write_text("nemo")
    differ = tmp_path / "differ"
    make_folder(differ / "train", {"cat": 4, "dog": 4})
    make_folder(differ / "test", {"cat": 2, "bird": 2})
    return {
        "missing": (tmp_path / "nowhere", "no such folder or .zip file (looked for"),
        "empty": (empty, "it holds no class folders: put the pictures of each class in a folder"),
        "one class": (one, "it holds one class folder only (cat): a classifier needs at least two"),
        "no pictures": (bare, "the class folder fish holds no pictures (files ending in .jpg"),
        "splits differ": (
            differ,
            "split folders hold different classes: train/ has cat, dog; test/ has bird, cat",
        ),  # fmt: skip
    }


@pytest.mark.parametrize("case", ["missing", "empty", "one class", "no pictures", "splits differ"])
def test_a_bad_folder_is_refused_naming_it(case: str, tmp_path: Path):
    root, expected = _bad_layouts(tmp_path)[case]
    dm = module(root, tmp_path)
    with pytest.raises(ConfigError) as err:
        dm.class_names  # noqa: B018 (the model asks this first, before any decoding)
    assert str(err.value).startswith(f"dataset.root={root} is not valid: ")
    assert expected in str(err.value)
    assert not (tmp_path / "cache").exists()  # nothing decoded, nothing written


def test_a_class_named_like_a_split_is_a_class_as_imagefolder_reads_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """vehicles/bus|car|train: three classes, as torchvision's ImageFolder reads them."""
    from torchvision.datasets import ImageFolder

    root = make_folder(tmp_path / "vehicles", {"bus": 3, "car": 3, "train": 3})
    with caplog.at_level(logging.WARNING):
        dm = prepared(root, tmp_path)
    assert dm.class_names == ImageFolder(str(root)).classes == ["bus", "car", "train"]
    assert [sum(column) for column in zip(*counts(dm).values(), strict=True)] == [3, 3, 3]
    assert "train/ beside bus/, car/: every folder is read as a class" in caplog.text
    # three pictures a class: one to validate and one to test on, said in one line
    (few,) = [r.getMessage() for r in caplog.records if "few pictures" in r.getMessage()]
    assert "(val bus 1, val car 1, val train 1, test bus 1, test car 1, test train 1)" in few


def test_linked_folders_are_read_as_imagefolder_reads_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """A folder linked into another class counts there too; a link back up is not a loop."""
    from torchvision.datasets import ImageFolder

    root = make_folder(tmp_path / "pics", {"a": 3, "b": 3})
    (root / "a" / "more_from_b").symlink_to(root / "b", target_is_directory=True)
    (root / "b" / "up").symlink_to(root, target_is_directory=True)  # ImageFolder would loop
    (root / "a" / "all").symlink_to(tmp_path, target_is_directory=True)  # the folder above
    make_folder(tmp_path / "elsewhere", {"a": 5})  # what the link above would bring in
    with caplog.at_level(logging.INFO):
        dm = prepared(root, tmp_path / "out", val_fraction=0.2, test_fraction=0.2)
    assert [sum(column) for column in zip(*counts(dm).values(), strict=True)] == [6, 3]
    assert "3 links to a folder above them, not followed (a/all, a/more_from_b/up, b/up)" in (
        caplog.text
    )
    (root / "b" / "up").unlink()
    (root / "a" / "all").unlink()
    assert [ImageFolder(str(root)).targets.count(i) for i in (0, 1)] == [6, 3]


def test_a_class_tree_is_listed_as_torchvision_imagefolder_lists_it(tmp_path: Path):
    """Classes, their indices and every picture with its class: the project's reading and
    ImageFolder's agree on plain class trees (nested folders, mixed-case extensions, links)."""
    from torchvision.datasets import ImageFolder

    root = make_folder(tmp_path / "tree", {"Zebra": 9, "ant": 7, "Bee": 8})
    (root / "ant" / "deep" / "deeper").mkdir(parents=True)
    picture(True, np.random.default_rng(1)).save(root / "ant" / "deep" / "deeper" / "x.JPEG")
    (root / "ant" / "bees_too").symlink_to(root / "Bee", target_is_directory=True)
    listing = PictureStore(root).listing()
    scan = scan_folder(listing, str(root))
    theirs = ImageFolder(str(root))
    assert scan.classes == theirs.classes
    assert {name: i for i, name in enumerate(scan.classes)} == theirs.class_to_idx
    ours = sorted((str(root / name), label) for name, label in scan.pictures["all"])
    assert ours == sorted(theirs.samples) and len(ours) == 9 + 7 + 1 + 8 + 8


def test_two_zips_of_the_same_pictures_have_their_own_cache_and_summary(
    pets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    for name in ("first.zip", "second.zip"):
        with zipfile.ZipFile(tmp_path / name, "w") as zipped:
            for path in sorted(pets.rglob("*")):
                zipped.write(path, path.relative_to(pets).as_posix())
    caplog.set_level(logging.INFO)
    first = prepared(tmp_path / "first.zip", tmp_path)
    second = prepared(tmp_path / "second.zip", tmp_path)
    assert first.from_cache is False and second.from_cache is False
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Image folder")]
    assert "first.zip" in summary[0] and "second.zip" in summary[1]
    listed = _ch12("cache", "--cache-dir", str(tmp_path / "cache"), "list")
    assert "first.zip" in listed and "second.zip" in listed


@pytest.mark.parametrize(
    "header",
    ["", "file,label", "filename,class", "image;label", "path\ttarget", "class,filename",
     "image_id,class", "Fichier;Catégorie", "Klasse;Bild"],
)  # fmt: skip
def test_a_labels_csv_as_spreadsheets_write_it(header: str, tmp_path: Path):
    root = make_folder(tmp_path / "pics", {"a": 4, "b": 4})
    separator = next((c for c in ";\t" if c in header), ",")
    label_first = header.startswith(("class", "Klasse"))
    files = [p.relative_to(root) for p in sorted(root.rglob("*.*"))]
    pairs = [(f.parts[0], f.as_posix()) if label_first else (f.as_posix(), f.parts[0])
             for f in files]  # fmt: skip
    rows = [separator.join(pair) for pair in pairs]
    (tmp_path / "labels.csv").write_text("\n".join([header, *rows] if header else rows) + "\n")
    dm = module(root, tmp_path, labels_csv=str(tmp_path / "labels.csv"))
    assert dm.class_names == ["a", "b"]


def test_kaggle_ids_without_extensions_name_their_pictures(tmp_path: Path):
    root = make_folder(tmp_path / "pics", {"a": 4, "b": 4})
    flat = tmp_path / "images"
    flat.mkdir()
    rows = ["id,label"]
    for i, path in enumerate(sorted(root.rglob("*.*"))):
        path.rename(flat / f"{i:06d}{path.suffix}")
        rows.append(f"{i:06d},{path.relative_to(root).parts[0]}")
    (tmp_path / "train_labels.csv").write_text("\n".join(rows) + "\n")
    dm = module(flat, tmp_path, labels_csv=str(tmp_path / "train_labels.csv"))
    assert dm.class_names == ["a", "b"]
    assert sum(len(pictures) for pictures in dm._scan()[1].pictures.values()) == 8
    with pytest.raises(ConfigError, match="000000 is at images/000000.*give dataset.root the"):
        module(tmp_path, tmp_path, labels_csv=str(tmp_path / "train_labels.csv")).prepare_data()


def test_a_labels_csv_in_excels_western_code_page_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Excel's plain "CSV" is cp1252, not UTF-8: an accented label is still its label; the CSV
    itself, in the folder, is no picture rather than one "not in the CSV"."""
    root = make_folder(tmp_path / "pics", {"a": 4, "b": 4})
    files = [p.relative_to(root) for p in sorted(root.rglob("*.*"))]
    labels = {"a": "Bus", "b": "Straßenbahn"}
    rows = ["filename;class", *(f"{f.as_posix()};{labels[f.parts[0]]}" for f in files)]
    (root / "labels.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    with caplog.at_level(logging.INFO):
        dm = prepared(root, tmp_path, labels_csv="labels.csv")
    assert dm.class_names == ["Bus", "Straßenbahn"]
    assert "1 not pictures (labels.csv)" in caplog.text


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a/p000.jpg,a", "gone.jpg,b", "b/p001.PNG,b"],
         "1 of its 3 files does not exist under dataset.root: gone.jpg"),
        (["train/a/p000.jpg,a", "train/b/p001.PNG,b", "test/b/p002.jpeg,c"],
         "labels of its test files are absent from its train files: ['c']"),
        (["a/p000.jpg,a", "b/p001.PNG,a"], "it gives one label only (a)"),
        (["a/p000.jpg"], "row 1 is 'a/p000.jpg': every row must be a file and its label, "
         "separated by ',', ';' or a tab, with or without a header row of file|filename|image|"
         "path|name|id and label|class|target|category"),
        (["img;species", "cat one;a", "dog two;b"], "row 1 is 'img;species', a header of other "
         "names, and no column of the rows below it names files under dataset.root: every row "),
    ],
)  # fmt: skip
def test_a_bad_labels_csv_is_refused_naming_it(rows: list[str], expected: str, tmp_path: Path):
    root = make_folder(tmp_path / "pics", {"a": 4, "b": 4})
    if any(row.startswith("train/") for row in rows):  # the same pictures in split folders
        for split in ("train", "test"):
            for name in ("a", "b"):
                shutil.copytree(root / name, root / split / name)
        shutil.rmtree(root / "a")
        shutil.rmtree(root / "b")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dm = module(root, tmp_path, labels_csv=str(tmp_path / "labels.csv"))
    with pytest.raises(ConfigError) as err:
        dm.class_names  # noqa: B018
    assert str(err.value).startswith(f"dataset.labels_csv={tmp_path / 'labels.csv'} is not valid")
    assert expected in str(err.value)


def test_pictures_that_do_not_fit_are_refused_before_decoding(pets: Path, tmp_path: Path):
    with pytest.raises(NoRoomError) as err:
        prepared(pets, tmp_path, memory_limit_gb=0.00001)
    message = str(err.value)
    assert message.startswith("These image-folder settings select 50 images of 768 bytes")
    assert "set dataset.n_per_class, or use fewer pictures" in message
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_a_zip_that_is_not_one_is_refused(tmp_path: Path):
    fake = tmp_path / "pets.zip"
    fake.write_bytes(b"PK\3\4 cut short")
    with pytest.raises(ConfigError, match="cannot be read as a zip archive"):
        module(fake, tmp_path).class_names  # noqa: B018


# -- the command line --------------------------------------------------------------------


def test_train_predict_export_on_a_folder_that_then_moves(pets: Path, tmp_path: Path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    settings = ["dataset.image_size=16", "dataset.num_workers=0", "trainer.max_epochs=4"]
    mine = shutil.copytree(pets, tmp_path / "mine")
    # Trained in this process; predicted and exported by the commands, as a user would.
    folder = train_here("dataset=image_folder", f"dataset.root={mine}", *settings, cache,
                        cwd=tmp_path)  # fmt: skip
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert metrics["test/samples"] == 5 and {"test/acc_Cat", "test/acc_dog"} <= set(metrics)
    assert metrics["test/acc"] >= 0.8
    mine.rename(tmp_path / "moved")  # predict and export need the checkpoint, not the pictures
    predicted = _ch12("predict", f"ckpt_path={folder}", f"inputs={pets / 'dog'}",
                      f"output_csv={tmp_path / 'p.csv'}", cache)  # fmt: skip
    lines = [line for line in predicted.splitlines() if line.startswith(str(pets))]
    assert len(lines) == 20 and sum(": dog (" in line for line in lines) >= 17  # more/ too
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header.endswith("p_Cat,p_dog")
    _ch12("export", f"ckpt_path={folder}", f"output={tmp_path / 'm.pt2'}", cache)
    exported = torch.export.load(tmp_path / "m.pt2")
    assert exported.module()(torch.zeros(2, 3, 16, 16)).shape == (2, 2)


@pytest.mark.slow  # the fast tier: the message in tests/checks/test_errors.py, printed alone there
def test_no_root_is_refused_by_the_config_check(tmp_path: Path):
    result = train("dataset=image_folder", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "dataset.root=null is not valid: give the folder of your pictures "
        "(root/<class>/<picture>), or a .zip of it" in result.stderr
    )
