"""Strict Kubernetes schema validation through kubernetes-validate's Python API.

The CLI only warns when it has no schema for an apiVersion; the API raises
SchemaNotFoundError, so an object on a removed API (autoscaling/v2beta2, policy/v1beta1)
fails here instead of slipping through.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# The chart's kubeVersion floor up to the newest version we support.
K8S_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")

# Custom resources, which kubernetes-validate has no schema for. Only these may skip schema
# validation; their fields are asserted directly in test_optional_objects.
CUSTOM_RESOURCES = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("cloud.google.com/v1", "BackendConfig"),
    }
)


def is_custom_resource(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES


def validate_strict(obj: dict[str, Any], version: str) -> None:
    """Validate one object in strict mode (no unknown fields) for one Kubernetes minor version.

    Raises kubernetes_validate.ValidationError on a bad object and SchemaNotFoundError on an
    apiVersion/kind that version does not serve.
    """
    validated = kubernetes_validate.validate(obj, version, strict=True)
    # kubernetes-validate falls back to the newest schema it has at or below the version
    # asked for; make sure it really had this one.
    assert validated == version, f"asked to validate against {version}, got {validated}"
