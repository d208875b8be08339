"""Through the routes: the one-pass decoder changes no answer, good or bad, and predicts
exactly what scikit-learn does."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.unit.test_bad_input import CASES
from tests.unit.test_fastdecode import GOOD_INFER, GOOD_PREDICT
from tests.unit.test_v2 import ERRORS, INFER

import ping.api
import ping.v2
from ping import fastdecode
from ping.model import load_model

pytestmark = pytest.mark.unit

JSON = {"Content-Type": "application/json"}
Request = tuple[str, bytes, dict[str, str]]  # path, body, headers

EDGES = [
    b'{"features":[18446744073709551616,-9223372036854775809,1e-400,-0.0]}',
    b'{"instances":[[1,2,3,4]],"instances":[[5,6,7,8],[0.5,1,2,3]],"return_probabilities":true}',
    b'{"features":[1,2,3,4],"features":null}',
    b'{"features":null,"instances":[[1,2,3,4]]}',
    b'\xef\xbb\xbf{"features":[1,2,3,4]}',
    b'{"instances":[{"x0":1,"x1":2,"x2":3,"x3":4}]}',
]
PREDICT_REQUESTS: list[Request] = [("/predict", body, dict(h)) for _, body, h, *_ in CASES] + [
    ("/predict", body, JSON) for body in [*GOOD_PREDICT, *EDGES]
]
INFER_REQUESTS: list[Request] = [(INFER, json.dumps(body).encode(), {}) for _, body, *_ in ERRORS]
INFER_REQUESTS += [(INFER, body, {}) for body in GOOD_INFER] + [
    (INFER, b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64","data":[1,1,1,1.5]}]}', {}),
    (INFER, b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[NaN,1,1,1]}]}', {}),
    (
        INFER,
        b'{"model_name":"other","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32",'
        b'"data":[1,1,1,1]}]}',
        {},
    ),
    (
        INFER,
        b'{"outputs":[{"name":"labels"}],"inputs":[{"name":"x","shape":[1,4],'
        b'"datatype":"FP32","data":[1,1,1,1]}]}',
        {},
    ),
]


def answers(client: TestClient, requests: list[Request]) -> list[tuple[int, str, Any]]:
    """Status, media type and body of each answer, less the request id that varies."""
    found = []
    for path, body, headers in requests:
        response = client.post(path, content=body, headers=headers)
        payload = response.json()
        payload.pop("request_id", None)
        found.append((response.status_code, response.headers["content-type"], payload))
    return found


@pytest.mark.parametrize(
    "requests", [PREDICT_REQUESTS, INFER_REQUESTS], ids=["predict", "v2-infer"]
)
def test_every_answer_is_the_same_with_the_fast_decoder_off(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, requests: list[Request]
) -> None:
    with_fast = answers(client, requests)
    monkeypatch.setattr(ping.api, "predict_rows", lambda *args, **kwargs: None)
    monkeypatch.setattr(ping.v2, "infer_rows", lambda *args, **kwargs: None)
    strict = answers(client, requests)

    assert with_fast == strict
    assert {status for status, *_ in strict} >= {200, 422}


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[bool]:
    """Record, for each call of ``module.name``, whether it took the fast path."""
    taken: list[bool] = []
    decode: Callable[..., Any] = getattr(fastdecode, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result = decode(*args, **kwargs)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(module, name, recorded)
    return taken


# Integers, -0.0, a long mantissa, an integer past 64 bits, a subnormal.
ROWS = [
    [5, 3, 1, 0],
    [-0.0, 3.0000000000000004, 6.123456789012345678901, 2.5],
    [18446744073709551617, 1e-320, 4.4, 1.3],
    [6.3, 3.3, 6.0, 2.5],
]


def test_fast_predictions_are_scikit_learns(
    client: TestClient, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    estimator = load_model(model_dir).estimator
    matrix = np.array(ROWS, dtype=np.float64)
    predict_taken = spy(monkeypatch, ping.api, "predict_rows")
    infer_taken = spy(monkeypatch, ping.v2, "infer_rows")

    batch = client.post("/predict", json={"instances": ROWS, "return_probabilities": True})
    single = client.post("/predict", json={"features": ROWS[1]})
    tensor = {"name": "input-0", "shape": [4, 4], "datatype": "FP64", "data": ROWS}
    v2 = client.post(INFER, content=json.dumps({"id": "a", "inputs": [tensor]}))

    assert predict_taken == [True, True]
    assert infer_taken == [True]
    assert batch.json()["predictions"] == estimator.predict(matrix).tolist()
    probabilities = [list(p.values()) for p in batch.json()["probabilities"]]
    assert probabilities == estimator.predict_proba(matrix).tolist()
    assert single.json()["prediction"] == estimator.predict(matrix[1:2]).tolist()[0]
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
    assert outputs["predict"] == estimator.predict(matrix).tolist()
    assert outputs["predict_proba"] == estimator.predict_proba(matrix).ravel().tolist()
