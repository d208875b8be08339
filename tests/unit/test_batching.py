"""The forest fast path, on real trained models: no mocks, no timings."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from training.train import train

from ping.model import ForestPath, Model, load_model

pytestmark = pytest.mark.unit

RNG_SEED = 7


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100-tree random forest artifact, trained by training/."""
    path = tmp_path_factory.mktemp("forest") / "forest"
    train(path, estimator="forest", name="forest")
    return path


@pytest.fixture(scope="module")
def logreg(model_dir: Path) -> Model:
    return load_model(model_dir)


@pytest.fixture(scope="module")
def forest(forest_dir: Path) -> Model:
    return load_model(forest_dir)


def random_rows(n: int, seed: int = RNG_SEED) -> np.ndarray:
    """Rows spread well past the iris ranges, negative values included."""
    return np.random.default_rng(seed).uniform(-5.0, 15.0, size=(n, 4)).round(2)


# --- the fast forest path -------------------------------------------------------------


@pytest.mark.parametrize("sample", ["iris test set", "20,000 random rows"])
def test_forest_fast_path_is_bit_identical_to_sklearn(forest: Model, sample: str) -> None:
    if sample == "iris test set":
        iris = load_iris()
        _, rows, _, _ = train_test_split(
            iris.data, iris.target, test_size=0.25, random_state=42, stratify=iris.target
        )
    else:
        rows = random_rows(20_000)
    assert forest.forest is not None, "the fast path must be in use, or this proves nothing"

    assert np.array_equal(forest.predict(rows), forest.estimator.predict(rows))
    assert np.array_equal(forest.predict_proba(rows), forest.estimator.predict_proba(rows))


def test_extra_trees_take_the_fast_path_with_identical_results() -> None:
    iris = load_iris()
    pipeline = make_pipeline(
        StandardScaler(), ExtraTreesClassifier(n_estimators=20, random_state=0)
    )
    pipeline.fit(iris.data, iris.target)
    fast = ForestPath.of(pipeline)
    rows = random_rows(5_000)

    assert fast is not None
    proba = fast.predict_proba(rows)
    assert proba is not None
    assert np.array_equal(proba, pipeline.predict_proba(rows))


def test_models_without_a_plain_forest_keep_sklearn_predict(logreg: Model) -> None:
    assert logreg.forest is None


def test_forest_leaves_values_past_float32_to_sklearn_checks(forest: Model) -> None:
    rows = np.array([[1e39, 1.0, 1.0, 1.0]])

    with (
        pytest.warns(RuntimeWarning, match="overflow encountered in cast"),
        pytest.raises(ValueError, match="infinity or a value too large"),
    ):
        forest.predict(rows)
