"""The chapter's first model: a linear regression on ten points, made in code (no files)."""

from typing import Any

import torch

from ch12_lightning.data.tables import Standardization, TableData
from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches

# The book's ten points: x = 0..9 and their targets.
X = torch.arange(10, dtype=torch.float32).unsqueeze(1)
Y = torch.tensor([1.0, 1.3, 3.1, 2.0, 5.0, 6.3, 6.6, 7.4, 8.0, 9.0])


class ToyRegressionDataModule(InMemoryDataModule, TableData):
    """x standardized with its mean and (population) standard deviation, as in the book.

    The chapter fits all ten points and holds none out, so validation and test report the fit
    on the same ten points: they show how well the line fits, not how it generalizes.
    """

    task = "regression"
    input_shape = (1,)
    feature_names = ["x"]

    def __init__(self, batch_size: int = 1, data_on_device: bool = True) -> None:
        super().__init__(batch_size, data_on_device)
        self.save_hyperparameters("batch_size")

    @property
    def model_arguments(self) -> dict[str, Any]:
        return {"input_shape": self.input_shape, "num_outputs": 1}

    @property
    def standardization(self) -> Standardization:
        """x's mean and population std, as the book computes them (numpy's std). The points are
        made in code, always the same, so a checkpoint needs no copy of these numbers."""
        return Standardization.of(X, per_feature=False)

    def setup(self, stage: str) -> None:
        points = TensorBatches(self.standardization.apply(X), Y)
        self.splits = {"train": points, "val": points, "test": points}
