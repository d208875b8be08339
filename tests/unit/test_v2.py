"""Open Inference Protocol (V2 REST) conformance: routes, shapes, datatypes and errors."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_iris
from tests.conftest import SEED_ROW

from ping.app import create_app
from ping.settings import Settings
from ping.v2 import SHORT_TENSOR, _numbers

pytestmark = pytest.mark.unit

INFER = "/v2/models/iris/infer"
IRIS = load_iris()
ROWS = IRIS.data[[0, 60, 120]]  # one of each class
INTEGER_ROWS = [[5, 3, 1, 0], [6, 3, 5, 2], [7, 3, 6, 2]]
NUMERIC = ["FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]


def infer_body(data: Any, shape: list[int], datatype: str = "FP64", **body: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data}]
    } | body


def predict(client: TestClient, rows: Any) -> dict[str, Any]:
    """What /predict answers for these rows, with probabilities."""
    response = client.post("/predict", json={"instances": rows, "return_probabilities": True})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def outputs(response_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {output["name"]: output for output in response_body["outputs"]}


def assert_problem(response: Any, status: int, names: str) -> dict[str, Any]:
    """A problem+json error with the V2 ``error`` member, whose message names ``names``."""
    assert response.status_code == status, response.text
    # Same envelope; plain JSON media type, which V2 clients require to read `error`.
    assert response.headers["content-type"] == "application/json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["error"] == problem["detail"]
    assert names in problem["detail"]
    return problem


@pytest.fixture
def strict_client(model_dir: Path) -> Iterator[TestClient]:
    """A server with tight limits, to reach the row and body-size checks cheaply."""
    settings = Settings(model_dir=model_dir, max_rows=2, max_body_bytes=512, access_log=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


# -- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        ("/v2/models/iris/ready", {"name": "iris", "ready": True}),
        ("/v2/models/iris/versions/1/ready", {"name": "iris", "ready": True}),
    ],
)
def test_health_routes_answer_200_with_their_v2_body(
    client: TestClient, path: str, expected: dict[str, Any]
) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.json() == expected


def test_server_metadata_names_ping_and_its_version(client: TestClient) -> None:
    import ping

    assert client.get("/v2").json() == {
        "name": "ping",
        "version": ping.__version__,
        "extensions": [],
    }


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/1"])
def test_model_metadata_describes_the_input_and_both_outputs(
    client: TestClient, model_dir: Path, path: str
) -> None:
    artifact = json.loads((model_dir / "metadata.json").read_text())

    assert client.get(path).json() == {
        "name": artifact["name"],
        "versions": [artifact["version"]],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, artifact["n_features"]]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(artifact["classes"])]},
        ],
    }


@pytest.mark.parametrize(
    ("method", "path", "names"),
    [
        ("GET", "/v2/models/nope", "'nope'"),
        ("GET", "/v2/models/nope/ready", "'nope'"),
        ("POST", "/v2/models/nope/infer", "'nope'"),
        ("GET", "/v2/models/iris/versions/2", "version '2'"),
        ("GET", "/v2/models/iris/versions/2/ready", "version '2'"),
        ("POST", "/v2/models/iris/versions/2/infer", "version '2'"),
        ("GET", "/v2/nothing-here", "/v2/nothing-here"),
    ],
)
def test_unknown_model_name_or_version_is_404_naming_it(
    client: TestClient, method: str, path: str, names: str
) -> None:
    response = client.request(method, path, json=infer_body(SEED_ROW, [1, 4]))

    assert_problem(response, 404, names)


def test_health_and_model_routes_are_503_until_the_model_loads(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # not entered: the lifespan has not run

    assert client.get("/v2/health/live").status_code == 200
    for path in ["/v2/health/ready", "/v2/models/iris/ready", "/v2/models/iris"]:
        assert_problem(client.get(path), 503, "not loaded")
    assert_problem(client.post(INFER, json=infer_body(SEED_ROW, [1, 4])), 503, "not loaded")


def test_readiness_is_shared_with_readyz_while_draining(client: TestClient) -> None:
    client.app.state.readiness.draining = True  # type: ignore[attr-defined]

    readyz = client.get("/readyz")
    assert readyz.status_code == 503
    assert "draining" in readyz.json()["detail"]
    assert_problem(client.get("/v2/health/ready"), 503, "draining")
    assert_problem(client.get("/v2/models/iris/ready"), 503, "draining")
    assert client.get("/v2/health/live").status_code == 200


def test_openapi_documents_every_v2_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for suffix in ["", "/ready", "/infer"]:
        assert f"/v2/models/{{name}}{suffix}" in paths
        versioned = paths[f"/v2/models/{{name}}/versions/{{version}}{suffix}"]
        parameters = next(iter(versioned.values()))["parameters"]
        assert {p["name"] for p in parameters} == {"name", "version"}


# -- infer: answers -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [INFER, "/v2/models/iris/versions/1/infer"])
def test_infer_answers_labels_and_probabilities_typed_and_shaped(
    client: TestClient, path: str
) -> None:
    expected = predict(client, ROWS.tolist())

    response = client.post(path, json=infer_body(ROWS.ravel().tolist(), [3, 4]))

    assert response.status_code == 200
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert "id" not in body
    assert [o["name"] for o in body["outputs"]] == ["predict", "predict_proba"]
    labels, probabilities = outputs(body)["predict"], outputs(body)["predict_proba"]
    assert labels == {"name": "predict", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]}
    assert labels["data"] == expected["predictions"] == IRIS.target[[0, 60, 120]].tolist()
    assert (probabilities["shape"], probabilities["datatype"]) == ([3, 3], "FP64")
    matrix = np.array(probabilities["data"]).reshape(3, 3)
    assert matrix.sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert matrix.argmax(axis=1).tolist() == labels["data"]
    assert matrix.tolist() == [list(p.values()) for p in expected["probabilities"]]


@pytest.mark.parametrize("n_rows", [1, 5, 6, 40])
def test_infer_answers_every_bit_of_the_models_outputs(client: TestClient, n_rows: int) -> None:
    """Up to SHORT_TENSOR values an output is written from a list, beyond it from the
    array: 5 rows' 15 probabilities and 6 rows' 18 fall either side."""
    model = client.app.state.model  # type: ignore[attr-defined]
    rows = IRIS.data[np.arange(n_rows) * 3 % len(IRIS.data)]

    response = client.post(INFER, json=infer_body(rows.ravel().tolist(), [n_rows, 4]))

    assert response.status_code == 200
    answer = outputs(response.json())
    estimator = model.estimator
    assert answer["predict"]["data"] == estimator.predict(rows).tolist()
    # json gives back the very float64 that was written (shortest round-trip repr).
    assert answer["predict_proba"]["data"] == estimator.predict_proba(rows).ravel().tolist()
    assert answer["predict_proba"]["shape"] == [n_rows, 3]


finite = st.floats(allow_nan=False, allow_infinity=False)


@hypothesis.settings(max_examples=300, deadline=None)
@given(
    arrays=st.one_of(
        hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=24), elements=finite),
        hnp.arrays(np.float64, st.integers(1, 40)),  # NaN, infinities and -0.0 as well
        hnp.arrays(hnp.integer_dtypes(endianness="="), hnp.array_shapes(max_dims=2, max_side=24)),
    )
)
def test_short_tensors_are_written_as_the_same_bytes_as_arrays(arrays: np.ndarray) -> None:
    numbers = _numbers(arrays)

    assert isinstance(numbers, list) == (arrays.size <= SHORT_TENSOR)
    assert orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(
        arrays, option=orjson.OPT_SERIALIZE_NUMPY
    )


def test_flat_and_nested_data_give_the_same_answer(client: TestClient) -> None:
    flat = client.post(INFER, json=infer_body(ROWS.ravel().tolist(), [3, 4]))
    nested = client.post(INFER, json=infer_body(ROWS.tolist(), [3, 4]))

    assert flat.status_code == nested.status_code == 200
    assert flat.json() == nested.json()


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_numeric_datatype_is_accepted_and_computed_alike(
    client: TestClient, datatype: str
) -> None:
    expected = predict(client, INTEGER_ROWS)["predictions"]

    response = client.post(INFER, json=infer_body(INTEGER_ROWS, [3, 4], datatype))

    assert response.status_code == 200, response.text
    assert outputs(response.json())["predict"]["data"] == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, ["predict", "predict_proba"]),
        ([], ["predict", "predict_proba"]),
        ([{"name": "predict"}], ["predict"]),
        ([{"name": "predict_proba"}], ["predict_proba"]),
        ([{"name": "predict_proba"}, {"name": "predict"}], ["predict_proba", "predict"]),
        ([{"name": "predict", "parameters": {"binary_data": False}}], ["predict"]),
    ],
)
def test_outputs_choose_what_comes_back_in_the_order_asked(
    client: TestClient, requested: list[dict[str, Any]] | None, expected: list[str]
) -> None:
    body = infer_body(SEED_ROW, [1, 4])
    if requested is not None:
        body["outputs"] = requested

    response = client.post(INFER, json=body)

    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == expected


def test_id_and_parameters_are_accepted_and_the_id_echoed(client: TestClient) -> None:
    body = infer_body(SEED_ROW, [1, 4], id="req-7", parameters={"priority": 1, "note": "x"})
    body["inputs"][0]["parameters"] = {"content_type": "np"}

    response = client.post(INFER, json=body)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == "req-7"


def test_infer_goes_through_the_micro_batcher(client: TestClient) -> None:
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    before = registry.get_sample_value("ping_batch_rows_sum") or 0.0

    response = client.post(INFER, json=infer_body(ROWS.tolist(), [3, 4]))

    assert response.status_code == 200
    assert registry.get_sample_value("ping_batch_rows_sum") == before + 3


# -- infer: errors ------------------------------------------------------------------------


def _with(**tensor: Any) -> dict[str, Any]:
    body = infer_body(SEED_ROW, [1, 4])
    body["inputs"][0].update(tensor)
    return body


ERRORS = [
    # (id, body, status, what the message must name)
    ("bytes-datatype", _with(datatype="BYTES", data=["a", "b", "c", "d"]), 422, "datatype"),
    ("bool-datatype", _with(datatype="BOOL", data=[True, False, True, False]), 422, "datatype"),
    ("fp16-datatype", _with(datatype="FP16"), 422, "datatype"),
    ("lowercase-datatype", _with(datatype="fp32"), 422, "datatype"),
    ("fraction-in-int32", _with(datatype="INT32", data=[5, 3, 1.5, 0]), 422, "data[2]"),
    ("300-in-int8", _with(datatype="INT8", data=[[5, 300, 1, 0]]), 422, "data[0][1]"),
    ("negative-in-uint8", _with(datatype="UINT8", data=[5, 3, -1, 0]), 422, "data[2]"),
    ("1e39-in-fp32", _with(datatype="FP32", data=[5, 3, 1e39, 0]), 422, "data[2]: 1e+39 is out"),
    (
        "1e39-in-fp64",
        _with(datatype="FP64", shape=[2, 4], data=[[5, 3, 1, 0], [5, 3, 0, -1e39]]),
        422,
        "data[1][3]: -1e+39 is out of range: models compute in float32",
    ),
    ("bool-in-data", _with(data=[5.1, True, 1.4, 0.2]), 422, "data[1]"),
    ("string-in-data", _with(data=[5.1, "3.5", 1.4, 0.2]), 422, "data[1]"),
    ("null-in-data", _with(data=[5.1, None, 1.4, 0.2]), 422, "data[1]"),
    ("too-few-values", _with(data=[5.1, 3.5, 1.4]), 422, "3 values given"),
    ("too-many-values", _with(shape=[2, 4], data=SEED_ROW * 2 + [1.0]), 422, "9 values given"),
    ("nesting-off-shape", _with(shape=[2, 4], data=[SEED_ROW]), 422, "nested as [1, 4]"),
    ("ragged-rows", _with(shape=[2, 4], data=[SEED_ROW, [1.0, 2.0]]), 422, "different lengths"),
    ("mixed-nesting", _with(data=[SEED_ROW, 1.0]), 422, "data[1]"),
    ("too-deep", _with(data=[[[5.1, 3.5, 1.4, 0.2]]]), 422, "nested as [1, 1]"),
    ("too-deep-cell", _with(data=[[[5.1], 3.5, 1.4, 0.2]]), 422, "data[0][0]"),
    ("missing-data", _with(data=None), 422, "`data`"),
    ("binary-input", _with(data=None, parameters={"binary_data_size": 16}), 422, "binary_data"),
    ("width-3", _with(shape=[1, 3], data=[5.1, 3.5, 1.4]), 422, "expected 4 features, got 3"),
    ("one-dimensional", _with(shape=[4]), 422, "expected [rows, 4], got [4]"),
    ("three-dimensional", _with(shape=[1, 1, 4]), 422, "got [1, 1, 4]"),
    ("zero-rows", _with(shape=[0, 4], data=[]), 422, "at least one row"),
    ("negative-dim", _with(shape=[-1, 4]), 422, "shape[0]"),
    ("two-inputs", {"inputs": [_with()["inputs"][0]] * 2}, 422, "got 2"),
    ("no-inputs", {"inputs": []}, 422, "got 0"),
    ("inputs-missing", {"outputs": [{"name": "predict"}]}, 422, "inputs"),
    ("unknown-output", _with() | {"outputs": [{"name": "labels"}]}, 422, "'labels'"),
    ("output-twice", _with() | {"outputs": [{"name": "predict"}] * 2}, 422, "twice"),
    (
        "classification",
        _with() | {"outputs": [{"name": "predict", "parameters": {"classification": 2}}]},
        422,
        "classification",
    ),
    ("unknown-member", _with() | {"inputz": []}, 422, "inputz"),
    ("other-model-in-body", _with() | {"model_name": "other"}, 422, "'other'"),
    ("numeric-id", _with() | {"id": 7}, 422, "id"),
]


@pytest.mark.parametrize(
    ("body", "status", "names"), [pytest.param(*e[1:], id=e[0]) for e in ERRORS]
)
def test_bad_infer_request_is_a_4xx_naming_the_problem(
    client: TestClient, body: dict[str, Any], status: int, names: str
) -> None:
    response = client.post(INFER, json=body)

    assert_problem(response, status, names)


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[NaN,1,1,1]}]}', "finite"),
        (
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,Infinity,1,1]}]}',
            "finite",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,1,-1e400,1]}]}',
            "finite",
        ),
    ],
)
def test_non_finite_values_are_422(client: TestClient, raw: bytes, names: str) -> None:
    response = client.post(INFER, content=raw, headers={"Content-Type": "application/json"})

    assert_problem(response, 422, names)


@pytest.mark.parametrize(
    ("content", "headers", "status", "names"),
    [
        (b'{"inputs": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "text/plain"),
        (b"{}", {"Inference-Header-Content-Length": "2"}, 415, "binary tensor data"),
    ],
)
def test_body_level_errors_match_predict(
    client: TestClient, content: bytes, headers: dict[str, str], status: int, names: str
) -> None:
    response = client.post(INFER, content=content, headers=headers)

    assert_problem(response, status, names)


def test_row_limit_and_width_messages_are_the_ones_predict_gives(
    strict_client: TestClient,
) -> None:
    rows = [SEED_ROW] * 3

    v2 = assert_problem(strict_client.post(INFER, json=infer_body(rows, [3, 4])), 422, "got 3")
    simple = strict_client.post("/predict", json={"instances": rows}).json()
    narrow_v2 = strict_client.post(INFER, json=infer_body([1.0, 2.0, 3.0], [1, 3])).json()
    narrow = strict_client.post("/predict", json={"features": [1.0, 2.0, 3.0]}).json()

    assert v2["errors"][0]["reason"] == simple["errors"][0]["reason"]
    assert narrow_v2["errors"][0]["reason"] == narrow["errors"][0]["reason"]


def test_oversized_body_is_413(strict_client: TestClient) -> None:
    body = infer_body([SEED_ROW] * 2, [2, 4], id="x" * 600)

    assert_problem(strict_client.post(INFER, json=body), 413, "512-byte limit")
