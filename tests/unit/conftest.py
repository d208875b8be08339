"""Fixtures for the unit tier: the model zoo, fitted and packaged once per session."""

import pytest
from tests.unit.zoo import Specimen, build


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Specimen]:
    return build(tmp_path_factory.mktemp("zoo"))
