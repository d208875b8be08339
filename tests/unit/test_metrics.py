"""/metrics on a real server after real traffic: every family's name, type, unit and labels."""

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample
from tests.conftest import REPO, SEED_ROW
from tests.unit.live_server import Server, start_server, wait_ready

from ping.app import create_app
from ping.metrics import Metrics, rows_buckets
from ping.settings import Settings

pytestmark = pytest.mark.unit

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
BATCH_ROWS = 8  # PING_BATCH_MAX_ROWS and PING_MAX_ROWS of the server under test

# name -> (type, unit, label names), as the OpenMetrics parser reads them (counters without
# `_total`). Every family the server exports must be here: a new one needs a row, and a
# line in README "Operate it".
FAMILIES: dict[str, tuple[str, str, frozenset[str]]] = {
    "ping_requests": ("counter", "", frozenset({"route", "method", "status"})),
    "ping_request_duration_seconds": ("histogram", "seconds", frozenset({"route"})),
    "ping_requests_in_flight": ("gauge", "", frozenset()),
    "ping_model_info": (
        "gauge",
        "",
        frozenset({"name", "version", "sha256", "sklearn_version"}),
    ),
    "ping_model_refused": ("gauge", "", frozenset({"reason"})),
    "ping_model_call_duration_seconds": ("histogram", "seconds", frozenset({"model"})),
    "ping_batch_rows": ("histogram", "rows", frozenset()),
    "ping_batch_queue_wait_seconds": ("histogram", "seconds", frozenset()),
    "ping_predictions": ("counter", "", frozenset({"class_name"})),
    "ping_requests_shed": ("counter", "", frozenset()),
    # prometheus_client's standard collectors.
    "process_virtual_memory_bytes": ("gauge", "", frozenset()),
    "process_resident_memory_bytes": ("gauge", "", frozenset()),
    "process_start_time_seconds": ("gauge", "", frozenset()),
    "process_cpu_seconds": ("counter", "", frozenset()),
    "process_open_fds": ("gauge", "", frozenset()),
    "process_max_fds": ("gauge", "", frozenset()),
    "python_info": (
        "gauge",
        "",
        frozenset({"implementation", "major", "minor", "patchlevel", "version"}),
    ),
    "python_gc_objects_collected": ("counter", "", frozenset({"generation"})),
    "python_gc_objects_uncollectable": ("counter", "", frozenset({"generation"})),
    "python_gc_collections": ("counter", "", frozenset({"generation"})),
}
# Families that only have samples once something happens that this traffic avoids.
EMPTY_WHILE_SERVING = {"ping_model_refused"}


@dataclass(frozen=True)
class Scrape:
    openmetrics: str
    text: str
    in_flight_during_burst: float


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from the classic text format; KeyError when it is absent."""
    for family in parse_text(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise KeyError(f"{name}{labels}")


def samples(text: str) -> list[Sample]:
    return [s for family in parse_text(text) for s in family.samples]


async def _burst(url: str) -> float:
    """Seven single rows queue (the batch needs eight and will wait 60 s for them); the
    scrape sees them in flight; a V2 row completes the batch, so one call serves all eight."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        waiting = [
            asyncio.create_task(client.post("/predict", json={"features": SEED_ROW}))
            for _ in range(BATCH_ROWS - 1)
        ]
        in_flight = 0.0
        deadline = time.monotonic() + 20
        while in_flight < BATCH_ROWS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            in_flight = sample((await client.get("/metrics")).text, "ping_requests_in_flight")
        infer = {
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": SEED_ROW}]
        }
        last = await client.post("/v2/models/iris/infer", json=infer)
        answers = await asyncio.gather(*waiting)
    assert last.status_code == 200, last.text
    assert [a.json() for a in answers] == [{"prediction": 0}] * (BATCH_ROWS - 1)
    return in_flight


@pytest.fixture(scope="module")
def scrape(model_dir: Path) -> Iterator[Scrape]:
    """A real `python -m ping`, one batched burst and a few other requests, then /metrics."""
    server: Server = start_server(
        model_dir,
        PING_BATCH_MAX_ROWS=str(BATCH_ROWS),
        PING_MAX_ROWS=str(BATCH_ROWS),
        PING_BATCH_MAX_WAIT_US="60000000",
    )
    try:
        wait_ready(server)
        in_flight = asyncio.run(_burst(server.url))
        # A full batch on its own goes at once; then an error, a miss and the probes.
        full = httpx.post(f"{server.url}/predict", json={"instances": [SEED_ROW] * BATCH_ROWS})
        assert full.status_code == 200
        assert httpx.post(f"{server.url}/predict", json={"features": [1, 2]}).status_code == 422
        assert httpx.get(f"{server.url}/no/such/path").status_code == 404
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        openmetrics = httpx.get(f"{server.url}/metrics", headers={"Accept": OPENMETRICS})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        text = httpx.get(f"{server.url}/metrics")
        assert text.headers["content-type"].startswith("text/plain")
        yield Scrape(openmetrics.text, text.text, in_flight)
    finally:
        server.process.kill()
        server.process.communicate()


