"""dataset=image_folder on real pictures: CelebA's faces sorted into Male class folders (against
experiment=celeba_practice on the same JPEGs), and MNIST digits saved as PNG files."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.mnist_files import read_idx
from tests.helpers.runs import REAL_DATA, train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set"),
]


def celeba_male_folder(root: Path) -> Path:
    """CelebA's JPEGs linked into root/train|val|test/female|male/ by official partition."""
    celeba = Path(REAL_DATA) / "celeba"
    partition = (celeba / "list_eval_partition.txt").read_text().splitlines()
    split_of = {
        name: ("train", "val", "test")[int(part)] for name, part in map(str.split, partition)
    }
    rows = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    column = rows[1].split().index("Male") + 1
    is_male = {row.split()[0]: row.split()[column] == "1" for row in rows[2:]}
    for picture in sorted((celeba / "img_align_celeba").iterdir()):
        folder = root / split_of[picture.name] / ("male" if is_male[picture.name] else "female")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / picture.name).symlink_to(picture)
    return root


def mnist_pictures(folder: Path, kind: str, count: int, by_class: bool) -> dict[str, int]:
    """MNIST's ``kind`` (train or t10k) digits as PNG files: ``count`` of each digit in
    folder/<digit>/ (by_class), else the first ``count`` in folder. Returns file name -> digit."""
    raw = Path(REAL_DATA) / "MNIST" / "raw"
    images = read_idx(raw / f"{kind}-images-idx3-ubyte.gz")
    labels = read_idx(raw / f"{kind}-labels-idx1-ubyte.gz")
    truth, taken = {}, [0] * 10
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        if (taken[label] if by_class else len(truth)) == count:
            continue
        taken[label] += 1
        place = folder / str(label) if by_class else folder
        place.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(place / f"{i:05d}.png")
        truth[f"{i:05d}.png"] = int(label)
    return truth


def trained(tmp_path: Path, name: str, *overrides: str) -> tuple[Path, dict[str, float]]:
    """The run folder and final metrics of ``./ch12 train <overrides>``."""
    run = tmp_path / name
    result = train(*overrides, f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run}",
                   cwd=tmp_path, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run, json.loads((run / "metrics.json").read_text())["metrics"]


def test_celeba_male_folder_trains_exactly_as_celeba_practice(tmp_path: Path):
    """The practice recipe (MLP 1024-256-64-2, Adam 1e-3, batch 16, 1000 training faces of
    each class, 32 px gray, 20 epochs) on the faces sorted into class folders, against the same
    recipe on the CelebA files, every validation and test face in both: the same faces drawn
    for training with the same seed, decoded by the same function, served in the same order,
    give the same model, so every metric agrees."""
    folder = celeba_male_folder(tmp_path / "celeba_male")
    recipe = ["experiment=celeba_practice", "dataset.eval_batch_size=1000"]
    _, practice = trained(tmp_path, "practice", *recipe, f"paths.data_dir={REAL_DATA}",
                          "dataset.eval_per_class=all")  # fmt: skip
    _, own = trained(tmp_path, "folder", *recipe, "dataset=image_folder", f"dataset.root={folder}")
    assert own["test/samples"] == practice["test/samples"] == 504 + 156
    assert practice["test/acc"] > 0.8
    assert own == pytest.approx(practice, rel=1e-6)


def test_mnist_digit_folder_trains_and_predicts(tmp_path: Path):
    """10 classes x 500 real MNIST training digits as PNG files (80/10/10 split drawn by the
    data module); the book's small MLP reads the held-out ones, and predict reads MNIST's own
    test digits, saved the same way, as well."""
    mnist_pictures(tmp_path / "digits", "train", 500, by_class=True)
    run, metrics = trained(
        tmp_path, "digits_run", "dataset=image_folder", f"dataset.root={tmp_path / 'digits'}",
        "dataset.image_size=28", "dataset.grayscale=true", "trainer.max_epochs=10",
    )  # fmt: skip
    assert metrics["test/samples"] == 500 and metrics["test/acc"] >= 0.85
    truth = mnist_pictures(tmp_path / "unseen", "t10k", 500, by_class=False)
    out = tmp_path / "predictions.csv"
    command = [sys.executable, "-m", "ch12_lightning.predict", f"ckpt_path={run}",
               f"inputs={tmp_path / 'unseen'}", f"output_csv={out}"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert sorted(Path(row["image"]).name for row in rows) == sorted(truth)
    hits = [int(row["class"]) == truth[Path(row["image"]).name] for row in rows]
    assert sum(hits) / len(hits) >= 0.85
