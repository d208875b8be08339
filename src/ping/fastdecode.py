"""The common request bodies decoded straight from their bytes into the model's matrix.

Most requests are well-formed: a ``POST /predict`` body of positional rows, or a V2
body with one numeric ``[rows, n_features]`` tensor (what KServe's and MLServer's
clients send). For those, orjson parses the bytes and a few checks over every cell at
C speed (the same as ``validation.cells_to_matrix``) give the float64 matrix, in one
pass: no pydantic model per element, no second validation pass.

These decoders accept only a strict subset of what the strict path (pydantic's
``schemas``, then ``inputs``/``tensors``) accepts, and produce exactly what it produces
for that subset. On any deviation they return None, and the caller takes the strict
path, which answers as it always has: every error, and every unusual body that is
nevertheless valid, comes from that one place. What the subset leaves out, and why:

- anything orjson refuses (NaN, 1e400, a BOM, a bad escape, trailing bytes, ...);
- an unknown key, a null, a wrong type, a boolean or string cell, a named row;
- a row count or width out of bounds, a value past float32's range;
- nesting deeper than flat ``parameters`` (pydantic's parser has a depth limit);
- integers of 2**53 or more for an integer datatype (orjson turns those past 64 bits
  into floats, where the strict path compares the exact integer);
- models fitted on a DataFrame (their columns are checked by kind in ``inputs``).

Duplicate keys agree: orjson and pydantic both keep the last.
``tests/unit/test_fastdecode.py`` checks the agreement property-based.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from ping.inputs import InputSchema
from ping.model import FLOAT32_MAX
from ping.schemas import V2RequestedOutput

# The strict path's own definitions, so that the two agree on them by construction.
from ping.tensors import EXACT_IN_FLOAT64, INT_RANGES
from ping.validation import NUMBER_TYPES, in_float32_range

_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_PREDICT_KEYS = frozenset({"features", "instances", "return_probabilities", "return_class_names"})
_INFER_KEYS = frozenset({"id", "model_name", "parameters", "inputs", "outputs"})
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
_MAX_OUTPUTS = 16  # V2InferRequest.outputs' max_length
_FLOAT_DATATYPES = frozenset({"FP32", "FP64"})
_NUMERIC_DATATYPES = _FLOAT_DATATYPES | INT_RANGES.keys()
_OPTIONAL_STR = frozenset({str, type(None)})  # the types of an optional string member
# Up to this many cells, Python checks and builds faster than numpy's per-call overhead.
_FEW_CELLS = 64


# Not frozen: a frozen dataclass's __init__ costs ~0.3 us more, on every request.
@dataclass(slots=True)
class PredictRows:
    """A ``POST /predict`` body, decoded: the options and the rows as the model's matrix."""

    matrix: np.ndarray
    field: str  # "features" (one row) or "instances" (a batch)
    return_probabilities: bool
    return_class_names: bool


@dataclass(slots=True)
class InferRows:
    """A V2 infer body, decoded: what the route reads besides the input tensor's matrix."""

    matrix: np.ndarray
    id: str | None
    model_name: str | None
    outputs: list[V2RequestedOutput] | None


def predict_rows(raw: bytes, schema: InputSchema, *, max_rows: int) -> PredictRows | None:
    """The body's rows as a float64 matrix, or None to take the strict path."""
    if schema.frame:
        return None
    body = _loads(raw)
    if type(body) is not dict or not body.keys() <= _PREDICT_KEYS:
        return None
    probabilities = body.get("return_probabilities", False)
    class_names = body.get("return_class_names", False)
    if type(probabilities) is not bool or type(class_names) is not bool:
        return None
    # Membership, not .get(): an explicit null is an error, not an absent member.
    if ("features" in body) == ("instances" in body):
        return None
    if "features" in body:
        field, rows = "features", [body["features"]]
    else:
        field, rows = "instances", body["instances"]
        if type(rows) is not list or not 0 < len(rows) <= max_rows:
            return None
    matrix = _rows_matrix(rows, len(schema.columns))
    if matrix is None:
        return None
    return PredictRows(matrix, field, probabilities, class_names)


