"""One error family, rendered as one RFC 9457 ``application/problem+json`` shape."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"
# An error body lists at most this many problems, then counts the rest: its size stays
# bounded whatever the request (a 1 MB body of bad cells gets a ~1 kB answer).
MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class FieldError:
    """One offending field: a JSON path such as ``instances[2][0]`` and why it was refused."""

    field: str
    reason: str


class PingError(Exception):
    """Base of every error Ping answers on purpose; carries its HTTP status."""

    status = 500
    title = "Internal Server Error"

    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(
        self,
        detail: str,
        errors: Sequence[FieldError] = (),
        *,
        status: int | None = None,
        omitted: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors[:MAX_LISTED_ERRORS])
        # Problems found but not listed; validation may also stop before finding them all.
        self.omitted = omitted + max(0, len(errors) - MAX_LISTED_ERRORS)
        if headers is not None:
            self.headers = headers
        if status is not None:  # for HTTP errors raised by the framework itself
            self.status = status
            self.title = HTTPStatus(status).phrase

    @classmethod
    def for_field(cls, field: str, reason: str) -> "PingError":
        """The error for one field: ``detail`` is ``"<field>: <reason>"``."""
        return cls(f"{field}: {reason}", [FieldError(field, reason)])

    def body(self, instance: str, request_id: str | None) -> dict[str, Any]:
        """The problem document: RFC 9457 members plus ``errors`` and ``request_id``."""
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = [{"field": e.field, "reason": e.reason} for e in self.errors]
        if self.omitted:
            body["more_errors"] = self.omitted
        if request_id is not None:
            body["request_id"] = request_id
        return body


class MalformedRequest(PingError):
    status = 400
    title = "Bad Request"


class NotFound(PingError):
    status = 404
    title = "Not Found"


class MethodNotAllowed(PingError):
    status = 405
    title = "Method Not Allowed"


class RequestTimeout(PingError):
    status = 408
    title = "Request Timeout"
    # The rest of the body may still be on its way: the connection cannot be reused.
    headers = MappingProxyType({"Connection": "close"})


class PayloadTooLarge(PingError):
    status = 413
    title = "Content Too Large"


class UnsupportedMediaType(PingError):
    status = 415
    title = "Unsupported Media Type"


class InvalidInput(PingError):
    status = 422
    title = "Unprocessable Content"


class ModelNotReady(PingError):
    status = 503
    title = "Service Unavailable"


# The tags schemas.py routes a row's validation by (positional or named); not a path step.
_ROW_TAGS = frozenset(("[row]", "{row}"))


class Overloaded(PingError):
    """Backpressure: the model's queue is full; the client should retry shortly."""

    status = 503
    title = "Service Unavailable"
    headers = MappingProxyType({"Retry-After": "1"})


def json_path(loc: Sequence[int | str]) -> str:
    """A pydantic ``loc`` as a JSON path: ``("instances", 2, 0)`` -> ``instances[2][0]``."""
    path = ""
    for part in loc:
        if part in _ROW_TAGS:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "body"


def _one_row_form(errors: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Keep, for each row, the errors of the form it was sent in (list or object).

    Pydantic tries both forms and reports both; the form whose errors go deeper than
    "not a list" / "not an object" is the one the client used.
    """
    tagged: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    kept: list[Mapping[str, Any]] = []
    for error in errors:
        loc = tuple(error["loc"])
        at = next((i for i, part in enumerate(loc) if part in _ROW_TAGS), None)
        if at is None:
            kept.append(error)
        else:
            tagged.setdefault(loc[:at], []).append(error)
    for row, found in tagged.items():
        deeper = [e for e in found if len(e["loc"]) > len(row) + 1]
        if deeper:
            kept.extend(deeper)
        else:
            reason = "Input should be a list of values, or an object keyed by feature name"
            kept.append({**found[0], "loc": row, "msg": reason})
    return kept


def from_validation_error(exc: ValidationError) -> PingError:
    """Turn a pydantic error into a 400 (unparseable JSON) or a 422 that names each field."""
    return from_error_list(
        exc.errors(include_url=False, include_context=False, include_input=False)
    )


def render(error: PingError, path: str, request_id: str | None) -> tuple[bytes, str]:
    """The response body and media type for ``error`` on ``path``."""
    body = error.body(path, request_id)
    if path.startswith("/v2"):
        # The Open Inference Protocol's `error` member; and plain JSON, because KServe's
        # client reads `error` only from an application/json body.
        body["error"] = error.detail
        return orjson.dumps(body), "application/json"
    return orjson.dumps(body), PROBLEM_JSON


def from_error_list(errors: Sequence[Mapping[str, Any]]) -> PingError:
    """Pydantic-style error dicts (``type``, ``loc``, ``msg``) as one PingError."""
    if any(e["type"] == "json_invalid" for e in errors):
        return MalformedRequest(
            f"request body is not valid JSON: {errors[0]['msg']}",
            [FieldError("body", errors[0]["msg"])],
        )
    kept = _one_row_form(errors)
    fields = [FieldError(json_path(e["loc"]), e["msg"]) for e in kept[:MAX_LISTED_ERRORS]]
    return invalid(fields, omitted=len(kept) - len(fields))


def invalid(fields: Sequence[FieldError], *, omitted: int = 0) -> InvalidInput:
    """One 422 for several field problems: the first few in ``detail``, all listed up to
    MAX_LISTED_ERRORS, and a count of the ``omitted`` rest."""
    summary = "; ".join(f"{f.field}: {f.reason}" for f in fields[:3])
    rest = len(fields) - 3 + omitted
    more = f" (and {rest} more)" if rest > 0 else ""
    return InvalidInput(f"invalid request: {summary}{more}", fields, omitted=omitted)
