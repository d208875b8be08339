"""Loading, checking and calling the model artifact written by ``training/``.

Only load artifacts we built: unpickling runs code. The sha256 in metadata.json
catches a corrupt or swapped model file; it is not a signature.
"""

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from pydantic import BaseModel, ConfigDict, ValidationError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
# Trees split on float32, and scikit-learn refuses any value past its range.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class ArtifactError(Exception):
    """The artifact cannot be served; the message is one line naming the file and the problem."""


class ModelMetadata(BaseModel):
    """What ``training/`` records beside the model (see ``metadata.json``)."""

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    name: str
    version: str
    created_at: str
    sklearn_version: str
    python_version: str
    joblib_version: str
    feature_names: list[str]
    n_features: int
    classes: list[int | str]
    class_names: list[str]
    metrics: dict[str, float]
    sha256: str


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
    """A loaded estimator and its metadata."""

    estimator: Any
    metadata: ModelMetadata
    path: Path
    forest: ForestPath | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "forest", ForestPath.of(self.estimator))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Class labels for a 2-D float array."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return self._forest_labels(proba)
        return np.asarray(self.estimator.predict(rows))

    def predict_with_probabilities(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities; a forest derives both from one pass over its trees."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return self._forest_labels(proba), proba
        return self.predict(rows), self.predict_proba(rows)

    def _forest_labels(self, proba: np.ndarray) -> np.ndarray:
        assert self.forest is not None
        # As ForestClassifier.predict does it.
        return np.asarray(self.forest.forest.classes_.take(np.argmax(proba, axis=1)))

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in ``metadata.classes`` order."""
        proba = None if self.forest is None else self.forest.predict_proba(rows)
        if proba is not None:
            return proba
        return np.asarray(self.estimator.predict_proba(rows))

    @property
    def supports_probabilities(self) -> bool:
        return hasattr(self.estimator, "predict_proba")


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_metadata(model_dir: Path) -> ModelMetadata:
    """Parse and check ``metadata.json``; raise ArtifactError with one clear line."""
    path = model_dir / METADATA_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found (train a model with `make train`)") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        metadata = ModelMetadata.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise ArtifactError(f"{path}: invalid metadata at {where}: {first['msg']}") from None
    if len(metadata.classes) != len(metadata.class_names):
        raise ArtifactError(
            f"{path}: {len(metadata.classes)} classes but {len(metadata.class_names)} class_names"
        )
    return metadata


def version_problem(metadata: ModelMetadata) -> str | None:
    """Why this process should not serve the artifact's pickle, or None when versions agree."""
    if metadata.sklearn_version == sklearn.__version__:
        return None
    return (
        f"model was pickled by scikit-learn {metadata.sklearn_version} but this process "
        f"runs {sklearn.__version__}; retrain it, or set PING_ALLOW_VERSION_MISMATCH=true"
    )


def load_model(model_dir: Path) -> Model:
    """Verify the artifact's checksum, unpickle it and check it against its metadata."""
    metadata = read_metadata(model_dir)
    path = model_dir / MODEL_FILE
    try:
        actual = _sha256(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found, but {METADATA_FILE} describes it") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read: {exc.strerror}") from None
    if actual != metadata.sha256:
        raise ArtifactError(
            f"{path}: sha256 {actual[:16]}… does not match {METADATA_FILE}'s "
            f"{metadata.sha256[:16]}…; the file was altered or replaced"
        )
    try:
        # A version mismatch warning is reported by version_problem(), once, by the caller.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sklearn.exceptions.InconsistentVersionWarning)
            estimator = joblib.load(path)
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot be unpickled: {type(exc).__name__}: {exc}") from None
    if not hasattr(estimator, "predict"):
        raise ArtifactError(f"{path}: holds a {type(estimator).__name__}, which has no predict()")
    n_in = getattr(estimator, "n_features_in_", metadata.n_features)
    if n_in != metadata.n_features:
        raise ArtifactError(
            f"{path}: model expects {n_in} features but {METADATA_FILE} says {metadata.n_features}"
        )
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])]
    if classes != metadata.classes:
        raise ArtifactError(
            f"{path}: model classes {classes} differ from {METADATA_FILE}'s {metadata.classes}"
        )
    return Model(estimator=estimator, metadata=metadata, path=model_dir)