def test_every_family_has_the_expected_name_type_unit_and_labels(scrape: Scrape) -> None:
    found: dict[str, tuple[str, str, frozenset[str]]] = {}
    for family in parse_openmetrics(scrape.openmetrics):
        labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
        found[family.name] = (family.type, family.unit, labels)
    for name in EMPTY_WHILE_SERVING:
        assert found[name][2] == frozenset(), f"{name} has samples while serving"
        found[name] = (found[name][0], found[name][1], FAMILIES[name][2])

    assert found == FAMILIES


def test_the_classic_text_format_has_the_same_families_and_no_created_series(
    scrape: Scrape,
) -> None:
    text_families = {f.name: f.type for f in parse_text(scrape.text)}

    assert text_families == {name: kind for name, (kind, _, _) in FAMILIES.items()}
    for exposition in (scrape.text, scrape.openmetrics):
        assert "_created" not in exposition


def test_routes_are_labelled_by_template_never_by_raw_path(scrape: Scrape) -> None:
    routes = {s.labels["route"] for s in samples(scrape.text) if "route" in s.labels}

    assert routes == {
        "/predict",
        "/v2/models/{name}/infer",
        "/healthz",
        "/readyz",
        "/metrics",
        "unmatched",
    }
    assert (
        sample(scrape.text, "ping_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    assert (
        sample(
            scrape.text,
            "ping_requests_total",
            route="/v2/models/{name}/infer",
            method="POST",
            status="200",
        )
        == 1
    )


def test_a_batched_burst_is_one_model_call_of_all_its_rows(scrape: Scrape) -> None:
    text = scrape.text
    # Two calls: the burst (8 requests of 1 row) and the full 8-row request.
    assert sample(text, "ping_model_call_duration_seconds_count", model="iris") == 2
    assert sample(text, "ping_batch_rows_count") == 2
    assert sample(text, "ping_batch_rows_sum") == 2 * BATCH_ROWS
    assert sample(text, "ping_batch_rows_bucket", le=f"{BATCH_ROWS / 2}") == 0
    assert sample(text, "ping_batch_rows_bucket", le=f"{float(BATCH_ROWS)}") == 2
    assert sample(text, "ping_batch_queue_wait_seconds_count") == BATCH_ROWS + 1
    assert sample(text, "ping_predictions_total", class_name="setosa") == 2 * BATCH_ROWS
    # The model call is timed apart from the request around it.
    call = sample(text, "ping_model_call_duration_seconds_sum", model="iris")
    assert 0 < call < sample(text, "ping_request_duration_seconds_sum", route="/predict")


def test_every_class_is_exported_at_zero_until_predicted(scrape: Scrape) -> None:
    # The traffic predicted setosa only; the other classes are there from the start, so
    # that a rate() or an alert over them works before their first prediction.
    for name in ("versicolor", "virginica"):
        assert sample(scrape.text, "ping_predictions_total", class_name=name) == 0


def test_in_flight_counts_the_queued_requests_and_the_scrape(scrape: Scrape) -> None:
    assert scrape.in_flight_during_burst == BATCH_ROWS  # 7 queued + the scrape itself
    assert sample(scrape.text, "ping_requests_in_flight") == 1  # the scrape alone


def test_rows_buckets_reach_the_largest_model_call_the_settings_allow() -> None:
    def top(settings: Settings) -> float:
        (family,) = [
            f
            for f in Metrics.for_settings(settings).registry.collect()
            if f.name == "ping_batch_rows"
        ]
        return max(
            float(s.labels["le"])
            for s in family.samples
            if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
        )

    assert rows_buckets(2048) == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
    assert rows_buckets(1000)[-2:] == (512, 1000)
    assert rows_buckets(1) == (1,)
    assert top(Settings()) == 2048  # the default PING_BATCH_MAX_ROWS
    # Batching off: one request (up to PING_MAX_ROWS) is still one call.
    assert top(Settings(batch_max_rows=1, max_rows=1000)) == 1000


def test_a_refused_model_is_reported_with_its_reason(model_dir: Path, tmp_path: Path) -> None:
    artifact = Path(shutil.copytree(model_dir, tmp_path / "old"))
    metadata = json.loads((artifact / "metadata.json").read_text())
    (artifact / "metadata.json").write_text(json.dumps({**metadata, "sklearn_version": "0.24.2"}))

    with TestClient(create_app(Settings(model_dir=artifact))) as client:
        assert client.get("/readyz").status_code == 503
        text = client.get("/metrics").text

    assert sample(text, "ping_model_refused", reason="version_mismatch") == 1
    assert "ping_model_info{" not in text


def _heavy_modules_after_create_app(**env: str) -> list[str]:
    code = (
        "import sys, ping.app\n"
        "ping.app.create_app()\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.exporter', 'google.protobuf', 'ping.otel')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return out.stdout.split()


def test_with_tracing_off_the_sdk_and_exporters_are_never_imported() -> None:
    # FastAPI itself imports the OpenTelemetry *API* (for its native telemetry); what costs
    # memory and start-up time is the SDK, the exporters and protobuf.
    assert _heavy_modules_after_create_app() == []
    on = _heavy_modules_after_create_app(PING_TRACING="true", OTEL_TRACES_EXPORTER="none")
    assert "ping.otel" in on
    assert "opentelemetry.sdk.trace" in on
