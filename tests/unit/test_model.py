"""Artifact loading: a good artifact loads; a missing, corrupt or tampered one is refused."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from tests.conftest import SEED_ROW

from ping.app import create_app
from ping.artifact import is_trusted, skops_io
from ping.model import ArtifactError, load_model, read_metadata, version_problem
from ping.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def artifact(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained artifact, free to damage."""
    return Path(shutil.copytree(model_dir, tmp_path / "artifact"))


def _edit_metadata(artifact: Path, **changes: object) -> None:
    path = artifact / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_trained_artifact_loads_and_predicts(model_dir: Path) -> None:
    model = load_model(model_dir)

    assert model.metadata.n_features == 4
    assert model.predict(np.array([SEED_ROW])).tolist() == [0]
    assert model.predict_proba(np.array([SEED_ROW])).shape == (1, 3)


def test_missing_directory_names_the_metadata_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"missing/metadata\.json: not found"):
        load_model(tmp_path / "missing")


def test_missing_model_file_is_named(artifact: Path) -> None:
    (artifact / "model.skops").unlink()

    with pytest.raises(ArtifactError, match=r"model\.skops: not found"):
        load_model(artifact)


def test_tampered_model_fails_the_checksum(artifact: Path) -> None:
    with (artifact / "model.skops").open("ab") as f:
        f.write(b"\0")

    with pytest.raises(ArtifactError, match=r"model\.skops: sha256 .* does not match"):
        load_model(artifact)


def test_corrupt_model_with_matching_checksum_is_refused_cleanly(artifact: Path) -> None:
    (artifact / "model.skops").write_bytes(b"not a pickle")
    _edit_metadata(artifact, sha256=hashlib.sha256(b"not a pickle").hexdigest())

    with pytest.raises(ArtifactError, match=r"model\.skops: cannot be loaded"):
        load_model(artifact)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"invalid metadata at document"),
        ('{"format_version": 2, "name": "iris"}', r"invalid metadata at version: Field required"),
        ('{"name": "iris"}', r"written by Ping 0\.1 \(no format_version\); re-package"),
    ],
)
def test_invalid_metadata_is_named(artifact: Path, content: str, message: str) -> None:
    (artifact / "metadata.json").write_text(content)

    with pytest.raises(ArtifactError, match=message):
        read_metadata(artifact)


def test_metadata_disagreeing_with_model_is_refused(artifact: Path) -> None:
    columns = json.loads((artifact / "metadata.json").read_text())["columns"]
    _edit_metadata(artifact, n_features=5, columns=[*columns, {"name": "extra"}])

    with pytest.raises(ArtifactError, match=r"model expects 4 features but metadata\.json says 5"):
        load_model(artifact)


def test_version_problem_only_when_sklearn_versions_differ(model_dir: Path) -> None:
    metadata = read_metadata(model_dir)
    other = metadata.model_copy(update={"sklearn_version": "0.24.2"})

    assert version_problem(metadata) is None
    problem = version_problem(other)
    assert problem is not None
    assert "0.24.2" in problem
    assert sklearn.__version__ in problem


def test_version_mismatch_stays_not_ready_unless_allowed(artifact: Path) -> None:
    _edit_metadata(artifact, sklearn_version="0.24.2")

    with TestClient(create_app(Settings(model_dir=artifact))) as strict:
        ready = strict.get("/readyz")
        assert ready.status_code == 503
        assert "saved by scikit-learn 0.24.2" in ready.json()["detail"]
        assert strict.post("/predict", json={"features": SEED_ROW}).status_code == 503
    lenient = Settings(model_dir=artifact, allow_version_mismatch=True)
    with TestClient(create_app(lenient)) as allowed:
        assert allowed.get("/readyz").status_code == 200
        assert allowed.post("/predict", json={"features": SEED_ROW}).json() == {"prediction": 0}


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.preprocessing._data.StandardScaler", True),
        ("numpy.dtype", True),
        ("numpy.log1p", True),  # a ufunc: computes, touches nothing else
        ("scipy.sparse._csr.csr_matrix", True),
        ("numpy.load", False),  # a function that reads files
        ("builtins.eval", False),
        ("_operator.neg", False),
        ("os.system", False),
        ("sklearn.no_such_module.Thing", False),
    ],
)
def test_only_classes_and_ufuncs_of_sklearn_numpy_scipy_are_trusted(
    name: str, trusted: bool
) -> None:
    assert is_trusted(name) is trusted


def _tampered_forest(tmp_path: Path, change: str) -> Path:
    """A packaged forest whose first tree was edited after fitting, as a crafted file would be."""
    from sklearn.ensemble import RandomForestClassifier

    from ping.package import package

    iris = load_iris()
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    forest.fit(iris.data, iris.target)
    path = tmp_path / "forest"
    package(forest, path, name="forest")  # packaged while still sound
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    if change == "child":
        state["nodes"]["left_child"][0] = 10**6
    elif change == "cycle":
        state["nodes"]["left_child"][0] = 0
    else:
        state["nodes"]["feature"][0] = 99
    tree.__setstate__(state)
    metadata = json.loads((path / "metadata.json").read_text())
    skops_io().dump(forest, path / "model.skops")
    metadata["sha256"] = hashlib.sha256((path / "model.skops").read_bytes()).hexdigest()
    (path / "metadata.json").write_text(json.dumps(metadata))
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("child", "child index out of range"),
        ("cycle", "child index out of range"),
        ("feature", "feature index out of range"),
    ],
)
def test_a_crafted_tree_is_refused_before_it_can_predict(
    tmp_path: Path, change: str, reason: str
) -> None:
    path = _tampered_forest(tmp_path, change)

    with pytest.raises(
        ArtifactError, match=f"model.skops: refused: a DecisionTreeClassifier has a {reason}"
    ):
        load_model(path)


def test_histogram_boosting_needs_its_predictor_trusted_explicitly(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from ping.package import package

    iris = load_iris()
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(iris.data, iris.target)
    name = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    trusting = Settings(model_dir=tmp_path / "hgb", trusted_types=(name,))
    package(model, tmp_path / "hgb", name="hgb", settings=trusting)

    with pytest.raises(
        ArtifactError, match="TreePredictor, which is not trusted; its node indices"
    ):
        load_model(tmp_path / "hgb")
    assert load_model(tmp_path / "hgb", trusted_types=(name,)).predict(iris.data[:2]).tolist() == [
        0,
        0,
    ]
