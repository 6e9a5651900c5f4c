"""Runs written before the network became a setting of its own (``earlier_runs/``, made at
41a4d86: ``model._target_: ...MLPClassifier``, checkpoints with ``input_size`` and
``hidden_sizes``) still evaluate, predict, export and resume, with the numbers they gave then."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ch12_lightning import api
from ch12_lightning.errors import ConfigError
from ch12_lightning.trained.evaluate import evaluate
from ch12_lightning.trained.export import export_run
from ch12_lightning.trained.load import load_run
from ch12_lightning.trained.predict import predict_files
from tests.helpers.mnist_files import digit
from tests.helpers.runs import quick, train_here, trained_run_config

EARLIER = Path(__file__).parent / "earlier_runs"


def earlier_run(name: str, tmp_path: Path) -> Path:
    """A copy of an earlier run folder (resuming writes into it)."""
    return shutil.copytree(EARLIER / name, tmp_path / name)


def written_metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def test_an_earlier_mnist_run_evaluates_as_it_tested(mnist_dir: Path, tmp_path: Path):
    # The run was trained on the generated MNIST of tests/conftest.py: the same test split.
    folder = earlier_run("mnist_mlp", tmp_path)
    where = [f"paths.data_dir={mnist_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    metrics = evaluate(trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}", *where))
    for name in ("test/acc", "test/loss", "test/acc_2"):
        assert metrics[name] == pytest.approx(written_metrics(folder)[name], abs=1e-6), name
    run = load_run(trained_run_config("eval", tmp_path / "load", f"ckpt_path={folder}", *where))
    rebuilt = run.model(run.datamodule())
    assert rebuilt.hparams.net == {
        "_target_": "ch12_lightning.models.nets.mlp.MLP",
        "hidden_sizes": [4],
        "activation": "relu",
        "dropout": 0.0,
    }
    assert rebuilt.hparams.input_shape == [1, 28, 28] and "input_size" not in rebuilt.hparams


def test_an_earlier_mnist_run_predicts_and_exports(tmp_path: Path):
    folder = earlier_run("mnist_mlp", tmp_path)
    picture = tmp_path / "three.png"
    Image.fromarray(digit(3)).save(picture)
    overrides = [f"ckpt_path={folder}", f"inputs=[{picture}]", "output_csv=null"]
    (predicted,) = predict_files(trained_run_config("predict", tmp_path / "predict", *overrides))
    assert predicted.class_name in [str(k) for k in range(10)]
    output = tmp_path / "model.pt2"
    export = [f"ckpt_path={folder}", f"output={output}"]
    export_run(trained_run_config("export", tmp_path / "export", *export))
    exported = torch.export.load(output).module()
    pixels = torch.from_numpy(np.asarray(Image.open(picture), dtype=np.float32) / 255)
    with torch.inference_mode():
        logits = exported(((pixels - 0.1307) / 0.3081)[None, None])
    assert logits.shape == (1, 10)


def test_an_earlier_checkpoint_resumes_training(mnist_dir: Path, tmp_path: Path):
    folder = earlier_run("mnist_mlp", tmp_path)
    args = [*quick(mnist_dir, tmp_path), "model.hidden_sizes=[4]", "dataset.batch_size=32"]
    train_here(*args, "trainer.max_epochs=2", f"ckpt_path={folder}", cwd=tmp_path)
    (own,) = (tmp_path / "outputs" / "train" / "runs").iterdir()  # the command's own log
    said = (own / "train.log").read_text()
    assert f"Resuming {folder} from checkpoints/epoch_000.ckpt" in said
    resumed = json.loads((folder / "metrics.json").read_text())
    assert resumed["epochs"] == 2  # went on in the run's own folder, from its epoch


def test_an_earlier_regression_run_evaluates_as_it_tested(tmp_path: Path):
    folder = earlier_run("toy_regression", tmp_path)
    metrics = evaluate(trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}"))
    assert metrics["test/loss"] == pytest.approx(written_metrics(folder)["test/loss"], rel=1e-6)


def test_an_earlier_regression_run_predicts_values_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Its points are made in code: x is standardized with their statistics, never saved."""
    run = api.load_run(earlier_run("toy_regression", tmp_path))
    with torch.inference_mode():
        expected = run.model(run.datamodule.splits["test"].inputs).flatten().tolist()
    found = run.predict(list(range(10)))  # x = 0..9, raw: ten rows of the one column
    assert [estimate.value for estimate in found] == expected
    assert not any(estimate.notes for estimate in found)
    (far,) = run.predict([100])  # a value far beyond the ten points is said so on its line
    note = "x 100 lies far outside the training data (33 standard deviations from its mean, 4.5)"
    assert far.notes == (f"{note}: other units?",) and far.line().endswith(f"{note}: other units?]")

    out = tmp_path / "values.csv"
    ckpt = f"ckpt_path={run.folder}"
    predict = trained_run_config("predict", tmp_path, ckpt, "inputs=[3]", f"output_csv={out}")
    (estimate,) = predict_files(predict)
    assert estimate.value == pytest.approx(expected[3], abs=1e-6)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [estimate.line(), f"1 row predicted; written to {out}"]
    assert out.read_text().splitlines()[0] == "row,x,value"

    output = tmp_path / "line.pt2"
    export_run(trained_run_config("export", tmp_path / "export", ckpt, f"output={output}"))
    extra = {"ch12_lightning.json": ""}
    exported = torch.export.load(output, extra_files=extra).module()
    metadata = json.loads(extra["ch12_lightning.json"])
    assert metadata["feature_names"] == ["x"] and "class_names" not in metadata
    x = (torch.arange(10.0)[:, None] - metadata["mean"][0]) / metadata["std"][0]
    with torch.inference_mode():
        assert exported(x).flatten().tolist() == pytest.approx(expected, abs=1e-6)
    probabilities = [ckpt, f"output={output}", "returns=probabilities"]
    with pytest.raises(ConfigError, match="returns=probabilities is not valid: a regression"):
        export_run(trained_run_config("export", tmp_path / "refused", *probabilities))
