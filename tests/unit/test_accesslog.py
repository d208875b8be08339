"""The batched access log loses no line, at shutdown least of all; request ids stay unique."""

import io
import json
import signal

import httpx
import pytest
from tests.conftest import SEED_ROW
from tests.unit.live_server import start_server, wait_ready

from ping.accesslog import AccessLog
from ping.middleware import _RequestIds

pytestmark = pytest.mark.unit

REQUESTS = 300


def test_every_request_is_logged_once_when_the_server_stops_right_after(model_dir: object) -> None:
    server = start_server(model_dir, PING_ACCESS_LOG="true")  # type: ignore[arg-type]
    try:
        wait_ready(server)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(REQUESTS):
                sent = client.post(
                    "/predict", json={"features": SEED_ROW}, headers={"X-Request-ID": f"r-{i}"}
                )
                assert sent.status_code == 200
        # At once: most of the last lines are still buffered when the signal arrives.
        server.process.send_signal(signal.SIGTERM)
        _, stderr = server.process.communicate(timeout=30)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()

    assert server.process.returncode == 0
    lines = [json.loads(x) for x in stderr.splitlines() if '"ping.access"' in x]
    logged = [x["request_id"] for x in lines if x["path"] == "/predict"]
    assert logged == [f"r-{i}" for i in range(REQUESTS)]


def test_close_writes_every_buffered_line_in_order() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream=stream)
    log.start()
    for i in range(5_000):  # logged faster than one flush interval
        log.request("POST", "/predict", 200, 0.5, f"r-{i}")
    log.close()

    logged = [json.loads(x)["request_id"] for x in stream.getvalue().splitlines()]
    assert logged == [f"r-{i}" for i in range(5_000)]


def test_lines_are_json_with_hostile_paths_escaped_and_late_lines_written_at_once() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream=stream)
    log.start()
    log.request("GET", '/a"b\\c\n', 404, 0.25, "id-1")
    log.close()
    log.request("GET", "/late", 200, 1.5, "id-2")  # after close: nothing buffers it any more

    first, late = (json.loads(x) for x in stream.getvalue().splitlines())
    assert first["path"] == '/a"b\\c\n'
    assert (first["status"], first["latency_ms"], first["request_id"]) == (404, 0.25, "id-1")
    assert (late["path"], late["request_id"]) == ("/late", "id-2")


def test_generated_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = _RequestIds()
    made = [ids.next() for _ in range(10_000)]

    assert len(set(made)) == len(made)
    assert all(len(x) == 32 and int(x, 16) >= 0 for x in made)
    assert _RequestIds().next()[:16] != made[0][:16]  # another process, another prefix
