"""Hostile clients against the real server on 127.0.0.1: each is cut off, the rest are served.

Time bounds here are generous (seconds where the limit is a fraction of one), so a busy
machine does not fail them, while a server without the limit fails them outright:
without a deadline the connection stays open until the test's own timeout.
"""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.unit.live_server import Server, start_server, wait_ready
from training.train import train

pytestmark = pytest.mark.unit


@contextmanager
def serving(model_dir: Path, **env: str) -> Iterator[Server]:
    server = start_server(model_dir, **env)
    try:
        wait_ready(server)
        yield server
    finally:
        server.process.kill()
        server.process.communicate()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_until_closed(conn: socket.socket, timeout: float = 10) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    conn.settimeout(timeout)
    reply = b""
    with conn:
        try:
            while chunk := conn.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    return reply, time.monotonic() - started


def head_and_body(reply: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return status_line, headers, body


def rss_kib(server: Server, field: str = "VmRSS") -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1])


def assert_problem(reply: bytes, status: int) -> dict[str, object]:
    status_line, headers, body = head_and_body(reply)
    assert status_line.startswith(f"HTTP/1.1 {status} "), reply[:200]
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem: dict[str, object] = json.loads(body)
    assert problem["status"] == status
    assert problem["request_id"] == headers["x-request-id"]
    return problem


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(model_dir: Path) -> None:
    with serving(model_dir, PING_KEEP_ALIVE_SECONDS="0.5") as server:
        conn = connect(server)
        reply, waited = read_until_closed(conn)

    assert reply == b""
    assert waited < 5


def test_a_slowloris_dripping_headers_gets_408_at_the_header_deadline(model_dir: Path) -> None:
    with serving(model_dir, PING_HEADER_TIMEOUT_SECONDS="1") as server:
        conn = connect(server)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        # One header line every 0.2 s: every byte arrives well within any idle timeout.
        try:
            for i in range(50):
                conn.sendall(b"X-Drip-%d: a\r\n" % i)
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply, _ = read_until_closed(conn)
        waited = time.monotonic() - started
        healthy = httpx.get(f"{server.url}/healthz").status_code

    problem = assert_problem(reply, 408)
    assert "PING_HEADER_TIMEOUT_SECONDS" in str(problem["detail"])
    assert waited < 8  # cut off near 1 s, long before the 10 s drip would end
    assert healthy == 200


def drip_until_closed(conn: socket.socket) -> tuple[bytes, float]:
    """Drip a byte every 0.2 s for up to 10 s, as a slow client does; return what the server
    answered and how long it took to cut the connection."""
    started = time.monotonic()
    try:
        for _ in range(50):
            conn.sendall(b" ")
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply, _ = read_until_closed(conn)
    return reply, time.monotonic() - started


def test_a_body_dripped_too_slowly_gets_408_at_the_body_deadline(model_dir: Path) -> None:
    with serving(model_dir, PING_BODY_TIMEOUT_SECONDS="1") as server:
        conn = connect(server)
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        reply, waited = drip_until_closed(conn)

    problem = assert_problem(reply, 408)
    assert "PING_BODY_TIMEOUT_SECONDS" in str(problem["detail"])
    assert waited < 8


def test_an_unread_body_left_after_an_early_answer_cannot_hold_the_connection(
    model_dir: Path,
) -> None:
    with serving(model_dir, PING_BODY_TIMEOUT_SECONDS="1") as server:
        conn = connect(server)
        # 413 is answered from Content-Length alone; the client then drips the rest.
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n{"
        )
        reply, waited = drip_until_closed(conn)

    assert reply.startswith(b"HTTP/1.1 413 ")
    assert waited < 8


def test_unterminated_headers_are_refused_with_431_and_memory_stays_bounded(
    model_dir: Path,
) -> None:
    with serving(model_dir) as server:
        before = rss_kib(server)
        replies = []
        for _ in range(3):  # three connections each trying to send 50 MB of one header
            conn = connect(server)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                for _ in range(800):
                    conn.sendall(b"a" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            replies.append(read_until_closed(conn)[0])
        grown_mib = (rss_kib(server, "VmHWM") - before) / 1024
        healthy = httpx.get(f"{server.url}/healthz").status_code

    for reply in replies:
        if reply:  # the 431 may be lost to a reset when the client is still sending
            assert_problem(reply, 431)
    assert grown_mib < 32, f"peak RSS grew by {grown_mib:.0f} MiB"
    assert healthy == 200


@pytest.mark.parametrize(
    ("request_head", "status", "setting"),
    [
        (b"GET /healthz HTTP/1.1\r\n" + b"X-H: v\r\n" * 101 + b"\r\n", 431, "PING_MAX_HEADERS"),
        (
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
            431,
            "PING_MAX_HEADER_BYTES",
        ),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "PING_MAX_REQUEST_LINE_BYTES"),
        (b"BREW /coffee HTCPCP/1.0\r\n\r\n", 400, None),
    ],
    ids=["too many headers", "header block too large", "request target too long", "not HTTP"],
)
def test_protocol_level_refusals_are_problem_json_with_a_request_id(
    http_server: Server, request_head: bytes, status: int, setting: str | None
) -> None:
    conn = connect(http_server)
    conn.sendall(request_head)
    reply, _ = read_until_closed(conn)

    problem = assert_problem(reply, status)
    if setting:
        assert setting in str(problem["detail"])
    assert httpx.get(f"{http_server.url}/healthz").status_code == 200


