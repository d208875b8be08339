"""V2 requests built byte for byte the way standard clients build them, and /predict parity.

Written from the clients' sources rather than by installing them:
- tritonclient.http: ``_get_inference_request`` + ``InferInput.set_data_from_numpy(
  binary_data=False)`` + ``InferRequestedOutput(name, binary_data=False)``, posted by
  geventhttpclient, which sends User-Agent, Host and Content-Length but no Content-Type.
- KServe's ``InferenceRESTClient.infer``: ``InferRequest.to_rest()`` (which adds
  ``model_name`` and a uuid ``id``) serialised by orjson and posted with
  ``httpx.post(content=...)``: no Content-Type either.
"""

import json
import uuid
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from tests.conftest import SEED_ROW

pytestmark = pytest.mark.unit

IRIS = load_iris()
TRITON_TO_NUMPY = {"INT64": np.int64, "FP64": np.float64, "FP32": np.float32}


def post_without_content_type(client: TestClient, path: str, body: bytes, **headers: str) -> Any:
    request = client.build_request("POST", path, content=body, headers=headers)
    assert "content-type" not in request.headers  # as the clients send it
    return client.send(request)


def as_numpy(result: dict[str, Any], name: str) -> np.ndarray:
    """tritonclient's ``InferResult.as_numpy`` for JSON (non-binary) outputs."""
    output = next(o for o in result["outputs"] if o["name"] == name)
    assert "binary_data_size" not in output.get("parameters", {})
    return np.array(output["data"], dtype=TRITON_TO_NUMPY[output["datatype"]]).reshape(
        output["shape"]
    )


def triton_request(rows: np.ndarray, outputs: list[str] | None, request_id: str = "") -> bytes:
    """tritonclient.http's request body for one FP32 input with binary_data=False."""
    tensor = rows.astype(np.float32)
    infer_request: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    if request_id != "":
        infer_request["id"] = request_id
    infer_request["inputs"] = [
        {
            "name": "input-0",
            "shape": list(tensor.shape),
            "datatype": "FP32",
            "data": [value.item() for value in tensor.flatten()],
        }
    ]
    if outputs:
        infer_request["outputs"] = [
            {"name": name, "parameters": {"binary_data": False}} for name in outputs
        ]
    else:
        parameters["binary_data_output"] = True
    if parameters:
        infer_request["parameters"] = parameters
    return json.dumps(infer_request, separators=(",", ":")).encode()  # rapidjson.dumps


@pytest.mark.parametrize("outputs", [["predict", "predict_proba"], None])
def test_tritonclient_request_gets_a_correct_answer(
    client: TestClient, outputs: list[str] | None
) -> None:
    rows = IRIS.data[[0, 60, 120, 149]]
    expected = client.post("/predict", json={"instances": rows.astype(np.float32).tolist()}).json()
    body = triton_request(rows, outputs, request_id="42")

    response = post_without_content_type(
        client,
        "/v2/models/iris/versions/1/infer",
        body,
        **{"User-Agent": "python/gevent-http-client-2.3.1"},
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == "42"
    labels = as_numpy(result, "predict")
    assert labels.shape == (4,)
    assert labels.tolist() == expected["predictions"] == IRIS.target[[0, 60, 120, 149]].tolist()
    probabilities = as_numpy(result, "predict_proba")
    assert probabilities.shape == (4, 3)
    assert probabilities.argmax(axis=1).tolist() == labels.tolist()


def test_tritonclient_health_and_metadata_calls_succeed(client: TestClient) -> None:
    # is_server_live / is_server_ready / is_model_ready only look at the status code.
    for path in ["v2/health/live", "v2/health/ready", "v2/models/iris/ready"]:
        assert client.get("/" + path).status_code == 200
    metadata = client.get("/v2/models/iris").json()
    assert metadata["inputs"][0]["shape"] == [-1, 4]


def test_kserve_client_request_gets_a_correct_answer(client: TestClient) -> None:
    rows = np.array([SEED_ROW, IRIS.data[100].tolist()], dtype=np.float32)
    request_id = str(uuid.uuid4())
    rest = {
        "id": request_id,
        "model_name": "iris",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [value.item() for value in rows.flatten()],
            }
        ],
        "outputs": [{"name": "predict"}],
    }

    response = post_without_content_type(client, "/v2/models/iris/infer", orjson.dumps(rest))

    assert response.status_code == 200, response.text
    # InferResponse.from_bytes reads model_name, id and outputs from the JSON.
    result = orjson.loads(response.content)
    assert (result["model_name"], result["id"]) == ("iris", request_id)
    assert as_numpy(result, "predict").tolist() == [0, IRIS.target[100]]


def test_iris_seed_vector_is_class_0_through_predict_and_v2(client: TestClient) -> None:
    simple = client.post("/predict", json={"features": SEED_ROW})
    v2 = client.post(
        "/v2/models/iris/infer",
        json={
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SEED_ROW}],
            "outputs": [{"name": "predict"}],
        },
    )

    assert simple.json()["prediction"] == 0
    assert v2.json()["outputs"][0]["data"] == [0]


def test_predict_and_v2_agree_on_every_iris_row(client: TestClient) -> None:
    rows = IRIS.data.tolist()
    simple = client.post("/predict", json={"instances": rows, "return_probabilities": True}).json()

    v2 = client.post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "shape": [150, 4], "datatype": "FP64", "data": rows}]},
    ).json()

    assert as_numpy(v2, "predict").tolist() == simple["predictions"]
    assert as_numpy(v2, "predict_proba").tolist() == [
        list(p.values()) for p in simple["probabilities"]
    ]
