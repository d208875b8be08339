"""Request rows -> the model's input, by the artifact's input schema.

A model fitted on a matrix gets a float64 matrix, as before: positional rows take the
unchanged fast path of ``validation.rows_to_array``, and named rows are put in feature
order first. A model fitted on a DataFrame gets a DataFrame built with the recorded
column names and kinds, so scikit-learn sees the names it was fitted with; pandas is
imported only then. Every cell is checked against its column's kind before the model
sees it, and a wrong name, type or count is a 422 naming the field.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ping.artifact import Column, ModelMetadata
from ping.errors import FieldError, InvalidInput
from ping.model import FLOAT32_MAX
from ping.schemas import PredictRequest
from ping.validation import check_row_count, rows_to_array

CellField = Callable[[int, int], str]  # (row, column) -> the JSON path a client sent it at
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class InputSchema:
    """What a request must carry for one model: columns in order, and how they reach it."""

    columns: tuple[Column, ...]
    frame: bool
    names: tuple[str, ...] = field(init=False)
    index: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "index", {name: i for i, name in enumerate(names)})

    @classmethod
    def of(cls, metadata: ModelMetadata) -> "InputSchema":
        return cls(tuple(metadata.columns), frame=metadata.input == "frame")

    @property
    def body(self) -> type[PredictRequest]:
        """The ``POST /predict`` body model; cells are checked by column afterwards."""
        return PredictRequest


def request_input(
    rows: Sequence[Any], schema: InputSchema, *, max_rows: int, field: str, batch: bool
) -> Any:
    """Check a request's rows and turn them into what the model takes.

    ``field`` names the body member for errors; ``batch`` says whether rows are
    addressed as ``field[i]`` (a batch) or as ``field`` itself (a single row).
    """
    check_row_count(len(rows), max_rows=max_rows, field=field)

    def row_field(i: int) -> str:
        return f"{field}[{i}]" if batch else field

    if not schema.frame and not any(isinstance(row, dict) for row in rows):
        return rows_to_array(
            rows, n_features=len(schema.columns), max_rows=max_rows, field=field, batch=batch
        )
    ordered = [
        _in_order(row, schema, row_field(i)) if isinstance(row, dict) else row
        for i, row in enumerate(rows)
    ]
    if not schema.frame:
        return rows_to_array(
            ordered, n_features=len(schema.columns), max_rows=max_rows, field=field, batch=batch
        )
    width = len(schema.columns)
    for i, row in enumerate(ordered):
        if len(row) != width:
            raise InvalidInput.for_field(row_field(i), f"expected {width} features, got {len(row)}")

    def cell_field(i: int, j: int) -> str:
        if isinstance(rows[i], dict):
            return f"{row_field(i)}.{schema.names[j]}"
        return f"{row_field(i)}[{j}]"

    return columns_input(
        schema, [list(column) for column in zip(*ordered, strict=True)], cell_field
    )


def _in_order(row: Mapping[str, Any], schema: InputSchema, row_field: str) -> list[Any]:
    """A named row's values in the model's feature order; unknown or missing names are 422."""
    for name in row:
        if name not in schema.index:
            expected = ", ".join(repr(n) for n in schema.names[:8])
            more = ", ..." if len(schema.names) > 8 else ""
            raise InvalidInput.for_field(
                f"{row_field}.{name}", f"unknown feature; expected one of {expected}{more}"
            )
    if len(row) != len(schema.names):
        missing = [name for name in schema.names if name not in row]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInput.for_field(row_field, f"missing feature {missing[0]!r}{more}")
    return [row[name] for name in schema.names]


def columns_input(
    schema: InputSchema, columns: Sequence[Sequence[Any]], cell_field: CellField
) -> Any:
    """Columns of JSON values (in schema order, equal lengths) as the model's input."""
    arrays = [
        _column_array(column, values, lambda i, j=j: cell_field(i, j))  # type: ignore[misc]
        for j, (column, values) in enumerate(zip(schema.columns, columns, strict=True))
    ]
    if not schema.frame:
        return np.column_stack(arrays).astype(np.float64, copy=False)
    import pandas as pd  # only models fitted on a DataFrame pay for pandas

    return pd.DataFrame(dict(zip(schema.names, arrays, strict=True)), columns=list(schema.names))


def _column_array(column: Column, values: Sequence[Any], where: Callable[[int], str]) -> np.ndarray:
    """One column's values checked against its kind, as the dtype it was fitted with."""
    has_null = False
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is None:
            if not column.nullable:
                raise _bad(where(i), column, "null is not accepted")
            has_null = True
            out.append(math.nan)
            continue
        out.append(_cell(column, value, where(i)))
    if column.kind == "number":
        return np.asarray(out, dtype=np.float64)
    if column.kind == "integer":
        return np.asarray(out, dtype=np.float64 if has_null else np.int64)
    if column.kind == "boolean" and not has_null:
        return np.asarray(out, dtype=bool)
    return np.asarray(out, dtype=object)


def _cell(column: Column, value: Any, where: str) -> Any:
    kind = column.kind
    if kind == "string":
        if isinstance(value, str):
            return value
        raise _bad(where, column, f"expected a string, got {_json_type(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise _bad(where, column, f"expected true or false, got {_json_type(value)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, column, f"expected a number, got {_json_type(value)}")
    if kind == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise _bad(where, column, f"expected a whole number, got {value:g}")
        if not _INT64.min <= value <= _INT64.max:
            raise _bad(where, column, f"{value:g} is out of range for a 64-bit integer")
        return int(value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise _bad(
            where, column, f"{number:g} is out of range: models compute in float32 (±3.4e38)"
        )
    return number


def _bad(where: str, column: Column, reason: str) -> InvalidInput:
    reason = f"{reason} (column {column.name!r} is {column.kind}" + (
        ", nullable)" if column.nullable else ")"
    )
    return InvalidInput(f"{where}: {reason}", [FieldError(where, reason)])


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
