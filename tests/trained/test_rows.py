"""Table runs (Iris) predict rows of raw measurements, standardized with the statistics saved in
the checkpoint, whatever holds the rows (lists, arrays, tensors, a data frame, a CSV file), from
Python, the predict command and an exported model; checkpoints without the statistics predict
the same; anything else gets one message."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from ch12_lightning import api
from ch12_lightning.errors import ConfigError
from ch12_lightning.trained.export import export_run
from ch12_lightning.trained.predict import predict_files
from tests.helpers.runs import train_here, trained_run_config

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
TAKEN = f"this run predicts rows of 4 raw values ({', '.join(FEATURES)}), as measured"


def iris_run(folder: Path, *overrides: str) -> Path:
    """A few epochs of the book's Iris recipe: the numbers are not the point."""
    where = [f"paths.cache_dir={folder / 'cache'}", "trainer.max_epochs=2"]
    return train_here("experiment=iris_book", *where, *overrides, cwd=folder)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a short iris_book run, shared read-only by this module's tests."""
    return iris_run(tmp_path_factory.mktemp("iris"))


def book_split() -> tuple[np.ndarray, np.ndarray]:
    """The raw measurements of the book's 100 training and 50 test flowers."""
    iris = load_iris()
    x_train, x_test, _, _ = train_test_split(iris.data, iris.target, test_size=1 / 3,
                                             random_state=1)  # fmt: skip
    return x_train, x_test


class Frame:
    """What ``trained/rows.py`` reads of a pandas (or polars) DataFrame, which is not a
    dependency of the project: columns by name, and its values."""

    def __init__(self, columns: dict[str, list[float]]) -> None:
        self.data = columns

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __getitem__(self, names: list[str]) -> "Frame":
        return Frame({name: self.data[name] for name in names})

    def to_numpy(self) -> np.ndarray:
        return np.column_stack(list(self.data.values()))

    def rows(self) -> list[list[float]]:
        return self.to_numpy().tolist()


def write_csv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows([header, *rows] if header else rows)
    return path


def test_raw_rows_in_every_form_meet_the_model_as_training_rows_did(iris: Path, tmp_path: Path):
    run = api.load_run(iris)
    standardized = run.datamodule.splits["test"].inputs  # training's own tensors
    with torch.inference_mode():
        expected = run.model.probabilities(run.model(standardized))
        first = run.model.probabilities(run.model(standardized[:1]))[0]
    raw = book_split()[1]
    order = [2, 0, 3, 1]  # columns named in another order, and one more column
    named = {FEATURES[k]: raw[:, k].tolist() for k in order} | {"species": [0.0] * len(raw)}
    forms = {
        "array": raw,
        "list of rows": raw.tolist(),
        "float32 tensor": torch.tensor(raw, dtype=torch.float32),
        "list of 1-D tensors": list(torch.tensor(raw)),
        "data frame": Frame(named),
        "CSV with a header": write_csv(tmp_path / "named.csv", list(named), Frame(named).rows()),
        "CSV of rows alone": str(write_csv(tmp_path / "rows.csv", None, raw.tolist())),
    }
    for name, given in forms.items():
        found = run.predict(given)
        assert [p.probabilities for p in found] == [tuple(r.tolist()) for r in expected], name
        assert [str(p.path) for p in found] == [f"row {i}" for i in range(len(raw))], name
    for row in (list(raw[0]), torch.tensor(raw[0]), raw[0].astype(np.float32)):
        (alone,) = run.predict(row)
        assert alone.probabilities == tuple(first.tolist())
        assert alone.class_name in ("setosa", "versicolor", "virginica")


def test_the_statistics_travel_in_the_checkpoint_and_earlier_ones_predict_the_same(
    tmp_path: Path,
):
    folder = iris_run(tmp_path, "dataset.standardize=per_feature")
    run = api.load_run(folder)
    saved = torch.load(run.checkpoint, weights_only=True)["IrisDataModule"]
    x_train = torch.tensor(book_split()[0], dtype=torch.float32)
    assert saved["mean"] == x_train.mean(dim=0).tolist()  # the training flowers', per column
    assert saved["std"] == x_train.std(dim=0, correction=0).tolist()
    # A checkpoint written before the statistics were saved: computed again from the config.
    earlier = shutil.copytree(folder, tmp_path / "earlier")
    for checkpoint in (earlier / "checkpoints").glob("*.ckpt"):
        state = torch.load(checkpoint, weights_only=True)
        del state["IrisDataModule"]
        torch.save(state, checkpoint)
    rows = load_iris().data
    assert api.load_run(earlier).predict(rows) == run.predict(rows)


