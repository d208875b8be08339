"""A zoo of real, small, seeded models on scikit-learn's bundled data sets, packaged once.

Each entry keeps the fitted estimator and the rows it is asked about, so tests compare
what Ping answers with the estimator's own ``predict`` and ``predict_proba``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from training.train import build_pipeline

from ping.package import package

N_ROWS = 5


@dataclass(frozen=True)
class Specimen:
    """A fitted estimator, its artifact directory, and rows to ask it about."""

    name: str
    estimator: Any
    model_dir: Path
    x: Any  # the rows asked about: an array, or a DataFrame for a frame-fitted model

    @property
    def frame(self) -> bool:
        return isinstance(self.x, pd.DataFrame)

    def positional(self) -> list[list[Any]]:
        if self.frame:
            return [[_json(v) for v in row] for row in self.x.itertuples(index=False)]
        return np.asarray(self.x).tolist()

    def named(self, names: list[str]) -> list[dict[str, Any]]:
        return [dict(zip(names, row, strict=True)) for row in self.positional()]


def _json(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and np.isnan(value) else value


def _iris(recipe: str) -> tuple[Any, Any, Any]:
    iris = load_iris()
    return build_pipeline(recipe, 42).fit(iris.data, iris.target), iris.data[::30][:N_ROWS], iris


def mixed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """Diabetes with a string column, an integer column and a column with gaps to impute."""
    data = load_diabetes(as_frame=True)
    frame = data.frame.copy()
    frame["sex"] = np.where(frame["sex"] > 0, "male", "female")
    frame["age"] = (frame["age"] * 100 + 50).round().astype("int64")
    frame.loc[frame.index % 7 == 0, "bp"] = np.nan
    x = frame[["sex", "age", "bmi", "bp"]]
    y = np.where(data.target > data.target.median(), "high", "low")
    return x, y


def _zoo() -> dict[str, Callable[[], tuple[Any, Any]]]:
    def iris_logreg() -> tuple[Any, Any]:
        model, rows, _ = _iris("logreg")
        return model, rows

    def iris_forest() -> tuple[Any, Any]:
        model, rows, _ = _iris("forest")
        return model, rows

    def cancer_boosting() -> tuple[Any, Any]:
        data = load_breast_cancer()
        model = GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0)
        return model.fit(data.data, data.target), data.data[::97][:N_ROWS]

    def string_labels() -> tuple[Any, Any]:
        iris = load_iris()
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        return model.fit(iris.data, iris.target_names[iris.target]), iris.data[::31][:N_ROWS]

    def diabetes_boosting() -> tuple[Any, Any]:
        data = load_diabetes(as_frame=True)
        model = GradientBoostingRegressor(n_estimators=30, max_depth=2, random_state=0)
        return model.fit(data.data, data.target), data.data.iloc[::89][:N_ROWS]

    def multi_output() -> tuple[Any, Any]:
        data = load_diabetes()
        targets = np.column_stack([data.target, data.data[:, 2] * 100])
        return Ridge(alpha=0.5).fit(data.data, targets), data.data[::91][:N_ROWS]

    def mixed_pipeline() -> tuple[Any, Any]:
        x, y = mixed_frame()
        columns = ColumnTransformer(
            [
                ("sex", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
                ("bmi", StandardScaler(), ["bmi"]),
                ("bp", SimpleImputer(strategy="median"), ["bp"]),
            ],
            remainder="passthrough",
        )
        model = Pipeline([("columns", columns), ("classifier", LogisticRegression(max_iter=500))])
        return model.fit(x, y), x.iloc[::87][:N_ROWS]  # row 0 has bp missing

    def no_probabilities() -> tuple[Any, Any]:
        iris = load_iris()
        model = make_pipeline(StandardScaler(), LinearSVC(random_state=0))
        return model.fit(iris.data, iris.target), iris.data[::29][:N_ROWS]

    return {f.__name__.replace("_", "-"): f for f in (
        iris_logreg, iris_forest, cancer_boosting, string_labels,
        diabetes_boosting, multi_output, mixed_pipeline, no_probabilities,
    )}  # fmt: skip


ZOO = _zoo()


def build(root: Path) -> dict[str, Specimen]:
    """Fit and package every model of the zoo under ``root``."""
    specimens = {}
    for name, fit in ZOO.items():
        estimator, x = fit()
        model_dir = root / name
        package(estimator, model_dir, name=name)
        specimens[name] = Specimen(name, estimator, model_dir, x)
    return specimens
