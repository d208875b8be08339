"""Prometheus metrics, one registry per app so that tests and apps never share counters.

Names follow Prometheus conventions: base units in the name and in the OpenMetrics
``# UNIT`` line, ``_total`` on counters, and low-cardinality labels only (the route
template, never the raw path). README "Operate it" says what each family means;
tests/unit/test_metrics.py pins every family's name, type, unit and labels.
"""

from collections import Counter as Tally
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

from ping.model import ModelMetadata
from ping.settings import Settings

# A `*_created` series beside every counter and histogram doubles the series count for a
# timestamp no dashboard reads. prometheus_client checks this switch when it renders, for
# every registry in the process; Ping's process owns its registries, so it is set once here,
# before any Metrics exists.
disable_created_metrics()  # type: ignore[no-untyped-call]

# From 0.1 ms: a logreg predict takes ~0.2 ms and a lone request's queue wait less, so
# coarser buckets would hide them; up to 10 s for a client that sends its body slowly.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# The largest possible model call by default: PING_BATCH_MAX_ROWS (one request never
# exceeds PING_MAX_ROWS, which is smaller by default).
DEFAULT_MAX_CALL_ROWS = max(
    Settings.model_fields["batch_max_rows"].default, Settings.model_fields["max_rows"].default
)


def rows_buckets(max_call_rows: int) -> tuple[int, ...]:
    """Powers of two below ``max_call_rows``, then ``max_call_rows`` itself, so the last
    finite bucket is the largest model call the settings allow (1, 2, 4, ..., 1024, 2048)."""
    powers = tuple(2**i for i in range(max_call_rows.bit_length()) if 2**i < max_call_rows)
    return (*powers, max_call_rows)


class Metrics:
    """The service's metrics, plus the standard process, platform and GC collectors."""

    def __init__(self, max_call_rows: int = DEFAULT_MAX_CALL_ROWS) -> None:
        """``max_call_rows``: the most rows one model call can carry, the larger of
        ``PING_BATCH_MAX_ROWS`` and ``PING_MAX_ROWS`` (one request is never split)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._by_class: dict[Any, Any] = {}  # label -> its ping_predictions child (set_model)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

        # HTTP, counted by ObservabilityMiddleware.
        self.requests = Counter(
            "ping_requests",
            "HTTP requests by route template, method and status "
            "(499: the client closed the connection before the answer).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ping_request_duration_seconds",
            "HTTP request latency by route template, from the first byte in to the last out.",
            ["route"],
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ping_requests_in_flight",
            "HTTP requests being served now, the scrape that reads this included.",
            registry=self.registry,
        )

        # The model and its calls, observed by the micro-batcher.
        self.model_info = Gauge(
            "ping_model_info",
            "The loaded model; value 1 while it is served.",
            ["name", "version", "sha256", "sklearn_version"],
            registry=self.registry,
        )
        self.model_refused = Gauge(
            "ping_model_refused",
            "1 while the process refuses to serve its model, by reason; readiness is 503.",
            ["reason"],
            registry=self.registry,
        )
        self.model_call = Histogram(
            "ping_model_call_duration_seconds",
            "Duration of one model call (one micro-batch) on the predict thread, by model.",
            ["model"],
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "ping_batch_rows",
            "Rows per model call (micro-batch size).",
            unit="rows",
            buckets=rows_buckets(max_call_rows),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "ping_batch_queue_wait_seconds",
            "Time a request waited before its model call began.",
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "ping_predictions",
            "Predicted rows by class name (classifiers).",
            ["class_name"],
            registry=self.registry,
        )

        self.shed = Counter(
            "ping_requests_shed",
            "Predictions refused with 503 because the model's queue was full "
            "(PING_MAX_QUEUED_ROWS).",
            registry=self.registry,
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> "Metrics":
        return cls(max_call_rows=max(settings.batch_max_rows, settings.max_rows))

    def set_model(self, metadata: ModelMetadata) -> None:
        self.model_info.labels(
            metadata.name, metadata.version, metadata.sha256, metadata.sklearn_version
        ).set(1)
        classifier = metadata.task == "classification"
        # Each class's child, made once: ``labels()`` costs ~2 µs a call (it checks and
        # stringifies its values, under a lock), a few % of a one-row request. Made here,
        # every class is exported from the start, at 0 until predicted.
        self._by_class = (
            {
                label: self.predictions.labels(name)
                for label, name in zip(metadata.classes, metadata.class_names, strict=True)
            }
            if classifier
            else {}
        )

    def refuse_model(self, reason: str) -> None:
        """Record why the model is not served; ``reason`` is a short fixed token
        (``version_mismatch``), never free text, to keep the label set small."""
        self.model_refused.labels(reason).set(1)

    def count_predictions(self, labels: np.ndarray) -> None:
        """Count predicted classes by name (``set_model`` gives the names); a regressor's
        values are not counted."""
        if not self._by_class:
            return
        if labels.size == 1:  # the common request: no tally to build
            self._by_class[labels.item()].inc()
            return
        # One increment per class rather than per row: a 1,000-row batch stays cheap.
        for label, count in Tally(labels.tolist()).items():
            self._by_class[label].inc(count)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asks for: OpenMetrics (with units) when
        its Accept header names it, as Prometheus's does, else the classic text format."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