def test_the_predict_command_and_the_exported_model_take_raw_rows(
    iris: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    raw = book_split()[1][:3]
    run = api.load_run(iris)
    flowers = write_csv(tmp_path / "flowers.csv", FEATURES, raw.tolist())
    one_row = f"[{','.join(map(str, raw[0]))}]"  # inputs=[6.3,2.5,5.0,1.9]
    for i, (inputs, count) in enumerate([(str(flowers), 3), (one_row, 1)]):
        out = tmp_path / f"predicted_{i}.csv"
        cfg = trained_run_config("predict", tmp_path, f"ckpt_path={iris}", f"inputs={inputs}",
                                 f"output_csv={out}")  # fmt: skip
        found = predict_files(cfg)
        assert found == run.predict(raw[:count])
        printed = capsys.readouterr().out.splitlines()
        assert printed[:-1] == [answer.line() for answer in found]
        assert printed[-1].startswith(f"{count} row{'s' if count > 1 else ''} predicted (")
        with open(out, newline="") as f:
            written = list(csv.DictReader(f))
        assert list(written[0]) == ["row", *FEATURES, "class", "probability", "confidence",
                                    "p_setosa", "p_versicolor", "p_virginica"]  # fmt: skip
        # The measurements as given (6.3), not as float32 holds them (6.300000190734863).
        assert [written[0][name] for name in FEATURES] == [str(v) for v in raw[0]]
        assert written[0]["class"] == found[0].class_name

    output = tmp_path / "iris.pt2"
    export_run(trained_run_config("export", tmp_path, f"ckpt_path={iris}", f"output={output}"))
    extra = {"ch12_lightning.json": ""}
    exported = torch.export.load(output, extra_files=extra).module()
    metadata = json.loads(extra["ch12_lightning.json"])
    assert metadata["feature_names"] == FEATURES and metadata["input_shape"] == ["batch", 4]
    rows = torch.tensor(raw, dtype=torch.float32)
    prepared = (rows - torch.tensor(metadata["mean"])) / torch.tensor(metadata["std"])
    with torch.inference_mode():
        probabilities = torch.softmax(exported(prepared), dim=1)
    assert [tuple(p.tolist()) for p in probabilities] == [a.probabilities for a in run.predict(raw)]


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda _: {"sepal length (cm)": 5.1}, "a value of type dict is not rows of numbers"),
        (lambda _: np.zeros((2, 4, 1)), "values of shape (2, 4, 1) are not rows of 4"),
        (lambda _: [5.1, 3.5, 1.4], "values of shape (3,) are not rows of 4"),
        (lambda _: [[5.1, 3.5, 1.4, 0.2], [6.0]], "the rows are not all of one length"),
        (lambda _: ["5.1", "3.5", "1.4", "0.2"], "values of type <U3 are not numbers"),
        (lambda _: [5.1, 3.5, float("nan"), 0.2], "the rows hold NaN or infinite values"),
        (lambda _: "flowers.csv", "'flowers.csv' is no file"),
        (lambda _: Frame({"petal length (cm)": [1.4]}), "the data frame lacks the columns ['sepal"),
        (
            lambda tmp: _csv(tmp / "a.csv", "sepal length (cm),sepal width (cm)\n5.1,3.5\n"),
            "its header lacks the columns ['petal length (cm)', 'petal width (cm)']",
        ),
        (
            lambda tmp: _csv(tmp / "b.csv", f"{','.join(FEATURES)}\n5.1,3.5,1.4,wide\n"),
            "b.csv, line 2, petal width (cm): 'wide' is not a number",
        ),
        (lambda tmp: _csv(tmp / "c.csv", "5.1,3.5,1.4,0.2\n6.0,2.9\n"), "line 2: 2 values, not 4"),
        (lambda tmp: _csv(tmp / "d.csv", "\n"), "d.csv holds no rows"),
        (lambda _: None, "nothing was given"),
    ],
    ids=str.split("dict 3-D short ragged strings NaN no-file frame header cell line empty none"),
)
def test_what_is_not_rows_gets_one_message(make, says: str, iris: Path, tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        api.load_run(iris).predict(make(tmp_path))
    message = str(err.value)
    assert says in message and TAKEN in message, message
    assert message.index(says) < message.index(TAKEN)  # what is wrong, then what is taken


def test_a_value_far_outside_the_training_data_is_noted(iris: Path):
    """A flower measured in millimetres is answered, often "very sure", as if in centimetres:
    its line says which values lie far outside what the run was trained on."""
    run = api.load_run(iris)
    (millimetres,) = run.predict([51, 35, 14, 2])
    assert millimetres.notes == (
        "sepal length (cm) 51 lies far outside the training data (24 standard deviations "
        "from its mean, 3.45): other units?",
        "sepal width (cm) 35 lies far outside the training data (16 standard deviations "
        "from its mean, 3.45): other units?",
        "petal length (cm) 14 lies far outside the training data (5 standard deviations "
        "from its mean, 3.45): other units?",
    )
    assert millimetres.line().endswith(f" [{'; '.join(millimetres.notes)}]")
    assert not any(p.notes for p in run.predict(load_iris().data))  # every flower of the set
