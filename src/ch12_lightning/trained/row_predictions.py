"""Predictions for rows of a table (Iris; the toy regression), as raw values, standardized
exactly as the run standardized its training rows.

The statistics are the run's own (``TableData.standardization``): those saved in the checkpoint
by the data module, or, for a checkpoint written before they were saved, the same numbers
computed again from the run's config. A classifier answers with a class and its probability
(``Prediction``), a regression with its value (``Estimate``); either notes a value that lies far
outside the training data (a flower measured in millimetres), which the model would otherwise
answer without a hint, often "very sure".
"""

import csv
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.data.tables import TableData
from ch12_lightning.files.atomic import atomic_path
from ch12_lightning.trained.answers import LOW_CONFIDENCE, Estimate, Prediction, answers, counted
from ch12_lightning.trained.rows import RowsInput, table_values

# Standard deviations from the mean the run standardizes with beyond which a value is noted as
# far outside the training data. Every Iris flower lies within 3.4 of its column's mean (2.3 of
# the book's one mean over all four measurements), the toy regression's x within 1.6; a flower
# measured in millimetres has three of its four values 5 to 77 away.
FAR_OUT = 5.0


def predict_rows(
    model: L.LightningModule, given: RowsInput, data: TableData
) -> list[Prediction] | list[Estimate]:
    """The model's answer for each row in ``given`` (``rows.table_rows``), named ``row 0``,
    ``row 1``, ... in order."""
    return _answered(model, table_values(given, data.feature_names), data)


def predict_table(
    cfg: DictConfig, model: L.LightningModule, data: TableData
) -> list[Prediction] | list[Estimate]:
    """The predict command on a table run: ``cfg.inputs`` is a CSV file or rows given on the
    command line (``inputs=[5.1,3.5,1.4,0.2]``, ``inputs=[[...],[...]]``). Prints a line per
    row and a summary and, with ``cfg.output_csv``, writes each row's values and answer."""
    given = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else cfg.inputs
    values = table_values(given, data.feature_names)
    found = _answered(model, values, data)
    for answer in found:
        print(answer.line())
    summary = f"{counted(len(found), 'row')} predicted"
    if isinstance(found[0], Prediction):
        low = sum(answer.low_confidence for answer in found)
        summary += f" ({low} with low confidence, below {LOW_CONFIDENCE})"
    csv_path = cfg.get("output_csv")
    if csv_path:
        classes = list(model.hparams.get("class_names") or [])
        write_rows_csv(csv_path, values.tolist(), found, data.feature_names, classes)
        summary += f"; written to {csv_path}"
    print(summary)
    return found


def _answered(
    model: L.LightningModule, values: np.ndarray, data: TableData
) -> list[Prediction] | list[Estimate]:
    names = [Path(f"row {i}") for i in range(len(values))]
    standardized = data.standardization.apply(torch.as_tensor(values, dtype=torch.float32))
    return answers(model, standardized, names, far_outside(values, standardized, data))


def far_outside(
    values: np.ndarray, standardized: torch.Tensor, data: TableData
) -> list[tuple[str, ...]]:
    """For each row, a note per value that lies more than ``FAR_OUT`` standard deviations from
    the mean the run standardized its training rows with: a number in other units, or a typing
    slip, that the model answers as if it were a measurement like the others."""
    columns = list(zip(data.feature_names, data.standardization.mean, strict=True))
    return [
        tuple(
            f"{name} {value} lies far outside the training data ({abs(z):.0f} standard "
            f"deviations from its mean, {mean:.3g}): other units?"
            for (name, mean), value, z in zip(columns, row, scaled, strict=True)
            if abs(z) > FAR_OUT
        )
        for row, scaled in zip(values.tolist(), standardized.tolist(), strict=True)
    ]


def write_rows_csv(
    path: str | Path,
    rows: list[list[float]],
    found: list[Prediction] | list[Estimate],
    feature_names: list[str],
    class_names: list[str],
) -> None:
    """One line per row: its name, its raw values under the run's feature names, then the
    class, probability, confidence and every class's probability (``p_<class name>``, as the
    pictures' CSV), or the value (``value_0``, ... for several outputs)."""
    first = found[0]
    if isinstance(first, Prediction):
        answer_columns = ["class", "probability", "confidence", *(f"p_{n}" for n in class_names)]
    else:
        outputs = len(first.values)
        answer_columns = ["value"] if outputs == 1 else [f"value_{k}" for k in range(outputs)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", *feature_names, *answer_columns])
        for values, answer in zip(rows, found, strict=True):
            said = (
                [answer.class_name, answer.probability, answer.confidence, *answer.probabilities]
                if isinstance(answer, Prediction)
                else list(answer.values)
            )
            writer.writerow([str(answer.path), *values, *said])
