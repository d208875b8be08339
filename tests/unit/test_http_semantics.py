"""HTTP semantics, error paths and start-up configuration, one table row per case."""

import gzip
import json
import logging
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import SEED_ROW
from tests.unit.live_server import free_port, start_server, wait_ready

from ping.app import create_app
from ping.logs import JsonFormatter
from ping.settings import Settings

pytestmark = pytest.mark.unit

JSON = {"Content-Type": "application/json"}
INFER = "/v2/models/iris/infer"
GZIP = {**JSON, "Content-Encoding": "gzip"}
SEED = json.dumps({"features": SEED_ROW}).encode()


def v2(datatype: str, value: int | float) -> bytes:
    tensor = {"name": "x", "shape": [1, 4], "datatype": datatype, "data": [value, 1, 1, 1]}
    # json.dumps writes Python ints exactly, as a client sending 2**63 would.
    return json.dumps({"inputs": [tensor]}).encode()


# (case, method, path, headers, body, status, a header the answer must carry, or None)
HTTP_CASES = [
    ("HEAD where GET works", "HEAD", "/healthz", {}, b"", 200, ("content-type", "json")),
    ("HEAD on a V2 GET route", "HEAD", "/v2/health/ready", {}, b"", 200, None),
    ("405 names the allowed methods", "PUT", "/healthz", {}, b"", 405, ("allow", "GET, HEAD")),
    ("405 on a POST route", "GET", "/predict", {}, b"", 405, ("allow", "POST")),
    ("no slash redirect from Host", "GET", "/healthz/", {"Host": "evil.example"}, b"", 404, None),
    ("gzip body is 415", "POST", "/predict", GZIP, b"", 415, None),
    ("br on V2 is 415", "POST", INFER, {"Content-Encoding": "br"}, b"", 415, None),
    ("identity ok", "POST", "/predict", {**JSON, "Content-Encoding": "identity"}, SEED, 200, None),
    ("INT64 2**63 is 422", "POST", INFER, JSON, v2("INT64", 2**63), 422, None),
    ("INT64 2**63-1 ok", "POST", INFER, JSON, v2("INT64", 2**63 - 1), 200, None),
    ("INT64 -2**63 ok", "POST", INFER, JSON, v2("INT64", -(2**63)), 200, None),
    ("INT64 -2**63-1 is 422", "POST", INFER, JSON, v2("INT64", -(2**63) - 1), 422, None),
    ("UINT64 2**64 is 422", "POST", INFER, JSON, v2("UINT64", 2**64), 422, None),
    ("UINT64 2**64-1 ok", "POST", INFER, JSON, v2("UINT64", 2**64 - 1), 200, None),
    ("UINT64 2.0**64 is 422", "POST", INFER, JSON, v2("UINT64", 2.0**64), 422, None),
    ("INT8 128 is 422", "POST", INFER, JSON, v2("INT8", 128), 422, None),
    ("UINT8 -1 is 422", "POST", INFER, JSON, v2("UINT8", -1), 422, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "header"),
    [case[1:] for case in HTTP_CASES],
    ids=[case[0] for case in HTTP_CASES],
)
def test_http_semantics(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    header: tuple[str, str] | None,
) -> None:
    response = client.request(method, path, headers=headers, content=body, follow_redirects=False)

    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["x-request-id"]
    if header:
        assert header[1] in response.headers[header[0]]
    if method == "HEAD":
        assert response.content == b""
    if status >= 400:
        assert response.json()["status"] == status


