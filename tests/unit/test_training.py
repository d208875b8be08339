"""training/: deterministic, complete metadata, and a checksum that matches the file."""

import hashlib
import json
from pathlib import Path

import pytest
import sklearn
from sklearn.datasets import load_iris
from training.train import main, train

from ping.model import load_model

pytestmark = pytest.mark.unit


def test_same_seed_gives_identical_predictions(tmp_path: Path) -> None:
    train(tmp_path / "a", seed=7)
    train(tmp_path / "b", seed=7)
    data = load_iris().data

    first = load_model(tmp_path / "a").estimator
    second = load_model(tmp_path / "b").estimator

    assert (first.predict_proba(data) == second.predict_proba(data)).all()


def test_metadata_records_what_serving_needs(model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())

    assert metadata["name"] == "iris"
    assert metadata["version"] == "1"
    assert metadata["sklearn_version"] == sklearn.__version__
    assert metadata["n_features"] == len(metadata["feature_names"]) == 4
    assert metadata["classes"] == [0, 1, 2]
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert metadata["metrics"]["accuracy"] > 0.85
    assert metadata["model_file"] == "model.skops"
    assert {"created_at", "python_version", "numpy_version", "skops_version"} <= set(metadata)
    digest = hashlib.sha256((model_dir / "model.skops").read_bytes()).hexdigest()
    assert metadata["sha256"] == digest


def test_cli_trains_a_forest_and_honours_source_date_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")

    assert main(["--output-dir", str(tmp_path), "--estimator", "forest", "--name", "f"]) == 0

    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["training"] == {"recipe": "forest", "seed": 42}
    assert metadata["name"] == "f"
    assert metadata["created_at"] == "2023-11-14T22:13:20+00:00"
    model = load_model(tmp_path).estimator
    assert len(model.named_steps["classifier"].estimators_) == 100
