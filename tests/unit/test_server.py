"""The real thing: ``python -m ping`` under uvicorn on 127.0.0.1, started and stopped by signal."""

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import SEED_ROW
from tests.unit.live_server import Server, start_server, wait_ready

pytestmark = pytest.mark.unit

SEED_BODY = json.dumps({"features": SEED_ROW}).encode()


@pytest.fixture
def server(model_dir: Path) -> Iterator[Server]:
    server = start_server(model_dir, PING_DRAIN_SECONDS="1")
    wait_ready(server)
    yield server
    if server.process.poll() is None:
        server.process.kill()
    server.process.communicate()  # reap it and close its pipes


def test_sigterm_drains_in_flight_request_and_exits_zero(server: Server) -> None:
    assert httpx.post(f"{server.url}/predict", json={"features": SEED_ROW}).json() == {
        "prediction": 0
    }
    # An in-flight request: headers and half the body are sent before SIGTERM.
    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(SEED_BODY) + SEED_BODY[:10]
    )
    time.sleep(0.2)

    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # While draining, readiness is 503 but predictions are still served.
    assert httpx.get(f"{server.url}/readyz").status_code == 503
    assert httpx.post(f"{server.url}/predict", json={"features": SEED_ROW}).status_code == 200
    conn.sendall(SEED_BODY[10:])
    conn.settimeout(10)
    reply = b""
    while chunk := conn.recv(65536):  # a draining server closes the connection after answering
        reply += chunk
    conn.close()

    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b'{"prediction":0}')
    assert server.process.wait(timeout=15) == 0


def _start_and_fail(model_dir: Path, **env: str) -> tuple[int, str]:
    server = start_server(model_dir, **env)
    _, stderr = server.process.communicate(timeout=30)
    return server.process.returncode, stderr


def test_tampered_model_fails_start_with_one_clear_line(model_dir: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "tampered"
    artifact.mkdir()
    (artifact / "metadata.json").write_bytes((model_dir / "metadata.json").read_bytes())
    (artifact / "model.skops").write_bytes((model_dir / "model.skops").read_bytes() + b"x")

    code, stderr = _start_and_fail(artifact)

    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"ping: cannot serve: {artifact}/model.skops: sha256 ")
    assert "does not match" in stderr


def test_missing_artifact_fails_start_with_one_clear_line(tmp_path: Path) -> None:
    code, stderr = _start_and_fail(tmp_path / "nowhere")

    assert code == 2
    assert (
        stderr == f"ping: cannot serve: {tmp_path}/nowhere/metadata.json: not found "
        f"(package a model with `pingctl package MODEL_FILE --output {tmp_path}/nowhere`, "
        "or train the bundled one with `make train`)\n"
    )


def test_invalid_config_fails_start_with_one_clear_line(model_dir: Path) -> None:
    code, stderr = _start_and_fail(model_dir, PING_MAX_ROWS="many")

    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("ping: invalid configuration: PING_MAX_ROWS: ")
