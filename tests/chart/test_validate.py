"""Every object of every values set is valid Kubernetes, strictly, for 1.29 through 1.33."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from .conftest import ALL_FEATURES, GATEWAY_FEATURES, VALUES_SETS
from .helm import CHART_DIR, HelmError, helm_template, one, render_chart
from .k8s_validate import K8S_VERSIONS, is_custom_resource, validate_strict

pytestmark = pytest.mark.chart

TEMPLATES = sorted(str(p.relative_to(CHART_DIR)) for p in (CHART_DIR / "templates").rglob("*.yaml"))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("values_set", VALUES_SETS)
def test_every_object_validates_strictly(values_set: str, version: str) -> None:
    files, values = VALUES_SETS[values_set]
    objects = render_chart(values=values, values_files=files)
    assert objects, "the chart rendered nothing"
    for obj in objects:
        if is_custom_resource(obj):
            continue
        try:
            validate_strict(obj, version)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            pytest.fail(f"{name} is invalid for {version}: {where}: {error.message}")


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_is_covered_by_the_validation_sweep(template: str) -> None:
    # --show-only fails on a template that renders nothing, so each one renders in all-features
    # (the gateway's in gateway-features).
    values = GATEWAY_FEATURES if template.startswith("templates/gateway/") else ALL_FEATURES
    assert render_chart(values=values, show_only=[template])


def test_only_known_custom_resources_skip_schema_validation() -> None:
    objects = render_chart(values=ALL_FEATURES)
    skipped = sorted(f"{o['apiVersion']} {o['kind']}" for o in objects if is_custom_resource(o))
    assert skipped == [
        "cloud.google.com/v1 BackendConfig",
        "monitoring.coreos.com/v1 PrometheusRule",
        "monitoring.coreos.com/v1 ServiceMonitor",
    ]


@pytest.mark.parametrize(
    ("kind", "removed_api"),
    [
        ("HorizontalPodAutoscaler", "autoscaling/v2beta2"),
        ("PodDisruptionBudget", "policy/v1beta1"),
        ("Ingress", "networking.k8s.io/v1beta1"),
    ],
)
def test_validation_rejects_a_removed_api_version(kind: str, removed_api: str) -> None:
    obj: dict[str, Any] = one(render_chart(values=ALL_FEATURES), kind)
    validate_strict(obj, "1.29")  # as rendered: fine
    obj["apiVersion"] = removed_api
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_strict(obj, "1.29")


def test_validation_rejects_an_unknown_field() -> None:
    deployment = one(render_chart(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        validate_strict(deployment, "1.33")


@pytest.mark.parametrize("version", [v + ".0" for v in K8S_VERSIONS[1:]])
def test_the_render_does_not_depend_on_the_kubernetes_version(version: str) -> None:
    # The sweep validates the 1.29 render against every version; that is sound only while
    # the templates do not branch on .Capabilities.
    assert helm_template(values=ALL_FEATURES, kube_version=version) == helm_template(
        values=ALL_FEATURES
    )


def test_the_chart_refuses_kubernetes_older_than_its_floor() -> None:
    with pytest.raises(HelmError, match=r"incompatible with Kubernetes v1\.28"):
        helm_template(kube_version="1.28.0")


def test_the_sweep_covers_every_platform_and_ci_values_file() -> None:
    files = {Path(f) for fs, _ in VALUES_SETS.values() for f in fs}
    on_disk = {p.relative_to(CHART_DIR) for p in (CHART_DIR / "values").glob("*.yaml")}
    on_disk |= {p.relative_to(CHART_DIR) for p in (CHART_DIR / "ci").glob("*.yaml")}
    assert files == on_disk
