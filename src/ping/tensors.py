"""V2 tensors in: one ``[rows, n_features]`` input tensor, checked and decoded to a matrix.

The shape is checked before the data, and the data's length or nesting before any
value, so a large malformed tensor is refused without looking at its values.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ping.errors import FieldError, InvalidInput, invalid
from ping.schemas import V2InputTensor
from ping.validation import CellField, cells_to_matrix, check_matrix_shape

_INT_RANGES = {
    name: (int(np.iinfo(name.lower()).min), int(np.iinfo(name.lower()).max))
    for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
}
# float64 holds every integer below this exactly; past it, range checks use the JSON value.
_EXACT_IN_FLOAT64 = 2.0**53
_BINARY_PARAMETERS = ("binary_data_size", "shared_memory_region")


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
    if datatype not in _INT_RANGES:
        return
    low, high = _INT_RANGES[datatype]
    fractional = matrix != np.trunc(matrix)
    if fractional.any():
        r, c = (int(i) for i in np.argwhere(fractional)[0])
        raise InvalidInput.for_field(
            cell_field(r, c), f"{datatype} data must be whole numbers, got {matrix[r, c]}"
        )
    outside = (matrix < low) | (matrix > high)
    big = np.abs(matrix) >= _EXACT_IN_FLOAT64
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
