"""Tracing hooks for the routes and the micro-batcher, and the switch that turns them on.

Tracing is off by default (``PING_TRACING``). Off, every hook here is a no-op and the
OpenTelemetry SDK, exporters and protobuf are never imported: no memory, no start-up time
and no per-request cost beyond a method call. On, ``ping.otel`` supplies the same hooks
backed by the SDK, configured by the standard ``OTEL_*`` environment variables.

Why a Ping switch rather than the SDK's own: by the OpenTelemetry spec an SDK is on unless
``OTEL_SDK_DISABLED=true``, and exports over OTLP unless ``OTEL_TRACES_EXPORTER=none``,
so their defaults would mean tracing on. ``OTEL_SDK_DISABLED=true`` still wins over
``PING_TRACING=true``, as the spec asks.
"""

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

    from ping.settings import Settings

_NOTHING: AbstractContextManager[None] = nullcontext()


class TracingError(Exception):
    """The tracing configuration cannot work; the message is one line naming the variable."""


class Waiting:
    """What the batcher keeps of a traced request while it queues (see ``ping.otel``)."""


class Tracing:
    """Tracing off: the app's default. Each hook does nothing and costs next to nothing."""

    enabled = False

    def telemetry(self) -> "TelemetryConfig":
        """FastAPI's ``telemetry=`` option. Off means off, whatever providers a wrapper
        such as ``opentelemetry-instrument`` has installed globally."""
        return {
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        }

    def span(self, name: str) -> AbstractContextManager[None]:
        """A child span of the current one, around a step of the request (validation)."""
        return _NOTHING

    def capture(self, rows: int) -> Waiting | None:
        """Called as a request joins the batch queue, in the request's own context."""
        return None

    def model_call(
        self, waiting: Sequence[Waiting | None], rows: int
    ) -> AbstractContextManager[None]:
        """Around one model call, on the predict thread, for the requests it serves."""
        return _NOTHING

    def shutdown(self) -> None:
        """Flush and stop the exporter (at the end of the app's lifespan)."""


def load_tracing(settings: "Settings") -> Tracing:
    """The app's tracing: off unless ``PING_TRACING`` is true and the SDK is not disabled.

    Raises TracingError for a configuration that cannot export (say, the gRPC protocol).
    """
    if not settings.tracing or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Tracing()
    from ping.otel import OtelTracing  # the SDK is imported here, and only here

    return OtelTracing.from_environment()
