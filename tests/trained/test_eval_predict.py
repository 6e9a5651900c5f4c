"""Evaluate, predict and export a mnist_run run: through the command line as a user would, and
in-process where only the library's answer matters (bad input, a CelebA run)."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.datasets import MNIST

from ch12_lightning.data.mnist import MNISTDataModule
from ch12_lightning.data.picture_cache import picture_transform
from ch12_lightning.errors import ConfigError, InputError
from ch12_lightning.models.classifier import Classifier
from ch12_lightning.trained.evaluate import evaluate
from ch12_lightning.trained.export import export_model, export_run
from ch12_lightning.trained.predict import predict_files
from tests.helpers.celeba_tree import make_celeba
from tests.helpers.mnist_files import digit
from tests.helpers.runs import command, quick, run_folders, train_here, trained_run_config


def written(cwd: Path, task: str, name: str) -> Path:
    """The file ``name`` in the one folder that a command of ``task`` made below ``cwd``."""
    (folder,) = run_folders(cwd, task=task)
    return folder / name


def run_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_eval_gives_the_runs_own_test_metrics(mnist_run: Path, tmp_path: Path):
    result = command("eval", f"ckpt_path={mnist_run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
    own = run_metrics(mnist_run)
    evaluated = json.loads(written(tmp_path, "eval", "metrics.json").read_text())
    assert evaluated["checkpoint"] == own["checkpoint"]  # the run's best checkpoint
    assert evaluated["split"] == "test"
    for name in ("test/acc", "test/loss"):
        assert evaluated["metrics"][name] == pytest.approx(own["metrics"][name], abs=1e-6)
    events = EventAccumulator(str(written(tmp_path, "eval", "tensorboard")))
    events.Reload()
    (logged,) = events.Scalars("test/acc")
    assert logged.value == pytest.approx(own["metrics"]["test/acc"], abs=1e-6)
    # The same checkpoint on the same split draws the same pictures as the training run did.
    for picture in ("confusion_matrix_test.png", "misclassified.png"):
        drawn = np.asarray(Image.open(written(tmp_path, "eval", picture)))
        assert np.array_equal(drawn, np.asarray(Image.open(mnist_run / picture))), picture
    assert {"test/confusion_matrix", "test/misclassified"} <= set(events.Tags()["images"])


def test_eval_on_validation_with_overrides(mnist_run: Path, mnist_dir: Path, tmp_path: Path):
    """In this process (the command line's eval is the test above)."""
    copy = shutil.copytree(mnist_dir, tmp_path / "copy")
    last = f"ckpt_path={mnist_run / 'checkpoints' / 'last.ckpt'}"
    overrides = [last, "split=val", "dataset.batch_size=7", f"paths.data_dir={copy}"]
    evaluate(trained_run_config("eval", tmp_path, *overrides))
    # The last epoch's validation metrics are those the last checkpoint's weights gave.
    own = run_metrics(mnist_run)["metrics"]
    out = tmp_path / "out"
    evaluated = json.loads((out / "metrics.json").read_text())["metrics"]
    for name in ("val/acc", "val/loss"):
        assert evaluated[name] == pytest.approx(own[name], abs=1e-6)
    used = (out / "config_resolved.yaml").read_text()
    assert "batch_size: 7" in used and f"data_dir: {copy}\n" in used
    assert (out / "confusion_matrix_val.png").is_file()
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert events.Tags()["images"] == ["val/confusion_matrix"]


# In this process (fast tier): test_bad_input_to_eval_is_refused and tests/checks/.
@pytest.mark.slow
def test_bad_checkpoint_is_one_message(tmp_path: Path):
    result = command("eval", f"ckpt_path={tmp_path / 'missing.ckpt'}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"ckpt_path={tmp_path / 'missing.ckpt'} is not valid: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def _outside_a_run(mnist_run: Path, tmp_path: Path) -> str:
    return str(shutil.copy(mnist_run / "checkpoints" / "last.ckpt", tmp_path / "loose.ckpt"))


def _run_without_config(mnist_run: Path, tmp_path: Path) -> str:
    without = shutil.ignore_patterns(".hydra")
    return str(shutil.copytree(mnist_run, tmp_path / "copy", ignore=without))


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (None, (), "ckpt_path=null is not valid: give a checkpoint"),
        (_outside_a_run, (), "is not valid: no run config found: the checkpoint is not in a"),
        (_run_without_config, (), "no run config found: the run folder"),
        (lambda mnist_run, _: str(mnist_run), ("split=train",), "split=train is not valid"),
        (
            lambda mnist_run, _: str(mnist_run),
            ("dataset.skip_corrupt=true",),
            "dataset.skip_corrupt=true is not valid: the run's dataset (MNISTDataModule) has no",
        ),
    ],
    ids=["no ckpt_path", "outside a run", "no run config", "unknown split", "unknown key"],
)
def test_bad_input_to_eval_is_refused(make, extra, message: str, mnist_run: Path, tmp_path: Path):
    ckpt = [f"ckpt_path={make(mnist_run, tmp_path)}"] if make else []
    with pytest.raises(ConfigError) as err:
        evaluate(trained_run_config("eval", tmp_path, *ckpt, *extra))
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def _model(mnist_run: Path) -> Classifier:
    """The model of the run's best checkpoint, which ``ckpt_path=<run folder>`` reads."""
    best = run_metrics(mnist_run)["checkpoint"]
    return Classifier.load_from_checkpoint(best, weights_only=True).eval()


