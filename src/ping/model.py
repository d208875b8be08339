"""Loading, checking and calling the model artifact written by ``training/``.

Only load artifacts we built: unpickling runs code. The sha256 in metadata.json
catches a corrupt or swapped model file; it is not a signature.
"""

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from pydantic import BaseModel, ConfigDict, ValidationError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


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
class Model:
    """A loaded estimator and its metadata."""

    estimator: Any
    metadata: ModelMetadata
    path: Path

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Class labels for a 2-D float array."""
        return np.asarray(self.estimator.predict(rows))

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in ``metadata.classes`` order."""
        return np.asarray(self.estimator.predict_proba(rows))

    @property
    def supports_probabilities(self) -> bool:
        return hasattr(self.estimator, "predict_proba")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
