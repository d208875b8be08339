"""Ingress and HorizontalPodAutoscaler: both off by default, and the HPA's CPU-request guard."""

from __future__ import annotations

from typing import Any

import pytest

from .helm import HelmError, Manifest, by_kind, one, render_chart

pytestmark = pytest.mark.chart

INGRESS: dict[str, Any] = {
    "enabled": True,
    "className": "nginx",
    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
    "hosts": [
        {
            "host": "ping.example.test",
            "paths": [{"path": "/", "pathType": "Prefix"}, {"path": "/v2", "pathType": "Exact"}],
        },
        {"host": "", "paths": [{"path": "/predict", "pathType": "ImplementationSpecific"}]},
    ],
    "tls": [{"secretName": "ping-tls", "hosts": ["ping.example.test"]}],
}


def test_ingress_and_hpa_are_off_by_default(rendered: list[Manifest]) -> None:
    assert by_kind(rendered, "Ingress") == []
    assert by_kind(rendered, "HorizontalPodAutoscaler") == []


def test_the_ingress_carries_class_annotations_hosts_paths_and_tls() -> None:
    ingress = one(render_chart(values={"ingress": INGRESS}), "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == INGRESS["annotations"]
    assert ingress["spec"]["tls"] == INGRESS["tls"]
    first, second = ingress["spec"]["rules"]
    assert first["host"] == "ping.example.test"
    assert "host" not in second, 'an empty host must be omitted, not rendered as ""'
    backend = {"service": {"name": "ping", "port": {"number": 80}}}
    assert first["http"]["paths"] == [
        {"path": "/", "pathType": "Prefix", "backend": backend},
        {"path": "/v2", "pathType": "Exact", "backend": backend},
    ]
    assert second["http"]["paths"] == [
        {"path": "/predict", "pathType": "ImplementationSpecific", "backend": backend}
    ]


def test_an_empty_class_name_omits_ingress_class_name() -> None:
    ingress = one(render_chart(values={"ingress": {**INGRESS, "className": ""}}), "Ingress")
    assert "ingressClassName" not in ingress["spec"]


def test_the_hpa_is_autoscaling_v2_with_cpu_and_memory_targets_and_behavior() -> None:
    objects = render_chart(
        values={"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 7}}
    )
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ping",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 7)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"]


def test_a_null_memory_target_leaves_cpu_only() -> None:
    values = {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": None}}
    hpa = one(render_chart(values=values), "HorizontalPodAutoscaler")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


@pytest.mark.parametrize(
    "resources",
    [
        {"requests": None},
        {"requests": {"cpu": None, "memory": "128Mi"}},
        {"requests": {"cpu": None}, "limits": {"cpu": "1"}},
    ],
    ids=["no-requests", "memory-only", "cpu-limit-only"],
)
def test_the_hpa_without_a_cpu_request_refuses_to_render(resources: dict[str, Any]) -> None:
    # null deletes a default (Helm's way to unset a key), so these remove the CPU request.
    values = {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": None},
        "resources": resources,
    }
    with pytest.raises(HelmError, match=r"autoscaling\.enabled needs resources\.requests\.cpu"):
        render_chart(values=values)


def test_without_the_hpa_no_cpu_request_is_fine() -> None:
    assert render_chart(values={"resources": {"requests": None}})


def test_a_memory_target_without_a_memory_request_refuses_to_render() -> None:
    values = {
        "autoscaling": {"enabled": True},
        "resources": {"requests": {"cpu": "100m", "memory": None}},
    }
    with pytest.raises(
        HelmError, match=r"targetMemoryUtilizationPercentage needs resources\.requests\.memory"
    ):
        render_chart(values=values)


def test_min_replicas_above_max_refuses_to_render() -> None:
    with pytest.raises(
        HelmError, match=r"minReplicas \(5\) is greater than autoscaling.maxReplicas \(2\)"
    ):
        render_chart(values={"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}})
