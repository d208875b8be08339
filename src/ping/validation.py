"""The one input validator: request bodies and rows, for /predict and V2 alike."""

import asyncio
import math
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from ping.errors import (
    MAX_LISTED_ERRORS,
    FieldError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    from_validation_error,
    invalid,
)
from ping.model import FLOAT32_MAX

Body = TypeVar("Body", bound=BaseModel)
CellField = Callable[[int, int], str]  # (row, column) -> the cell's JSON path

# bool is not here: `true` is no feature value, though Python's bool is an int.
NUMBER_TYPES = frozenset({int, float})
_NOT_NUMBER = "Input should be a valid number"
_NOT_FINITE = "Input should be a finite number"
_NOT_ARRAY = "Input should be a valid array"


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


# The headers that decide how a request's body is read (and V2's binary-tensor header,
# which is refused), looked up by body_headers.
_BODY_HEADERS = frozenset(
    {b"content-encoding", b"content-type", b"content-length", b"inference-header-content-length"}
)


def body_headers(request: Request) -> dict[bytes, str]:
    """The first value of each header that decides how the body is read, by its
    lower-case name, found in one pass over the raw headers: starlette's ``Headers``
    scans them all for every lookup, ~1 µs each on the hot path."""
    found: dict[bytes, str] = {}
    for name, value in request.scope["headers"]:
        if name in _BODY_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


async def read_body(
    request: Request,
    max_bytes: int,
    *,
    timeout: float,
    untyped_is_json: bool = False,
    headers: dict[bytes, str] | None = None,
) -> bytes:
    """Read a JSON body of at most ``max_bytes`` within ``timeout`` seconds; its bytes.

    Raises 415 for a non-JSON content type or any Content-Encoding but identity, 413
    past the limit (without reading further) and 408 past the deadline. With
    ``untyped_is_json``, a body sent without any Content-Type is read as JSON.
    ``headers`` is ``body_headers(request)``, if the caller has it already.
    """
    if headers is None:
        headers = body_headers(request)
    encoding = headers.get(b"content-encoding", "identity").strip().lower()
    if encoding != "identity":
        reason = f"got {encoding!r}; send the body uncompressed (identity)"
        raise UnsupportedMediaType(
            f"Content-Encoding is not supported: {reason}", [FieldError("Content-Encoding", reason)]
        )
    content_type = headers.get(b"content-type", "")
    if (content_type or not untyped_is_json) and not _is_json(content_type):
        got = f"got {content_type!r}" if content_type else "no Content-Type was sent"
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, {got}", [FieldError("Content-Type", got)]
        )
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    # A body that has arrived whole (nearly all) is taken without arming a timer.
    body, more = await _receive(request)
    if more:
        chunks = [body]
        size = len(body)
        try:
            async with asyncio.timeout(timeout):
                while more:
                    chunk, more = await _receive(request)
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    chunks.append(chunk)
        except TimeoutError:
            reason = f"the body took longer than {timeout:g}s to arrive (PING_BODY_TIMEOUT_SECONDS)"
            raise RequestTimeout(reason, [FieldError("body", reason)]) from None
        body = b"".join(chunks)
    elif len(body) > max_bytes:
        raise _too_large(max_bytes)
    return body


def parse_body(raw: bytes, schema: type[Body]) -> Body:
    """Validate a JSON body against ``schema``: 400 for malformed JSON, 422 naming each
    invalid field."""
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


async def _receive(request: Request) -> tuple[bytes, bool]:
    """One piece of the body and whether more follows; a client gone is ClientDisconnect."""
    message = await request.receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    return message.get("body", b""), message.get("more_body", False)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    reason = f"body is larger than the {max_bytes}-byte limit (PING_MAX_BODY_BYTES)"
    return PayloadTooLarge(reason, [FieldError("body", reason)])


def rows_to_array(
    rows: Sequence[Any], *, n_features: int, max_rows: int, field: str, batch: bool
) -> np.ndarray:
    """Check row count and width, then each cell, and stack the rows into a float64 matrix.

    ``field`` names the body member for error messages; ``batch`` says whether rows
    are addressed as ``field[i]`` (a batch) or as ``field`` itself (a single row).
    """
    check_row_count(len(rows), max_rows=max_rows, field=field)
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {n_features}:
        problems = [
            FieldError(
                f"{field}[{i}]" if batch else field,
                _width_reason(n_features, len(row)) if isinstance(row, list) else _NOT_ARRAY,
            )
            for i, row in enumerate(rows)
            if not isinstance(row, list) or len(row) != n_features
        ]
        raise invalid(problems)
    return cells_to_matrix(rows, lambda r, c: f"{field}[{r}][{c}]" if batch else f"{field}[{c}]")


def cells_to_matrix(rows: Sequence[Sequence[Any]], cell_field: CellField) -> np.ndarray:
    """Rows of equal width, already checked, as a float64 matrix; or a 422 naming bad cells.

    Each check runs over every cell at C speed, and the first failing check ends
    validation: a Python loop runs only to name the first MAX_LISTED_ERRORS cells.
    Numbers only (a boolean, string, null or list is refused), then finite values,
    then float32's range.
    """
    if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
        raise _bad_cells(rows, cell_field)
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:  # an integer literal past float64's range
        matrix = np.array([[_to_float(v) for v in row] for row in rows], dtype=np.float64)
    if not in_float32_range(matrix):
        not_finite = ~np.isfinite(matrix)
        if not_finite.any():
            raise _masked(not_finite, cell_field, lambda v: _NOT_FINITE)
        check_float32_range(matrix, cell_field)
    return matrix


def in_float32_range(matrix: np.ndarray) -> bool:
    """Every value finite and within float32's range, in one pass (false for NaN, ±inf)."""
    return bool((np.abs(matrix) <= FLOAT32_MAX).all())


def check_float32_range(matrix: np.ndarray, cell_field: CellField) -> None:
    """Refuse values past float32's range, naming them by ``cell_field(row, column)``.

    A forest would raise ValueError on them (a 500 if let through), so every model's
    input is held to the range.
    """
    outside = np.abs(matrix) > FLOAT32_MAX
    if outside.any():
        raise _masked(
            outside,
            cell_field,
            lambda v: f"{v:g} is out of range: models compute in float32 (±3.4e38)",
            matrix,
        )


def _to_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _bad_cells(rows: Sequence[Sequence[Any]], cell_field: CellField) -> InvalidInput:
    """The 422 for cells that are not numbers: the first few named, the rest counted."""
    listed: list[FieldError] = []
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if type(value) not in NUMBER_TYPES:
                listed.append(FieldError(cell_field(r, c), _NOT_NUMBER))
                if len(listed) == MAX_LISTED_ERRORS:
                    break
        if len(listed) == MAX_LISTED_ERRORS:
            break
    cells = chain.from_iterable(rows)
    n_bad = sum(len(row) for row in rows) - sum(map(NUMBER_TYPES.__contains__, map(type, cells)))
    return invalid(listed, omitted=n_bad - len(listed))


def _masked(
    mask: np.ndarray,
    cell_field: CellField,
    reason: Callable[[float], str],
    values: np.ndarray | None = None,
) -> InvalidInput:
    """The 422 for the cells where ``mask`` holds: the first few named, the rest counted."""
    where = np.argwhere(mask)[:MAX_LISTED_ERRORS]
    listed = [
        FieldError(cell_field(int(r), int(c)), reason(0.0 if values is None else values[r, c]))
        for r, c in where
    ]
    return invalid(listed, omitted=int(np.count_nonzero(mask)) - len(listed))


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
