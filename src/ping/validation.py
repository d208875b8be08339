"""The one input validator: request bodies and rows, for /predict and V2 alike."""

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ping.errors import (
    FieldError,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
    from_validation_error,
)
from ping.model import FLOAT32_MAX

Body = TypeVar("Body", bound=BaseModel)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_body(
    request: Request, schema: type[Body], max_bytes: int, *, untyped_is_json: bool = False
) -> Body:
    """Read a JSON body of at most ``max_bytes`` and validate it against ``schema``.

    Raises 415 for a non-JSON content type, 413 past the limit (without reading
    further), 400 for malformed JSON and 422 naming each invalid field. With
    ``untyped_is_json``, a body sent without any Content-Type is read as JSON.
    """
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type) and not (untyped_is_json and not content_type):
        got = f"got {content_type!r}" if content_type else "no Content-Type was sent"
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, {got}", [FieldError("Content-Type", got)]
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    try:
        return schema.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _too_large(max_bytes: int) -> PayloadTooLarge:
    reason = f"body is larger than the {max_bytes}-byte limit (PING_MAX_BODY_BYTES)"
    return PayloadTooLarge(reason, [FieldError("body", reason)])


def rows_to_array(
    rows: Sequence[Sequence[float]], *, n_features: int, max_rows: int, field: str, batch: bool
) -> np.ndarray:
    """Check row count and width, then stack the rows into a float64 matrix.

    ``field`` names the body member for error messages; ``batch`` says whether rows
    are addressed as ``field[i]`` (a batch) or as ``field`` itself (a single row).
    """
    check_row_count(len(rows), max_rows=max_rows, field=field)
    errors = [
        FieldError(f"{field}[{i}]" if batch else field, _width_reason(n_features, len(row)))
        for i, row in enumerate(rows)
        if len(row) != n_features
    ]
    if errors:
        more = f" (and {len(errors) - 1} more rows)" if len(errors) > 1 else ""
        raise InvalidInput(f"{errors[0].field}: {errors[0].reason}{more}", errors)
    matrix = np.asarray(rows, dtype=np.float64)
    check_float32_range(matrix, lambda r, c: f"{field}[{r}][{c}]" if batch else f"{field}[{c}]")
    return matrix


def check_float32_range(matrix: np.ndarray, cell_field: Callable[[int, int], str]) -> None:
    """Refuse the first value past float32's range, naming it by ``cell_field(row, column)``.

    A forest would raise ValueError on it (a 500 if let through), so every model's input
    is held to the range.
    """
    outside = np.abs(matrix) > FLOAT32_MAX
    if outside.any():
        row, column = (int(i) for i in np.argwhere(outside)[0])
        reason = f"{matrix[row, column]:g} is out of range: models compute in float32 (±3.4e38)"
        raise InvalidInput.for_field(cell_field(row, column), reason)


def check_row_count(n_rows: int, *, max_rows: int, field: str) -> None:
    """At least one row and at most ``max_rows`` (PING_MAX_ROWS)."""
    if n_rows == 0:
        raise InvalidInput.for_field(field, "at least one row is required")
    if n_rows > max_rows:
        reason = f"at most {max_rows} rows per request (PING_MAX_ROWS), got {n_rows}"
        raise InvalidInput.for_field(field, reason)


def check_matrix_shape(shape: Sequence[int], *, n_features: int, max_rows: int, field: str) -> None:
    """The row-count and width rules of ``rows_to_array``, for input that declares its
    shape up front (a V2 tensor), checked before its data is read."""
    if len(shape) != 2:
        raise InvalidInput.for_field(field, f"expected [rows, {n_features}], got {list(shape)}")
    check_row_count(shape[0], max_rows=max_rows, field=field)
    if shape[1] != n_features:
        raise InvalidInput.for_field(field, _width_reason(n_features, shape[1]))


def _width_reason(n_features: int, got: int) -> str:
    return f"expected {n_features} features, got {got}"
