"""What a trained model answers for a batch of inputs prepared as its training data was: a
classifier's most probable class and how sure it is, in numbers and words; a regression's values.

Pictures (``predict.py``) and rows of a table (``row_predictions.py``) are prepared each their
own way and answered here alike. Probabilities are the model's ``probabilities(logits)``
(softmax, or the sigmoid of a single logit), as the chapter computes them at inference time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor

# Below this probability an answer is marked as one to check (for 10 classes chance is 0.1).
LOW_CONFIDENCE = 0.8
CONFIDENCE_WORDS = ((0.95, "very sure"), (LOW_CONFIDENCE, "fairly sure"), (0.5, "unsure"))


@dataclass(frozen=True)
class Prediction:
    """A classifier's answer for one input (``path``: its file, or a name such as ``row 0``)."""

    path: Path
    class_name: str
    probability: float
    probabilities: tuple[float, ...]
    notes: tuple[str, ...] = ()

    @property
    def confidence(self) -> str:
        """How sure the model is, in words."""
        return next((w for floor, w in CONFIDENCE_WORDS if self.probability >= floor), "guessing")

    @property
    def low_confidence(self) -> bool:
        return self.probability < LOW_CONFIDENCE

    def line(self) -> str:
        mark = " <- low confidence: check it" if self.low_confidence else ""
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        answer = f"{self.class_name} ({self.probability:.4f}, {self.confidence})"
        return f"{self.path}: {answer}{mark}{notes}"


@dataclass(frozen=True)
class Estimate:
    """A regression's answer for one input: its outputs, in the units of the targets (the
    chapter's regression has one: ``value``), and what to know about the input (``notes``)."""

    path: Path
    values: tuple[float, ...]
    notes: tuple[str, ...] = ()

    @property
    def value(self) -> float:
        """The output of a one-output regression."""
        (value,) = self.values
        return value

    def line(self) -> str:
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return f"{self.path}: {', '.join(f'{v:.4f}' for v in self.values)}{notes}"


def answers(
    model: L.LightningModule,
    inputs: Tensor,
    names: Sequence[Path],
    notes: Sequence[tuple[str, ...]] | None = None,
) -> list[Prediction] | list[Estimate]:
    """The model's answer for each of ``inputs`` (a batch prepared as training prepared its
    data), named by ``names``, with what was done to it or what to know about it (``notes``):
    ``Prediction``s of a classifier (a model with ``probabilities``), ``Estimate``s of a
    regression."""
    notes = notes or [()] * len(names)
    with torch.inference_mode():
        outputs = model(inputs.to(model.device))
        if not hasattr(model, "probabilities"):
            rows = outputs.reshape(len(names), -1).cpu()
            return [
                Estimate(name, tuple(row.tolist()), done)
                for name, row, done in zip(names, rows, notes, strict=True)
            ]
        probabilities = model.probabilities(outputs).cpu()
    class_names = list(model.hparams.class_names)
    found = []
    for name, row, done in zip(names, probabilities, notes, strict=True):
        best = int(row.argmax())
        found.append(
            Prediction(name, class_names[best], float(row[best]), tuple(row.tolist()), done)
        )
    return found


def counted(count: int, noun: str) -> str:
    """``1 row``, ``3 rows``: a count and its noun, singular for one (the summary lines)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