def infer_rows(raw: bytes, schema: InputSchema, *, max_rows: int) -> InferRows | None:
    """A V2 body's one numeric ``[rows, n_features]`` tensor as a float64 matrix, or None
    to take the strict path."""
    if schema.frame:
        return None
    body = _loads(raw)
    if type(body) is not dict or not body.keys() <= _INFER_KEYS:
        return None
    request_id, model_name = body.get("id"), body.get("model_name")
    if type(request_id) not in _OPTIONAL_STR or type(model_name) not in _OPTIONAL_STR:
        return None
    if "parameters" in body and not _flat_parameters(body["parameters"]):
        return None
    outputs, inputs = body.get("outputs"), body.get("inputs")
    if outputs is not None and not _plain_outputs(outputs):
        return None
    if type(inputs) is not list or len(inputs) != 1:
        return None
    matrix = _tensor_matrix(inputs[0], len(schema.columns), max_rows)
    if matrix is None:
        return None
    # Checked above, so this validation cannot fail: the same objects as the strict path's.
    requested = None if outputs is None else list(map(V2RequestedOutput.model_validate, outputs))
    return InferRows(matrix, request_id, model_name, requested)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _rows_matrix(rows: Sequence[Any], width: int) -> np.ndarray | None:
    """Lists of ``width`` numbers each, as a float64 matrix within float32's range."""
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
        return None
    if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
        return None
    count = len(rows) * width
    if count <= _FEW_CELLS:
        if not _few_in_float32_range(chain.from_iterable(rows)):
            return None
        return np.array(rows, dtype=np.float64)
    matrix = np.fromiter(chain.from_iterable(rows), np.float64, count).reshape(len(rows), width)
    return matrix if in_float32_range(matrix) else None


def _tensor_matrix(tensor: Any, width: int, max_rows: int) -> np.ndarray | None:
    """One V2 tensor of ``[n_rows, width]`` numbers, data flat or nested by row."""
    if type(tensor) is not dict or not tensor.keys() <= _TENSOR_KEYS:
        return None
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if type(tensor.get("name")) is not str:
        return None
    if "parameters" in tensor and not _flat_parameters(tensor["parameters"]):
        return None
    if type(datatype) is not str or datatype not in _NUMERIC_DATATYPES:
        return None
    if type(shape) is not list or len(shape) != 2:
        return None
    if type(shape[0]) is not int or type(shape[1]) is not int:
        return None
    n_rows = shape[0]
    if not 0 < n_rows <= max_rows or shape[1] != width or type(data) is not list or not data:
        return None
    matrix: np.ndarray | None
    if type(data[0]) is list:
        matrix = _rows_matrix(data, width) if len(data) == n_rows else None
    elif len(data) == n_rows * width and set(map(type, data)) <= NUMBER_TYPES:
        if len(data) <= _FEW_CELLS:
            in_range = _few_in_float32_range(data)
            matrix = np.array(data, dtype=np.float64).reshape(n_rows, width) if in_range else None
        else:
            matrix = np.fromiter(data, np.float64, len(data)).reshape(n_rows, width)
            matrix = matrix if in_float32_range(matrix) else None
    else:
        matrix = None
    if matrix is None or (datatype in INT_RANGES and not _holds(matrix, datatype)):
        return None
    return matrix


def _few_in_float32_range(cells: Iterable[float]) -> bool:
    """The same check on the JSON numbers (orjson yields no NaN or infinity). Exact for
    integers, so one that float64 would round down into the range is deferred.

    ``cells`` is never empty here: ``max``'s ``default`` (and a ``bool()``) tripled the
    cost of this check, ~0.5 -> ~0.3 µs for one row."""
    return max(map(abs, cells)) <= FLOAT32_MAX


def _holds(matrix: np.ndarray, datatype: str) -> bool:
    """Whole numbers within the integer datatype's range, all exact in float64."""
    low, high = INT_RANGES[datatype]
    return bool(
        (matrix == np.trunc(matrix)).all()
        and (np.abs(matrix) < EXACT_IN_FLOAT64).all()
        and low <= matrix.min()
        and matrix.max() <= high
    )


def _flat_parameters(value: Any) -> bool:
    """``parameters``: absent, null, or an object of scalars (deeper takes the strict path)."""
    return value is None or (
        type(value) is dict and set(map(type, value.values())) <= _SCALAR_TYPES
    )


def _plain_outputs(value: Any) -> bool:
    """``outputs``: a list of at most 16 objects, each a name and flat ``parameters``."""
    if type(value) is not list or len(value) > _MAX_OUTPUTS:
        return False
    return all(
        type(output) is dict
        and output.keys() <= _OUTPUT_KEYS
        and type(output.get("name")) is str
        and _flat_parameters(output.get("parameters"))
        for output in value
    )
