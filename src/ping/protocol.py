"""uvicorn's httptools protocol, plus the limits httptools lacks and the drain behaviour.

httptools (the fastest parser uvicorn has) buffers a request's header block without
limit and has no deadline for it. This subclass keeps httptools and adds, per
connection:

- a bound on the header block's bytes (counted as they arrive, before httptools
  buffers them), on the number of header fields, and on the request target: 431/414;
- a deadline for the headers, counted from the request's first byte: 408;
- a deadline for the body, counted from the end of the headers (``read_body`` answers
  408 for a body the app is reading; a body left unread after the response, such as
  the rest of a 413, closes the connection);
- an idle deadline from the moment the connection is accepted (uvicorn only arms its
  keep-alive timer after a first response);
- a cap on open connections: one past it gets 503 and is closed at once;
- while draining: every response carries ``Connection: close``, and connections idle
  for ``DRAIN_IDLE_SECONDS`` are closed, so clients reconnect elsewhere while the
  listener is still open.

Errors answered here never reach the app; they are still problem+json with an
``X-Request-ID``, as every other response is.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ping.errors import PROBLEM_JSON, PingError
from ping.health import Readiness

# A connection idle this long while draining is closed. A shorter idle time means its
# client is most likely about to send: it gets `Connection: close` on that response
# instead, rather than racing the close with its next request.
DRAIN_IDLE_SECONDS = 1.0

# Where a connection is in its current request: deadlines are per phase.
_IDLE, _HEADERS, _BODY, _APP = range(4)


@dataclass(frozen=True)
class HttpLimits:
    """The per-connection limits, from Settings."""

    max_header_bytes: int
    max_headers: int
    max_request_line_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing and answer ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def problem_bytes(status: int, detail: str, *, path: str = "", **headers: str) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    request_id = uuid.uuid4().hex
    body = orjson.dumps(PingError(detail, status=status).body(path, request_id))
    lines = [
        STATUS_LINE[status],
        f"content-type: {PROBLEM_JSON}\r\n".encode(),
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        f"x-request-id: {request_id}\r\n".encode(),
        *(f"{name}: {value}\r\n".encode() for name, value in headers.items()),
        b"\r\n",
        body,
    ]
    return b"".join(lines)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with bounded headers, deadlines, a connection cap and drain."""

    limits: ClassVar[HttpLimits]
    readiness: ClassVar[Readiness]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._refused_connection = False
        self._phase = _IDLE
        self._header_bytes = 0  # bytes received while in the headers
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_phase = _IDLE  # the phase the deadline was armed for
        self._body_overdue = False
        self._idle_since: float | None = None  # None while a request is in progress

    @classmethod
    def with_limits(
        cls, limits: HttpLimits, readiness: Readiness
    ) -> type["GuardedHttpToolsProtocol"]:
        """A protocol class bound to one server's limits and readiness, for ``Config(http=...)``."""
        return type(cls.__name__, (cls,), {"limits": limits, "readiness": readiness})

    # Connection lifecycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused_connection = True
            self.transport = transport
            detail = f"too many connections (PING_MAX_CONNECTIONS={self.limits.max_connections})"
            transport.write(problem_bytes(503, detail, **{"retry-after": "1"}))
            transport.close()
            return
        super().connection_made(transport)
        self._became_idle()
        # uvicorn arms its keep-alive timer only after a response: a connection that
        # never sends a byte would otherwise be held forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused_connection:
            return
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused_connection:
            return
        self._unset_keepalive_if_required()
        if self._phase == _HEADERS:
            # Count before httptools buffers: an unterminated header line never reaches
            # on_header, so this is the only place its size can be bounded.
            self._header_bytes += len(data)
            if (
                self._header_bytes
                > self.limits.max_header_bytes + self.limits.max_request_line_bytes
            ):
                self._refuse(431, self._header_reason())
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refused):
                self._refuse(refusal.status, refusal.reason)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self._refuse(400, f"invalid HTTP request: {exc}")
            return
        # Deadlines are armed only for a request still incomplete after this packet: one
        # that arrives whole (nearly all of them) costs no timer at all.
        if self._phase == _HEADERS and self._deadline_phase != _HEADERS:
            self._set_deadline(self.limits.header_timeout, self._headers_overdue, _HEADERS)
        elif self._phase == _BODY and self._deadline_phase != _BODY:
            self._set_deadline(self.limits.body_timeout, self._body_late, _BODY)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._idle_since = None
        self._phase = _HEADERS
        self._header_bytes = 0
        self._body_overdue = False

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._check_header_block()
        super().on_headers_complete()
        if self.readiness.draining and self.cycle is not None:
            self.cycle.keep_alive = False  # the response says `Connection: close`

    def on_message_complete(self) -> None:
        self._phase = _APP
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_overdue and not self.transport.is_closing():
            self.transport.close()  # the rest of an unread body is not worth waiting for
        elif not self.pipeline:
            self._became_idle()

    # Deadlines and drain

    def close_after_response(self) -> None:
        """Make the request in flight the connection's last, if its response has not
        started: once its headers are out without ``Connection: close``, closing after
        it would catch the client's next request on a dead connection."""
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False

    def close_if_idle(self, now: float, idle_for: float) -> None:
        """Close the connection if no request has been in progress for ``idle_for`` seconds."""
        idle = self._idle_since is not None and now - self._idle_since >= idle_for
        if idle and not self.transport.is_closing():
            self.transport.close()

    def _became_idle(self) -> None:
        self._idle_since = self.loop.time()

    def _headers_overdue(self) -> None:
        self._deadline, self._deadline_phase = None, _IDLE
        limit = self.limits.header_timeout
        self._refuse(
            408, f"request headers took longer than {limit:g}s (PING_HEADER_TIMEOUT_SECONDS)"
        )

    def _body_late(self) -> None:
        self._deadline, self._deadline_phase = None, _IDLE
        self._body_overdue = True
        # While the app reads the body, read_body answers 408 itself; once the response
        # is out, the unread rest of the body only holds the connection.
        if self.cycle is not None and self.cycle.response_complete:
            self.transport.close()

    def _check_header_block(self) -> None:
        """The exact limits, once the block is parsed (data_received bounds it on the way)."""
        limits = self.limits
        if len(self.url) > limits.max_request_line_bytes:
            limit = limits.max_request_line_bytes
            raise _Refused(
                414, f"request target is longer than {limit} bytes (PING_MAX_REQUEST_LINE_BYTES)"
            )
        if len(self.headers) > limits.max_headers:
            limit = limits.max_headers
            raise _Refused(431, f"more than {limit} header fields (PING_MAX_HEADERS)")
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > limits.max_header_bytes:
            raise _Refused(431, self._header_reason())

    def _header_reason(self) -> str:
        limit = self.limits.max_header_bytes
        return f"request headers are larger than {limit} bytes (PING_MAX_HEADER_BYTES)"

    def _refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` with a problem body (unless the app is answering), then close."""
        self._cancel_deadline()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # else the app is answering
            path = self.url.decode("latin-1")[:200] if getattr(self, "url", None) else ""
            self.transport.write(problem_bytes(status, reason, path=path))
        self.transport.close()

    def _set_deadline(self, delay: float, callback: Callable[[], None], phase: int) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(delay, callback)
        self._deadline_phase = phase

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._deadline_phase = _IDLE