@pytest.fixture(scope="module")
def http_server(model_dir: Path) -> Iterator[Server]:
    """One default server for the tests that do not need their own settings."""
    with serving(model_dir) as server:
        yield server


def test_connections_past_the_cap_get_503_and_the_rest_are_served(model_dir: Path) -> None:
    with serving(model_dir, PING_MAX_CONNECTIONS="4", PING_KEEP_ALIVE_SECONDS="30") as server:
        held = [connect(server) for _ in range(4)]
        time.sleep(0.3)  # let the server accept them all
        refused, _ = read_until_closed(connect(server))
        held.pop().close()
        time.sleep(0.3)
        conn = connect(server)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        served, _ = read_until_closed(conn)
        for conn in held:
            conn.close()

    problem = assert_problem(refused, 503)
    assert "PING_MAX_CONNECTIONS" in str(problem["detail"])
    assert head_and_body(refused)[1]["retry-after"] == "1"
    assert served.startswith(b"HTTP/1.1 200 ")


def test_a_megabyte_of_bad_cells_gets_a_small_422_quickly_while_healthz_answers(
    model_dir: Path,
) -> None:
    bodies = {
        "/predict": {"features": [""] * 349_000},
        "/v2/models/iris/infer": {
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [""] * 349_000}]
        },
        "/predict ": {"instances": [["x" * 250] * 4] * 1000},  # 4,000 bad cells in 1 MB
    }
    with serving(model_dir) as server:
        stop = threading.Event()
        probe_latencies: list[float] = []

        def probe() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    assert client.get("/healthz").status_code == 200
                    probe_latencies.append(time.monotonic() - started)
                    time.sleep(0.01)

        prober = threading.Thread(target=probe)
        prober.start()
        baseline = rss_kib(server, "VmHWM")
        answers = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(3):
                for path, body in bodies.items():
                    content = json.dumps(body, separators=(",", ":")).encode()
                    started = time.monotonic()
                    response = client.post(
                        path.strip(), content=content, headers={"content-type": "application/json"}
                    )
                    answers.append((response, time.monotonic() - started, len(content)))
        grown_mib = (rss_kib(server, "VmHWM") - baseline) / 1024
        stop.set()
        prober.join()

    for response, took, size in answers:
        assert 900_000 < size <= 1_048_576
        assert response.status_code == 422
        assert len(response.content) < 4096
        assert took < 1.0  # was 1.3-5 s
        problem = response.json()
        assert len(problem.get("errors", [])) <= 10
    cells = answers[2][0].json()
    assert len(cells["errors"]) == 10
    assert cells["more_errors"] == 3990
    assert max(probe_latencies) < 1.5  # the liveness probe's timeout is 2 s
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"  # was 380 MiB


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100-tree forest: a model call slow enough for requests to queue behind it."""
    path = tmp_path_factory.mktemp("forest") / "forest"
    train(path, estimator="forest", name="forest")
    return path


def test_an_overloaded_queue_answers_503_with_retry_after_at_once(forest_dir: Path) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]] * 500
    body = json.dumps({"instances": rows}).encode()
    # One request per batch and room for one waiting: a burst must be shed, not queued.
    env = {"PING_MAX_QUEUED_ROWS": "1000", "PING_BATCH_MAX_ROWS": "1000"}
    with serving(forest_dir, **env) as server:

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:
                calls = [
                    c.post("/predict", content=body, headers={"content-type": "application/json"})
                    for _ in range(64)
                ]
                return await asyncio.gather(*calls)

        responses = asyncio.run(burst())
        metrics = httpx.get(f"{server.url}/metrics").text

    shed = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    assert len(shed) + len(served) == len(responses)
    assert shed, "a burst of 64 x 1,000 rows fitted a 1,000-row queue"
    assert served
    for response in shed:
        assert response.headers["retry-after"] == "1"
        assert "PING_MAX_QUEUED_ROWS" in response.json()["detail"]
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert f"ping_requests_shed_total {len(shed)}.0" in metrics
