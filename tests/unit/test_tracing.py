"""Tracing on a real uvicorn server, with the SDK's in-memory span exporter."""

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.conftest import SEED_ROW
from tests.unit.live_server import start_server, wait_ready

from ping.app import create_app
from ping.otel import OtelTracing
from ping.settings import Settings
from ping.tracing import Tracing, TracingError, load_tracing

pytestmark = pytest.mark.unit

BURST = 5
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@dataclass
class TracedServer:
    url: str
    spans: InMemorySpanExporter

    def finished(self, requests: int) -> list[ReadableSpan]:
        """The finished spans, once ``requests`` server spans have ended. The server span
        ends just after the response's last byte is sent, so the client can be faster."""
        deadline = time.monotonic() + 10
        while True:
            spans = list(self.spans.get_finished_spans())
            servers = [s for s in spans if s.kind == SpanKind.SERVER]
            if len(servers) >= requests or time.monotonic() > deadline:
                assert len(servers) == requests, [s.name for s in servers]
                return spans
            time.sleep(0.01)


@pytest.fixture
def traced(model_dir: Path) -> Iterator[TracedServer]:
    """Uvicorn on 127.0.0.1 in a thread, serving an app whose spans go to memory.

    The batch needs BURST rows and would wait a minute for them, so a burst of BURST
    single-row requests is exactly one model call, and a lone request needs BURST rows.
    """
    exporter = InMemorySpanExporter()
    settings = Settings(model_dir=model_dir, batch_max_rows=BURST, batch_max_wait_us=60_000_000)
    app = create_app(settings, tracing=OtelTracing.from_environment(exporter))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield TracedServer(f"http://127.0.0.1:{sock.getsockname()[1]}", exporter)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    assert parent.context is not None
    found = [s for s in spans if s.parent and s.parent.span_id == parent.context.span_id]
    return {s.name: s for s in found}


