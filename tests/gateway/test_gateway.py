"""The chart's gateway, run for real: HAProxy from the rendered ConfigMap in front of two Pings."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import httpx
import pytest

from . import harness
from .conftest import KEYS, GatewayFactory, Stack

pytestmark = pytest.mark.gateway

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


def test_a_request_without_a_key_is_401_in_pings_error_shape(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/predict", json=SEED)
    body = problem(response, 401)
    assert body["instance"] == "/predict"
    assert "API key" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer alice-0123456789abcdeX"},
        {"X-API-Key": "nope"},
        {"Authorization": f"Basic {KEYS['alice']}"},
    ],
    ids=["wrong-bearer", "wrong-x-api-key", "not-bearer"],
)
def test_a_wrong_key_is_401(stack: Stack, headers: dict[str, str]) -> None:
    problem(httpx.post(f"{stack.url}/predict", json=SEED, headers=headers), 401)


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEYS['alice']}"}, {"X-API-Key": KEYS["alice"]}],
    ids=["bearer", "x-api-key"],
)
def test_a_known_key_is_let_through_either_way(stack: Stack, headers: dict[str, str]) -> None:
    response = httpx.post(f"{stack.url}/predict", json=SEED, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0]}


def test_health_endpoints_need_no_key(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").status_code == 200
    assert httpx.get(f"{stack.url}/readyz").status_code == 200


def test_each_route_reaches_its_own_model_with_the_prefix_stripped(stack: Stack) -> None:
    for name in ("iris", "forest"):
        # The model sees /v2/models/<name>: it answers only to its own name.
        response = httpx.get(f"{stack.url}/models/{name}/v2/models/{name}", headers=ALICE)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name
        predicted = httpx.post(f"{stack.url}/models/{name}/predict", json=SEED, headers=ALICE)
        assert predicted.json() == {"predictions": [0]}
    # The bare paths go to the default route, iris.
    assert httpx.get(f"{stack.url}/v2/models/iris", headers=ALICE).status_code == 200
    assert httpx.get(f"{stack.url}/v2/models/forest", headers=ALICE).status_code == 404


def test_an_unknown_route_is_404_naming_the_known_ones(stack: Stack) -> None:
    body = problem(httpx.post(f"{stack.url}/models/churn/predict", json=SEED, headers=ALICE), 404)
    assert body["instance"] == "/models/churn/predict"
    assert "iris" in body["detail"]
    assert "forest" in body["detail"]


@pytest.mark.parametrize(
    "path", ["/metrics", "/docs", "/openapi.json", "/models/iris/metrics", "/models/forest/docs"]
)
def test_metrics_and_docs_are_not_published(stack: Stack, path: str) -> None:
    response = httpx.get(f"{stack.url}{path}", headers=ALICE)
    problem(response, 404)
    assert "ping_" not in response.text  # no Prometheus exposition leaked through


def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    body = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2]," * 4000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert len(body) > 65536
    response = httpx.post(
        f"{stack.url}/predict",
        content=body,
        headers={**ALICE, "Content-Type": "application/json"},
    )
    assert "65536-byte" in problem(response, 413)["detail"]


def test_a_chunked_body_is_411(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/predict",
        content=iter([json.dumps(SEED).encode()]),  # an iterator: httpx sends it chunked
        headers={**ALICE, "Content-Type": "application/json"},
    )
    problem(response, 411)


def test_headers_over_the_size_limit_are_431(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/predict", json=SEED, headers={**ALICE, "X-Padding": "x" * 5000}
    )
    problem(response, 431)


def test_too_many_headers_are_400(stack: Stack) -> None:
    many = {f"X-Extra-{i}": "1" for i in range(120)}
    response = httpx.post(f"{stack.url}/predict", json=SEED, headers={**ALICE, **many})
    # Refused by HAProxy's HTTP parser, before any rule runs: on 2.6 this body is HAProxy's own.
    assert response.status_code == 400


def test_over_the_per_key_rate_is_429_with_retry_after(stack: Stack) -> None:
    carol = {"X-API-Key": KEYS["carol"]}
    statuses = [
        httpx.get(f"{stack.url}/v2/health/live", headers=carol).status_code for _ in range(45)
    ]
    assert statuses[:40] == [200] * 40
    response = httpx.get(f"{stack.url}/v2/health/live", headers=carol)
    body = problem(response, 429)
    assert response.headers["retry-after"] == "60"
    assert "API key" in body["detail"]
    # Alice's budget is her own.
    assert httpx.get(f"{stack.url}/v2/health/live", headers=ALICE).status_code == 200


def test_over_the_per_address_rate_is_429(gateway_factory: GatewayFactory, stack: Stack) -> None:
    proxy = gateway_factory({"gateway": {"limits": {"perIP": {"requests": 5}}}})
    statuses = [httpx.get(f"{proxy.url}/predict").status_code for _ in range(8)]
    # Counted before authentication, so a key-guessing client is slowed down too; health checks
    # (the start-up /healthz probe here, the kubelet's in a pod) are not counted.
    assert statuses == [401] * 5 + [429] * 3
    response = httpx.get(f"{proxy.url}/predict")
    problem(response, 429)
    assert response.headers["retry-after"] == "10"


def _closed_without_an_answer(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_refused_requests_do_not_prolong_a_refusal(gateway_factory: GatewayFactory) -> None:
    per_key = {"requests": 3, "periodSeconds": 1}
    proxy = gateway_factory({"gateway": {"limits": {"perKey": per_key}}})
    carol = {"X-API-Key": KEYS["carol"]}

    def status() -> int:
        return httpx.get(f"{proxy.url}/v2/health/live", headers=carol).status_code

    assert [status() for _ in range(4)] == [200, 200, 200, 429]
    hammering = []
    hammer_until = time.monotonic() + 1.5
    while time.monotonic() < hammer_until:
        hammering.append(status())
    # The sliding window lets a few through as it moves (3 per second at most)...
    assert hammering.count(429) > hammering.count(200)
    assert hammering.count(200) <= 6
    # ...but the refusals themselves are not counted, so one quiet window later all is well.
    time.sleep(1.1)
    assert status() == 200


def test_connections_over_the_per_address_cap_are_closed(
    gateway_factory: GatewayFactory, stack: Stack
) -> None:
    proxy = gateway_factory({"gateway": {"limits": {"perIP": {"connections": 2}}}})
    held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(2)]
    try:
        for sock in held:  # both are served
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        assert _closed_without_an_answer(proxy.port)
    finally:
        for sock in held:
            sock.close()
    harness.wait_until(
        lambda: httpx.get(f"{proxy.url}/healthz").status_code == 200, 5, "capacity to come back"
    )


def _cut_within(sock: socket.socket, trickle: bytes, limit: float) -> float:
    """Send one byte per 0.5 s; the seconds until the gateway answers or closes the socket."""
    start = time.monotonic()
    sock.settimeout(0.5)
    for byte in trickle * 100:
        try:
            sock.sendall(bytes([byte]))
            data = sock.recv(4096)
        except TimeoutError:
            data = None
        except (BrokenPipeError, ConnectionResetError):
            data = b""
        if data is not None:
            if data:
                assert b" 408 " in data.split(b"\r\n")[0] or data.startswith(b"HTTP/1.1 4")
            return time.monotonic() - start
        assert time.monotonic() - start < limit, "the slow client was never cut off"
    raise AssertionError("the trickle ran out before the gateway reacted")


def test_a_slowloris_sending_headers_is_cut_off(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.proxy.port)) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        elapsed = _cut_within(sock, b"X-Slow: aaaaaaaaaa\r\n", limit=15)
    assert elapsed >= 1.0  # it was the 2 s header timeout, not an instant refusal


def test_a_slowloris_sending_a_body_is_cut_off(stack: Stack) -> None:
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEYS['alice']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.proxy.port)) as sock:
        sock.sendall(head.encode())
        elapsed = _cut_within(sock, b'{"instances": [[1,2,3,4]]}', limit=15)
    assert elapsed >= 1.0


def _log_records(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        start = line.find("{")
        if start >= 0:
            try:
                records.append(json.loads(line[start:]))
            except json.JSONDecodeError:
                continue
    return records


def test_a_generated_request_id_is_in_the_gateways_and_pings_logs(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/models/forest/predict", json=SEED, headers=ALICE)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert uuid.UUID(request_id)  # generated by the gateway

    def logged() -> bool:
        proxy_ids = {r.get("request_id") for r in _log_records(stack.proxy.log_lines())}
        ping_ids = {r.get("request_id") for r in _log_records(stack.pings["forest"].log_lines())}
        return request_id in proxy_ids and request_id in ping_ids

    harness.wait_until(logged, 10, f"request id {request_id} in both logs")
    (record,) = [
        r for r in _log_records(stack.proxy.log_lines()) if r.get("request_id") == request_id
    ]
    assert record["client"] == "alice"
    assert record["route"] == "forest"
    assert record["status"] == 200


def test_a_clients_request_id_is_passed_through(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url}/v2/health/live", headers={**ALICE, "X-Request-ID": "client-id-42"}
    )
    assert response.headers["x-request-id"] == "client-id-42"
    # A malformed one is replaced, as Ping itself would.
    replaced = httpx.get(
        f"{stack.url}/v2/health/live", headers={**ALICE, "X-Request-ID": "bad id\t!"}
    )
    assert uuid.UUID(replaced.headers["x-request-id"])


def test_keys_never_reach_a_log_or_the_model(stack: Stack) -> None:
    httpx.post(f"{stack.url}/predict", json=SEED, headers=ALICE)
    httpx.post(f"{stack.url}/predict", json=SEED, headers={"X-API-Key": "guess-0123456789abcdef"})
    time.sleep(0.5)
    logs = "\n".join(stack.proxy.log_lines() + stack.pings["iris"].log_lines())
    for key in (*KEYS.values(), "guess-0123456789abcdef"):
        assert key not in logs


def test_a_rotated_key_takes_effect_without_a_restart(stack: Stack) -> None:
    pid = stack.proxy.process.pid
    new_key = "alice-rotated-0123456789"
    stack.rotate_keys({**KEYS, "alice": new_key})
    try:
        harness.wait_until(
            lambda: (
                httpx.get(f"{stack.url}/v2/health/live", headers={"X-API-Key": new_key}).status_code
                == 200
            ),
            10,
            "the rotated key to be accepted",
        )
        old = httpx.get(f"{stack.url}/v2/health/live", headers={"X-API-Key": KEYS["alice"]})
        assert old.status_code == 401
        assert stack.proxy.process.pid == pid
        assert stack.proxy.process.poll() is None
    finally:
        stack.rotate_keys(KEYS)
        harness.wait_until(
            lambda: httpx.get(f"{stack.url}/v2/health/live", headers=ALICE).status_code == 200,
            10,
            "the original keys to be back",
        )


def test_a_client_connection_is_closed_after_its_request_allowance(
    gateway_factory: GatewayFactory, stack: Stack
) -> None:
    proxy = gateway_factory({"gateway": {"limits": {"keepAliveRequests": 3}}})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        answers = []
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answers.append(sock.recv(4096).lower())
        assert all(a.startswith(b"http/1.1 200") for a in answers)
        assert b"connection: close" not in answers[1]
        assert b"connection: close" in answers[2]
        assert sock.recv(1024) == b""  # the gateway closed it
