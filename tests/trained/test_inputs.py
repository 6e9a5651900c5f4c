"""Pictures a notebook holds (NumPy arrays, torch tensors, PIL images) predicted as the same
picture saved as a file is: every layout and level range of one digit gives the same answer,
for the MLP and the CNN, and what is not a picture gets one message naming what is."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ch12_lightning import api
from ch12_lightning.data.mnist import MNISTDataModule
from ch12_lightning.errors import ConfigError
from ch12_lightning.trained.inputs import TAKEN, picture_sources
from ch12_lightning.trained.predict import HeldPicture, image_format
from tests.helpers.mnist_files import read_idx
from tests.helpers.runs import quick, train_here


def training_digits(mnist_dir: Path) -> np.ndarray:
    """The generated MNIST's training digits, uint8 (N, 28, 28), as its archive holds them."""
    return read_idx(mnist_dir / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")


def every_form(digit: np.ndarray, tmp_path: Path) -> dict[str, object]:
    """One uint8 (28, 28) digit as a notebook may hold it; each form gives one picture."""
    png = tmp_path / "digit.png"
    Image.fromarray(digit).save(png)
    return {
        "uint8 (28, 28)": digit,
        "float 0-1 (28, 28)": digit.astype(np.float32) / 255,
        "uint8 tensor (1, 28, 28)": torch.from_numpy(digit.copy())[None],
        "float64 tensor (28, 28)": torch.from_numpy(digit.copy()).double() / 255,
        "int64 (28, 28, 1)": digit[..., None].astype(np.int64),
        "RGB (28, 28, 3)": np.repeat(digit[..., None], 3, axis=2),
        "RGB float tensor (3, 28, 28)": torch.tensor(np.stack([digit / 255] * 3)).float(),
        "PIL image": Image.fromarray(digit),
        "PNG file": png,
        "PNG file by name": str(png),
    }


def test_a_digit_in_every_form_gives_its_png_files_answer(
    mnist_run: Path, mnist_dir: Path, tmp_path: Path
):
    run = api.load_run(mnist_run)
    digits = training_digits(mnist_dir)
    forms = every_form(digits[0], tmp_path)
    answers = {name: run.predict(held) for name, held in forms.items()}
    (expected,) = answers["PNG file"]
    for name, (answer,) in answers.items():
        assert answer.probabilities == expected.probabilities, name
        assert answer.notes == expected.notes, name
    # A batch, as arrays or tensors, channels first or last, or a list: one answer per digit,
    # each the digit's alone (up to the last bits of a batched matrix product).
    batched = run.predict(digits[:5])
    assert [str(p.path) for p in batched] == [f"picture {i}" for i in range(5)]
    for n in (3, 4):  # X[:3], X[:4]: digits too, not one RGB(A) picture (NumPy: channels last)
        assert [p.class_name for p in run.predict(digits[:n])] == [
            p.class_name for p in batched[:n]
        ]
    for i, digit in enumerate(digits[:5]):
        (alone,) = run.predict(digit)
        assert batched[i].probabilities == pytest.approx(alone.probabilities, abs=1e-6)
    for batch in (torch.from_numpy(digits[:5].copy())[:, None], digits[:5, ..., None],
                  list(digits[:5])):  # fmt: skip
        assert run.predict(batch) == batched


def test_a_training_digit_held_in_memory_is_the_tensor_training_used(
    mnist_run: Path, mnist_dir: Path, tmp_path: Path
):
    """With preprocess=none (a digit already in MNIST's form): bit for bit what training fed
    the model, and the answer is the model's on that tensor."""
    module = MNISTDataModule(str(mnist_dir), str(tmp_path / "cache"), val_size=100)
    module.prepare_data()
    module.setup("fit")
    digits = training_digits(mnist_dir)
    run = api.load_run(mnist_run)
    prepare = image_format(run.trained.datamodule()).prepare
    (held,) = picture_sources(digits[:1])
    tensor, notes = prepare(held.picture, "none")
    trained = module.splits["train"].inputs
    assert (trained == tensor).flatten(1).all(dim=1).any()  # one of training's own tensors
    (answer,) = run.predict(digits[0], preprocess="none")
    with torch.inference_mode():
        expected = run.model.probabilities(run.model(tensor[None]))[0]
    assert answer.probabilities == tuple(expected.tolist())


def test_the_cnn_takes_pictures_held_in_memory(mnist_dir: Path, tmp_path: Path):
    cnn = ["model=cnn", "model.channels=[4,8]"]
    run = api.load_run(train_here(*quick(mnist_dir, tmp_path), *cnn, cwd=tmp_path))
    digits = training_digits(mnist_dir)
    forms = every_form(digits[1], tmp_path)
    (expected,) = run.predict(forms["PNG file"])
    for name, held in forms.items():
        assert run.predict(held)[0].probabilities == expected.probabilities, name
    assert len(run.predict(torch.tensor(digits[:6] / 255))) == 6


@pytest.mark.parametrize(
    ("kind", "shape", "count", "mode", "size"),
    [
        (np, (28, 28), 1, "L", (28, 28)),
        (torch, (28, 28), 1, "L", (28, 28)),
        # NumPy (and PIL) hold pictures channels-last: 3 dimensions are a picture (H, W, C) by
        # their last size, else a batch of gray ones, as MNIST's X[:3] and X[:4] are.
        (np, (28, 28, 3), 1, "RGB", (28, 28)),
        (np, (28, 28, 4), 1, "RGB", (28, 28)),  # RGBA, made opaque as a file's transparency is
        (np, (28, 28, 1), 1, "L", (28, 28)),
        (np, (3, 28, 28), 3, "L", (28, 28)),
        (np, (4, 28, 28), 4, "L", (28, 28)),
        (np, (1, 28, 28), 1, "L", (28, 28)),
        (np, (5, 28, 28), 5, "L", (28, 28)),
        # torch (torchvision) holds them channels-first: (C, H, W) by the first size.
        (torch, (3, 28, 28), 1, "RGB", (28, 28)),
        (torch, (4, 28, 28), 1, "RGB", (28, 28)),
        (torch, (1, 28, 28), 1, "L", (28, 28)),
        (torch, (5, 28, 28), 5, "L", (28, 28)),
        # 4 dimensions are a batch, channels where the library keeps them, else the other end.
        (np, (2, 28, 28, 3), 2, "RGB", (28, 28)),
        (np, (3, 1, 28, 28), 3, "L", (28, 28)),
        (np, (2, 3, 28, 3), 2, "RGB", (28, 3)),  # both ends could be channels: NumPy's last
        (torch, (2, 3, 28, 28), 2, "RGB", (28, 28)),
        (torch, (2, 28, 28, 3), 2, "RGB", (28, 28)),
        (torch, (2, 3, 28, 3), 2, "RGB", (3, 28)),  # both ends could be channels: torch's first
    ],
    ids=lambda v: v.__name__ if hasattr(v, "__name__") else str(v),
)
def test_layouts_follow_each_librarys_convention(
    kind: object, shape: tuple[int, ...], count: int, mode: str, size: tuple[int, int]
):
    pixels = np.full(shape, 200, np.uint8)
    sources = picture_sources(pixels if kind is np else torch.from_numpy(pixels))
    assert len(sources) == count
    assert all(isinstance(s, HeldPicture) and s.picture.image.mode == mode for s in sources)
    assert {s.picture.image.size for s in sources} == {size}  # (width, height)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"digit": 1}, "a value of type dict is not a picture"),
        ([3, 1], "a value of type int is not a picture"),
        (np.zeros(784, np.uint8), "an array of shape (784,) is not a picture"),
        (np.zeros((1, 2, 28, 28, 1), np.uint8), "an array of shape (1, 2, 28, 28, 1) is not"),
        (np.zeros((2, 28, 28, 2), np.uint8), "an array of shape (2, 28, 28, 2) is not"),
        (np.zeros((0, 28, 28), np.uint8), "an array of shape (0, 28, 28) holds no pixels"),
        (torch.randn(2, 1, 28, 28), "not 0-1 (a normalized tensor? give the picture before"),
        (np.full((28, 28), 300), "integer levels run from 300 to 300, not 0-255"),
        (np.full((28, 28), np.nan), "the levels hold NaN or infinite values"),
        (np.zeros((28, 28), bool), "levels of dtype bool are not pixels"),
        ("no/such/digit.png", "'no/such/digit.png' is no file or folder"),
        ([], "nothing was given"),
    ],
    ids=str.split(
        "dict numbers 1-D 5-D 2-channels empty-array normalized 300 NaN bool no-file none"
    ),
)
def test_what_is_not_a_picture_gets_one_message(given: object, says: str, mnist_run: Path):
    with pytest.raises(ConfigError) as err:
        api.load_run(mnist_run).predict(given)
    message = str(err.value)
    assert says in message and message.endswith(f": {TAKEN}")  # what is wrong, what is taken
    assert isinstance(err.value, ValueError)
