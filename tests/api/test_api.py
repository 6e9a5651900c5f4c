"""``from ch12_lightning import api``: the project from Python, as a notebook uses it."""

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from PIL import Image

from ch12_lightning import api
from ch12_lightning.errors import ConfigError
from tests.helpers.mnist_files import read_idx
from tests.helpers.runs import REPO, quick, train

FRESH_PROCESS = """
import json, os, sys, torch
from sklearn.datasets import load_iris
from ch12_lightning import api

run = api.train(["experiment=iris_book"])
again = api.load_run(run.folder)
flowers = again.predict(load_iris().data[[0, 50, 100]])  # raw measurements, as typed in
print(json.dumps({"folder": str(run.folder), "cwd": os.getcwd(), "acc": run.metrics["test/acc"],
                  "classes": [p.class_name for p in flowers], "checkpoint": str(again.checkpoint)}))
"""


def test_a_fresh_process_elsewhere_trains_the_book_recipe_and_reads_it_back(tmp_path: Path):
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["acc"] == pytest.approx(0.98)  # the book's figure, on its 50 test flowers
    assert found["cwd"] == str(tmp_path)  # never changed
    folder = Path(found["folder"])
    assert folder.parent == tmp_path / "outputs" / "iris_book" / "runs"
    for name in ("train.log", ".hydra/config.yaml", "config_resolved.yaml", "metrics.json"):
        assert (folder / name).is_file(), name  # the command line's run folder
    assert found["checkpoint"].startswith(str(folder / "checkpoints"))
    assert json.loads((folder / "metrics.json").read_text())["metrics"]["test/samples"] == 50
    state = torch.load(found["checkpoint"], weights_only=True)
    assert state["hyper_parameters"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert state["state_dict"]["net.1.weight"].shape == (16, 4)  # the book's 4-16-3 MLP
    assert found["classes"] == ["setosa", "versicolor", "virginica"]  # standardized as trained
    log = (folder / "train.log").read_text()
    shown = result.stderr + result.stdout
    for line in ("Final metrics", "GPU available", "Total params", "Seed set to"):
        assert line in log and line not in shown, line  # the log keeps what the cell leaves out
    assert shown.count("is deprecated") <= 1  # a warning once, not at every stage


def test_compose_refuses_bad_values_with_the_command_lines_message():
    cfg = api.compose(["dataset=iris", "model.hidden_sizes=[8]"])
    assert cfg.model.hidden_sizes == [8] and "hydra" not in cfg
    assert Path(cfg.paths.output_dir).parent.name == "runs"  # resolvable, unlike compose()'s
    with pytest.raises(ConfigError, match=r"^optimizer.lr=0 is not valid: must be a positive"):
        api.compose(["optimizer.lr=0"])


def test_two_runs_in_one_process_leave_no_state_behind(tmp_path: Path, mnist_dir: Path):
    """Seeds, Hydra's global state, loggers: the second run is the first one again."""
    from hydra.core.global_hydra import GlobalHydra

    overrides = quick(mnist_dir, tmp_path)
    handlers, level = list(logging.getLogger().handlers), logging.getLogger().level
    first = api.train(overrides, output_dir=tmp_path / "first")
    second = api.train(overrides, output_dir=tmp_path / "second")
    assert first.folder == tmp_path / "first" and second.folder == tmp_path / "second"
    assert first.metrics == second.metrics and first.metrics["test/acc"] > 0.5
    assert not GlobalHydra.instance().is_initialized()
    assert logging.getLogger().handlers == handlers and logging.getLogger().level == level
    for run in (first, second):  # each run's log in its own file
        assert (run.folder / "train.log").read_text().count("Final metrics") == 1


def test_a_run_answers_in_plain_data_and_figures(tmp_path: Path, mnist_dir: Path):
    run = api.train([*quick(mnist_dir, tmp_path), "trainer.max_epochs=2"], tmp_path / "run")
    assert isinstance(run, api.Run) and run.config.dataset.val_size == 100
    assert not run.model.training and run.datamodule.splits["test"].targets.numel() == 200
    targets = run.datamodule.splits["test"].targets
    digits = read_idx(mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")[:20]
    from_arrays = run.predict(digits, preprocess="none")  # in MNIST's form already
    hits = [p.class_name == str(int(t)) for p, t in zip(from_arrays, targets[:20], strict=True)]
    assert sum(hits) >= 16
    picture = Image.fromarray(digits[0])
    (tmp_path / "mine" / "deeper").mkdir(parents=True)
    picture.save(tmp_path / "mine" / "deeper" / "digit.png")
    (from_image,) = run.predict(picture)
    (from_file,) = run.predict(tmp_path / "mine" / "deeper" / "digit.png")
    (from_folder,) = run.predict(str(tmp_path / "mine"))  # its pictures, subfolders' too
    assert from_image.class_name == from_file.class_name == from_folder.class_name
    assert from_image.probability == pytest.approx(from_file.probability)
    assert str(from_image.path) == "picture 0"
    assert run.evaluate("test") == pytest.approx(
        {k: v for k, v in run.metrics.items() if k.startswith("test/")}
    )
    shown = DisplayFormatter()  # what Jupyter shows for a cell's value and for display()
    for figure in (run.learning_curves(), run.confusion_matrix("val"), run.misclassified(n=6)):
        assert figure.get_axes() and figure.get_size_inches()[0] > 1
        png = shown.format(figure)[0]["image/png"]  # with Agg, as in a kernel the project set up
        picture = Image.open(io.BytesIO(png))
        assert picture.size == tuple(round(x * 100) for x in figure.get_size_inches())
        figure.savefig(tmp_path / "figure.png")  # and still a Figure that saves to a file
        assert Image.open(tmp_path / "figure.png").size == picture.size
    (run.folder / "confusion_matrix_val.png").unlink()
    with pytest.raises(FileNotFoundError, match="confusion_matrix_val.png does not exist"):
        run.confusion_matrix("val")
    for bad, message in (
        (lambda: run.confusion_matrix("train"), "split=train is not valid: the run draws the "
         "confusion matrices of test and val"),
        (lambda: run.misclassified("tset"), "split=tset is not valid: must be one of train, val"),
        (lambda: run.misclassified(n=0), "n=0 is not valid: must be a positive number"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            bad()
        assert len(err.value._render_traceback_()) == 1  # a cell shows the message alone
    twelve = _grid_captions(run.misclassified(n=12))
    assert twelve == min(12, _mistakes(run, "test"))  # n pictures, not n // classes per class


def _mistakes(run: api.Run, split: str) -> int:
    inputs, targets = run.datamodule.splits[split].served()
    with torch.inference_mode():
        return int((run.model(inputs).argmax(dim=1) != targets).sum())


def _grid_captions(figure) -> int:
    """The number the grid's title gives ("12 misclassified (test)")."""
    return int(figure.texts[0].get_text().split()[0]) if figure.texts else 0


@pytest.mark.slow
def test_a_sweep_reads_back_as_rows(tmp_path: Path, mnist_dir: Path):
    result = train("-m", f"paths.data_dir={mnist_dir}", f"paths.cache_dir={tmp_path / 'c'}",
                   "dataset.val_size=100", "trainer.max_epochs=1", "seed=1,2",
                   "model.hidden_sizes=[8],[16]", cwd=tmp_path, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "outputs" / "train" / "multiruns").iterdir()
    sweep = api.load_sweep(folder)
    assert len(sweep.jobs) == 4 and all(job["status"] == "completed" for job in sweep.jobs)
    best = [job["metrics"]["val/acc_best"] for job in sweep.jobs]
    assert best == sorted(best, reverse=True)
    assert [s["completed"] for s in sweep.settings] == [2, 2]
    assert all(s["seeds"] == ["1", "2"] and s["val/acc_best std"] >= 0 for s in sweep.settings)
    with pytest.raises(FileNotFoundError, match="holds no sweep jobs"):
        api.load_sweep(tmp_path)


INTERRUPTED = """
import signal, sys
from ch12_lightning import api
# A Jupyter kernel turns SIGINT into KeyboardInterrupt, even where its parent ignores SIGINT (as
# a shell does for the commands it runs in the background, CI's among them).
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    api.train(sys.argv[1:], output_dir="run")
except KeyboardInterrupt as stop:
    print("STOPPED", stop)
"""


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_checkpoints_and_resumes(tmp_path: Path, mnist_dir: Path):
    """The kernel's stop button is SIGINT to the process that runs the cell."""
    overrides = [*quick(mnist_dir, tmp_path), "trainer.max_epochs=400"]
    command = [sys.executable, "-c", INTERRUPTED, *overrides]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    kept = f"the checkpoints of finished epochs are in {tmp_path / 'run'}"
    assert f"STOPPED Training stopped; {kept}" in out
    assert "ckpt_path=" in out and last.is_file()
    epochs_done = torch.load(last, weights_only=True)["epoch"] + 1
    more = [*overrides, f"trainer.max_epochs={epochs_done + 2}", f"ckpt_path={tmp_path / 'run'}"]
    resumed = api.train(more, output_dir=tmp_path / "run")
    assert json.loads((resumed.folder / "metrics.json").read_text())["epochs"] == epochs_done + 2


def test_a_run_resumed_from_python_goes_on_in_its_own_folder(tmp_path: Path):
    first = api.train(["experiment=iris_book", "trainer.max_epochs=2"], output_dir="first")
    log = (first.folder / "train.log").read_text()
    config = (first.folder / ".hydra" / "config.yaml").read_text()
    more = ["experiment=iris_book", "trainer.max_epochs=4", f"ckpt_path={first.folder}"]
    resumed = api.train(more)  # no output_dir: the run's own folder, not a new one beside it
    assert resumed.folder == first.folder == tmp_path / "first"
    assert json.loads((resumed.folder / "metrics.json").read_text())["epochs"] == 4
    assert not (tmp_path / "outputs").exists()
    again = (resumed.folder / "train.log").read_text()
    assert again.startswith(log) and "Resuming" in again[len(log) :]  # one log, continued
    assert (first.folder / ".hydra" / "config.yaml").read_text() == config  # as it was started
    assert api.train(more, output_dir="first").folder == first.folder  # the printed call's form


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: api.train(["dataset=mnistt"]), "In 'train': Could not find 'dataset/mnistt'"),
        (lambda: api.compose(["experiment=iris"]), "In 'train': Could not find 'experiment/iris'"),
        (lambda: api.train("experiment=iris_book trainer.max_epochs=2"), "overrides='experiment="
         "iris_book trainer.max_epochs=2' is not valid: give a list, one override per item: "
         "['experiment=iris_book', 'trainer.max_epochs=2']"),
        (lambda: api.compose(["seed=="]), "Error parsing override 'seed=='"),
    ],
)  # fmt: skip
def test_what_hydra_refuses_is_one_message_in_a_cell(call, message: str):
    with pytest.raises(ConfigError) as err:
        call()
    assert str(err.value).startswith(message)
    (shown,) = err.value._render_traceback_()  # no traceback through Hydra's frames
    assert shown.startswith("ConfigError: ")


def test_a_refused_value_is_its_message_alone(capfd: pytest.CaptureFixture[str]):
    with pytest.raises(ConfigError, match="model.dropout=1.5 is not valid"):
        api.train(["experiment=iris_book", "model.dropout=1.5"], output_dir="run")
    shown = capfd.readouterr()
    assert "Error executing job" not in shown.err + shown.out  # Hydra's line before the error


def test_resuming_with_fewer_epochs_than_trained_changes_nothing(tmp_path: Path):
    run = api.train(["experiment=iris_book", "trainer.max_epochs=3"], output_dir="run")
    before = {p: p.read_bytes() for p in run.folder.rglob("*") if p.is_file()}
    fewer = ["experiment=iris_book", "trainer.max_epochs=1", f"ckpt_path={run.folder}"]
    message = (f"trainer.max_epochs=1 is not valid: the run in {run.folder} has trained 3 epochs "
               "(last.ckpt); give trainer.max_epochs=4 or more")  # fmt: skip
    with pytest.raises(ConfigError, match=re.escape(message)):
        api.train(fewer)
    after = {p: p.read_bytes() for p in run.folder.rglob("*") if p.is_file()}
    changed = [p.name for p in after if before.get(p) != after[p]]
    assert changed in ([], ["train.log"]), changed  # the refusal is logged, nothing else moves


def test_every_public_name_is_documented():
    assert sorted(api.__all__) == ["Run", "compose", "load_run", "load_sweep", "sweep", "train"]
    readme = (REPO / "README.md").read_text()
    for name in (
        "api.train",
        "api.compose",
        "api.load_run",
        "api.load_sweep",
        "api.sweep",
        ".predict(",
        ".evaluate(",
        ".learning_curves()",
        ".confusion_matrix(",
        ".misclassified(",
    ):
        assert name in readme, name  # fmt: skip
