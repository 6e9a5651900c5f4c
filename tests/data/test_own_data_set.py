"""A data set of one's own is one module and one config file: every network trains on it."""

import json
from pathlib import Path

import pytest

from tests.helpers.runs import train_here

OWN_DATA = '''"""Pictures of one's own: a bright patch in the left or the right half."""
import torch

from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches


class Halves(InMemoryDataModule):
    input_shape = (1, 16, 16)
    num_classes = 2
    class_names = ["left", "right"]

    def __init__(self, batch_size=32, size=400):
        super().__init__(batch_size)
        self.size = size

    def setup(self, stage):
        generator = torch.Generator().manual_seed(0)
        targets = torch.randint(0, 2, (self.size,), generator=generator)
        inputs = torch.rand(self.size, *self.input_shape, generator=generator) * 0.3
        for i, right in enumerate(targets.tolist()):
            inputs[i, 0, 4:12, 1 + 8 * right : 7 + 8 * right] += 1
        cut = self.size // 2, 3 * self.size // 4
        self.splits = {
            "train": TensorBatches(inputs[: cut[0]], targets[: cut[0]]),
            "val": TensorBatches(inputs[cut[0] : cut[1]], targets[cut[0] : cut[1]]),
            "test": TensorBatches(inputs[cut[1] :], targets[cut[1] :]),
        }
'''
OWN_CONFIG = """_target_: own_data.Halves
batch_size: 32
size: 400
"""


@pytest.mark.parametrize("model", [["model=mlp"], ["model=cnn", "model.channels=[4]"]])
def test_a_data_set_of_ones_own_is_one_module_and_one_config(
    model: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Outside the project: the module on the Python path, the config on Hydra's search path."""
    own = tmp_path / "own"
    (own / "conf" / "dataset").mkdir(parents=True)
    (own / "own_data.py").write_text(OWN_DATA)
    (own / "conf" / "dataset" / "halves.yaml").write_text(OWN_CONFIG)
    monkeypatch.syspath_prepend(str(own))
    searchpath = f"hydra.searchpath=[file://{own / 'conf'}]"
    folder = train_here(searchpath, "dataset=halves", *model, "trainer.max_epochs=3", cwd=tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert metrics["test/acc"] >= 0.9 and metrics["test/samples"] == 100
    assert {"test/acc_left", "test/acc_right"} <= set(metrics)  # its class names, everywhere
    assert (folder / "confusion_matrix_test.png").is_file()
