"""The API as a person meets it in a real Jupyter kernel: cells sent one by one, their outputs
read as JupyterLab shows them (pictures, lines, progress widgets, errors)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.kernels import Cell, Kernel, kernel
from tests.helpers.mnist_files import read_idx
from tests.helpers.runs import quick

# Raw measurements (cm) of one flower of each species, as typed from a field book: scikit-learn's
# Iris rows 0, 50 and 100 (setosa, versicolor, virginica).
FLOWERS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]


def _ran(cell: Cell) -> Cell:
    assert cell.error is None, "\n".join(cell.error["traceback"]) if cell.error else ""
    return cell


def _value(kernel: Kernel, expression: str) -> object:
    """A value of the kernel, as JSON."""
    cell = _ran(kernel.run(f"import json as _json; print(_json.dumps({expression}))"))
    return json.loads(cell.text.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_new_users_first_hour_in_a_kernel(tmp_path: Path, mnist_dir: Path):
    overrides = quick(mnist_dir, tmp_path)
    test_images = read_idx(mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    np.save(tmp_path / "digits.npy", test_images[:20])  # a notebook's numpy digits, uint8
    with kernel(tmp_path) as k:
        _ran(k.run("from ch12_lightning import api\nimport numpy as np"))

        # A 20-epoch run: one progress widget and the test's table, Lightning's lines in the log.
        run = k.run(f"run = api.train({[*overrides, 'trainer.max_epochs=20']})")
        _ran(run)
        assert run.widgets == 1 and len(run.lines()) <= 15, run.lines()
        assert re.search(r"^Test: test/acc 0\.\d{4}, test/loss \d", run.text, re.M), run.text
        folder = Path(_value(k, "str(run.folder)"))
        assert "GPU available" in (folder / "train.log").read_text()

        # The three figures show as pictures, as the cell's value and through display().
        for code in ("run.learning_curves()", "display(run.confusion_matrix('test'))",
                     "run.misclassified('test', 12)"):  # fmt: skip
            shown = _ran(k.run(code))
            assert len(shown.images) == 1 and not shown.lines(), (code, shown.outputs)

        # Stopped with the kernel's stop button once an epoch is saved: the message is the call.
        stopped = tmp_path / "stopped"
        long_run = [*overrides, "trainer.max_epochs=400"]
        last = stopped / "checkpoints" / "last.ckpt"
        cell = k.run(f"api.train({long_run}, output_dir='stopped')", interrupt_when=last.is_file)
        assert cell.error and cell.error["ename"] == "TrainingStopped", cell.outputs
        assert len(cell.lines()) <= 6 and "(or ckpt_path=last)" not in cell.text, cell.lines()
        call = re.search(r"Resume with (api\.train\(.*\))$", cell.error["evalue"]).group(1)
        assert "output_dir='stopped'" in call and f"ckpt_path={stopped}" in call
        epochs_done = torch.load(last, weights_only=True)["epoch"] + 1
        call = call.replace("trainer.max_epochs=400", f"trainer.max_epochs={epochs_done + 2}")
        runs_before = sorted((tmp_path / "outputs").rglob("runs/*"))
        _ran(k.run(f"resumed = {call}"))
        assert Path(_value(k, "str(resumed.folder)")) == stopped  # a Run, the run's own folder
        assert json.loads((stopped / "metrics.json").read_text())["epochs"] == epochs_done + 2
        assert sorted((tmp_path / "outputs").rglob("runs/*")) == runs_before  # no empty folder

        # Predict on what a notebook holds: numpy digits, and a flower's raw measurements.
        answers = _value(k, "[p.class_name for p in run.predict(np.load('digits.npy'))]")
        from_files = []
        for i, image in enumerate(test_images[:20]):
            Image.fromarray(image).save(tmp_path / f"{i:02d}.png")
            from_files.append(tmp_path / f"{i:02d}.png")
        by_file = _value(k, f"[p.class_name for p in run.predict({[str(f) for f in from_files]})]")
        assert answers == by_file  # an array is prepared as the same picture saved as a file
        # Digits already in MNIST's form, prepared as the run's own (its test accuracy ~0.99).
        as_is = "run.predict(np.load('digits.npy'), preprocess='none')"
        answers = _value(k, f"[p.class_name for p in {as_is}]")
        labels = read_idx(mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")[:20]
        assert sum(a == str(int(t)) for a, t in zip(answers, labels, strict=True)) >= 18
        _ran(k.run("iris = api.train(['experiment=iris_book'])"))
        species = _value(k, f"[p.class_name for p in iris.predict({FLOWERS})]")
        assert species == ["setosa", "versicolor", "virginica"]

        # A typo: the project's one message, not Hydra's traceback.
        typo = k.run("api.train(['optimizer.lrr=0.1'])")
        assert typo.error and len(typo.lines()) <= 6, typo.lines()
        assert "has no setting lrr; did you mean lr?" in typo.error["evalue"]
