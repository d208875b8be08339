"""`python -m ping selftest`: how answers compare, and the command against a real Ping."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.live_server import Server, free_port, start_server, wait_ready

from ping.selftest import is_bundled_iris, mismatch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("want", "got"),
    [
        ({"predictions": [151.25, 87.5]}, {"predictions": [151.25 * (1 + 1e-12), 87.5]}),
        ({"prediction": 0}, {"prediction": 0}),
        ({"prediction": 1.0}, {"prediction": 1}),  # one JSON number type; helm passes float64
        ({"p": [[0.1, 0.9]]}, {"p": [[0.1 + 1e-13, 0.9]]}),
        (
            {"label": "setosa", "ok": True, "none": None},
            {"label": "setosa", "ok": True, "none": None},
        ),
        ({"x": math.nan}, {"x": math.nan}),
    ],
)
def test_answers_within_the_contracts_tolerance_match(want: Any, got: Any) -> None:
    assert mismatch(want, got) is None


@pytest.mark.parametrize(
    ("want", "got", "where"),
    [
        ({"predictions": [151.25]}, {"predictions": [151.26]}, "$.predictions[0]: got 151.26"),
        ({"prediction": 0}, {"prediction": 1}, "$.prediction: got 1, want 0"),
        ({"prediction": 0}, {"prediction": "0"}, '$.prediction: got "0", want 0'),
        ({"prediction": True}, {"prediction": 1}, "$.prediction: got 1, want true"),
        ({"prediction": 0}, {"prediction": False}, "$.prediction"),
        ({"a": 1}, {"a": 1, "b": 2}, "$: keys"),
        ({"a": [1, 2]}, {"a": [1]}, "$.a: 1 items but want 2"),
        ({"a": [1]}, {"a": {"0": 1}}, "$.a: got"),
        ({"a": None}, {"a": 0}, "$.a: got 0, want null"),
        ({"p": 1e-3}, {"p": 1e-3 + 1e-9}, "$.p"),
    ],
)
def test_a_difference_is_reported_with_its_path(want: Any, got: Any, where: str) -> None:
    problem = mismatch(want, got)
    assert problem is not None
    assert where in problem


def test_only_trainings_iris_counts_as_the_bundled_model(model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert is_bundled_iris(metadata)
    assert not is_bundled_iris({**metadata, "name": "my-iris"})
    assert not is_bundled_iris({**metadata, "feature_names": ["a", "b", "c", "d"]})


@pytest.fixture(scope="module")
def iris_server(model_dir: Path) -> Iterator[Server]:
    server = start_server(model_dir)
    try:
        wait_ready(server)
        yield server
    finally:
        server.process.kill()
        server.process.communicate(timeout=10)


def selftest(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ping", "selftest", url, "--wait", "5", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_passes_against_a_real_ping_serving_the_bundled_iris(iris_server: Server) -> None:
    result = selftest(iris_server.url)
    assert result.returncode == 0, result.stderr
    assert 'seed: {"prediction":0}' in result.stdout
    assert result.stdout.splitlines()[-1] == f"ping selftest: {iris_server.url} passed"


def test_an_override_that_ping_does_not_answer_fails_with_one_line(iris_server: Server) -> None:
    request = json.dumps({"instances": [[6.9, 3.1, 5.4, 2.1]]})
    result = selftest(iris_server.url, "--request", request, "--expect", '{"predictions":[0]}')
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line == (
        "ping selftest: /predict: answer differs from the expected one at "
        "$.predictions[0]: got 2, want 0"
    )


def test_an_override_ping_answers_passes(iris_server: Server) -> None:
    request = json.dumps({"instances": [[6.9, 3.1, 5.4, 2.1]]})
    result = selftest(iris_server.url, "--request", request, "--expect", '{"predictions":[2]}')
    assert result.returncode == 0, result.stderr


def test_nothing_listening_fails_within_the_wait() -> None:
    result = selftest(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("ping selftest: /readyz: not ready after 5s (last: ")
    assert "refused" in line
