"""Tables of numbers (Iris, the toy regression): the columns' standardization, as plain numbers.

Training scales its rows with ``Standardization.apply``, and predicting scales the raw rows a
user gives with the same numbers and the same float32 arithmetic, so a row typed in by hand meets
the model exactly as the same row of the training data did. The numbers are plain floats, so they
travel in a checkpoint that loads with ``torch.load(weights_only=True)`` and in an exported
model's metadata.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Standardization:
    """``(x - mean) / std`` per column, with one mean and std for each column."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, rows: Tensor, per_feature: bool) -> "Standardization":
        """The statistics of ``rows`` (N, F): each column's own (``per_feature``), or the
        book's one mean and (population) std over every value, repeated for each column (the
        same arithmetic as one number: the same float32 results)."""
        over = 0 if per_feature else None
        mean, std = rows.mean(dim=over), rows.std(dim=over, correction=0)
        width = rows.shape[1]
        return cls(tuple(mean.expand(width).tolist()), tuple(std.expand(width).tolist()))

    def apply(self, rows: Tensor) -> Tensor:
        """``rows`` (N, F) standardized, in their dtype (float32 here: float32's exact values
        survive the round trip through Python floats)."""
        mean = torch.tensor(self.mean, dtype=rows.dtype, device=rows.device)
        std = torch.tensor(self.std, dtype=rows.dtype, device=rows.device)
        return (rows - mean) / std


class TableData(ABC):
    """Base of a data module whose inputs are rows of numbers: the name of each column (what a
    user types a row by) and the standardization its training rows got, which predicting gives
    the rows a user types in. (A base class, not a Protocol: on Python 3.11 checking a Protocol
    would compute the property.)"""

    feature_names: list[str]

    @property
    @abstractmethod
    def standardization(self) -> Standardization:
        """The training rows' statistics, as training applied them."""
