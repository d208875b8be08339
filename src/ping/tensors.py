"""V2 tensors in: one ``[rows, n_features]`` input tensor, checked and decoded to a matrix."""

from collections.abc import Sequence

import numpy as np
from pydantic import TypeAdapter, ValidationError

from ping.errors import InvalidInput, from_error_list
from ping.schemas import Feature, V2InputTensor
from ping.validation import check_float32_range, check_matrix_shape

_INT_RANGES = {
    name: np.iinfo(getattr(np, name.lower()))
    for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
}
_FLAT = TypeAdapter(list[Feature])
_NESTED = TypeAdapter(list[list[Feature]])
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
    nested = bool(tensor.data) and isinstance(tensor.data[0], list)
    try:
        values = (_NESTED if nested else _FLAT).validate_python(tensor.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise from_error_list(
            [{**e, "loc": ("inputs", 0, "data", *e["loc"])} for e in errors]
        ) from None
    try:
        array = np.asarray(values, dtype=np.float64)
    except ValueError:
        raise InvalidInput.for_field(field, "nested rows have different lengths") from None
    if array.ndim == 1 and array.size != n_rows * width:
        needed = n_rows * width
        reason = f"{array.size} values given, but shape [{n_rows}, {width}] holds {needed}"
        raise InvalidInput.for_field(field, reason)
    if array.ndim == 2 and array.shape != (n_rows, width):
        got = list(array.shape)
        raise InvalidInput.for_field(
            field, f"nested as {got}, but the shape is [{n_rows}, {width}]"
        )
    _check_integers(array, tensor.datatype, field)
    matrix = array.reshape(n_rows, width)
    check_float32_range(
        matrix,
        lambda r, c: f"{field}[{r}][{c}]" if array.ndim == 2 else f"{field}[{r * width + c}]",
    )
    return matrix


def _check_integers(array: np.ndarray, datatype: str, field: str) -> None:
    """Refuse values an integer datatype cannot hold, naming the first one."""
    if datatype not in _INT_RANGES:
        return
    info = _INT_RANGES[datatype]
    fractional = array != np.trunc(array)
    if fractional.any():
        where, value = _first(array, fractional)
        raise InvalidInput.for_field(
            field + where, f"{datatype} data must be whole numbers, got {value}"
        )
    outside = (array < info.min) | (array > info.max)
    if outside.any():
        where, value = _first(array, outside)
        raise InvalidInput.for_field(
            field + where, f"{value:g} is out of range for {datatype} [{info.min}, {info.max}]"
        )


def _first(array: np.ndarray, mask: np.ndarray) -> tuple[str, float]:
    """The JSON path suffix (``[1][2]``) and value of the first element where ``mask`` holds."""
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return "".join(f"[{i}]" for i in index), float(array[index])
