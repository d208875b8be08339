"""Per-request bookkeeping: request id, metrics, one JSON access-log line, and the
answer to any error nothing else caught (500, or 499 for a client that went away).

A pure ASGI middleware: Starlette's BaseHTTPMiddleware would cost a task and a
stream per request, a real share of a sub-millisecond request.
"""

import logging
import re
import time
import uuid

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ping.errors import PingError, render
from ping.metrics import Metrics

access_logger = logging.getLogger("ping.access")
logger = logging.getLogger("ping")

# The status recorded (metrics, access log) for a request whose client closed the
# connection before the answer, as nginx does: no response is sent, and it is no 500.
CLIENT_CLOSED_REQUEST = 499

# A client's id is echoed back and logged, so only accept a short, printable token.
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


class ObservabilityMiddleware:
    """Assigns ``X-Request-ID`` (honouring the client's), counts and times the request, logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # what the client gets if the app dies before answering
        started_response = False
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED_REQUEST
            logger.info("client disconnected", extra={"request_id": request_id})
        except Exception:
            # The one log line (traceback included) for an unexpected error; it is not
            # re-raised, so neither Starlette nor uvicorn logs it a second time.
            logger.exception("unhandled error", extra={"request_id": request_id})
            if not started_response:
                await _send_internal_error(scope["path"], request_id, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(elapsed)
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 3),
                        "request_id": request_id,
                    },
                )


async def _send_internal_error(path: str, request_id: str, send: Send) -> None:
    error = PingError("internal error; the request id identifies it in the logs")
    body, media_type = render(error, path, request_id)
    headers = [(b"content-type", media_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HeadAsGet:
    """Answers ``HEAD`` wherever ``GET`` works: the app sees a GET, and uvicorn, which
    still holds the original HEAD scope, sends the headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)


def _request_id(scope: Scope) -> str:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _CLIENT_ID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex
