"""V2 tensors in: one ``[rows, n_features]`` tensor, or one tensor per named column.

The per-column form is MLServer's pandas-codec convention: each input is named by a
column, shaped ``[rows]`` or ``[rows, 1]``, BYTES for strings and BOOL for booleans.
For the one tensor, the shape is checked before the data, and the data's length or
nesting before any value, so a large malformed tensor is refused without looking at
its values.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ping.errors import FieldError, InvalidInput, invalid
from ping.inputs import InputSchema, columns_input
from ping.schemas import V2InputTensor
from ping.validation import CellField, cells_to_matrix, check_matrix_shape, check_row_count

INT_RANGES = {
    name: (int(np.iinfo(name.lower()).min), int(np.iinfo(name.lower()).max))
    for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
}
# float64 holds every integer below this exactly; past it, range checks use the JSON value.
EXACT_IN_FLOAT64 = 2.0**53
_BINARY_PARAMETERS = ("binary_data_size", "shared_memory_region")
_KIND_DATATYPES = {"string": {"BYTES"}, "boolean": {"BOOL"}}
_NUMERIC = {"FP32", "FP64", *INT_RANGES}


def model_input(inputs: Sequence[V2InputTensor], schema: InputSchema, *, max_rows: int) -> Any:
    """The request's tensors as the model's input: a matrix, or a DataFrame by column."""
    per_column = any(t.name in schema.index for t in inputs) and (
        len(inputs) > 1 or len(inputs[0].shape) == 1
    )
    if per_column:
        return _by_column(inputs, schema, max_rows=max_rows)
    matrix = tensor_rows(inputs, n_features=len(schema.columns), max_rows=max_rows)
    if not schema.frame:
        return matrix
    nested = bool(inputs[0].data) and isinstance(inputs[0].data[0], list)  # type: ignore[index]
    width = len(schema.columns)
    return columns_input(
        schema,
        [column.tolist() for column in matrix.T],
        lambda r, c: f"inputs[0].data[{r}][{c}]" if nested else f"inputs[0].data[{r * width + c}]",
    )


def _by_column(inputs: Sequence[V2InputTensor], schema: InputSchema, *, max_rows: int) -> Any:
    """One ``[rows]`` or ``[rows, 1]`` tensor per column, each checked by its column's kind."""
    found: dict[str, int] = {}
    n_rows: int | None = None
    for k, tensor in enumerate(inputs):
        column = schema.index.get(tensor.name)
        if column is None:
            expected = ", ".join(repr(n) for n in schema.names[:8])
            raise InvalidInput.for_field(
                f"inputs[{k}].name", f"unknown column {tensor.name!r}; expected one of {expected}"
            )
        if tensor.name in found:
            raise InvalidInput.for_field(f"inputs[{k}].name", f"{tensor.name!r} is given twice")
        found[tensor.name] = k
        kind = schema.columns[column].kind
        allowed = _KIND_DATATYPES.get(kind, _NUMERIC)
        if tensor.datatype not in allowed:
            raise InvalidInput.for_field(
                f"inputs[{k}].datatype",
                f"column {tensor.name!r} is {kind}: expected {' or '.join(sorted(allowed))}",
            )
        shape = tensor.shape
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput.for_field(
                f"inputs[{k}].shape", f"expected [rows] or [rows, 1], got {list(shape)}"
            )
        check_row_count(shape[0], max_rows=max_rows, field=f"inputs[{k}].shape")
        if n_rows is not None and shape[0] != n_rows:
            raise InvalidInput.for_field(
                f"inputs[{k}].shape", f"{shape[0]} rows, but inputs[0] has {n_rows}"
            )
        n_rows = shape[0]
    missing = [name for name in schema.names if name not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInput.for_field("inputs", f"missing column {missing[0]!r}{more}")
    columns: list[list[Any]] = []
    for name in schema.names:
        k = found[name]
        tensor = inputs[k]
        data = tensor.data
        if data is None:
            raise InvalidInput.for_field(f"inputs[{k}].data", "the values are required in `data`")
        flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        if len(flat) != n_rows:
            raise InvalidInput.for_field(
                f"inputs[{k}].data", f"{len(flat)} values given, but the shape holds {n_rows}"
            )
        if tensor.datatype in INT_RANGES:
            _check_integer_cells(flat, tensor.datatype, f"inputs[{k}].data")
        columns.append(flat)
    order = [found[name] for name in schema.names]
    return columns_input(schema, columns, lambda r, c: f"inputs[{order[c]}].data[{r}]")


def _check_integer_cells(values: list[Any], datatype: str, field: str) -> None:
    low, high = INT_RANGES[datatype]
    for i, value in enumerate(values):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float) and not value.is_integer():
            raise InvalidInput.for_field(
                f"{field}[{i}]", f"{datatype} data must be whole numbers, got {value}"
            )
        if isinstance(value, int | float) and not low <= value <= high:
            raise InvalidInput.for_field(
                f"{field}[{i}]",
                f"{value:g} is out of range for {datatype} [{low}, {high}]",
            )


