"""The chapter's Iris classifier data: scikit-learn's copy of Iris, split and scaled as in the
book (no download: the data set ships inside scikit-learn)."""

import torch

from ch12_lightning.data.tensor_batches import InMemoryDataModule, TensorBatches

# How the measurements are standardized with the training flowers' statistics: the book's one
# mean and std over all four, or each measurement with its own (rasbt/machine-learning-book #134:
# the correct way, the book's author agreed; the book's reproduces its 0.98).
STANDARDIZE = ("book", "per_feature")


class IrisDataModule(InMemoryDataModule):
    """100 training and 50 test flowers (``train_test_split(test_size=1/3, random_state=1)``),
    the four measurements standardized with the training set's statistics (``standardize``).

    The book has no validation split; here validation is the test split, so ``experiment=
    iris_book`` tests the last epoch's weights rather than picking an epoch by it.
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

        self.class_names = [str(name) for name in load_iris().target_names]
        self.num_classes = len(self.class_names)

    def setup(self, stage: str) -> None:
        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split

        iris = load_iris()
        x_train, x_test, y_train, y_test = train_test_split(
            iris.data, iris.target, test_size=1 / 3, random_state=self.split_seed
        )
        x_train = torch.as_tensor(x_train, dtype=torch.float32)
        x_test = torch.as_tensor(x_test, dtype=torch.float32)
        over = None if self.standardize == "book" else 0  # every value, or each column
        mean, std = x_train.mean(dim=over), x_train.std(dim=over, correction=0)
        train = TensorBatches((x_train - mean) / std, torch.as_tensor(y_train))
        test = TensorBatches((x_test - mean) / std, torch.as_tensor(y_test))
        self.splits = {"train": train, "val": test, "test": test}
