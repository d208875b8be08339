"""The routes' happy paths, health, metadata, metrics and request ids, in process."""

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from tests.conftest import SEED_ROW

from ping.app import create_app
from ping.settings import Settings

pytestmark = pytest.mark.unit


def test_seed_payload_answers_exactly_prediction_zero(client: TestClient) -> None:
    response = client.post("/predict", json={"features": SEED_ROW})

    assert response.status_code == 200
    assert response.content == b'{"prediction":0}'


def test_batch_answers_every_row_in_order(client: TestClient) -> None:
    iris = load_iris()
    rows = iris.data[[0, 60, 120, 1]].tolist()

    response = client.post("/predict", json={"instances": rows})

    assert response.json() == {"predictions": [0, 1, 2, 0]}


def test_class_names_and_probabilities_are_opt_in(client: TestClient) -> None:
    single = client.post(
        "/predict",
        json={"features": SEED_ROW, "return_class_names": True, "return_probabilities": True},
    ).json()
    batch = client.post(
        "/predict",
        json={
            "instances": [SEED_ROW, [6.3, 3.3, 6.0, 2.5]],
            "return_class_names": True,
            "return_probabilities": True,
        },
    ).json()

    assert single["prediction"] == 0
    assert single["class_name"] == "setosa"
    assert set(single["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert max(single["probabilities"], key=single["probabilities"].get) == "setosa"
    assert sum(single["probabilities"].values()) == pytest.approx(1.0)
    assert batch["class_names"] == ["setosa", "virginica"]
    assert [max(p, key=p.get) for p in batch["probabilities"]] == batch["class_names"]


def test_healthz_is_200_and_readyz_is_200_once_loaded(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_before_model_loads(settings: Settings) -> None:
    # Without entering the client, the lifespan has not run: no model yet.
    client = TestClient(create_app(settings))

    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "model is not loaded yet"
    assert client.post("/predict", json={"features": SEED_ROW}).status_code == 503


def test_metadata_returns_what_the_artifact_records(client: TestClient, model_dir: Path) -> None:
    recorded = json.loads((model_dir / "metadata.json").read_text())

    assert client.get("/metadata").json() == recorded


def test_metrics_count_requests_predictions_and_describe_the_model(
    client: TestClient, model_dir: Path
) -> None:
    client.post("/predict", json={"instances": [SEED_ROW, SEED_ROW, [6.3, 3.3, 6.0, 2.5]]})
    client.post("/predict", json={"features": [1, 2]})

    text = client.get("/metrics").text
    sha = json.loads((model_dir / "metadata.json").read_text())["sha256"]

    assert 'ping_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'ping_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    assert 'ping_predictions_total{class_name="setosa"} 2.0' in text
    assert 'ping_predictions_total{class_name="virginica"} 1.0' in text
    assert f'sha256="{sha}"' in text
    assert "ping_model_info{" in text
    assert 'ping_request_duration_seconds_count{route="/predict"} 2.0' in text
    assert "ping_batch_rows_count 1.0" in text


def test_request_id_is_echoed_when_sent_and_generated_otherwise(client: TestClient) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    generated = client.get("/healthz")
    hostile = client.get("/healthz", headers={"X-Request-ID": "x" * 500})

    assert echoed.headers["x-request-id"] == "trace-42"
    assert len(generated.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "x" * 500


def test_access_log_is_one_json_line_per_request(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.post("/predict", json={"features": SEED_ROW}, headers={"X-Request-ID": "abc"})
    client.app.state.access_log.flush()  # type: ignore[attr-defined]

    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if "ping.access" in x]
    [line] = lines
    assert list(line) == [
        "time",
        "level",
        "logger",
        "message",
        "method",
        "path",
        "status",
        "latency_ms",
        "request_id",
    ]
    assert (line["level"], line["logger"], line["message"]) == ("info", "ping.access", "request")
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "POST",
        "/predict",
        200,
        "abc",
    )
    assert line["latency_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_openapi_docs_describe_predict(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {"features", "instances", "return_probabilities"} <= set(body["schema"]["properties"])
