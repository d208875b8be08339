"""Fixtures of the gateway tier: real Pings serving two models behind the chart's real HAProxy."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from training.train import train

from . import harness

RELEASE_NS = "ping"  # tests.chart.helm renders release "ping" into namespace "ping"
IRIS_SERVICE = f"ping-pods.{RELEASE_NS}.svc.cluster.local"
FOREST_SERVICE = f"forest-ping-pods.{RELEASE_NS}.svc.cluster.local"
# One `<client> <key>` line each, as in the Secret. Carol has her own key for the rate test.
KEYS = {
    "alice": "alice-0123456789abcdef",
    "carol": "carol-0123456789abcdef",
    "bob": "bob-0123456789abcdef000",
    "ops": "ops-0123456789abcdef00",
}
KEYS_FILE = "api-keys"

# The chart's values for the local stack: this release serves iris (also at the bare paths), a
# route serves the forest of another release. Short timeouts keep the tests quick.
VALUES: dict[str, Any] = {
    "gateway": {
        "enabled": True,
        "auth": {"existingSecret": "ping-api-keys", "reloadSeconds": 1},
        "releaseModel": {"name": "iris", "default": True},
        "routes": [{"name": "forest", "service": {"name": "forest-ping-pods", "port": 9696}}],
        "limits": {
            "maxBodyBytes": 65536,
            "maxHeaderBytes": 4096,
            "clientHeaderTimeout": "2s",
            "clientBodyTimeout": "2s",
        },
        "upstream": {"healthCheckInterval": "500ms", "dnsHoldSeconds": 1},
    }
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this tier, saying how to run it, where haproxy is missing (.ci/run installs it)."""
    try:
        harness.haproxy_binary()
    except FileNotFoundError as missing:
        skip = pytest.mark.skip(reason=str(missing))
        for item in items:
            if item.get_closest_marker("gateway"):
                item.add_marker(skip)


SEED = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
ALICE = {"Authorization": f"Bearer {KEYS['alice']}"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json body in Ping's error shape, with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def keys_text(keys: dict[str, str]) -> str:
    return "# client key\n" + "".join(f"{client} {key}\n" for client, key in keys.items())


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different models, trained by training/: iris logistic regression and a forest."""
    root = tmp_path_factory.mktemp("gateway-models")
    train(root / "iris", estimator="logreg", name="iris")
    train(root / "forest", estimator="forest", name="forest")
    return {"iris": root / "iris", "forest": root / "forest"}


@dataclass
class Stack:
    proxy: harness.Proxy
    dns: harness.StubDNS
    pings: dict[str, harness.Ping]
    root: Path

    @property
    def url(self) -> str:
        return self.proxy.url

    def rotate_keys(self, keys: dict[str, str]) -> None:
        """Replace the keys file atomically, as the kubelet swaps a Secret mount."""
        staged = self.root / "keys" / ".staged"
        staged.write_text(keys_text(keys))
        staged.replace(self.root / "keys" / KEYS_FILE)


GatewayFactory = Callable[[dict[str, Any]], harness.Proxy]


@contextlib.contextmanager
def gateways(
    tmp_path_factory: pytest.TempPathFactory, dns: harness.StubDNS, upstream_port: int
) -> Iterator[GatewayFactory]:
    """A factory of the chart's HAProxy with VALUES plus overrides; stops them all at the end."""
    started: list[harness.Proxy] = []

    def start(overrides: dict[str, Any]) -> harness.Proxy:
        root = tmp_path_factory.mktemp("gateway")
        values = merged(VALUES, overrides)
        files = harness.rendered_gateway_files(values)
        port = harness.free_port()
        tls_port = harness.free_port() if values["gateway"].get("tls", {}).get("enabled") else None
        config = harness.localize(
            files["haproxy.cfg"],
            root,
            dns_port=dns.port,
            http_port=port,
            tls_port=tls_port,
            upstream_port=upstream_port,
            services=harness.service_addresses(files["haproxy.cfg"]),
        )
        path = harness.write_gateway(files, root, config, keys_text(KEYS), KEYS_FILE)
        if tls_port is not None:
            harness.self_signed_certificate(root / "tls")
        check = harness.check_config(path)
        assert check.returncode == 0, check.stdout + check.stderr
        proxy = harness.start_proxy(path, port, root / "haproxy.log", tls_port)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


# One stack for the whole tier: Pings take seconds to start, HAProxy milliseconds. Tests that
# need other values start their own gateway in front of the same Pings.
@pytest.fixture(scope="session")
def upstream_port() -> int:
    return harness.port_free_on(["127.0.0.2", "127.0.0.3"])


@pytest.fixture(scope="session")
def dns() -> Iterator[harness.StubDNS]:
    server = harness.StubDNS()
    yield server
    server.close()


@pytest.fixture(scope="session")
def gateway_factory(
    tmp_path_factory: pytest.TempPathFactory,
    dns: harness.StubDNS,
    upstream_port: int,
    pings: dict[str, harness.Ping],
) -> Iterator[GatewayFactory]:
    """Gateways in front of the session's two Pings (which this fixture starts first)."""
    with gateways(tmp_path_factory, dns, upstream_port) as start:
        yield start


@pytest.fixture(scope="session")
def pings(
    model_dirs: dict[str, Path],
    dns: harness.StubDNS,
    upstream_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, harness.Ping]]:
    """Ping serving iris on 127.0.0.2 and Ping serving the forest on 127.0.0.3, same port."""
    logs = tmp_path_factory.mktemp("ping-logs")
    started = {
        "iris": harness.start_ping(model_dirs["iris"], "127.0.0.2", upstream_port, logs / "iris"),
        "forest": harness.start_ping(
            model_dirs["forest"], "127.0.0.3", upstream_port, logs / "forest"
        ),
    }
    try:
        for ping in started.values():
            harness.wait_ping_ready(ping)
        dns.records[IRIS_SERVICE] = ["127.0.0.2"]
        dns.records[FOREST_SERVICE] = ["127.0.0.3"]
        yield started
    finally:
        for ping in started.values():
            ping.stop()


def wait_routes_up(proxy: harness.Proxy) -> None:
    """HAProxy resolves and health-checks the pods after start: wait until both routes answer."""
    headers = {"X-API-Key": KEYS["ops"]}

    def both_up() -> bool:
        return all(
            httpx.get(f"{proxy.url}/models/{m}/v2/health/ready", headers=headers).status_code == 200
            for m in ("iris", "forest")
        )

    harness.wait_until(both_up, 20, "both routes to have a healthy pod")


@pytest.fixture(scope="session")
def stack(
    gateway_factory: GatewayFactory,
    pings: dict[str, harness.Ping],
    dns: harness.StubDNS,
) -> Stack:
    proxy = gateway_factory({})
    wait_routes_up(proxy)
    return Stack(proxy, dns, pings, proxy.log_path.parent)
