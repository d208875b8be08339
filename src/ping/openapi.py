"""The OpenAPI document, made exact: no dangling references, and the served model's input.

A request body declared with ``model_json_schema()`` carries its nested models under
``$defs`` with ``#/$defs/...`` references, which dangle once the schema is placed
inside the OpenAPI document: they move to ``components/schemas``. And the /predict body
states the loaded model's row width, PING_MAX_ROWS and float32's range, so that every
request the document allows is one the service accepts.
"""

import copy
from typing import Any

from ping.model import FLOAT32_MAX

_DEFS_REF = "#/$defs/"
_COMPONENTS_REF = "#/components/schemas/"


def hoist_defs(document: dict[str, Any]) -> dict[str, Any]:
    """Move every ``$defs`` into ``components/schemas`` and point its refs there."""
    components = document.setdefault("components", {}).setdefault("schemas", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            for name, schema in node.pop("$defs", {}).items():
                components.setdefault(name, walk(schema))
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_DEFS_REF):
                node["$ref"] = _COMPONENTS_REF + ref.removeprefix(_DEFS_REF)
            for key, value in node.items():
                node[key] = walk(value)
        elif isinstance(node, list):
            return [walk(item) for item in node]
        return node

    document["paths"] = walk(document.get("paths", {}))
    return document


def describe_input(document: dict[str, Any], *, n_features: int, max_rows: int) -> dict[str, Any]:
    """A copy of ``document`` whose /predict body has the model's row width and limits."""
    document = copy.deepcopy(document)
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["properties"]
    cell = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row = {"type": "array", "items": cell, "minItems": n_features, "maxItems": n_features}
    properties["features"].update(row)
    properties["instances"].update(
        {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}
    )
    return document