def test_predict_any_image_mode_and_size(mnist_run: Path, mnist_dir: Path, tmp_path: Path):
    module = MNISTDataModule(str(mnist_dir), str(tmp_path / "cache"), val_size=100)
    module.prepare_data()
    module.setup("test")
    images = tmp_path / "images"
    images.mkdir()
    gray = Image.fromarray(MNIST(module.root, train=False).data[0].numpy())  # a test digit
    gray.save(images / "gray_28.png")
    gray.convert("RGB").save(images / "rgb_28.png")
    gray.convert("RGBA").save(images / "rgba_28.png")  # JPEG cannot hold RGBA
    gray.convert("P").save(images / "palette_28.png")
    Image.fromarray(digit(3)).convert("RGB").resize((56, 56)).save(images / "rgb_56.png")
    Image.fromarray(digit(7)).resize((40, 33)).save(images / "gray_40x33.jpg", quality=95)
    (images / "notes.txt").write_text("not an image: counted, not predicted")
    # preprocess=none: resized only, as these are already in MNIST's form (tests/test_pictures.py
    # covers the default, which brings any picture to that form).
    result = command("predict", f"ckpt_path={mnist_run}", f"inputs={images}", "output_csv=p.csv",
                     "preprocess=none", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 other file in the folders skipped, not a picture (notes.txt)" in result.stdout

    answer = re.compile(rf"^{re.escape(str(images))}/(\S+): (\S+ \([0-9.]+, [a-z ]+\))")
    printed = dict(m.groups() for m in map(answer.match, result.stdout.splitlines()) if m)
    assert sorted(printed) == sorted(p.name for p in images.glob("*.*") if p.suffix != ".txt")
    with open(tmp_path / "p.csv", newline="") as f:
        rows = {Path(row["image"]).name: row for row in csv.DictReader(f)}
    assert rows.keys() == printed.keys()
    for name, row in rows.items():
        assert row["class"] in [str(k) for k in range(10)]
        probability = float(row["probability"])
        assert 0.0 <= probability <= 1.0
        assert printed[name] == f"{row['class']} ({probability:.4f}, {row['confidence']})"
        assert sum(float(row[f"p_{k}"]) for k in range(10)) == pytest.approx(1.0, abs=1e-5)

    # The gray 28x28 digit is the run's own test tensor, bit for bit: the probability is the
    # softmax of the model's logits on what training fed it. Other modes of the same picture
    # give the same numbers.
    model = _model(mnist_run)
    with torch.inference_mode():
        expected = torch.softmax(model(module.splits["test"].inputs[:1]), dim=1)[0]
    for name in ("gray_28.png", "rgb_28.png", "rgba_28.png", "palette_28.png"):
        assert rows[name]["class"] == str(int(expected.argmax()))
        assert float(rows[name]["probability"]) == pytest.approx(float(expected.max()), abs=1e-6)


def test_predict_names_an_empty_folder_a_missing_file_and_a_broken_image(
    mnist_run: Path, tmp_path: Path
):
    empty, gone, broken = tmp_path / "empty", tmp_path / "gone.png", tmp_path / "broken.png"
    empty.mkdir()
    broken.write_bytes(b"not a png")
    for inputs, message in (
        (empty, f"inputs={empty} is not valid: the folder {empty} holds no image files"),
        (f"[{gone}]", f"inputs={gone} is not valid: no such file or folder"),
        (broken, "1 of 1 pictures could not be read (listed above); none was predicted"),
    ):
        overrides = [f"ckpt_path={mnist_run}", f"inputs={inputs}"]
        config = trained_run_config("predict", tmp_path, *overrides)
        with pytest.raises(InputError) as err:
            predict_files(config)
        assert message in str(err.value)


TORCH_ONLY = """
import sys, torch
extra = {"ch12_lightning.json": ""}
module = torch.export.load(sys.argv[1], extra_files=extra).module()
torch.save(module(torch.load(sys.argv[2])), sys.argv[3])
print(extra["ch12_lightning.json"])
assert not [name for name in sys.modules if name.startswith(("ch12_lightning", "lightning"))]
"""


def test_exported_model_runs_with_torch_alone(mnist_run: Path, tmp_path: Path):
    """Exported in this process (tests/data/test_image_folder.py runs the export command)."""
    output = tmp_path / "model.pt2"
    export_run(trained_run_config("export", tmp_path, f"ckpt_path={mnist_run}", f"output={output}"))
    inputs = torch.randn(5, 1, 28, 28)  # another batch size than the export's example
    torch.save(inputs, tmp_path / "inputs.pt")
    alone = subprocess.run(
        [sys.executable, "-c", TORCH_ONLY, output, tmp_path / "inputs.pt", tmp_path / "out.pt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    metadata = json.loads(alone.stdout)
    assert metadata["class_names"] == [str(k) for k in range(10)]
    assert metadata["input_shape"] == ["batch", 1, 28, 28]
    best = run_metrics(mnist_run)["checkpoint"]
    model = Classifier.load_from_checkpoint(best, weights_only=True).eval()
    with torch.inference_mode():
        torch.testing.assert_close(torch.load(tmp_path / "out.pt"), model(inputs))


def test_export_of_probabilities(mnist_run: Path, tmp_path: Path):
    model = _model(mnist_run)
    export_model(model, (1, 28, 28), tmp_path / "p.pt2", returns="probabilities")
    inputs = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        exported = torch.export.load(tmp_path / "p.pt2").module()(inputs)
        torch.testing.assert_close(exported, model.probabilities(model(inputs)))


def test_celeba_run_evaluates_and_predicts(tmp_path: Path):
    """CelebA's own transform (size, channels, normalization of the run) prepares the pictures.
    Trained, evaluated and predicted in this process."""
    make_celeba(tmp_path / "data" / "celeba")
    folder = train_here(
        "experiment=celeba_practice",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.n_per_class=15",
        "dataset.batch_size=8",
        "dataset.num_workers=0",
        "trainer.max_epochs=2",
        cwd=tmp_path,
    )
    own = run_metrics(folder)
    metrics = evaluate(trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}"))
    for name in ("test/acc", "test/loss", "test/acc_male"):
        assert metrics[name] == pytest.approx(own["metrics"][name], abs=1e-6)

    picture = tmp_path / "data" / "celeba" / "img_align_celeba" / "000001.jpg"
    overrides = [f"ckpt_path={folder}", f"inputs=[{picture}]", "output_csv=null"]
    (predicted,) = predict_files(trained_run_config("predict", tmp_path / "predict", *overrides))
    model = Classifier.load_from_checkpoint(own["checkpoint"], weights_only=True).eval()
    transform = picture_transform(image_size=32, grayscale=True, mean=0.5, std=0.5)
    with Image.open(picture) as image, torch.inference_mode():
        probabilities = model.probabilities(model(transform(image)[None]))[0]
    assert predicted.class_name == ["female", "male"][int(probabilities.argmax())]
    assert predicted.probability == pytest.approx(float(probabilities.max()), abs=1e-6)


def test_a_cnn_run_evaluates_predicts_and_exports(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The network is the checkpoint's own: eval, predict and export need no model settings."""
    cnn = ["model=cnn", "model.channels=[4,8]"]
    folder = train_here(*quick(mnist_dir, tmp_path), *cnn, cwd=tmp_path)
    own = run_metrics(folder)
    assert own["metrics"]["test/acc"] > 0.5  # the generated digits are easy to tell apart
    metrics = evaluate(trained_run_config("eval", tmp_path / "eval", f"ckpt_path={folder}"))
    for name in ("test/acc", "test/loss"):
        assert metrics[name] == pytest.approx(own["metrics"][name], abs=1e-6)

    model = Classifier.load_from_checkpoint(own["checkpoint"], weights_only=True).eval()
    assert model.hparams.net["_target_"] == "ch12_lightning.models.nets.cnn.CNN"
    picture = tmp_path / "five.png"
    Image.fromarray(digit(5)).save(picture)
    overrides = [f"ckpt_path={folder}", f"inputs=[{picture}]", "output_csv=null"]
    # preprocess=none: the generated digits are in MNIST's form already.
    predict = trained_run_config("predict", tmp_path / "predict", *overrides, "preprocess=none")
    (predicted,) = predict_files(predict)
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 picture predicted (")
    five = torch.from_numpy(digit(5)).float().div(255).sub(0.1307).div(0.3081)
    with torch.inference_mode():
        probabilities = model.probabilities(model(five[None, None]))[0]
    assert predicted.class_name == str(int(probabilities.argmax()))
    assert predicted.probability == pytest.approx(float(probabilities.max()), abs=1e-6)

    output = tmp_path / "cnn.pt2"
    export = [f"ckpt_path={folder}", f"output={output}"]
    export_run(trained_run_config("export", tmp_path / "export", *export))
    inputs = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(torch.export.load(output).module()(inputs), model(inputs))