async def _burst(url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(
            *(client.post("/predict", json={"features": SEED_ROW}) for _ in range(BURST))
        )


def test_a_batched_burst_is_one_model_call_span_linked_to_every_request(
    traced: TracedServer,
) -> None:
    answers = asyncio.run(_burst(traced.url))
    assert [a.json() for a in answers] == [{"prediction": 0}] * BURST
    spans = traced.finished(BURST)

    requests = by_name(spans, "POST /predict")
    (call,) = by_name(spans, "ping.model_call")
    assert len(requests) == BURST
    assert all(r.kind == SpanKind.SERVER for r in requests)
    assert all(r.attributes and r.attributes["http.route"] == "/predict" for r in requests)
    # The call links to each request's span, and says how many rows each brought.
    linked = {link.context.span_id for link in call.links}
    assert linked == {r.context.span_id for r in requests if r.context}
    assert all(link.attributes == {"ping.request.rows": 1} for link in call.links)
    assert call.attributes == {"ping.batch.rows": BURST, "ping.batch.requests": BURST}
    # It is the child of one of them, so that request's trace holds the call.
    assert call.parent is not None
    assert call.parent.span_id in linked
    assert call.context is not None
    for request in requests:
        steps = children(spans, request)
        assert {"ping.validate", "ping.queue_wait"} <= steps.keys()
        wait = steps["ping.queue_wait"]
        # The queue wait ends where the model call starts, and links to it.
        assert [link.context.span_id for link in wait.links] == [call.context.span_id]
        assert wait.end_time == call.start_time
        assert steps["ping.validate"].end_time <= wait.start_time  # type: ignore[operator]
        assert request.start_time <= wait.start_time  # type: ignore[operator]
        assert call.end_time <= request.end_time  # type: ignore[operator]


def test_an_incoming_traceparent_is_continued_down_to_the_model_call(
    traced: TracedServer,
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = httpx.post(
        f"{traced.url}/predict",
        json={"instances": [SEED_ROW] * BURST},
        headers={"traceparent": traceparent},
    )
    assert response.status_code == 200
    spans = traced.finished(1)

    (request,) = by_name(spans, "POST /predict")
    assert request.context is not None
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert request.parent is not None
    assert format(request.parent.span_id, "016x") == PARENT_ID
    assert request.parent.is_remote
    steps = children(spans, request)
    assert steps.keys() == {"ping.validate", "ping.queue_wait", "ping.model_call"}
    assert all(s.context and format(s.context.trace_id, "032x") == TRACE_ID for s in spans)
    assert steps["ping.model_call"].attributes == {
        "ping.batch.rows": BURST,
        "ping.batch.requests": 1,
    }


def test_a_refused_request_has_a_failed_validate_span_and_no_model_call(
    traced: TracedServer,
) -> None:
    response = httpx.post(f"{traced.url}/predict", json={"features": [1, 2]})
    assert response.status_code == 422
    spans = traced.finished(1)

    (request,) = by_name(spans, "POST /predict")
    (validate,) = by_name(spans, "ping.validate")
    assert validate.status.status_code.name == "ERROR"
    assert "expected 4 features, got 2" in (validate.status.description or "")
    assert request.attributes
    assert request.attributes["http.response.status_code"] == 422
    assert by_name(spans, "ping.model_call") == []


def test_v2_infer_is_traced_like_predict(traced: TracedServer) -> None:
    infer = {
        "inputs": [
            {"name": "input-0", "shape": [BURST, 4], "datatype": "FP64", "data": SEED_ROW * BURST}
        ]
    }
    assert httpx.post(f"{traced.url}/v2/models/iris/infer", json=infer).status_code == 200
    spans = traced.finished(1)

    (request,) = by_name(spans, "POST /v2/models/{name}/infer")
    assert children(spans, request).keys() == {
        "ping.validate",
        "ping.queue_wait",
        "ping.model_call",
    }


def test_probes_and_scrapes_are_not_traced(traced: TracedServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/v2/health/ready"):
        assert httpx.get(f"{traced.url}{path}").status_code == 200
    # A traced request after them: once its span is in, theirs would be too.
    assert httpx.get(f"{traced.url}/metadata").status_code == 200

    assert [s.name for s in traced.finished(1)] == ["GET /metadata"]


def test_log_lines_carry_the_request_trace_and_span_ids(
    traced: TracedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ping.access"):
        response = httpx.post(
            f"{traced.url}/predict",
            json={"instances": [SEED_ROW] * BURST},
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        )
        (request,) = by_name(traced.finished(1), "POST /predict")
        deadline = time.monotonic() + 10  # the line is written just after the response is sent
        while time.monotonic() < deadline:
            lines = [r for r in caplog.records if r.name == "ping.access"]
            if lines:
                break
            time.sleep(0.01)
    assert response.status_code == 200
    (line,) = lines

    assert request.context is not None
    assert line.trace_id == TRACE_ID  # type: ignore[attr-defined]
    assert line.span_id == format(request.context.span_id, "016x")  # type: ignore[attr-defined]


def test_tracing_is_off_unless_asked_for_and_the_sdk_kill_switch_wins(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert type(load_tracing(Settings(model_dir=model_dir))) is Tracing
    assert type(load_tracing(Settings(model_dir=model_dir, tracing=True))) is OtelTracing
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert type(load_tracing(Settings(model_dir=model_dir, tracing=True))) is Tracing


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "'grpc' is not supported"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "zipkin is not available"),
    ],
)
def test_an_unusable_tracing_setup_is_refused(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(TracingError, match=complaint):
        load_tracing(Settings(model_dir=model_dir, tracing=True))


def test_an_unusable_tracing_setup_stops_start_up_with_one_line(model_dir: Path) -> None:
    server = start_server(model_dir, PING_TRACING="true", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    _, stderr = server.process.communicate(timeout=30)

    assert server.process.returncode == 2
    assert stderr == (
        "ping: cannot trace: OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' is not supported; Ping exports "
        "OTLP as http/protobuf (send it to the collector's port 4318)\n"
    )


async def _mixed_burst(url: str) -> list[httpx.Response]:
    """BURST single rows, the first two from callers that sampled their trace out."""
    unsampled = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/predict", json={"features": SEED_ROW}, headers=unsampled if i < 2 else {}
                )
                for i in range(BURST)
            )
        )


def test_unsampled_requests_get_no_spans_and_no_link_from_the_model_call(
    traced: TracedServer,
) -> None:
    answers = asyncio.run(_mixed_burst(traced.url))
    assert [a.status_code for a in answers] == [200] * BURST
    spans = traced.finished(BURST - 2)

    requests = by_name(spans, "POST /predict")
    (call,) = by_name(spans, "ping.model_call")
    assert len(requests) == BURST - 2
    assert all(s.context and format(s.context.trace_id, "032x") != TRACE_ID for s in spans)
    assert {link.context.span_id for link in call.links} == {
        r.context.span_id for r in requests if r.context
    }
    # The call still says how many requests and rows it served, sampled or not.
    assert call.attributes == {"ping.batch.rows": BURST, "ping.batch.requests": BURST}
    assert len(by_name(spans, "ping.validate")) == len(by_name(spans, "ping.queue_wait")) == 3


def test_a_collector_that_does_not_answer_delays_shutdown_by_at_most_a_few_seconds(
    model_dir: Path,
) -> None:
    # Nothing listens on port 9, and the exporter would retry for 60 s.
    server = start_server(
        model_dir,
        PING_TRACING="true",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_EXPORTER_OTLP_TIMEOUT="60",
    )
    try:
        wait_ready(server)
        response = httpx.post(f"{server.url}/predict", json={"features": SEED_ROW})
        assert response.json() == {"prediction": 0}  # a dead collector costs no prediction
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
        assert time.monotonic() - started < 20  # SHUTDOWN_SECONDS (3) plus start-up slack
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.communicate()
