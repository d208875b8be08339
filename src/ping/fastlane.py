"""The fast lane: the prediction routes, answered without FastAPI's per-request layers.

Before an endpoint runs, FastAPI passes each request through a dozen ASGI layers:
exception and body-limit middleware, an exit stack, included-router dispatch,
dependency solving and the endpoint runner. For ``POST /predict`` those cost ~45 µs
of a ~120 µs request (logreg, one row, 32 connections: the server's CPU per request
went 121 -> 75 µs with this lane). The prediction endpoints need none of them: they
take only the request and their path parameters, read and validate the body
themselves (ping.validation), and raise PingError for every expected failure.

So this middleware, just inside ObservabilityMiddleware (request id, metrics,
access log, 500s), matches those routes with the routes' own ``matches`` (the same
paths, path parameters and ``scope["route"]``, which labels the metrics), calls the
endpoint, and answers a PingError with the app's problem handler, as FastAPI's
exception middleware would. Anything else, including another method on the same
path, goes on to FastAPI unchanged; so do all requests when tracing is on, since
FastAPI's own server span names the route from its routing.
"""

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ping.errors import PingError

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True)
class _Lane:
    route: APIRoute
    arguments: tuple[str, ...]  # the endpoint's path-parameter arguments, after the request


def _lane(route: APIRoute) -> _Lane:
    """The route's endpoint must take the request, then path parameters only: nothing
    that FastAPI's dependency injection would have to solve."""
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for lane in self.lanes:
                match, child_scope = lane.route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await self._answer(lane, scope, receive, send)
                    return
        await self.app(scope, receive, send)

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
