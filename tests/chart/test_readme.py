"""Every values key is documented in values.yaml, in the chart README's table and in the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR
from .values_doc import (
    documented_keys,
    leaf_paths,
    parameters,
    readme_table,
    schema_node,
    table,
)

pytestmark = pytest.mark.chart

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
VALUES: dict[str, Any] = yaml.safe_load(VALUES_TEXT)
SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
README = (CHART_DIR / "README.md").read_text()


def covered(path: str, keys: set[str]) -> bool:
    """A leaf is documented if it, or a mapping above it, carries a `# --` comment."""
    parts = path.split(".")
    return any(".".join(parts[:n]) in keys for n in range(1, len(parts) + 1))


def table_keys(markdown: str) -> list[str]:
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    return [row.split("`")[1] for row in rows]


def test_values_yaml_starts_with_the_schema_modeline() -> None:
    assert VALUES_TEXT.splitlines()[0] == "# yaml-language-server: $schema=values.schema.json"


def test_every_values_key_is_documented_with_a_comment() -> None:
    keys = set(documented_keys(VALUES_TEXT))
    undocumented = [path for path in leaf_paths(VALUES) if not covered(path, keys)]
    assert undocumented == [], "add a `# --` comment above each of these keys in values.yaml"


def test_every_documented_key_is_in_the_readme_table() -> None:
    documented = list(documented_keys(VALUES_TEXT))
    in_readme = table_keys(readme_table(README))
    assert sorted(set(documented) - set(in_readme)) == [], "run `make chart-docs`"
    assert sorted(set(in_readme) - set(documented)) == [], "stale rows: run `make chart-docs`"


def test_the_readme_table_is_up_to_date() -> None:
    # Descriptions, types and defaults too, not only the keys.
    assert readme_table(README) == table(parameters()), "run `make chart-docs`"


@pytest.mark.parametrize("key", list(documented_keys(VALUES_TEXT)))
def test_every_documented_key_is_declared_in_the_schema(key: str) -> None:
    node = schema_node(SCHEMA, key)
    assert node.get("description"), f"{key} has no description in values.schema.json"


def test_every_schema_property_has_a_default_in_values_yaml() -> None:
    def walk(node: dict[str, Any], prefix: str) -> list[str]:
        paths = []
        for name, child in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            paths.append(path)
            if child.get("additionalProperties") is False:
                paths += walk(child, path)
        return paths

    missing = []
    for path in walk(SCHEMA, ""):
        tree: Any = VALUES
        for part in path.split("."):
            if not isinstance(tree, dict) or part not in tree:
                missing.append(path)
                break
            tree = tree[part]
    assert missing == []


def test_the_table_parser_sees_a_missing_row() -> None:
    # The tests above are only as good as table_keys; prove it notices a dropped row.
    full = readme_table(README)
    dropped = "\n".join(line for line in full.splitlines() if not line.startswith("| `image.tag`"))
    assert "image.tag" in table_keys(full)
    assert "image.tag" not in table_keys(dropped)
