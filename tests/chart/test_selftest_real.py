"""The helm test pod's own command against real Pings on 127.0.0.1: the bundled iris model, a
packaged regressor and a packaged named-column pipeline with a string column.

It must pass for each without knowing any model's answer in values (it reads the sample the
artifact recorded from /metadata), and fail, with one line, when the answer is not the expected
one. Each Ping is a real `python -m ping` process serving a real artifact.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.unit.live_server import Server, start_server, wait_ready
from tests.unit.zoo import ZOO

from ping.package import package

from .helm import Manifest, one, render_chart, run_test_command

pytestmark = pytest.mark.chart

# name -> the zoo entry packaged for it; "iris" is training/'s bundled model.
MODELS = {"iris": None, "regressor": "diabetes-boosting", "named-columns": "mixed-pipeline"}


@pytest.fixture(scope="module", params=sorted(MODELS))
def served(
    request: pytest.FixtureRequest, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    """A real Ping serving one of the models, reaped afterwards."""
    name: str = request.param
    zoo_name = MODELS[name]
    artifact = model_dir
    if zoo_name is not None:
        estimator, _ = ZOO[zoo_name]()
        artifact = tmp_path_factory.mktemp("own-model") / zoo_name
        package(estimator, artifact, name=zoo_name)
    server = start_server(artifact)
    try:
        wait_ready(server, timeout=60)
        yield name, server
    finally:
        server.process.kill()
        server.process.communicate(timeout=10)


@pytest.fixture(scope="module")
def test_pod(rendered: list[Manifest]) -> Manifest:
    return one(rendered, "Pod")


def sample(server: Server) -> dict[str, Any]:
    metadata = httpx.get(f"{server.url}/metadata", timeout=10).json()
    return metadata["sample"]  # type: ignore[no-any-return]


def altered(value: Any) -> Any:
    """The same JSON with its first leaf changed: a number, a label or a flag that is wrong."""
    if isinstance(value, dict):
        key = next(iter(value))
        return {**value, key: altered(value[key])}
    if isinstance(value, list):
        return [altered(value[0]), *value[1:]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    return f"not-{value}"


def test_the_helm_test_command_passes_against_a_real_ping(
    test_pod: Manifest, served: tuple[str, Server]
) -> None:
    name, server = served
    result = run_test_command(test_pod, server.url)
    assert result.returncode == 0, result.stderr
    assert "predict: answer matches the expected" in result.stdout
    assert ('seed: {"prediction":0}' in result.stdout) == (name == "iris")
    recorded = sample(server)
    if name == "regressor":
        assert all(isinstance(p, float) for p in recorded["response"]["predictions"])
    if name == "named-columns":
        (row, *_) = recorded["request"]["instances"]
        assert isinstance(row, dict)
        assert any(isinstance(v, str) for v in row.values())


def test_the_helm_test_command_fails_with_one_line_for_a_wrong_answer(
    served: tuple[str, Server],
) -> None:
    _, server = served
    wrong = altered(copy.deepcopy(sample(server)["response"]))
    pod = one(render_chart(values={"test": {"expect": wrong, "waitSeconds": 10}}), "Pod")
    result = run_test_command(pod, server.url)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("ping selftest: /predict: answer differs from the expected one at $.")


def test_the_recorded_request_and_answer_survive_helm_values(served: tuple[str, Server]) -> None:
    # Values pass through helm as YAML (float64 numbers): the floats must still compare equal.
    _, server = served
    recorded = sample(server)
    values = {"test": {"request": recorded["request"], "expect": recorded["response"]}}
    result = run_test_command(one(render_chart(values=values), "Pod"), server.url)
    assert result.returncode == 0, result.stderr
