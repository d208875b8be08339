"""The app factory: wires settings, model, batcher, metrics and the error handler."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

import ping
from ping import api, startup, v2
from ping.accesslog import AccessLog
from ping.batching import MicroBatcher
from ping.check import open_model, self_check
from ping.docs import add_docs
from ping.errors import MethodNotAllowed, NotFound, PingError, from_error_list, render
from ping.fastlane import FastLane
from ping.health import Readiness
from ping.inputs import InputSchema
from ping.metrics import Metrics
from ping.middleware import HeadAsGet, InFlight, ObservabilityMiddleware
from ping.model import Model, version_problem
from ping.openapi import describe_input, hoist_defs
from ping.settings import Settings
from ping.tracing import Tracing, load_tracing

logger = logging.getLogger("ping")


def create_app(
    settings: Settings | None = None, model: Model | None = None, tracing: Tracing | None = None
) -> FastAPI:
    """Build the app. The lifespan loads the model from ``settings.model_dir``
    unless a loaded ``model`` is given (``python -m ping`` loads it first, to fail fast);
    likewise ``tracing`` defaults to what ``PING_TRACING`` and ``OTEL_*`` ask for."""
    settings = settings or Settings()
    tracing = tracing or load_tracing(settings)
    metrics = Metrics.for_settings(settings)
    readiness = Readiness()
    # The access log is an info-level line: a quieter PING_LOG_LEVEL turns it off too.
    quiet = settings.log_level not in ("info", "debug")
    access_log = None if quiet or not settings.access_log else AccessLog(tracing)
    in_flight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if access_log is not None:
            access_log.start()
        try:
            async with _serving(app):
                yield
        finally:
            if access_log is not None:
                access_log.close()

    @asynccontextmanager
    async def _serving(app: FastAPI) -> AsyncIterator[None]:
        loaded = model or open_model(settings)
        problem = version_problem(loaded.metadata)
        if problem and not settings.allow_version_mismatch:
            readiness.problem = problem
            metrics.refuse_model("version_mismatch")
            logger.error("model refused: %s", problem)
            startup.settle()  # it still answers probes and /metrics, for as long as it runs
            try:
                yield
            finally:
                tracing.shutdown()
            return
        if problem:
            logger.warning("serving despite a version mismatch: %s", problem)
        if model is None:  # a given model was checked by whoever loaded it
            self_check(loaded)
        batcher = MicroBatcher(
            loaded,
            metrics,
            max_rows=settings.batch_max_rows,
            max_wait_us=settings.batch_max_wait_us,
            max_queued_rows=settings.max_queued_rows,
            tracing=tracing,
            in_flight=in_flight,
        )
        startup.settle()  # freeze the heap out of the collector, and resume it
        batcher.start()
        app.state.model = loaded
        app.state.input_schema = InputSchema.of(loaded.metadata)
        app.state.batcher = batcher
        metrics.set_model(loaded.metadata)
        readiness.model_loaded = True
        logger.info(
            "model loaded",
            extra={
                "model": loaded.metadata.name,
                "version": loaded.metadata.version,
                "sha256": loaded.metadata.sha256,
            },
        )
        try:
            yield
        finally:
            readiness.draining = True
            await batcher.close()
            tracing.shutdown()

    app = FastAPI(
        title="Ping",
        version=ping.__version__,
        summary="A fast, safe scikit-learn inference service.",
        lifespan=lifespan,
        # Off: a slash redirect is built from the Host header (an open redirect).
        redirect_slashes=False,
        openapi_url="/openapi.json" if settings.docs else None,
        docs_url=None,  # served by ping.docs, from the installed package
        redoc_url=None,
        telemetry=tracing.telemetry(),
    )
    app.state.settings = settings
    app.state.tracing = tracing
    app.state.metrics = metrics
    app.state.readiness = readiness
    app.state.model = None
    app.include_router(api.router)
    app.include_router(v2.router)
    if settings.docs:
        add_docs(app)
        app.openapi = partial(openapi, app)  # type: ignore[method-assign]
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        FastLane,
        routes=[
            route
            for route in (*api.router.routes, *v2.router.routes)
            if isinstance(route, APIRoute) and route.endpoint in (api.predict, v2.infer)
        ],
        on_error=problem_response,
        enabled=not tracing.enabled,
    )
    # Outermost, so that unexpected errors (500) get a request id and one log line too.
    app.state.access_log = access_log
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, access_log=access_log, in_flight=in_flight
    )
    app.add_exception_handler(PingError, problem_response)
    app.add_exception_handler(RequestValidationError, problem_response)
    app.add_exception_handler(HTTPException, problem_response)
    return app


async def problem_response(request: Request, exc: Exception) -> Response:
    """The error handler for expected errors: each becomes one problem+json shape.

    Unexpected exceptions are answered (500) and logged by ObservabilityMiddleware.
    """
    error: PingError
    if isinstance(exc, PingError):
        error = exc
    elif isinstance(exc, RequestValidationError):
        error = from_error_list(exc.errors())
    elif isinstance(exc, HTTPException) and exc.status_code == 404:
        error = NotFound(f"no route {request.url.path}; see /docs")
    elif isinstance(exc, HTTPException) and exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        if "GET" in allowed.split(", "):
            allowed += ", HEAD"  # HeadAsGet answers HEAD wherever GET works
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}",
            headers={"Allow": allowed},
        )
    else:
        assert isinstance(exc, HTTPException)
        error = PingError(str(exc.detail), status=exc.status_code, headers=exc.headers)
    body, media_type = render(error, request.url.path, getattr(request.state, "request_id", None))
    return Response(body, error.status, headers=dict(error.headers), media_type=media_type)


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the request bodies' ``$defs`` moved to ``components``.

    The bodies are declared by hand (they are read by ping.validation, not by FastAPI),
    and pydantic writes their nested models under ``$defs`` with refs relative to the
    body schema: at the document's root those refs would dangle.
    """
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        model: Model | None = app.state.model
        if model is None:  # not loaded (yet): the generic document, not cached
            return hoist_defs(schema)
        app.openapi_schema = describe_input(
            hoist_defs(schema),
            n_features=model.metadata.n_features,
            max_rows=app.state.settings.max_rows,
        )
    return app.openapi_schema
