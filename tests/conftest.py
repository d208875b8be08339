"""Shared fixtures: a real trained model, settings pointing at it, and an in-process client."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from training.train import train

from ping.app import create_app
from ping.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SEED_ROW = [5.1, 3.5, 1.4, 0.2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the cluster tier, with the reason, unless a cluster is configured.

    pytest-helm-charts' fixtures error (rather than skip) without a kubeconfig, and a
    skip mark set here stops them before they are set up.
    """
    kubeconfig = config.getoption("kubeconfig", default=None) or os.environ.get("KUBECONFIG")
    if kubeconfig and Path(kubeconfig).is_file():
        return
    skip = pytest.mark.skip(
        reason="no Kubernetes cluster configured (KUBECONFIG unset); "
        "with kind: make kind-up kind-load kind-load-model e2e"
    )
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris logistic-regression artifact, trained once per session by training/."""
    path = tmp_path_factory.mktemp("model") / "iris"
    train(path)
    return path


@pytest.fixture
def settings(model_dir: Path) -> Settings:
    return Settings(model_dir=model_dir)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An in-process client; entering it runs the app's lifespan, so the model is loaded."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
