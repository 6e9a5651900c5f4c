"""A picture run records its split: eval (and resuming) use exactly the run's pictures, however
the folder changed since; a change to them is said, with a count, never a silent other split."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ch12_lightning.data.recorded_split import SplitChangedError
from ch12_lightning.trained.evaluate import evaluate
from tests.helpers.picture_folders import make_folder, picture
from tests.helpers.runs import train_here, trained_run_config

SETTINGS = ["dataset.image_size=8", "dataset.num_workers=0", "dataset.test_fraction=0.25"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on ``<tmp>/pets`` (a: 20, b: 20 pictures; 5 of each for test)."""
    tmp = tmp_path_factory.mktemp("recorded")
    pets = make_folder(tmp / "pets", {"a": 20, "b": 20})
    return train_here(
        "dataset=image_folder", f"dataset.root={pets}", *SETTINGS, "trainer.max_epochs=1",
        f"paths.cache_dir={tmp / 'cache'}", cwd=tmp,
    )  # fmt: skip


def split_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "split.csv").open() as file:
        return list(csv.DictReader(file))


def test_the_run_folder_lists_every_picture_once_in_split_csv(run: Path):
    rows = split_rows(run)
    assert len(rows) == 40 and len({row["file"] for row in rows}) == 40
    tested = [row for row in rows if row["split"] == "test"]
    assert len(tested) == 10 and {row["label"] for row in tested} == {"a", "b"}
    assert all(row["file"].startswith(row["label"] + "/") for row in rows)


def changed_copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the run's folder of pictures (times kept, as a move keeps them)."""
    root = OmegaConf.load(run / "config_resolved.yaml").dataset.root
    return shutil.copytree(root, tmp_path / "pets")


def evaluated(run: Path, root: Path, tmp_path: Path, *extra: str) -> dict[str, float]:
    overrides = [f"ckpt_path={run}", f"dataset.root={root}", *extra]
    return evaluate(trained_run_config("eval", tmp_path / "eval", *overrides))


