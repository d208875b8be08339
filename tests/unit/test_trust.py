"""Start-up safety on a real ``python -m ping``: untrusted types, pickles, self-check, warnings.

Each refusal is exit 2 and one line naming the artifact and the problem.
"""

import json
import operator
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.unit.live_server import Server, start_server, wait_ready
from tests.unit.zoo import Specimen

from ping.package import package
from ping.settings import Settings

pytestmark = pytest.mark.unit


def refused(model_dir: Path, **env: str) -> tuple[int, str]:
    server = start_server(model_dir, **env)
    _, stderr = server.process.communicate(timeout=60)
    return server.process.returncode, stderr


@pytest.fixture
def serving() -> Iterator[list[Server]]:
    """Servers started by a test; each is stopped and reaped after it."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.process.terminate()
        server.process.communicate(timeout=30)


def serve(servers: list[Server], model_dir: Path, **env: str) -> Server:
    server = start_server(model_dir, **env)
    servers.append(server)
    wait_ready(server)
    return server


@pytest.fixture(scope="module")
def negating(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline holding a function from outside scikit-learn, numpy and scipy."""
    iris = load_iris()
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500))
    path = tmp_path_factory.mktemp("negating") / "negating"
    # The packager refuses it too, unless the type is trusted where it runs.
    trusting = Settings(model_dir=path, trusted_types=("_operator.neg",))
    package(model.fit(iris.data, iris.target), path, name="negating", settings=trusting)
    return path


def test_untrusted_type_is_refused_with_one_line_and_served_once_trusted(
    negating: Path, serving: list[Server]
) -> None:
    code, stderr = refused(negating)

    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"ping: cannot serve: {negating}/model.skops: contains type ")
    assert "_operator.neg, which is not trusted" in stderr
    assert "PING_TRUSTED_TYPES" in stderr

    server = serve(serving, negating, PING_TRUSTED_TYPES="_operator.neg")
    answer = httpx.post(f"{server.url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
    assert answer.json() == {"prediction": 0}


def test_pickle_is_refused_unless_allowed(
    zoo: dict[str, Specimen], tmp_path: Path, serving: list[Server]
) -> None:
    specimen = zoo["iris-logreg"]
    pickled = tmp_path / "pickled"
    package(specimen.estimator, pickled, name="pickled", model_format="joblib")

    code, stderr = refused(pickled)

    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith(f"ping: cannot serve: {pickled}/model.joblib: is a joblib pickle")
    assert "PING_ALLOW_PICKLE=true" in stderr
    server = serve(serving, pickled, PING_ALLOW_PICKLE="true")
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_self_check_mismatch_exits_2_naming_the_artifact_and_the_difference(
    zoo: dict[str, Specimen], tmp_path: Path
) -> None:
    artifact = Path(shutil.copytree(zoo["string-labels"].model_dir, tmp_path / "drifted"))
    metadata = json.loads((artifact / "metadata.json").read_text())
    recorded = metadata["sample"]["response"]["predictions"][0]
    other = next(c for c in metadata["classes"] if c != recorded)
    metadata["sample"]["response"]["predictions"][0] = other
    (artifact / "metadata.json").write_text(json.dumps(metadata))

    code, stderr = refused(artifact)

    assert code == 2
    assert stderr == (
        f"ping: cannot serve: {artifact}: self-check failed: response.predictions[0] is "
        f"{recorded!r}, recorded {other!r}\n"
    )


def test_real_server_answers_for_a_packaged_regressor_and_a_column_pipeline(
    zoo: dict[str, Specimen], serving: list[Server]
) -> None:
    for name in ("diabetes-boosting", "mixed-pipeline"):
        specimen = zoo[name]
        server = serve(serving, specimen.model_dir)
        names = httpx.get(f"{server.url}/metadata").json()["feature_names"]

        answer = httpx.post(f"{server.url}/predict", json={"instances": specimen.named(names)})

        assert answer.status_code == 200, answer.text
        want = np.asarray(specimen.estimator.predict(specimen.x)).tolist()
        if name == "diabetes-boosting":
            np.testing.assert_allclose(answer.json()["predictions"], want, rtol=1e-9)
        else:
            assert answer.json()["predictions"] == want


def test_warnings_while_predicting_go_to_the_json_log_once_per_kind(
    zoo: dict[str, Specimen], serving: list[Server]
) -> None:
    server = serve(serving, zoo["iris-forest"].model_dir)
    overflowing = {"features": [5.1, 3.5, 1.4, 3.0e38]}  # the scaler overflows float32

    statuses = [httpx.post(f"{server.url}/predict", json=overflowing).status_code for _ in range(3)]
    server.process.terminate()
    _, stderr = server.process.communicate(timeout=30)
    serving.remove(server)

    assert statuses == [422, 422, 422]
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    warned = [line for line in lines if line["logger"] == "py.warnings"]
    assert len(warned) == 1
    assert "RuntimeWarning: overflow encountered" in warned[0]["message"]
