"""The Service: ClusterIP by default, LoadBalancer by values, port 80 to the named port."""

from __future__ import annotations

import pytest

from .helm import Manifest, by_kind, main_container, one, render_chart

pytestmark = pytest.mark.chart


def test_the_service_is_clusterip_on_port_80_targeting_http(rendered: list[Manifest]) -> None:
    service = one(rendered, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert "loadBalancerSourceRanges" not in service["spec"]
    assert "annotations" not in service["metadata"]


def test_the_service_is_named_so_the_walkthrough_port_forward_works(
    rendered: list[Manifest],
) -> None:
    # `kubectl port-forward service/ping 8080:80` after `helm install ping charts/ping`.
    service = one(rendered, "Service")
    assert service["metadata"]["name"] == "ping"
    assert 80 in [p["port"] for p in service["spec"]["ports"]]
    target = service["spec"]["ports"][0]["targetPort"]
    assert target in [p["name"] for p in main_container(rendered)["ports"]]


def test_the_service_selects_exactly_the_apps_pods(rendered: list[Manifest]) -> None:
    service = one(rendered, "Service")
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    test_pod = one(rendered, "Pod")
    assert not service["spec"]["selector"].items() <= test_pod["metadata"]["labels"].items(), (
        "the Service would route traffic to the helm test pod"
    )


def test_a_loadbalancer_gets_annotations_source_ranges_and_class() -> None:
    values = {
        "service": {
            "type": "LoadBalancer",
            "annotations": {
                "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"
            },
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "loadBalancerClass": "service.k8s.aws/nlb",
        }
    }
    service = one(render_chart(values=values), "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == values["service"]["annotations"]
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert service["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_load_balancer_fields_are_dropped_for_other_types() -> None:
    values = {
        "service": {
            "type": "ClusterIP",
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
            "loadBalancerClass": "x",
        }
    }
    spec = one(render_chart(values=values), "Service")["spec"]
    assert "loadBalancerSourceRanges" not in spec
    assert "loadBalancerClass" not in spec


def test_release_names_other_than_the_chart_name_prefix_the_objects() -> None:
    objects = render_chart(release="prod")
    assert {o["metadata"]["name"] for o in objects if o["kind"] != "Pod"} == {"prod-ping"}
    assert one(objects, "Service")["spec"]["selector"]["app.kubernetes.io/instance"] == "prod"
    assert by_kind(objects, "Pod")[0]["metadata"]["name"] == "prod-ping-test-predict"
