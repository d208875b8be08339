"""The gateway's edge limits, run for real: sizes, rates, connection caps, timeouts, keep-alive."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from . import harness
from .conftest import ALICE, KEYS, SEED, GatewayFactory, Stack, problem

pytestmark = pytest.mark.gateway


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


def test_over_the_per_key_rate_is_429_with_retry_after(gateway_factory: GatewayFactory) -> None:
    per_key = {"requests": 40, "periodSeconds": 60}
    proxy = gateway_factory({"gateway": {"limits": {"perKey": per_key}}})
    carol = {"X-API-Key": KEYS["carol"]}
    statuses = [
        httpx.get(f"{proxy.url}/v2/health/live", headers=carol).status_code for _ in range(45)
    ]
    assert statuses == [200] * 40 + [429] * 5
    response = httpx.get(f"{proxy.url}/v2/health/live", headers=carol)
    body = problem(response, 429)
    assert response.headers["retry-after"] == "60"
    assert "API key" in body["detail"]
    # Alice's budget is her own.
    assert httpx.get(f"{proxy.url}/v2/health/live", headers=ALICE).status_code == 200


def test_over_the_per_address_rate_is_429(gateway_factory: GatewayFactory) -> None:
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


def test_connections_over_the_per_address_cap_are_closed(gateway_factory: GatewayFactory) -> None:
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


def test_a_client_connection_is_closed_after_its_request_allowance(
    gateway_factory: GatewayFactory,
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