def test_eval_after_a_picture_is_added_measures_the_runs_own_test_pictures(
    run: Path, tmp_path: Path
):
    pets = changed_copy(run, tmp_path)
    picture(False, np.random.default_rng(9)).save(pets / "a" / "added.jpg")
    metrics = evaluated(run, pets, tmp_path)
    own = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["test/samples"] == 10
    assert metrics["test/acc"] == pytest.approx(own["test/acc"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(own["test/loss"], abs=1e-5)


def test_eval_after_a_test_picture_is_removed_stops_or_skips_it(run: Path, tmp_path: Path):
    pets = changed_copy(run, tmp_path)
    gone = next(row["file"] for row in split_rows(run) if row["split"] == "test")
    (pets / gone).unlink()
    with pytest.raises(SplitChangedError) as stopped:
        evaluated(run, pets, tmp_path)
    message = str(stopped.value)
    assert f"The test split the run recorded has changed in {pets} (the run found " in message
    assert "): 1 of its 10" in message
    assert f"is gone ({gone})" in message
    assert "evaluate the 9 still there, unchanged: changed_pictures=skip" in message
    assert evaluated(run, pets, tmp_path, "changed_pictures=skip")["test/samples"] == 9
    written = json.loads((tmp_path / "eval" / "out" / "metrics.json").read_text())
    assert written["left_out"] == "test: 1 gone or changed left out"


def test_eval_on_another_folder_says_where_the_run_found_its_pictures(run: Path, tmp_path: Path):
    other = make_folder(tmp_path / "other", {"a": 6, "b": 6}, seed=3)
    with pytest.raises(SplitChangedError) as stopped:
        evaluated(run, other, tmp_path)
    root = OmegaConf.load(run / "config_resolved.yaml").dataset.root
    assert f"has changed in {other} (the run found its pictures in {root}): " in str(stopped.value)


def test_eval_after_a_test_picture_is_replaced_stops(run: Path, tmp_path: Path):
    pets = changed_copy(run, tmp_path)
    replaced = next(row["file"] for row in split_rows(run) if row["split"] == "test")
    picture(True, np.random.default_rng(5), (60, 50)).save(pets / replaced, format="PNG")
    with pytest.raises(SplitChangedError, match=rf"1 of its 10 pictures is changed .*{replaced}"):
        evaluated(run, pets, tmp_path)


def test_eval_on_a_copy_that_did_not_keep_times_knows_the_pictures_by_content(
    run: Path, tmp_path: Path
):
    root = OmegaConf.load(run / "config_resolved.yaml").dataset.root
    pets = shutil.copytree(root, tmp_path / "pets", copy_function=shutil.copy)  # as cp -r
    tested = next(row["file"] for row in split_rows(run) if row["split"] == "test")
    assert (pets / tested).stat().st_mtime_ns != (Path(root) / tested).stat().st_mtime_ns
    own = json.loads((run / "metrics.json").read_text())["metrics"]
    assert evaluated(run, pets, tmp_path)["test/acc"] == pytest.approx(own["test/acc"], abs=1e-6)
    data = bytearray((pets / tested).read_bytes())
    data[-3] ^= 0xFF  # the same size, other content
    (pets / tested).write_bytes(bytes(data))
    with pytest.raises(SplitChangedError, match=rf"is changed \(other content: {tested}\)"):
        evaluated(run, pets, tmp_path)


def test_eval_on_test_after_training_pictures_were_removed_goes_on(run: Path, tmp_path: Path):
    pets = changed_copy(run, tmp_path)
    for row in split_rows(run)[:5]:  # files come split by split: training pictures
        assert row["split"] == "train"
        (pets / row["file"]).unlink()
    assert evaluated(run, pets, tmp_path)["test/samples"] == 10
    with pytest.raises(SplitChangedError, match="The val split"):
        (pets / next(r["file"] for r in split_rows(run) if r["split"] == "val")).unlink()
        evaluated(run, pets, tmp_path, "split=val")


def test_a_bad_changed_pictures_value_is_refused(run: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="changed_pictures=keep is not valid.*stop, skip"):
        evaluate(trained_run_config("eval", tmp_path, f"ckpt_path={run}", "changed_pictures=keep"))


def test_a_resumed_run_trains_on_its_recorded_split_after_pictures_were_added(tmp_path: Path):
    pets = make_folder(tmp_path / "pets", {"a": 12, "b": 12})
    common = ["dataset=image_folder", f"dataset.root={pets}", *SETTINGS,
              f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    folder = train_here(*common, "trainer.max_epochs=1", cwd=tmp_path)
    before = split_rows(folder)
    rng = np.random.default_rng(4)
    for i in range(3):
        picture(True, rng).save(pets / "b" / f"new{i}.jpg")
    resumed = train_here(*common, f"ckpt_path={folder}", "trainer.max_epochs=2", cwd=tmp_path)
    assert resumed == folder and split_rows(folder) == before
    (pets / before[0]["file"]).unlink()  # a training picture
    with pytest.raises(SplitChangedError, match="The train split .* 1 of its .* is gone") as err:
        train_here(*common, f"ckpt_path={folder}", "trainer.max_epochs=3", cwd=tmp_path)
    assert str(err.value).endswith("A resumed run trains and validates on the pictures it "
                                   "started with: put them back, or start a new run.")  # fmt: skip


def test_eval_finds_a_relative_root_from_any_working_folder_or_says_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    make_folder(tmp_path / "pets", {"a": 8, "b": 8})
    monkeypatch.chdir(tmp_path)
    common = [f"paths.cache_dir={tmp_path / 'cache'}", "dataset.val_fraction=0.25"]
    folder = train_here("dataset=image_folder", "dataset.root=pets", *SETTINGS, *common,
                        "trainer.max_epochs=1", cwd=tmp_path)  # fmt: skip
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    eval_config = trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}")
    assert evaluate(eval_config)["test/samples"] == 4
    resumed = train_here("dataset=image_folder", "dataset.root=pets", *SETTINGS, *common,
                         f"ckpt_path={folder}", "trainer.max_epochs=2", cwd=tmp_path)  # fmt: skip
    assert resumed == folder  # the same command, from another working folder
    (tmp_path / "pets").rename(tmp_path / "Pet Photos")
    with pytest.raises(ValueError) as refused:
        evaluate(trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}"))
    assert f"The run found its pictures in {tmp_path / 'pets'}: if they moved, give " in str(
        refused.value
    )
