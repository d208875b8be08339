"""SIGTERM under keep-alive load loses no request: the rolling-restart contract.

The harness plays the load balancer: it routes new connections to server A until A's
readiness turns 503, then to server B, as endpoints controllers and load balancers do.
Clients are ``http.client`` keep-alive connections, one per thread: a connection is
reused until a response says ``Connection: close``, then the next request opens a new
one to wherever the balancer points.

A request counts as **lost** if it does not come back as a 200 with the right prediction,
for any reason: a reset, a refused or broken connection, or a request written on a
connection the server had already closed while it was idle. ``http.client`` neither
checks a pooled connection for EOF before reuse nor retries, so nothing is hidden by a
client-side retry: this is stricter than httpx or urllib3 would be.
"""

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import SEED_ROW
from tests.unit.live_server import Server, start_server, wait_ready

pytestmark = pytest.mark.unit

CLIENTS = 32
BODY = json.dumps({"features": SEED_ROW}).encode()
HEADERS = {"Content-Type": "application/json"}


@dataclass
class Balancer:
    """Where new connections go: A until its readiness says 503, then B."""

    a: Server
    b: Server
    port: int = 0
    switched: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.port = self.a.port

    def watch(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.switched.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=5)
            try:
                conn.request("GET", "/readyz", headers={"Connection": "close"})
                ready = conn.getresponse().status == 200
            except OSError:
                ready = False
            finally:
                conn.close()
            if not ready:
                self.port = self.b.port
                self.switched.set()
            time.sleep(0.02)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    to_a: int = 0
    to_a_after_switch: int = 0
    lost: list[str] = field(default_factory=list)


def client(balancer: Balancer, tally: Tally, stop: threading.Event) -> None:
    conn: http.client.HTTPConnection | None = None
    port = 0
    used = 0
    while not stop.is_set():
        if conn is None:
            port = balancer.port
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            used = 0
        used += 1
        after_switch = balancer.switched.is_set()
        try:
            conn.request("POST", "/predict", body=BODY, headers=HEADERS)
            response = conn.getresponse()
            answer = response.read()
            ok = response.status == 200 and json.loads(answer) == {"prediction": 0}
            problem = None if ok else f"{response.status} {answer[:100]!r}"
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            target = "A" if port == balancer.a.port else "B"
            problem = f"{type(exc).__name__}: {exc} (to {target}, request {used} on it)"
            conn.close()
            conn = None
        with tally.lock:
            tally.sent += 1
            if port == balancer.a.port:
                tally.to_a += 1
                tally.to_a_after_switch += after_switch
            if problem:
                tally.lost.append(problem)
    if conn is not None:
        conn.close()


@pytest.fixture(scope="module")
def elsewhere(model_dir: Path) -> Iterator[Server]:
    """Server B: where the balancer sends new connections once A is draining."""
    server = start_server(model_dir)
    wait_ready(server)
    yield server
    server.process.kill()
    server.process.communicate()


@pytest.mark.parametrize("run", [1, 2, 3])
def test_sigterm_under_keep_alive_load_loses_no_request_and_exits_zero(
    model_dir: Path, elsewhere: Server, run: int
) -> None:
    draining = start_server(model_dir, PING_DRAIN_SECONDS="2")
    try:
        wait_ready(draining)
        balancer, tally, stop = Balancer(draining, elsewhere), Tally(), threading.Event()
        threads = [threading.Thread(target=balancer.watch, args=(stop,))]
        threads += [
            threading.Thread(target=client, args=(balancer, tally, stop)) for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # every client is mid-stream on a keep-alive connection to A
        draining.process.send_signal(signal.SIGTERM)
        code = draining.process.wait(timeout=20)
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        draining.process.kill()
        _, log = draining.process.communicate()

    # Shown with -s; the figures for a rollout report.
    print(f"run {run}: sent {tally.sent}, to A {tally.to_a}, lost {len(tally.lost)}: {tally.lost}")
    assert code == 0, log[-2000:]
    assert tally.lost == []
    assert balancer.switched.is_set()
    assert tally.to_a > CLIENTS  # A carried real load before and during its drain
    assert tally.sent > tally.to_a  # and B took over


def test_draining_says_connection_close_and_closes_idle_connections_while_listening(
    model_dir: Path,
) -> None:
    server = start_server(model_dir, PING_DRAIN_SECONDS="3")
    try:
        wait_ready(server)
        busy = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        before = b""
        while not before.endswith(b'{"status":"ok"}'):  # head and body may come apart
            before += idle.recv(65536)
        busy.request("GET", "/healthz")
        kept = busy.getresponse()
        kept.read()

        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        busy.request("GET", "/healthz")
        last = busy.getresponse()
        last.read()
        busy.close()
        fresh = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        fresh.request("GET", "/healthz")  # the listener is still open while draining
        served = fresh.getresponse()
        served.read()
        fresh.close()
        idle_closed_after = time.monotonic()
        end_of_idle = idle.recv(65536)  # blocks until the server closes it
        idle_closed_after = time.monotonic() - idle_closed_after
        idle.close()
        code = server.process.wait(timeout=20)
    finally:
        server.process.kill()
        server.process.communicate()

    assert before.startswith(b"HTTP/1.1 200")
    assert b"connection: close" not in before.lower()
    assert not kept.will_close
    assert (last.status, last.getheader("connection")) == (200, "close")
    assert (served.status, served.getheader("connection")) == (200, "close")
    assert end_of_idle == b""
    assert idle_closed_after < 2.5  # closed while draining, before the listener closes
    assert code == 0
