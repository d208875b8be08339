"""Prometheus metrics, one registry per app so that tests and apps never share counters."""

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ping.model import ModelMetadata

# Sub-millisecond buckets: a logreg predict is ~0.2 ms, so default buckets would hide it.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's metrics; labels are low-cardinality (route templates, status, class)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ping_requests",
            "HTTP requests by route template, method and status "
            "(499: the client closed the connection before the answer).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ping_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "ping_predictions",
            "Predicted rows by class name.",
            ["class_name"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "ping_model_info",
            "The loaded model; value 1 while it is served.",
            ["name", "version", "sha256", "sklearn_version"],
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "ping_batch_rows",
            "Rows per model call (micro-batch size).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "ping_batch_queue_wait_seconds",
            "Time a request waited before its model call began.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.shed = Counter(
            "ping_requests_shed",
            "Predictions refused with 503 because the model's queue was full "
            "(PING_MAX_QUEUED_ROWS).",
            registry=self.registry,
        )

    def set_model(self, metadata: ModelMetadata) -> None:
        self.model_info.labels(
            metadata.name, metadata.version, metadata.sha256, metadata.sklearn_version
        ).set(1)

    def count_predictions(self, class_names: Iterable[str]) -> None:
        # One increment per class rather than per row: a 1,000-row batch stays cheap.
        for name, count in Tally(class_names).items():
            self.predictions.labels(name).inc(count)
