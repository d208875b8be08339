"""The fast predict paths give every bit scikit-learn gives, or step aside.

Real fitted estimators on scikit-learn's bundled data sets, compared with their own
``predict`` and ``predict_proba`` with ``np.array_equal`` (no tolerance), on the data
set's rows, on rows far outside them, in one batch and one row at a time.
"""

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import (
    ElasticNet,
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from training.train import train

from ping.fastpath import ForestPath, LinearClassifierPath, fast_path, prove
from ping.model import Model, load_model
from ping.package import package

pytestmark = pytest.mark.unit

IRIS = load_iris()
CANCER = load_breast_cancer()
DIABETES = load_diabetes()


def rows_like(data: np.ndarray, n: int, seed: int = 7) -> np.ndarray:
    """Rows spread over three times each feature's range, centred on it."""
    low, high = data.min(axis=0), data.max(axis=0)
    span = high - low
    return np.random.default_rng(seed).uniform(low - span, high + span, size=(n, data.shape[1]))


class Nudged(LogisticRegression):
    """A subclass that overrides predict: its own predict must be used, not a fast path."""

    def predict(self, X: Any) -> Any:
        return super().predict(X)


def _multi_target() -> np.ndarray:
    return np.column_stack([DIABETES.target, DIABETES.data[:, 2] * 100])


CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "iris scaler+logreg (softmax)": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000)
    ).fit(IRIS.data, IRIS.target),
    "cancer logreg, binary (logistic)": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000)
    ).fit(CANCER.data, CANCER.target),
    "string labels, scaler without mean": lambda: make_pipeline(
        StandardScaler(with_mean=False), LogisticRegression(max_iter=1000)
    ).fit(IRIS.data, IRIS.target_names[IRIS.target]),
    "scaler without std, then MinMaxScaler": lambda: make_pipeline(
        StandardScaler(with_std=False), MinMaxScaler(), LogisticRegression(max_iter=1000)
    ).fit(IRIS.data, IRIS.target),
    "LinearSVC": lambda: make_pipeline(StandardScaler(), LinearSVC(random_state=0)).fit(
        IRIS.data, IRIS.target
    ),
    "SGDClassifier, binary": lambda: SGDClassifier(random_state=0).fit(CANCER.data, CANCER.target),
    "Perceptron": lambda: Perceptron(random_state=0).fit(IRIS.data, IRIS.target),
    "random forest": lambda: RandomForestClassifier(n_estimators=30, random_state=0).fit(
        IRIS.data, IRIS.target
    ),
    "scaler+extra trees": lambda: make_pipeline(
        StandardScaler(), ExtraTreesClassifier(n_estimators=20, random_state=0)
    ).fit(IRIS.data, IRIS.target),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "LinearRegression": lambda: LinearRegression().fit(DIABETES.data, DIABETES.target),
    "scaler+Ridge, two targets": lambda: make_pipeline(StandardScaler(), Ridge(alpha=0.5)).fit(
        DIABETES.data, _multi_target()
    ),
    "Lasso": lambda: Lasso(alpha=0.1).fit(DIABETES.data, DIABETES.target),
    "ElasticNet, two targets": lambda: ElasticNet(alpha=0.01).fit(DIABETES.data, _multi_target()),
    "HuberRegressor": lambda: HuberRegressor(max_iter=500).fit(DIABETES.data, DIABETES.target),
}
SLOW: dict[str, Callable[[], Any]] = {  # no fast path: scikit-learn's own predict
    "a subclass overriding predict": lambda: Nudged(max_iter=1000).fit(IRIS.data, IRIS.target),
    "RidgeClassifier (its own predict)": lambda: RidgeClassifier().fit(IRIS.data, IRIS.target),
    "gradient boosting": lambda: GradientBoostingClassifier(n_estimators=5).fit(
        IRIS.data, IRIS.target
    ),
    "a forest regressor": lambda: RandomForestRegressor(n_estimators=5).fit(
        DIABETES.data, DIABETES.target
    ),
    "a forest with n_jobs": lambda: RandomForestClassifier(n_estimators=5, n_jobs=2).fit(
        IRIS.data, IRIS.target
    ),
    "pandas output between steps": lambda: (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        .set_output(transform="pandas")
        .fit(IRIS.data, IRIS.target)
    ),
    "sparsified coefficients": lambda: (
        LogisticRegression(max_iter=1000).fit(IRIS.data, IRIS.target).sparsify()
    ),
    "a pipeline with a step that cannot transform": lambda: Pipeline(
        [("model", LogisticRegression(max_iter=1000)), ("last", LinearRegression())]
    ),
}


def data_for(name: str) -> np.ndarray:
    if "cancer" in name or "binary" in name:
        return np.asarray(CANCER.data)
    return np.asarray(DIABETES.data if name in REGRESSORS else IRIS.data)


def assert_identical(got: np.ndarray | None, want: Any) -> None:
    want = np.asarray(want)
    assert got is not None, "the fast path handed back input it should take"
    assert got.dtype == want.dtype
    assert np.array_equal(got, want), f"differs at {np.argwhere(got != want)[:3].tolist()}"