def test_a_real_gzip_body_is_415_naming_the_encoding(client: TestClient) -> None:
    response = client.post(
        "/predict", content=gzip.compress(SEED), headers={**JSON, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 415
    assert response.json()["errors"][0]["field"] == "Content-Encoding"


def test_an_overloaded_queue_answers_503_with_retry_after(model_dir: Path) -> None:
    """Past PING_MAX_QUEUED_ROWS rows waiting, a request is refused at once."""
    app = create_app(Settings(model_dir=model_dir, max_queued_rows=1000))
    with TestClient(app) as client:
        batcher = app.state.batcher
        batcher._queued_rows = 1000  # as if 1,000 rows were waiting for the model
        batcher._queue.append(object())
        try:
            refused = client.post("/predict", json={"features": SEED_ROW})
        finally:
            batcher._queue.clear()
            batcher._queued_rows = 0
        served = client.post("/predict", json={"features": SEED_ROW})
        metrics = client.get("/metrics").text

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "PING_MAX_QUEUED_ROWS" in refused.json()["detail"]
    assert served.status_code == 200
    assert "ping_requests_shed_total 1.0" in metrics


def test_an_unexpected_error_is_a_500_with_a_request_id_and_one_traceback_line(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(model_dir=model_dir))
    with TestClient(app, raise_server_exceptions=False) as client:

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the model fell over")

        app.state.batcher.predict = broken
        with caplog.at_level(logging.INFO):
            response = client.post("/predict", json={"features": SEED_ROW})

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json()["request_id"] == request_id
    errors = [r for r in caplog.records if r.exc_info]
    assert len(errors) == 1
    line = JsonFormatter().format(errors[0])
    assert "\n" not in line
    logged = json.loads(line)
    assert logged["request_id"] == request_id
    assert "RuntimeError: the model fell over" in logged["exception"]


def test_a_client_that_aborts_its_upload_is_499_logged_once_without_traceback(
    model_dir: Path,
) -> None:
    server = start_server(model_dir, PING_ACCESS_LOG="false")
    try:
        wait_ready(server)
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"features": '
            )
        metrics = ""
        for _ in range(50):  # the server notices the close on its next loop turn
            import httpx

            metrics = httpx.get(f"{server.url}/metrics").text
            if 'status="499"' in metrics:
                break
    finally:
        server.process.terminate()
        _, log = server.process.communicate(timeout=30)

    assert 'ping_requests_total{method="POST",route="/predict",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics
    disconnects = [line for line in log.splitlines() if "client disconnected" in line]
    assert len(disconnects) == 1
    assert json.loads(disconnects[0])["level"] == "info"
    assert "Traceback" not in log


# (case, environment, words the one line on stderr must contain)
CONFIG_CASES = [
    ("misspelt", {"PING_MAX_ROW": "5"}, "PING_MAX_ROW; did you mean PING_MAX_ROWS?"),
    ("unknown, nothing close", {"PING_COLOUR": "blue"}, "unknown setting PING_COLOUR; known: "),
    ("infinite drain", {"PING_DRAIN_SECONDS": "inf"}, "PING_DRAIN_SECONDS"),
    ("NaN drain", {"PING_DRAIN_SECONDS": "nan"}, "PING_DRAIN_SECONDS"),
    ("drain past the bound", {"PING_DRAIN_SECONDS": "601"}, "PING_DRAIN_SECONDS"),
    ("infinite header timeout", {"PING_HEADER_TIMEOUT_SECONDS": "inf"}, "HEADER_TIMEOUT"),
    ("zero connections", {"PING_MAX_CONNECTIONS": "0"}, "PING_MAX_CONNECTIONS"),
    ("host that cannot be bound", {"PING_HOST": "192.0.2.1"}, "cannot listen on 192.0.2.1:"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "words"), [case[1:] for case in CONFIG_CASES], ids=[case[0] for case in CONFIG_CASES]
)
def test_bad_configuration_exits_2_with_one_line(
    model_dir: Path, env: dict[str, str], words: str
) -> None:
    server = start_server(model_dir, **env)
    _, stderr = server.process.communicate(timeout=30)

    assert server.process.returncode == 2
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("ping: ")
    assert words in stderr


def test_a_port_already_taken_exits_2_with_one_line(model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server(model_dir, PING_PORT=str(port))
        _, stderr = server.process.communicate(timeout=30)

    assert server.process.returncode == 2
    assert stderr == f"ping: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_docs_off_removes_docs_and_openapi(model_dir: Path) -> None:
    with TestClient(create_app(Settings(model_dir=model_dir, docs=False))) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs/swagger-ui-bundle.js").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_docs_are_served_from_the_package_with_a_strict_csp(client: TestClient) -> None:
    page = client.get("/docs")
    script = client.get("/docs/swagger-ui-bundle.js")

    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "http" not in page.text.replace('rel="', "")  # no CDN, no absolute URL
    assert "<script>" not in page.text  # no inline script: CSP holds
    assert script.status_code == 200
    assert b"SwaggerUIBundle" in script.content
    assert client.get("/docs/start.js").headers["content-security-policy"] == csp
    assert client.get("/docs/../pyproject.toml").status_code == 404
