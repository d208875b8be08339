"""One error family, rendered as one RFC 9457 ``application/problem+json`` shape."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    """One offending field: a JSON path such as ``instances[2][0]`` and why it was refused."""

    field: str
    reason: str


class PingError(Exception):
    """Base of every error Ping answers on purpose; carries its HTTP status."""

    status = 500
    title = "Internal Server Error"

    def __init__(
        self, detail: str, errors: Sequence[FieldError] = (), *, status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
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


def from_error_list(errors: Sequence[Mapping[str, Any]]) -> PingError:
    """Pydantic-style error dicts (``type``, ``loc``, ``msg``) as one PingError."""
    if any(e["type"] == "json_invalid" for e in errors):
        return MalformedRequest(
            f"request body is not valid JSON: {errors[0]['msg']}",
            [FieldError("body", errors[0]["msg"])],
        )
    fields = [FieldError(json_path(e["loc"]), e["msg"]) for e in _one_row_form(errors)]
    summary = "; ".join(f"{f.field}: {f.reason}" for f in fields[:3])
    more = f" (and {len(fields) - 3} more)" if len(fields) > 3 else ""
    return InvalidInput(f"invalid request: {summary}{more}", fields)