@pytest.mark.parametrize("name", [*CLASSIFIERS, *REGRESSORS])
def test_fast_path_gives_every_bit_sklearn_gives(name: str) -> None:
    estimator = {**CLASSIFIERS, **REGRESSORS}[name]()
    data = data_for(name)
    fast = fast_path(estimator)
    assert fast is not None, "this estimator must take a fast path, or this proves nothing"

    for rows in (data, rows_like(data, 5_000), data[:1], rows_like(data, 1, seed=3)):
        assert_identical(fast.predict(rows.copy()), estimator.predict(rows))
        if hasattr(estimator, "predict_proba") and fast.predict_proba(rows) is not None:
            assert_identical(fast.predict_proba(rows.copy()), estimator.predict_proba(rows))
            both = fast.predict_with_probabilities(rows.copy())
            assert both is not None
            assert_identical(both[0], estimator.predict(rows))
            assert_identical(both[1], estimator.predict_proba(rows))


def test_logistic_regression_takes_its_probabilities_from_the_fast_path() -> None:
    fast = fast_path(CLASSIFIERS["iris scaler+logreg (softmax)"]())

    assert isinstance(fast, LinearClassifierPath)
    assert fast.predict_proba(IRIS.data) is not None


def test_classifiers_without_predict_proba_leave_it_to_sklearn() -> None:
    fast = fast_path(CLASSIFIERS["LinearSVC"]())

    assert fast is not None
    assert fast.predict_proba(IRIS.data) is None
    assert fast.predict_with_probabilities(IRIS.data) is None


@pytest.mark.parametrize("name", list(SLOW))
def test_estimators_it_does_not_replay_keep_sklearn_predict(name: str) -> None:
    assert fast_path(SLOW[name]()) is None


@pytest.mark.parametrize("name", ["iris scaler+logreg (softmax)", "random forest"])
def test_input_sklearn_refuses_is_handed_back_so_its_error_stays(name: str) -> None:
    estimator = CLASSIFIERS[name]()
    fast = fast_path(estimator)
    assert fast is not None
    too_wide = np.ones((1, 5))
    overflowing = np.array([[1e308, 1e308, 1.0, 1.0]])  # finite, but past float32

    assert fast.predict(too_wide) is None
    with pytest.raises(ValueError, match="features"):
        estimator.predict(too_wide)
    if name == "random forest":
        assert fast.predict(overflowing) is None


def test_non_finite_values_after_the_transformers_are_handed_back() -> None:
    estimator = make_pipeline(FunctionTransformer(np.log), LogisticRegression(max_iter=1000)).fit(
        IRIS.data, IRIS.target
    )
    fast = fast_path(estimator)
    assert fast is not None

    with pytest.warns(RuntimeWarning, match="invalid value encountered in log"):
        assert fast.predict(np.array([[-1.0, 1.0, 1.0, 1.0]])) is None  # log(-1) is NaN
    assert_identical(fast.predict(IRIS.data), estimator.predict(IRIS.data))


def test_prove_names_the_row_where_a_path_differs() -> None:
    estimator = CLASSIFIERS["iris scaler+logreg (softmax)"]()
    fast = fast_path(estimator)
    assert isinstance(fast, LinearClassifierPath)
    off_by_a_bit = dataclasses.replace(fast, intercept=np.nextafter(fast.intercept, np.inf))

    assert prove(fast, estimator, [IRIS.data]) is None
    assert "predict_proba of row" in (prove(off_by_a_bit, estimator, [IRIS.data]) or "")


def test_a_model_whose_path_differs_uses_sklearn_and_says_so(
    model_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ping.model

    def off_by_a_bit(estimator: Any) -> Any:
        fast = fast_path(estimator)
        assert isinstance(fast, LinearClassifierPath)
        return dataclasses.replace(fast, intercept=fast.intercept + 1e-9)

    monkeypatch.setattr(ping.model, "fast_path", off_by_a_bit)
    with caplog.at_level(logging.WARNING, logger="ping"):
        model = load_model(model_dir)

    assert model.fast is None
    assert "scikit-learn's own predict is used: the fast path differs" in caplog.text
    assert np.array_equal(model.predict(IRIS.data), model.estimator.predict(IRIS.data))


@pytest.fixture(scope="module")
def forest_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """The bench's 100-tree forest, trained by training/."""
    path = tmp_path_factory.mktemp("forest") / "forest"
    train(path, estimator="forest", name="forest")
    return load_model(path)


def test_served_models_take_their_fast_paths(model_dir: Path, forest_model: Model) -> None:
    assert isinstance(load_model(model_dir).fast, LinearClassifierPath)
    assert isinstance(forest_model.fast, ForestPath)


@pytest.mark.parametrize("which", ["iris", "forest"])
def test_model_answers_are_sklearns_on_20000_rows(
    which: str, model_dir: Path, forest_model: Model
) -> None:
    model = load_model(model_dir) if which == "iris" else forest_model
    rows = rows_like(np.asarray(IRIS.data), 20_000)
    estimator = model.estimator

    assert np.array_equal(model.predict(rows), estimator.predict(rows))
    assert np.array_equal(model.predict_proba(rows), estimator.predict_proba(rows))
    labels, proba = model.predict_with_probabilities(rows)
    assert np.array_equal(labels, estimator.predict(rows))
    assert np.array_equal(proba, estimator.predict_proba(rows))


def test_a_transformer_that_warns_on_the_proof_rows_still_loads(tmp_path: Path) -> None:
    """The proof's random rows include negatives, where log1p warns (and pytest turns
    warnings into errors): neither packaging nor loading may fail or warn for that."""
    estimator = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=1000)
    ).fit(IRIS.data, IRIS.target)
    package(estimator, tmp_path / "log1p", name="log1p")

    model = load_model(tmp_path / "log1p")

    assert model.fast is not None
    assert np.array_equal(model.predict(IRIS.data), estimator.predict(IRIS.data))
    assert np.array_equal(model.predict_proba(IRIS.data), estimator.predict_proba(IRIS.data))
