"""The loaded estimator's predict interface: task, outputs and its fast path.

The artifact is read and verified by ping.artifact; this module checks the estimator
against its metadata, calls it, and shapes what it returns into the answer of
``POST /predict``, which the packager records as the artifact's sample too.
"""

import logging
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
from ping.fastpath import FLOAT32_MAX, FastPath, fast_path, prove

__all__ = [
    "FLOAT32_MAX",
    "ArtifactError",
    "Model",
    "ModelMetadata",
    "load_model",
    "read_metadata",
    "version_problem",
]

logger = logging.getLogger("ping")

# Rows for the start-up proof of a fast path, besides the recorded sample's: seeded,
# so that every replica proves the same thing.
_PROOF_ROWS = 32


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
    fast: FastPath | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only for matrix input: the fast paths take the float64 matrix the server
        # builds, and nothing else.
        fast = fast_path(self.estimator) if self.metadata.input == "array" else None
        if fast is not None:
            difference = prove(fast, self.estimator, self._proof_rows())
            if difference is not None:
                logger.warning(
                    "scikit-learn's own predict is used: the fast path differs from it "
                    "(%s); please report this with your scikit-learn version",
                    difference,
                )
                fast = None
        object.__setattr__(self, "fast", fast)

    def _proof_rows(self) -> list[np.ndarray]:
        """Seeded random rows with the recorded sample's (positional) rows; or those alone."""
        width = self.metadata.n_features
        sample = self.metadata.sample.request.get("instances") or []
        known = [row for row in sample if isinstance(row, list) and len(row) == width]
        rows = np.asarray(known, dtype=np.float64).reshape(-1, width)
        random = np.random.default_rng(0).normal(size=(_PROOF_ROWS, width))
        return [np.vstack([rows, random]), rows] if len(rows) else [random]

    @property
    def is_classifier(self) -> bool:
        return self.metadata.task == "classification"

    @property
    def supports_probabilities(self) -> bool:
        return "predict_proba" in self.metadata.outputs

    def predict(self, rows: Any) -> np.ndarray:
        """Class labels, or regression values, for a batch of rows."""
        labels = None if self.fast is None else self.fast.predict(rows)
        return self._outputs(self.estimator.predict(rows) if labels is None else labels)

    def predict_with_probabilities(self, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities, from one pass over the model where it has a fast path."""
        both = None if self.fast is None else self.fast.predict_with_probabilities(rows)
        if both is not None:
            return self._outputs(both[0]), both[1]
        return self.predict(rows), self.predict_proba(rows)

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities, columns in ``metadata.classes`` order."""
        proba = None if self.fast is None else self.fast.predict_proba(rows)
        if proba is not None:
            return proba
        return np.asarray(self.estimator.predict_proba(rows), dtype=np.float64)

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
