"""Rows of a table as people hold them, as one (N, F) array of raw values in the run's column
order, the numbers as given (what a CSV of predictions repeats), ready for the run's
standardization.

Taken: one row (a list of F numbers, a 1-D array or tensor), rows (a list of rows, a 2-D array
or tensor (N, F)), a data frame (pandas, polars: anything with ``columns`` and ``to_numpy``)
whose columns include the run's feature names (others are left out), or a CSV file: a header
naming the columns (as the data frame) or rows of numbers alone, F to a line. For a table of one
column (the toy regression's x), a list or 1-D array of N numbers is N rows. The model gets them
as float32, as training converted its data, so a row of the data set gives its training row.
"""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from ch12_lightning.errors import ConfigError


class DataFrameLike(Protocol):
    """A pandas or polars DataFrame, as far as this module reads one (neither is a dependency)."""

    columns: Any

    def __getitem__(self, columns: list[str]) -> "DataFrameLike": ...

    def to_numpy(self) -> np.ndarray: ...


RowsInput = (
    str | Path | np.ndarray | Tensor | Sequence[float] | Sequence[Sequence[float]] | DataFrameLike
)


def not_taken(what: str, feature_names: Sequence[str]) -> ConfigError:
    """The one message for anything a table run cannot predict: what was wrong, then what the
    run takes."""
    f = len(feature_names)
    numbers = "a number" if f == 1 else f"a list of {f} numbers"
    column = ", N numbers (N rows)" if f == 1 else ""
    return ConfigError(
        f"{what}: this run predicts rows of {f} raw values ({', '.join(feature_names)}), as "
        f"measured (the run standardizes them itself): give a row ({numbers} or a 1-D array "
        f"or tensor), rows (a list of rows, a 2-D array or tensor (N, {f})){column}, a data "
        "frame with these columns, or a CSV file (a header with these names, or rows of "
        "numbers alone)"
    )


def table_values(given: RowsInput, feature_names: Sequence[str]) -> np.ndarray:
    """The rows in ``given`` (see the module's docstring), raw, (N, F), the numbers as given:
    ``5.1`` stays 5.1, where float32 would write it back as 5.099999904632568."""
    if given is None:  # the command's inputs=null
        raise not_taken("nothing was given", feature_names)
    if isinstance(given, str | Path):
        values = _csv_values(Path(given).expanduser(), feature_names)
    elif hasattr(given, "columns") and hasattr(given, "to_numpy"):
        values = _frame_values(given, feature_names)
    elif isinstance(given, Tensor):
        values = (given.detach().cpu().double() if given.is_floating_point() else given).numpy()
    elif isinstance(given, np.ndarray | np.generic | list | tuple | int | float):
        try:
            values = np.asarray(given)
        except ValueError as err:  # rows of different lengths
            raise not_taken(f"the rows are not all of one length ({err})", feature_names) from err
    else:
        what = f"a value of type {type(given).__name__} is not rows of numbers"
        raise not_taken(what, feature_names)
    return _shaped(values, feature_names)


def _shaped(values: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """``values`` as (N, F): a row, rows, or (one column) N values."""
    f, shape = len(feature_names), tuple(values.shape)
    if values.dtype.kind not in "iuf":
        raise not_taken(f"values of type {values.dtype} are not numbers", feature_names)
    if values.ndim < 2 and f == 1:
        values = values.reshape(-1, 1)
    elif values.ndim == 1 and len(values) == f:
        values = values[None]
    if values.ndim != 2 or values.shape[1] != f or not len(values):
        raise not_taken(f"values of shape {shape} are not rows of {f}", feature_names)
    if not np.isfinite(values).all():
        raise not_taken("the rows hold NaN or infinite values", feature_names)
    return values


def _frame_values(frame: DataFrameLike, feature_names: Sequence[str]) -> np.ndarray:
    """The data frame's columns named as the run's features, in the run's order."""
    columns = [str(column) for column in frame.columns]
    missing = [name for name in feature_names if name not in columns]
    if missing:
        what = f"the data frame lacks the columns {missing} (it has {columns})"
        raise not_taken(what, feature_names)
    return np.asarray(frame[list(feature_names)].to_numpy())


def _csv_values(path: Path, feature_names: Sequence[str]) -> np.ndarray:
    """A CSV file's rows: by the header's names, or (no header) F numbers a line."""
    if not path.is_file():
        raise not_taken(f"{str(path)!r} is no file", feature_names)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if not lines:
        raise not_taken(f"{path} holds no rows", feature_names)
    header = [cell.strip() for cell in lines[0][1]]
    if all(_is_number(cell) for cell in header):
        names, positions = [f"value {k + 1}" for k in range(len(feature_names))], None
    else:
        missing = [name for name in feature_names if name not in header]
        if missing:
            what = f"{path}: its header lacks the columns {missing} (it has {header})"
            raise not_taken(what, feature_names)
        names, lines = list(feature_names), lines[1:]
        positions = [header.index(name) for name in feature_names]
    rows = []
    for number, row in lines:
        cells = row if positions is None else [row[i] if i < len(row) else "" for i in positions]
        if len(cells) != len(feature_names):
            what = f"{path}, line {number}: {len(cells)} values, not {len(feature_names)}"
            raise not_taken(what, feature_names)
        for name, cell in zip(names, cells, strict=True):
            if not _is_number(cell):
                what = f"{path}, line {number}, {name}: {cell.strip()!r} is not a number"
                raise not_taken(what, feature_names)
        rows.append([float(cell) for cell in cells])
    if not rows:
        raise not_taken(f"{path} holds a header and no rows", feature_names)
    return np.asarray(rows)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
