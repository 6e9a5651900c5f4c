"""The chapter's Iris classifier data: scikit-learn's copy of Iris, split and scaled as in the
book (no download: the data set ships inside scikit-learn)."""

from typing import Any

import torch
from torch import Tensor

from ch12_lightning.data.tables import Standardization, TableData
from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches

# How the measurements are standardized with the training flowers' statistics: the book's one
# mean and std over all four, or each measurement with its own (rasbt/machine-learning-book #134:
# the correct way, the book's author agreed; the book's reproduces its 0.98).
STANDARDIZE = ("book", "per_feature")


class IrisDataModule(InMemoryDataModule, TableData):
    """100 training and 50 test flowers (``train_test_split(test_size=1/3, random_state=1)``),
    the four measurements standardized with the training set's statistics (``standardize``).

    The book has no validation split; here validation is the test split, so ``experiment=
    iris_book`` tests the last epoch's weights rather than picking an epoch by it.

    The statistics are saved with the model: ``state_dict`` gives them as plain numbers, which
    Lightning writes into every checkpoint under this class's name and hands back to
    ``load_state_dict`` (on resuming, and when ``trained/load.py`` reads a run to predict). They
    belong to the data module rather than to the model's hyperparameters because they are what
    the data module computed from the training split, after the model was built, and describe
    how inputs are made, not the network.
    """

    input_shape = (4,)  # sepal and petal, length and width

    def __init__(
        self,
        batch_size: int = 2,
        split_seed: int = 1,
        data_on_device: bool = True,
        standardize: str = "book",
    ) -> None:
        super().__init__(batch_size, data_on_device)
        self.save_hyperparameters("batch_size", "split_seed", "standardize")
        self.split_seed = split_seed
        self.standardize = standardize
        from sklearn.datasets import load_iris  # here: the config checks import this module

        iris = load_iris()
        self.class_names = [str(name) for name in iris.target_names]
        self.num_classes = len(self.class_names)
        # scikit-learn's names, e.g. "sepal length (cm)": the columns of a table to predict.
        self.feature_names = [str(name) for name in iris.feature_names]
        self._standardization: Standardization | None = None

    def setup(self, stage: str) -> None:
        x_train, x_test, y_train, y_test = self._split()
        self._standardization = self._statistics(x_train)
        scaled = self._standardization.apply
        train = TensorBatches(scaled(x_train), y_train)
        test = TensorBatches(scaled(x_test), y_test)
        self.splits = {"train": train, "val": test, "test": test}

    @property
    def standardization(self) -> Standardization:
        """The training flowers' statistics: those set up or read back from a checkpoint, else
        (a checkpoint written before they were saved) computed again from the seeded split."""
        if self._standardization is None:
            self._standardization = self._statistics(self._split()[0])
        return self._standardization

    def state_dict(self) -> dict[str, Any]:
        """The statistics as plain numbers (none before they are computed)."""
        if self._standardization is None:
            return {}
        return {"mean": list(self._standardization.mean), "std": list(self._standardization.std)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._standardization = Standardization(tuple(state_dict["mean"]), tuple(state_dict["std"]))

    def _statistics(self, x_train: Tensor) -> Standardization:
        return Standardization.of(x_train, per_feature=self.standardize == "per_feature")

    def _split(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The raw measurements (float32) and classes of the training and test flowers."""
        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split

        iris = load_iris()
        x_train, x_test, y_train, y_test = train_test_split(
            iris.data, iris.target, test_size=1 / 3, random_state=self.split_seed
        )
        as_float = [torch.as_tensor(x, dtype=torch.float32) for x in (x_train, x_test)]
        return (*as_float, torch.as_tensor(y_train), torch.as_tensor(y_test))
