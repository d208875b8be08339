"""Every kind of estimator, packaged, loaded, self-checked and served: answers must be the
estimator's own ``predict`` / ``predict_proba`` on the same rows, through ``/predict``
(positional and named, one row and a batch) and V2 (one tensor, or one per column).

pytest turns warnings into errors, so a model that warned while predicting (such as
"X does not have valid feature names") would fail here with a 500.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.unit.zoo import ZOO, Specimen

from ping.app import create_app
from ping.check import self_check
from ping.model import load_model
from ping.settings import Settings

pytestmark = pytest.mark.unit

NAMES = list(ZOO)


@pytest.fixture(scope="module")
def clients(zoo: dict[str, Specimen]) -> Iterator[dict[str, TestClient]]:
    opened = {
        name: TestClient(create_app(Settings(model_dir=s.model_dir)), raise_server_exceptions=False)
        for name, s in zoo.items()
    }
    for client in opened.values():
        client.__enter__()
    yield opened
    for client in opened.values():
        client.__exit__(None, None, None)


def expected(specimen: Specimen) -> list[Any]:
    return np.asarray(specimen.estimator.predict(specimen.x)).tolist()


def assert_same(got: list[Any], want: list[Any]) -> None:
    if any(isinstance(v, float | list) for v in want):  # regression values: tight tolerance
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-12)
    else:
        assert got == want


@pytest.mark.parametrize("name", NAMES)
def test_packaged_model_loads_and_passes_its_self_check(
    zoo: dict[str, Specimen], name: str
) -> None:
    specimen = zoo[name]
    model = load_model(specimen.model_dir)

    self_check(model)
    meta = model.metadata
    classifier = hasattr(specimen.estimator, "classes_")
    assert meta.task == ("classification" if classifier else "regression")
    assert meta.input == ("frame" if specimen.frame else "array")
    assert ("predict_proba" in meta.outputs) == hasattr(specimen.estimator, "predict_proba")
    if classifier:
        assert meta.classes == specimen.estimator.classes_.tolist()


def test_metadata_records_column_kinds_and_multi_output_shape(zoo: dict[str, Specimen]) -> None:
    mixed = load_model(zoo["mixed-pipeline"].model_dir).metadata
    ridge = load_model(zoo["multi-output"].model_dir).metadata
    labels = load_model(zoo["string-labels"].model_dir).metadata

    kinds = {c.name: (c.kind, c.nullable) for c in mixed.columns}
    assert kinds == {
        "sex": ("string", False),
        "age": ("number", False),
        "bmi": ("number", False),
        "bp": ("number", True),
    }
    assert ridge.outputs["predict"].model_dump() == {"datatype": "FP64", "shape": [-1, 2]}
    assert labels.outputs["predict"].datatype == "BYTES"
    assert labels.classes == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize("name", NAMES)
def test_predict_answers_what_the_estimator_predicts_positional_and_named(
    zoo: dict[str, Specimen], clients: dict[str, TestClient], name: str
) -> None:
    specimen, client = zoo[name], clients[name]
    names = client.get("/metadata").json()["feature_names"]
    want = expected(specimen)

    batch = client.post("/predict", json={"instances": specimen.positional()})
    named = client.post("/predict", json={"instances": specimen.named(names)})
    singles = [
        client.post("/predict", json={"features": row}).json()["prediction"]
        for row in specimen.named(names)
    ]

    assert batch.status_code == 200, batch.text
    assert_same(batch.json()["predictions"], want)
    assert_same(named.json()["predictions"], want)
    assert_same(singles, want)


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_are_the_estimators_or_a_clear_422(
    zoo: dict[str, Specimen], clients: dict[str, TestClient], name: str
) -> None:
    specimen, client = zoo[name], clients[name]
    body = {"instances": specimen.positional(), "return_probabilities": True}

    response = client.post("/predict", json=body)

    if not hasattr(specimen.estimator, "predict_proba"):
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "return_probabilities"
        return
    want = specimen.estimator.predict_proba(specimen.x)
    got = [list(p.values()) for p in response.json()["probabilities"]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_v2_infer_answers_what_the_estimator_predicts(
    zoo: dict[str, Specimen], clients: dict[str, TestClient], name: str
) -> None:
    specimen, client = zoo[name], clients[name]
    metadata = client.get(f"/v2/models/{name}").json()
    rows = specimen.positional()
    if specimen.frame:  # one tensor per column, BYTES for strings
        inputs = [
            {"name": t["name"], "datatype": t["datatype"], "shape": [len(rows)], "data": column}
            for t, column in zip(metadata["inputs"], zip(*rows, strict=True), strict=True)
        ]
    else:
        inputs = [
            {"name": "x", "datatype": "FP64", "shape": [len(rows), len(rows[0])], "data": rows}
        ]

    response = client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})

    assert response.status_code == 200, response.text
    predict = response.json()["outputs"][0]
    advertised = next(o for o in metadata["outputs"] if o["name"] == "predict")
    assert predict["datatype"] == advertised["datatype"]
    want = np.asarray(expected(specimen))
    assert predict["shape"] == list(want.shape)
    assert_same(np.asarray(predict["data"]).reshape(want.shape).tolist(), want.tolist())


BAD_ROWS: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (body, field named, words in the reason)
    "iris-logreg": ({"instances": [[1, 2, 3, 4], [1, 2, "x", 4]]}, "instances[1][2]", "number"),
    "iris-forest": ({"instances": [[1, 2, 3, 4], {"petal": 1}]}, "instances[1].petal", "unknown"),
    "cancer-boosting": ({"features": [1.0] * 29}, "features", "expected 30 features"),
    "string-labels": ({"features": [1, 2, 3, None]}, "features[3]", "number"),
    "diabetes-boosting": ({"instances": [{"age": 1.0}]}, "instances[0]", "missing feature"),
    "multi-output": ({"instances": [[0.0] * 9 + [1e39]]}, "instances[0][9]", "out of range"),
    "mixed-pipeline": (
        {
            "instances": [
                {"sex": "male", "age": 50, "bmi": 0.1, "bp": None},
                {"sex": 1, "age": 1, "bmi": 0.1, "bp": 0.0},
            ]
        },
        "instances[1].sex",
        "expected a string",
    ),
    "no-probabilities": (
        {"features": [1, 2, 3, 4], "return_class_names": 1},
        "return_class_names",
        "boolean",
    ),
}


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_422_naming_field_and_row(clients: dict[str, TestClient], name: str) -> None:
    body, field, words = BAD_ROWS[name]

    response = client_post(clients[name], body)

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field
    assert words in error["reason"]


def client_post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/predict", json=body)


def test_mixed_pipeline_takes_null_only_where_it_imputes(clients: dict[str, TestClient]) -> None:
    client = clients["mixed-pipeline"]
    row = {"sex": "female", "age": 40, "bmi": 0.02, "bp": None}

    imputed = client.post("/predict", json={"features": row})
    refused = client.post("/predict", json={"features": {**row, "bmi": None}})

    assert imputed.status_code == 200
    assert imputed.json()["prediction"] in ("high", "low")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "features.bmi"


def test_regressor_refuses_class_names_and_probabilities(clients: dict[str, TestClient]) -> None:
    client = clients["diabetes-boosting"]
    row = [0.0] * 10

    names = client.post("/predict", json={"features": row, "return_class_names": True})
    proba = client.post("/predict", json={"features": row, "return_probabilities": True})

    assert names.status_code == proba.status_code == 422
    assert "regressor" in names.json()["detail"]


def test_a_value_the_scaler_pushes_past_float32_is_a_422_naming_the_row(
    clients: dict[str, TestClient],
) -> None:
    client = clients["iris-forest"]
    good = [5.1, 3.5, 1.4, 0.2]

    bad = [5.1, 3.5, 1.4, 3.0e38]
    tensor = {"name": "x", "datatype": "FP64", "shape": [3, 4], "data": [good, good, bad]}

    # Passes the float32 range check; scaled, it no longer fits, and the forest raises.
    with pytest.warns(RuntimeWarning, match="overflow"):
        response = client.post("/predict", json={"instances": [good, bad]})
    with pytest.warns(RuntimeWarning, match="overflow"):
        v2 = client.post("/v2/models/iris-forest/infer", json={"inputs": [tensor]})

    assert response.status_code == v2.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "instances[1]"
    assert "cannot predict" in error["reason"]
    assert v2.json()["errors"][0]["field"] == "inputs[*].data[2]"
    assert client.post("/predict", json={"features": good}).status_code == 200


def test_named_rows_work_for_a_model_fitted_on_a_matrix(clients: dict[str, TestClient]) -> None:
    client = clients["iris-logreg"]
    names = client.get("/metadata").json()["feature_names"]

    named = client.post(
        "/predict", json={"features": dict(zip(names, [5.1, 3.5, 1.4, 0.2], strict=True))}
    )

    assert named.json() == {"prediction": 0}


def test_metadata_serves_the_recorded_sample_and_it_answers_as_recorded(
    clients: dict[str, TestClient], zoo: dict[str, Specimen]
) -> None:
    for name, client in clients.items():
        sample = client.get("/metadata").json()["sample"]
        answer = client.post("/predict", json=sample["request"]).json()
        assert answer.keys() == sample["response"].keys(), name
        assert_same(answer["predictions"], sample["response"]["predictions"])


def test_packaged_files_are_skops_with_a_matching_checksum(zoo: dict[str, Specimen]) -> None:
    import hashlib
    import json

    for specimen in zoo.values():
        metadata = json.loads((specimen.model_dir / "metadata.json").read_text())
        model_file: Path = specimen.model_dir / metadata["model_file"]
        assert metadata["model_format"] == "skops"
        assert metadata["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
