"""The fast lane: the prediction routes, answered without FastAPI's per-request layers.

Before an endpoint runs, FastAPI passes each request through a dozen ASGI layers:
exception and body-limit middleware, an exit stack, included-router dispatch,
dependency solving and the endpoint runner. For ``POST /predict`` those cost ~45 µs
of a ~120 µs request (logreg, one row, 32 connections: the server's CPU per request
went 121 -> 75 µs with this lane). The prediction endpoints need none of them: they
take only the request and their path parameters, read and validate the body
themselves (ping.validation), and raise PingError for every expected failure.

So this middleware, just inside ObservabilityMiddleware (request id, metrics,
access log, 500s), matches those routes by their own compiled path patterns and
parameter convertors, sets what routing sets (``path_params``, ``endpoint`` and
``scope["route"]``, which labels the metrics), calls the endpoint, and answers a
PingError with the app's problem handler, as FastAPI's exception middleware would.
It matches ``scope["path"]`` as it is: Ping serves at the root (no ``root_path``), and
remembers the paths it matched (a bounded few), so a busy route skips its pattern.
The routes' own ``matches`` cost ~4.5 µs a call, most of it FastAPI's bookkeeping for
routers included with a prefix or dependencies, which these routes do not use.
Anything else, including another method on the same path, goes on to FastAPI
unchanged; so do all requests when tracing is on, since FastAPI's own server span
names the route from its routing.
"""

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ping.errors import PingError

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

# Matched paths remembered, so that a busy route skips its pattern (~0.4 µs for /predict,
# ~0.8 µs for V2 infer, behind /predict's). Clients choose paths, so the memory is
# bounded: past it, a path is matched by the patterns as before.
KNOWN_PATHS = 64


@dataclass(frozen=True)
class _Lane:
    route: APIRoute
    arguments: tuple[str, ...]  # the endpoint's path-parameter arguments, after the request

    def path_params(self, path: str) -> dict[str, Any] | None:
        """The path's parameters, converted, if the route's pattern matches it; else None."""
        match = self.route.path_regex.match(path)
        if match is None:
            return None
        convertors = self.route.param_convertors
        return {name: convertors[name].convert(value) for name, value in match.groupdict().items()}


def _lane(route: APIRoute) -> _Lane:
    """The route's endpoint must take the request, then path parameters only: nothing
    that FastAPI's dependency injection would have to solve."""
    if route.methods != {"POST"}:
        raise TypeError(f"{route.path}: the fast lane takes POST routes, not {route.methods}")
    parameters = list(inspect.signature(route.endpoint).parameters)
    path_parameters = set(route.param_convertors)
    if parameters[:1] != ["request"] or not set(parameters[1:]) <= path_parameters:
        raise TypeError(
            f"{route.path}: a fast-lane endpoint takes (request, *path parameters), "
            f"not {parameters}"
        )
    return _Lane(route, tuple(parameters[1:]))


class FastLane:
    """Answers ``routes`` directly; passes every other request to ``app``."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[APIRoute], on_error: ErrorHandler, enabled: bool
    ) -> None:
        self.app = app
        self.lanes = tuple(_lane(route) for route in routes) if enabled else ()
        self.on_error = on_error
        self._known: dict[str, tuple[_Lane, dict[str, Any]]] = {}  # path -> its match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = self._match(scope["path"])
            if found is not None:
                lane, scope["path_params"] = found
                scope["endpoint"], scope["route"] = lane.route.endpoint, lane.route
                await self._answer(lane, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _match(self, path: str) -> tuple[_Lane, dict[str, Any]] | None:
        """The lane for ``path`` and its parameters (a fresh dict), or None."""
        known = self._known.get(path)
        if known is not None:
            return known[0], dict(known[1])
        for lane in self.lanes:
            path_params = lane.path_params(path)
            if path_params is not None:
                if len(self._known) < KNOWN_PATHS:
                    self._known[path] = (lane, path_params)
                return lane, dict(path_params)
        return None

    async def _answer(self, lane: _Lane, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path_params: dict[str, Any] = scope["path_params"]
        try:
            response = await lane.route.endpoint(
                request, **{name: path_params[name] for name in lane.arguments}
            )
        except PingError as exc:
            response = await self.on_error(request, exc)
        await response(scope, receive, send)
