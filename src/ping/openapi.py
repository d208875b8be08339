"""The OpenAPI document's one repair: nested models of hand-declared bodies.

A request body declared with ``model_json_schema()`` carries its nested models under
``$defs`` with ``#/$defs/...`` references, which dangle once the schema is placed
inside the OpenAPI document. They move to ``components/schemas``.
"""

from typing import Any

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
