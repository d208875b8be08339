"""Tracing on: OpenTelemetry's SDK behind the hooks of ``ping.tracing``.

Imported only when ``PING_TRACING=true``. One request's trace reads::

    POST /predict                (SERVER span: FastAPI's native OpenTelemetry support,
    ├── ping.validate             which continues an incoming W3C `traceparent`)
    ├── ping.queue_wait          (from joining the batch queue to the model call's start)
    └── ping.model_call          (the micro-batch; a child of its first traced request,
                                  linked to every request it served)

A micro-batch serves many requests with one model call, on the predict thread, so the call
cannot be a child of them all: it links to each request's span (the OpenTelemetry pattern
for batches), and each request's queue-wait span links back to it.

Everything else comes from the standard variables, read by the SDK itself:
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER[_ARG]``,
``OTEL_PROPAGATORS``, ``OTEL_EXPORTER_OTLP[_TRACES]_{ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,
CERTIFICATE}`` and ``OTEL_BSP_*``. ``OTEL_TRACES_EXPORTER`` picks ``otlp`` (the default),
``console`` or ``none``.
"""

import logging
import os
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from time import time_ns
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext

import ping
from ping.tracing import Tracing, TracingError, Waiting

# Probes and scrapes arrive every few seconds from every kubelet and Prometheus: tracing
# them would bury the requests that matter.
UNTRACED_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
EXPORTERS = ("otlp", "console", "none")
# At exit, queued spans get this long to reach the collector. The pod's grace period is
# budgeted for draining requests (see the chart), not for a collector that does not answer
# (the exporter would retry for up to OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default).
SHUTDOWN_SECONDS = 3.0
_NOTHING: AbstractContextManager[None] = nullcontext()
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


@dataclass
class _Waiting(Waiting):
    """A request in the batch queue: its span, when it joined, and its row count."""

    context: SpanContext
    enqueued_ns: int
    rows: int
    waited: bool = False  # its queue-wait span is recorded once, even if its call is retried


class OtelTracing(Tracing):
    """Spans from a TracerProvider owned by this app (never the global one, which FastAPI
    and other libraries would otherwise share)."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("ping", ping.__version__)
        _install_log_correlation()

    @classmethod
    def from_environment(cls, exporter: SpanExporter | None = None) -> "OtelTracing":
        """Configured by ``OTEL_*``; ``exporter`` (tests) replaces them with a synchronous one."""
        provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            # Batched, console included: no export I/O ever runs on the event loop or the
            # predict thread (a blocked stdout would stall both).
            for name in _exporter_names():
                if name == "otlp":
                    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
                elif name == "console":
                    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return cls(provider)

    def telemetry(self) -> TelemetryConfig:
        return {
            "tracer_provider": self.provider,
            "tracing": True,
            # Ping's own Prometheus metrics and JSON logs cover these.
            "metrics": False,
            "logs": False,
            # Spans around dependency resolution and serialisation: noise for Ping's
            # hand-read bodies, and a cost per request.
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _untraced,
        }

    # A request that is not sampled gets no child spans at all: they would not be recorded,
    # and making them costs CPU on every request (most requests, at a 10% sampling ratio).

    def span(self, name: str) -> AbstractContextManager[Any]:
        if not trace.get_current_span().is_recording():
            return _NOTHING
        return self._tracer.start_as_current_span(name, record_exception=False)

    def capture(self, rows: int) -> Waiting | None:
        span = trace.get_current_span()
        if not span.is_recording():
            return None  # not sampled, or not traced at all (an excluded path)
        return _Waiting(span.get_span_context(), time_ns(), rows)

    def model_call(
        self, waiting: Sequence[Waiting | None], rows: int
    ) -> AbstractContextManager[None]:
        traced = [w for w in waiting if isinstance(w, _Waiting)]
        if not traced:
            return _NOTHING
        return self._model_call(traced, rows=rows, requests=len(waiting))

    @contextmanager
    def _model_call(self, traced: list[_Waiting], *, rows: int, requests: int) -> Iterator[None]:
        # Every request here is sampled (capture() skips the others); the first is the parent.
        parent = traced[0]
        links = [Link(w.context, {"ping.request.rows": w.rows}) for w in traced]
        attributes = {"ping.batch.rows": rows, "ping.batch.requests": requests}
        with self._tracer.start_as_current_span(
            "ping.model_call",
            context=trace.set_span_in_context(NonRecordingSpan(parent.context)),
            links=links,
            attributes=attributes,
        ) as call:
            # The wait ends exactly where the call begins.
            started = getattr(call, "start_time", None) or time_ns()
            back = [Link(call.get_span_context())]
            for request in traced:
                if not request.waited:
                    request.waited = True
                    wait = self._tracer.start_span(
                        "ping.queue_wait",
                        context=trace.set_span_in_context(NonRecordingSpan(request.context)),
                        links=back,
                        attributes={"ping.request.rows": request.rows},
                        start_time=request.enqueued_ns,
                    )
                    wait.end(end_time=started)
            yield

    def shutdown(self) -> None:
        # The SDK's shutdown has no deadline of its own; its export threads are daemons, so
        # whatever is still trying when the time is up ends with the process.
        flusher = threading.Thread(
            target=self.provider.shutdown, name="ping-trace-flush", daemon=True
        )
        flusher.start()
        flusher.join(SHUTDOWN_SECONDS)


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def _resource() -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, with `ping` and its version as defaults."""
    detected = Resource.create()
    attributes = dict(detected.attributes)
    if str(attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        del attributes[SERVICE_NAME]  # the SDK's placeholder, not a name anyone chose
    defaults = Resource({SERVICE_NAME: "ping", SERVICE_VERSION: ping.__version__})
    return defaults.merge(Resource(attributes, detected.schema_url))


def _exporter_names() -> list[str]:
    value = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [name.strip().lower() for name in value.split(",") if name.strip()] or ["otlp"]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not available; "
            f"use {', '.join(EXPORTERS)}"
        )
    return names


def _otlp_exporter() -> SpanExporter:
    """OTLP over HTTP/protobuf, the exporter Ping ships (gRPC would add grpcio to the image)."""
    for variable in _PROTOCOL_VARIABLES:
        protocol = os.environ.get(variable, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise TracingError(
                    f"{variable}: {protocol!r} is not supported; Ping exports OTLP as "
                    "http/protobuf (send it to the collector's port 4318)"
                )
            break
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout...: OTEL_EXPORTER_OTLP_*


def _install_log_correlation() -> None:
    """Put the current trace and span ids on every log record, as `trace_id` and `span_id`
    (W3C hex), so the JSON log lines of a request carry its trace. Once per process."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "ping_trace_ids", False):
        return

    def record_with_trace_ids(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return record

    record_with_trace_ids.ping_trace_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_trace_ids)
