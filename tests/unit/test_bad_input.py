"""Every kind of bad input gets a 4xx problem+json naming the field, and loses nothing."""

import pytest
from fastapi.testclient import TestClient
from tests.conftest import SEED_ROW

pytestmark = pytest.mark.unit

JSON = {"Content-Type": "application/json"}

# (case id, raw body, headers, status, field that the error must name, words in its reason)
CASES = [
    (
        "too few features",
        b'{"features": [5.1, 3.5, 1.4]}',
        JSON,
        422,
        "features",
        "expected 4 features, got 3",
    ),
    (
        "too many features",
        b'{"features": [5.1, 3.5, 1.4, 0.2, 9]}',
        JSON,
        422,
        "features",
        "expected 4 features, got 5",
    ),
    (
        "string feature",
        b'{"features": [5.1, "3.5", 1.4, 0.2]}',
        JSON,
        422,
        "features[1]",
        "valid number",
    ),
    (
        "boolean feature",
        b'{"features": [5.1, true, 1.4, 0.2]}',
        JSON,
        422,
        "features[1]",
        "valid number",
    ),
    (
        "null feature",
        b'{"features": [5.1, 3.5, null, 0.2]}',
        JSON,
        422,
        "features[2]",
        "valid number",
    ),
    (
        "nested list",  # the row's width is checked before its cells
        b'{"features": [[5.1, 3.5, 1.4, 0.2]]}',
        JSON,
        422,
        "features",
        "expected 4 features, got 1",
    ),
    (
        "nested list of the right width",
        b'{"features": [[5.1], 3.5, 1.4, 0.2]}',
        JSON,
        422,
        "features[0]",
        "valid number",
    ),
    ("NaN", b'{"features": [NaN, 3.5, 1.4, 0.2]}', JSON, 422, "features[0]", "finite number"),
    (
        "Infinity",
        b'{"features": [5.1, Infinity, 1.4, 0.2]}',
        JSON,
        422,
        "features[1]",
        "finite number",
    ),
    (
        "-Infinity",
        b'{"features": [5.1, 3.5, -Infinity, 0.2]}',
        JSON,
        422,
        "features[2]",
        "finite number",
    ),
    (
        "overflowing number",
        b'{"features": [5.1, 3.5, 1e999, 0.2]}',
        JSON,
        422,
        "features[2]",
        "finite number",
    ),
    (
        "beyond float32",
        b'{"instances": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, 1e39]]}',
        JSON,
        422,
        "instances[1][3]",
        "out of range: models compute in float32",
    ),
    ("empty features", b'{"features": []}', JSON, 422, "features", "expected 4 features, got 0"),
    ("empty instances", b'{"instances": []}', JSON, 422, "instances", "at least one row"),
    ("missing features", b"{}", JSON, 422, "body", "exactly one of 'features'"),
    (
        "features and instances",
        b'{"features": [5.1, 3.5, 1.4, 0.2], "instances": [[1, 2, 3, 4]]}',
        JSON,
        422,
        "body",
        "exactly one of 'features'",
    ),
    (
        "unknown field",
        b'{"features": [5.1, 3.5, 1.4, 0.2], "model": "x"}',
        JSON,
        422,
        "model",
        "Extra inputs are not permitted",
    ),
    ("features not a row", b'{"features": 5.1}', JSON, 422, "features", "list of values"),
    ("body not an object", b"[5.1, 3.5, 1.4, 0.2]", JSON, 422, "body", "should be an object"),
    (
        "non-boolean option",
        b'{"features": [5.1, 3.5, 1.4, 0.2], "return_probabilities": "yes"}',
        JSON,
        422,
        "return_probabilities",
        "valid boolean",
    ),
    ("malformed JSON", b'{"features": [5.1, 3.5,', JSON, 400, "body", "EOF while parsing"),
    ("empty body", b"", JSON, 400, "body", "EOF while parsing"),
    (
        "wrong content type",
        b'{"features": [5.1, 3.5, 1.4, 0.2]}',
        {"Content-Type": "text/plain"},
        415,
        "Content-Type",
        "text/plain",
    ),
    (
        "no content type",
        b'{"features": [5.1, 3.5, 1.4, 0.2]}',
        {},
        415,
        "Content-Type",
        "no Content-Type",
    ),
    (
        "body over the limit",
        b'{"features": [' + b" " * 2_000_000 + b"5.1, 3.5, 1.4, 0.2]}",
        JSON,
        413,
        "body",
        "byte limit",
    ),
    (
        "too many rows",
        b'{"instances": [' + b",".join([b"[5.1, 3.5, 1.4, 0.2]"] * 1001) + b"]}",
        JSON,
        422,
        "instances",
        "at most 1000 rows",
    ),
    (
        "one bad row in a batch",
        b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 4.8], [6.3, 3.3, 6.0, 2.5]]}',
        JSON,
        422,
        "instances[1]",
        "expected 4 features, got 3",
    ),
    (
        "one bad value in a batch",
        b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 4.8, "x"]]}',
        JSON,
        422,
        "instances[1][3]",
        "valid number",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "field", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request_gets_problem_naming_field_and_service_keeps_serving(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, field: str, reason: str
) -> None:
    response = client.post("/predict", content=body, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["instance"] == "/predict"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["detail"]
    named = {e["field"]: e["reason"] for e in problem["errors"]}
    assert field in named, problem
    assert reason in named[field]
    # Nothing was lost: the next good request is answered correctly.
    assert client.post("/predict", json={"features": SEED_ROW}).json() == {"prediction": 0}


def test_chunked_body_over_the_limit_is_refused_without_content_length(
    client: TestClient,
) -> None:
    def chunks():  # a generator body is sent chunked, with no Content-Length to trust
        yield b'{"features": ['
        for _ in range(200):
            yield b" " * 10_000
        yield b"5.1, 3.5, 1.4, 0.2]}"

    response = client.post("/predict", content=chunks(), headers=JSON)

    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "body"


def test_unknown_route_and_wrong_method_use_the_same_envelope(client: TestClient) -> None:
    missing = client.get("/predictions")
    wrong_method = client.get("/predict")

    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    for response in (missing, wrong_method):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == response.status_code
