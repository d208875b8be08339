"""A model pod going away under keep-alive load through the gateway loses no request.

Two Pings serve the same model behind one route, as two pods behind a headless Service. One is
stopped with SIGTERM, as Kubernetes does in a rolling restart, while clients keep sending on
keep-alive connections. The DNS keeps answering with the stopped pod's address throughout
(the worst case: a stale record), so only the gateway's health checks and retries keep it whole.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from . import harness
from .conftest import (
    FOREST_SERVICE,
    IRIS_SERVICE,
    KEYS,
    SEED,
    GatewayFactory,
    gateways,
    wait_routes_up,
)

pytestmark = pytest.mark.gateway

CLIENTS = 4
MAX_REQUESTS = 4000  # bounded in count...
MAX_SECONDS = 30.0  # ...and in time


# Its own Pings, DNS and gateways: the session's stack keeps serving the other tests.
@pytest.fixture(scope="module")
def failover_dns() -> Iterator[harness.StubDNS]:
    server = harness.StubDNS()
    yield server
    server.close()


@pytest.fixture(scope="module")
def failover_port() -> int:
    return harness.port_free_on(["127.0.0.4", "127.0.0.5", "127.0.0.6"])


@pytest.fixture(scope="module")
def failover_gateways(
    tmp_path_factory: pytest.TempPathFactory, failover_dns: harness.StubDNS, failover_port: int
) -> Iterator[GatewayFactory]:
    with gateways(tmp_path_factory, failover_dns, failover_port) as start:
        yield start


@pytest.fixture(params=["1", "0"], ids=["pod-drains-first", "pod-vanishes-at-once"])
def two_iris_pings(
    request: pytest.FixtureRequest,
    model_dirs: dict[str, Path],
    failover_dns: harness.StubDNS,
    failover_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[harness.Ping]]:
    logs = tmp_path_factory.mktemp("failover-logs")
    # Draining (readiness 503 while still serving) is the chart's way; a pod that stops listening
    # at once is the race the gateway's retries exist for.
    drain = {"PING_DRAIN_SECONDS": request.param, "PING_SHUTDOWN_GRACE_SECONDS": "5"}
    pings = [
        harness.start_ping(model_dirs["iris"], host, failover_port, logs / host, **drain)
        for host in ("127.0.0.4", "127.0.0.5")
    ]
    # The forest route is served too, so that wait_routes_up can see the gateway whole.
    pings.append(
        harness.start_ping(model_dirs["forest"], "127.0.0.6", failover_port, logs / "forest")
    )
    try:
        for ping in pings:
            harness.wait_ping_ready(ping)
        failover_dns.records[IRIS_SERVICE] = ["127.0.0.4", "127.0.0.5"]
        failover_dns.records[FOREST_SERVICE] = ["127.0.0.6"]
        yield pings[:2]
    finally:
        for ping in pings:
            ping.stop()


def _servers(proxy: harness.Proxy) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in proxy.log_lines():
        if line.startswith("{") and '"route":"iris"' in line:
            counts[json.loads(line)["server"]] += 1
    return counts


def test_stopping_one_of_two_model_pods_under_keep_alive_load_fails_no_request(
    failover_gateways: GatewayFactory, two_iris_pings: list[harness.Ping]
) -> None:
    unlimited = {"requests": 1_000_000, "periodSeconds": 10}
    proxy = failover_gateways({"gateway": {"limits": {"perKey": unlimited, "perIP": unlimited}}})
    wait_routes_up(proxy)
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + MAX_SECONDS

    def client() -> None:
        headers = {"X-API-Key": KEYS["alice"]}
        with httpx.Client(base_url=proxy.url, headers=headers, timeout=10) as http:
            while not stop.is_set() and time.monotonic() < deadline:
                with lock:
                    if sum(outcomes.values()) >= MAX_REQUESTS:
                        return
                try:
                    response = http.post("/predict", json=SEED)
                    ok = response.status_code == 200 and response.json() == {"predictions": [0]}
                    outcome = "ok" if ok else f"http {response.status_code}"
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        # Both pods take traffic before one goes away.
        harness.wait_until(lambda: len(_servers(proxy)) == 2, 15, "both pods to serve")
        # and enough load went through first that the total below is never short of its bound
        # because a pod happened to stop early (seen once on a busy machine: 264 < 300).
        harness.wait_until(lambda: sum(outcomes.values()) >= 100, 15, "load before the stop")
        leaving = two_iris_pings[1]
        leaving.process.terminate()
        assert leaving.process.wait(timeout=20) == 0
        # Keep the load on past the pod's exit, while its address still resolves.
        served_before = sum(outcomes.values())
        harness.wait_until(
            lambda: sum(outcomes.values()) >= served_before + 200, 15, "load after the exit"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    failures = {k: v for k, v in outcomes.items() if k != "ok"}
    retried = sum('"retries":"+' in line for line in proxy.log_lines())
    assert not failures, (
        f"{sum(failures.values())} of {sum(outcomes.values())} failed: {failures} "
        f"({retried} requests retried)"
    )
    assert outcomes["ok"] >= 300
    servers = _servers(proxy)
    assert len(servers) == 2, servers
