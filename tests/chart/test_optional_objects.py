"""ServiceAccount, PDB, NetworkPolicy, ServiceMonitor, GKE BackendConfig and NOTES.txt."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR, Manifest, by_kind, helm_template, one, render_chart

pytestmark = pytest.mark.chart

SELECTOR = {"app.kubernetes.io/name": "ping", "app.kubernetes.io/instance": "ping"}


def test_optional_objects_are_off_by_default(rendered: list[Manifest]) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == ["ConfigMap", "Deployment", "Pod", "Service", "ServiceAccount"]


def test_the_service_account_mounts_no_token(rendered: list[Manifest]) -> None:
    account = one(rendered, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert one(rendered, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ping"


def test_the_service_account_can_be_annotated_or_brought_along() -> None:
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ping"}
    annotated = one(
        render_chart(values={"serviceAccount": {"annotations": role}}), "ServiceAccount"
    )
    assert annotated["metadata"]["annotations"] == role
    objects = render_chart(values={"serviceAccount": {"create": False, "name": "existing"}})
    assert by_kind(objects, "ServiceAccount") == []
    assert (
        one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    )


def test_the_pdb_uses_max_unavailable_one_and_never_min_available() -> None:
    pdb = one(
        render_chart(values={"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget"
    )
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_the_pdb_never_blocks_a_drain_even_with_one_replica() -> None:
    objects = render_chart(values={"replicaCount": 1, "podDisruptionBudget": {"enabled": True}})
    pdb = one(objects, "PodDisruptionBudget")
    # With maxUnavailable >= 1 the eviction API may always evict one pod.
    assert pdb["spec"]["maxUnavailable"] >= 1
    assert "minAvailable" not in pdb["spec"]


def test_the_network_policy_admits_only_http_and_denies_egress() -> None:
    policy = one(render_chart(values={"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": SELECTOR}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    assert spec["egress"] == []


def test_named_peers_restrict_ingress_but_always_admit_the_helm_test_pod() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    objects = render_chart(values={"networkPolicy": {"enabled": True, "ingressFrom": peers}})
    (rule,) = one(objects, "NetworkPolicy")["spec"]["ingress"]
    assert rule["from"][:-1] == peers
    test_pod_selector = rule["from"][-1]["podSelector"]["matchLabels"]
    assert test_pod_selector.items() <= one(objects, "Pod")["metadata"]["labels"].items()


def test_the_network_policy_takes_egress_rules() -> None:
    egress = [
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 53, "protocol": "UDP"}]}
    ]
    policy = one(
        render_chart(values={"networkPolicy": {"enabled": True, "egress": egress}}), "NetworkPolicy"
    )
    assert policy["spec"]["egress"] == egress


def test_the_service_monitor_scrapes_metrics_on_the_http_port_of_this_release() -> None:
    values = {
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "interval": "15s",
        }
    }
    objects = render_chart(values=values)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["metadata"]["namespace"] == "ping"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ping"]}
    service = one(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
        "scrapeTimeout": "10s",
    }
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]


def test_the_service_monitor_can_live_in_the_prometheus_namespace() -> None:
    objects = render_chart(values={"serviceMonitor": {"enabled": True, "namespace": "monitoring"}})
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ping"]}


def test_the_backend_config_health_checks_readiness_and_is_attached_to_the_service() -> None:
    objects = render_chart(values={"gke": {"backendConfig": {"enabled": True}}})
    backend = one(objects, "BackendConfig")
    assert backend["apiVersion"] == "cloud.google.com/v1"
    readiness = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "readinessProbe"
    ]
    assert backend["spec"]["healthCheck"] == {
        "type": "HTTP",
        "requestPath": readiness["httpGet"]["path"],
        "port": 9696,
        "checkIntervalSec": 5,
        "timeoutSec": 3,
        "healthyThreshold": 1,
        "unhealthyThreshold": 2,
    }
    assert backend["spec"]["connectionDraining"] == {"drainingTimeoutSec": 10}
    annotations = one(objects, "Service")["metadata"]["annotations"]
    assert annotations["cloud.google.com/backend-config"] == '{"default":"ping"}'


# NOTES.txt --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart with one more template that renders NOTES.txt into a YAML string.

    `helm template` never prints NOTES.txt, and `helm install --dry-run` needs a cluster in
    helm 3.10. `tpl` renders the same text through the same engine and context; .Files cannot
    read templates/, so the copy keeps the text at the chart root too.
    """
    chart = tmp_path_factory.mktemp("notes") / "ping"
    shutil.copytree(CHART_DIR, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-source.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n'
    )
    return chart


def notes(chart: Path, values: dict[str, Any] | None = None) -> str:
    text = helm_template(values=values, show_only=["templates/zz-notes.yaml"], chart_dir=chart)
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    return str(doc["notes"])


def test_notes_for_clusterip_give_the_walkthrough_port_forward(notes_chart: Path) -> None:
    text = notes(notes_chart)
    assert "kubectl --namespace ping port-forward service/ping 8080:80" in text
    assert "http://127.0.0.1:8080/predict" in text
    assert "helm test ping --namespace ping --logs" in text


def test_notes_for_loadbalancer_wait_for_the_address(notes_chart: Path) -> None:
    text = notes(notes_chart, {"service": {"type": "LoadBalancer"}})
    assert "get service ping -w" in text
    assert ".status.loadBalancer.ingress[0].hostname" in text
    assert "port-forward" not in text


def test_notes_for_nodeport_find_the_node_port(notes_chart: Path) -> None:
    text = notes(notes_chart, {"service": {"type": "NodePort"}})
    assert "{.spec.ports[0].nodePort}" in text
    assert "port-forward" not in text


def test_notes_for_ingress_list_the_urls(notes_chart: Path) -> None:
    values = {
        "ingress": {
            "enabled": True,
            "hosts": [
                {"host": "ping.example.test", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": "t", "hosts": ["ping.example.test"]}],
        }
    }
    text = notes(notes_chart, values)
    assert "https://ping.example.test/" in text
    assert "port-forward" not in text


def test_notes_with_the_gateway_reach_it_with_a_key_from_the_secret(notes_chart: Path) -> None:
    values = {
        "gateway": {
            "enabled": True,
            "auth": {"existingSecret": "ping-api-keys"},
            "routes": [{"name": "forest", "service": {"name": "forest-ping-pods", "port": 9696}}],
        }
    }
    text = notes(notes_chart, values)
    assert "port-forward service/ping-gateway 8080:80" in text
    assert "get secret ping-api-keys -o jsonpath='{.data.api-keys}'" in text
    assert "http://127.0.0.1:8080/models/ping/predict" in text
    assert "/models/forest/ (forest-ping-pods)" in text
    assert "service/ping 8080" not in text  # never around the gateway