def tensor_rows(inputs: Sequence[V2InputTensor], *, n_features: int, max_rows: int) -> np.ndarray:
    """The request's one input tensor as a float64 ``[rows, n_features]`` matrix.

    Raises a 422 naming the field for a wrong input count, shape, datatype, value
    (non-finite, not a number, or out of the datatype's range) or data length.
    """
    if len(inputs) != 1:
        raise InvalidInput.for_field(
            "inputs", f"expected 1 input tensor [rows, {n_features}], got {len(inputs)}"
        )
    tensor = inputs[0]
    if tensor.datatype not in _NUMERIC:
        raise InvalidInput.for_field(
            "inputs[0].datatype",
            f"a [rows, {n_features}] tensor is numeric; {tensor.datatype} is for one tensor "
            "per string or boolean column, named by the column",
        )
    check_matrix_shape(
        tensor.shape, n_features=n_features, max_rows=max_rows, field="inputs[0].shape"
    )
    n_rows, width = tensor.shape
    field = "inputs[0].data"
    if tensor.data is None:
        reason = "the tensor's values are required in `data`"
        for parameter in _BINARY_PARAMETERS:
            if parameter in (tensor.parameters or {}):
                reason = (
                    f"{parameter}: binary and shared-memory tensors are not supported; {reason}"
                )
        raise InvalidInput.for_field(field, reason)
    data = tensor.data
    cell_field: CellField
    if data and isinstance(data[0], list):
        _check_nesting(data, n_rows, width, field)
        rows, cell_field = data, lambda r, c: f"{field}[{r}][{c}]"
    else:
        if len(data) != n_rows * width:
            needed = n_rows * width
            reason = f"{len(data)} values given, but shape [{n_rows}, {width}] holds {needed}"
            raise InvalidInput.for_field(field, reason)
        # One long row, so that cells are named by their flat index as they were sent.
        rows, cell_field = [data], lambda r, c: f"{field}[{c}]"
    matrix = cells_to_matrix(rows, cell_field)
    _check_integers(matrix, rows, tensor.datatype, cell_field)
    return matrix.reshape(n_rows, width)


def _check_nesting(data: list[Any], n_rows: int, width: int, field: str) -> None:
    if set(map(type, data)) != {list}:
        problems = [
            FieldError(f"{field}[{i}]", "Input should be a valid array")
            for i, row in enumerate(data)
            if not isinstance(row, list)
        ]
        raise invalid(problems)
    lengths = set(map(len, data))
    if len(lengths) > 1:
        raise InvalidInput.for_field(field, "nested rows have different lengths")
    if len(data) != n_rows or lengths != {width}:
        got = [len(data), len(data[0])]
        raise InvalidInput.for_field(
            field, f"nested as {got}, but the shape is [{n_rows}, {width}]"
        )


def _check_integers(
    matrix: np.ndarray, rows: Sequence[Sequence[Any]], datatype: str, cell_field: CellField
) -> None:
    """Refuse values an integer datatype cannot hold, naming the first one.

    Exact: float64 rounds integers past 2**53 (2**63 and 2**63 - 1 are the same float),
    so those are compared as the JSON numbers that were sent.
    """
    if datatype not in INT_RANGES:
        return
    low, high = INT_RANGES[datatype]
    fractional = matrix != np.trunc(matrix)
    if fractional.any():
        r, c = (int(i) for i in np.argwhere(fractional)[0])
        raise InvalidInput.for_field(
            cell_field(r, c), f"{datatype} data must be whole numbers, got {matrix[r, c]}"
        )
    outside = (matrix < low) | (matrix > high)
    big = np.abs(matrix) >= EXACT_IN_FLOAT64
    for r, c in np.argwhere(big):
        value = rows[r][c]
        outside[r, c] = not low <= value <= high  # Python compares int and float exactly
    if outside.any():
        r, c = (int(i) for i in np.argwhere(outside)[0])
        value = rows[r][c]
        shown = value if isinstance(value, int) else f"{value:g}"
        raise InvalidInput.for_field(
            cell_field(r, c), f"{shown} is out of range for {datatype} [{low}, {high}]"
        )
