"""Per-request bookkeeping: request id, metrics, one JSON access-log line, and the
answer to any error nothing else caught (500, or 499 for a client that went away).

A pure ASGI middleware: Starlette's BaseHTTPMiddleware would cost a task and a
stream per request, a real share of a sub-millisecond request.
"""

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ping.accesslog import AccessLog
from ping.errors import PingError, render
from ping.metrics import Metrics

logger = logging.getLogger("ping")

# The status recorded (metrics, access log) for a request whose client closed the
# connection before the answer, as nginx does: no response is sent, and it is no 500.
CLIENT_CLOSED_REQUEST = 499

# A client's id is echoed back and logged, so only accept a short, printable token.
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


# Route templates x methods x statuses: a few dozen in practice; the bound is for
# clients that send made-up methods.
_MAX_CACHED_CHILDREN = 256


class ObservabilityMiddleware:
    """Assigns ``X-Request-ID`` (honouring the client's), counts and times the request, logs it."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        access_log: AccessLog | None,
        in_flight: "InFlight | None" = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.in_flight = in_flight or InFlight()
        # The label children per (route template, method, status): labels() per request
        # was a lock, a tuple and a dict lookup each time.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
        self.in_flight.count += 1

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
            self.in_flight.count -= 1
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            key = (template, scope["method"], status)
            children = self._children.get(key)
            if children is None:
                children = (
                    self.metrics.requests.labels(template, scope["method"], str(status)),
                    self.metrics.latency.labels(template),
                )
                if len(self._children) < _MAX_CACHED_CHILDREN:
                    self._children[key] = children
            children[0].inc()
            children[1].observe(elapsed)
            if self.access_log is not None:
                self.access_log.request(
                    scope["method"], scope["path"], status, round(elapsed * 1000, 3), request_id
                )


class InFlight:
    """HTTP requests in progress, as a plain int the batcher reads (it runs a lone
    request's model call inline); the Prometheus gauge is for scraping."""

    count = 0

    def __call__(self) -> int:
        return self.count


class _RequestIds:
    """32 hex digits, like ``uuid4().hex``, but a counter after a random per-process
    prefix: unique across replicas and restarts without 16 random bytes (and a UUID
    object) per request, which was up to 5 % of a request's CPU profile."""

    def __init__(self) -> None:
        self._prefix = ""
        self._pid = -1
        self._counter = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():  # a fork must not repeat its parent's ids
            self._pid = os.getpid()
            self._prefix = os.urandom(8).hex()
            self._counter = itertools.count(int.from_bytes(os.urandom(4)))
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_ids = _RequestIds()


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
    return _ids.next()
