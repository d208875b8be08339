"""The loaded estimator's predict interface: task, outputs and the forest fast path.

The artifact is read and verified by ping.artifact; this module checks the estimator
against its metadata, calls it, and shapes what it returns into the answer of
``POST /predict``, which the packager records as the artifact's sample too.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ping.artifact import (
    METADATA_FILE,
    ArtifactError,
    ModelMetadata,
    load_estimator,
    read_metadata,
    version_problem,
)

__all__ = [
    "FLOAT32_MAX",
    "ArtifactError",
    "ForestPath",
    "Model",
    "ModelMetadata",
    "load_model",
    "read_metadata",
    "version_problem",
]

# Trees split on float32, and scikit-learn refuses any value past its range.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ForestPath:
    """A random forest's ``predict_proba`` without joblib, giving identical results.

    scikit-learn's forest runs each tree through joblib's ``Parallel``, which per tree
    re-installs the process's warnings filters and scikit-learn's config: at 100 trees
    that is most of a 1-row predict (~4 ms with sklearn's path, ~0.35 ms here).
    This sums the same per-tree probabilities in the same order (sklearn's path is
    sequential when ``n_jobs`` is unset), so every bit of the result is the same;
    tests/unit/test_batching.py checks that. Warnings are untouched, not silenced.
    """

    prefix: tuple[Any, ...]  # the pipeline's transformers before the forest
    forest: Any

    @classmethod
    def of(cls, estimator: Any) -> "ForestPath | None":
        """The fast path for a (pipeline ending in a) plain random forest, else None."""
        steps = [s for _, s in getattr(estimator, "steps", [("", estimator)])]
        *prefix, forest = [s for s in steps if s not in (None, "passthrough")] or [None]
        if not type(forest).__module__.startswith("sklearn.ensemble"):
            return None  # checked first: importing sklearn.ensemble costs ~5 MB
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
        from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

        plain = (
            type(forest) in (RandomForestClassifier, ExtraTreesClassifier)
            and forest.n_jobs in (None, 1)
            and forest.n_outputs_ == 1
            and all(
                type(t) in (DecisionTreeClassifier, ExtraTreeClassifier) for t in forest.estimators_
            )
        )
        return cls(tuple(prefix), forest) if plain else None

    def predict_proba(self, rows: np.ndarray) -> np.ndarray | None:
        """Mean per-tree probabilities, or None to leave input that is not a finite
        dense matrix after the transformers to scikit-learn's own checks."""
        x = rows
        for step in self.prefix:
            x = step.transform(x)
        if not isinstance(x, np.ndarray) or x.ndim != 2 or not np.isfinite(x).all():
            return None
        if x.shape[1] != self.forest.n_features_in_:  # trees index columns unchecked
            return None
        if x.size and np.abs(x).max() > FLOAT32_MAX:  # sklearn warns, then refuses it
            return None
        x = np.ascontiguousarray(x, dtype=np.float32)  # the dtype trees split on
        proba = np.zeros((x.shape[0], self.forest.n_classes_), dtype=np.float64)
        for tree in self.forest.estimators_:
            proba += tree.tree_.predict(x)[:, : tree.n_classes_]
        proba /= len(self.forest.estimators_)
        return proba


@dataclass(frozen=True)
class Model:
    """A loaded estimator and its metadata.

    ``predict`` gives class labels for a classifier and float64 values for a regressor
    (one column per output for multi-output regression). Rows are a float64 matrix, or
    a DataFrame for a model fitted on one (``metadata.input == "frame"``).
    """

    estimator: Any
    metadata: ModelMetadata
    path: Path
    forest: ForestPath | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only for matrix input: the fast path was proven bit-identical there and nowhere else.
        fast = ForestPath.of(self.estimator) if self.metadata.input == "array" else None
        object.__setattr__(self, "forest", fast)

    @property
    def is_classifier(self) -> bool:
        return self.metadata.task == "classification"

    @property
    def supports_probabilities(self) -> bool:
        return "predict_proba" in self.metadata.outputs

    def predict(self, rows: Any) -> np.ndarray:
        """Class labels, or regression values, for a batch of rows."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return self._forest_labels(proba)
        return self._outputs(self.estimator.predict(rows))

    def predict_with_probabilities(self, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities; a forest derives both from one pass over its trees."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return self._forest_labels(proba), proba
        return self.predict(rows), self.predict_proba(rows)

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities, columns in ``metadata.classes`` order."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return proba
        return np.asarray(self.estimator.predict_proba(rows), dtype=np.float64)

    def _forest_labels(self, proba: np.ndarray) -> np.ndarray:
        assert self.forest is not None
        # As ForestClassifier.predict does it.
        return np.asarray(self.forest.forest.classes_.take(np.argmax(proba, axis=1)))

    def _outputs(self, predicted: Any) -> np.ndarray:
        values = np.asarray(predicted)
        if not self.is_classifier:
            return values.astype(np.float64, copy=False)
        if values.dtype.kind == "f":  # whole-number float labels are recorded as ints
            return values.astype(np.int64)
        return values


def predict_answer(
    model: Model,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    *,
    single: bool,
    class_names: bool,
) -> dict[str, Any]:
    """The body ``POST /predict`` answers: the same function makes the artifact's sample."""
    meta = model.metadata
    values = labels.tolist()
    answer: dict[str, Any] = {"prediction": values[0]} if single else {"predictions": values}
    if class_names:
        names = dict(zip(meta.classes, meta.class_names, strict=True))
        predicted = [names[label] for label in values]
        answer["class_name" if single else "class_names"] = predicted[0] if single else predicted
    if probabilities is not None:
        keyed = [dict(zip(meta.class_names, row, strict=True)) for row in probabilities.tolist()]
        answer["probabilities"] = keyed[0] if single else keyed
    return answer


def check_estimator(estimator: Any, metadata: ModelMetadata, path: Path) -> None:
    """Refuse an estimator that disagrees with its metadata, naming the difference."""
    if not hasattr(estimator, "predict"):
        raise ArtifactError(f"{path}: holds a {type(estimator).__name__}, which has no predict()")
    n_in = getattr(estimator, "n_features_in_", metadata.n_features)
    if n_in != metadata.n_features:
        raise ArtifactError(
            f"{path}: model expects {n_in} features but {METADATA_FILE} says {metadata.n_features}"
        )
    classes = [
        c.item() if hasattr(c, "item") else c for c in _as_list(getattr(estimator, "classes_", []))
    ]
    classes = [int(c) if isinstance(c, float) and c.is_integer() else c for c in classes]
    if metadata.task == "classification" and classes != metadata.classes:
        raise ArtifactError(
            f"{path}: model classes {classes} differ from {METADATA_FILE}'s {metadata.classes}"
        )


def _as_list(values: Any) -> Sequence[Any]:
    return list(values) if not isinstance(values, list) else values


def load_model(
    model_dir: Path, *, trusted_types: Sequence[str] = (), allow_pickle: bool = False
) -> Model:
    """Read and verify the artifact, load its estimator, and check the two agree."""
    metadata = read_metadata(model_dir)
    estimator = load_estimator(
        model_dir, metadata, trusted_types=trusted_types, allow_pickle=allow_pickle
    )
    check_estimator(estimator, metadata, model_dir / metadata.model_file)
    return Model(estimator=estimator, metadata=metadata, path=model_dir)
