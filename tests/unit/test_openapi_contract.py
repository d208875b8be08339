"""The OpenAPI document is valid, exact, and the real server keeps every promise it makes.

schemathesis generates requests from the document served by ``python -m ping`` on
127.0.0.1 and runs every one of its checks (server errors, status codes, content
types, response schemas, unsupported methods and their ``Allow`` header, schema-valid
requests accepted, schema-invalid ones refused), bounded by a fixed seed and example
count. One check is off for V2 infer only, because JSON Schema cannot say it: a tensor's
``data`` length must equal the product of its ``shape``, so schema-valid tensors of the
wrong length are rightly refused.
"""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from tests.unit.live_server import Server, start_server, wait_ready

pytestmark = pytest.mark.unit

SCHEMATHESIS_CONFIG = """
[parameters]
"path.name" = "iris"
"path.version" = "1"

[[operations]]
include-path-regex = "/infer$"
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_openapi_document_validates_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    validate(document)  # openapi-spec-validator, OpenAPI 3.1

    found = set(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"]


def test_predict_body_says_features_and_instances_are_mutually_exclusive(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]

    schema = body["schema"]
    assert schema["oneOf"] == [{"required": ["features"]}, {"required": ["instances"]}]
    assert schema["properties"]["features"]["minItems"] == 4  # the served model's width
    assert schema["properties"]["instances"]["maxItems"] == 1000  # PING_MAX_ROWS


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[Server]:
    server = start_server(model_dir)
    wait_ready(server)
    yield server
    server.process.kill()
    server.process.communicate()


def test_schemathesis_finds_no_failure_against_the_real_server(
    served: Server, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    st = Path(sys.executable).with_name("st")

    run = subprocess.run(
        [
            st,
            "--config-file",
            config,
            "run",
            f"{served.url}/openapi.json",
            "--max-examples=15",
            "--seed=1",
            "--no-color",
        ],
        cwd=tmp_path,  # hypothesis keeps its example database there
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-4000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases, run.stdout[-2000:]
    generated, passed = (int(n) for n in cases.groups())
    assert generated == passed > 300
