"""The gateway tier's objects: off by default, hardened, internal model Service, tight policies."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import GATEWAY_FEATURES
from .helm import HelmError, Manifest, by_kind, helm_template, render_chart
from .pss import restricted_violations

pytestmark = pytest.mark.chart

GATEWAY = {"gateway": {"enabled": True, "auth": {"existingSecret": "ping-api-keys"}}}
GATEWAY_LABELS = {"app.kubernetes.io/name": "ping-gateway", "app.kubernetes.io/instance": "ping"}
MODEL_LABELS = {"app.kubernetes.io/name": "ping", "app.kubernetes.io/instance": "ping"}


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def gateway_pod(values: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = named(render_chart(values), "Deployment", "ping-gateway")["spec"]
    return spec


def with_gateway(**gateway: Any) -> dict[str, Any]:
    return {"gateway": {**GATEWAY["gateway"], **gateway}}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_gateway_is_off_by_default() -> None:
    names = [o["metadata"]["name"] for o in render_chart()]
    assert not [n for n in names if "gateway" in n or n.endswith("-pods")]


def test_the_gateway_pod_passes_the_restricted_pod_security_standard() -> None:
    spec = gateway_pod(GATEWAY_FEATURES)["template"]["spec"]
    assert restricted_violations(spec) == []
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsUser"] == 99  # the official image's haproxy user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False


def test_the_gateway_writes_only_to_size_limited_empty_dirs() -> None:
    spec = gateway_pod(GATEWAY)["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    assert sorted(m["mountPath"] for m in writable) == ["/tmp", "/var/run/haproxy"]
    for mount in writable:
        assert volumes[mount["name"]]["emptyDir"]["sizeLimit"]


def test_the_gateway_image_is_the_official_haproxy_pinned_by_digest() -> None:
    (container,) = gateway_pod(GATEWAY)["template"]["spec"]["containers"]
    repository, digest = container["image"].split("@")
    assert repository == "haproxy:3.4.4"
    assert digest == "sha256:6877fcd766a4e85559158c945b4080e1e8b00874391086e57e2b9fc11bb54625"


def test_the_gateway_has_probes_requests_and_a_spread() -> None:
    spec = gateway_pod(GATEWAY)["template"]["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": GATEWAY_LABELS}


def test_haproxy_finishes_in_flight_requests_before_the_kubelet_kills_it() -> None:
    pod = gateway_pod(with_gateway(terminationGracePeriodSeconds=40, preStopSleepSeconds=8))
    assert pod["template"]["spec"]["terminationGracePeriodSeconds"] == 40
    (configmap,) = render_chart(
        with_gateway(terminationGracePeriodSeconds=40, preStopSleepSeconds=8),
        show_only=["templates/gateway/configmap.yaml"],
    )
    assert "  hard-stop-after 30s\n" in configmap["data"]["haproxy.cfg"]  # 40 - 8 - 2


def test_a_config_change_rolls_the_gateway_pods_and_a_replica_change_does_not() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = gateway_pod(values)["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    base = checksum(GATEWAY)
    route = [{"name": "churn", "service": {"name": "churn-ping-pods", "port": 9696}}]
    assert checksum(with_gateway(routes=route)) != base
    assert checksum(with_gateway(limits={"maxBodyBytes": 10})) != base
    assert checksum(with_gateway(replicaCount=5)) == base


def test_with_the_gateway_on_the_model_service_stays_cluster_ip() -> None:
    objects = render_chart(GATEWAY_FEATURES)
    assert named(objects, "Service", "ping")["spec"]["type"] == "ClusterIP"
    headless = named(objects, "Service", "ping-pods")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"] == MODEL_LABELS


def test_the_gateway_refuses_a_public_model_service() -> None:
    with pytest.raises(HelmError, match="keeps the model Service internal"):
        helm_template({**GATEWAY, "service": {"type": "LoadBalancer"}})


def test_the_gateway_service_takes_type_annotations_and_source_ranges_from_values() -> None:
    service = named(render_chart(GATEWAY_FEATURES), "Service", "ping-gateway")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert spec["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert spec["externalTrafficPolicy"] == "Local"
    assert service["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external"
    }
    assert spec["selector"] == GATEWAY_LABELS
    assert [(p["name"], p["targetPort"]) for p in spec["ports"]] == [
        ("http", "http"),
        ("https", "https"),
    ]


def test_model_selectors_never_pick_a_gateway_pod_nor_the_reverse() -> None:
    objects = render_chart(GATEWAY_FEATURES)
    gateway_labels = gateway_pod(GATEWAY_FEATURES)["template"]["metadata"]["labels"]
    model = named(objects, "Deployment", "ping")["spec"]["template"]["metadata"]["labels"]
    assert not selects(named(objects, "Service", "ping")["spec"]["selector"], gateway_labels)
    assert not selects(named(objects, "Service", "ping-pods")["spec"]["selector"], gateway_labels)
    pdb = named(objects, "PodDisruptionBudget", "ping")["spec"]["selector"]["matchLabels"]
    assert not selects(pdb, gateway_labels)
    assert not selects(named(objects, "Service", "ping-gateway")["spec"]["selector"], model)


def test_behind_the_gateway_model_pods_admit_only_gateway_test_pod_and_monitoring() -> None:
    values = {**with_gateway(), "networkPolicy": {"enabled": True}}
    policy = named(render_chart(values), "NetworkPolicy", "ping")["spec"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": GATEWAY_LABELS}},
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "ping-test",
                    "app.kubernetes.io/instance": "ping",
                }
            }
        },
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]


def test_the_gateways_own_policy_lets_it_reach_only_dns_and_the_model_pods() -> None:
    policy = named(render_chart(GATEWAY_FEATURES), "NetworkPolicy", "ping-gateway")["spec"]
    assert policy["podSelector"] == {"matchLabels": GATEWAY_LABELS}
    dns, own, churn, legacy = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert own["to"] == [{"podSelector": {"matchLabels": MODEL_LABELS}}]
    assert own["ports"] == [{"port": 9696, "protocol": "TCP"}]
    assert churn["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "churn"
    }
    assert legacy["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ping"
    }
    (rule,) = policy["ingress"]
    assert {"ipBlock": {"cidr": "203.0.113.0/24"}} in rule["from"]


def test_the_gateway_has_a_pdb_by_default_and_an_optional_hpa() -> None:
    objects = render_chart(GATEWAY)
    assert named(objects, "PodDisruptionBudget", "ping-gateway")["spec"]["maxUnavailable"] == 1
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    hpa = named(render_chart(GATEWAY_FEATURES), "HorizontalPodAutoscaler", "ping-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ping-gateway"
    assert "replicas" not in gateway_pod(GATEWAY_FEATURES)


def test_tls_mounts_the_secret_as_haproxy_reads_it() -> None:
    spec = gateway_pod(GATEWAY_FEATURES)["template"]["spec"]
    (tls,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "ping-tls"
    assert tls["secret"]["items"] == [
        {"key": "tls.crt", "path": "gateway.pem"},
        {"key": "tls.key", "path": "gateway.pem.key"},
    ]


def test_the_keys_secret_is_mounted_whole_so_rotation_reaches_the_pod() -> None:
    spec = gateway_pod(GATEWAY)["template"]["spec"]
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "api-keys"]
    assert "subPath" not in mount  # a subPath mount is never refreshed
    (volume,) = [v for v in spec["volumes"] if v["name"] == "api-keys"]
    assert volume["secret"]["secretName"] == "ping-api-keys"


def test_no_rendered_object_carries_a_key_or_a_secret() -> None:
    objects = render_chart(GATEWAY_FEATURES)
    assert not by_kind(objects, "Secret")
    config = named(objects, "ConfigMap", "ping-gateway")["data"]
    assert config["api-keys.map"].strip() == "# key client"


def test_an_ingress_sends_clients_to_the_gateway_not_around_it() -> None:
    values = {**with_gateway(), "ingress": {"enabled": True}}
    (ingress,) = by_kind(render_chart(values), "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ping-gateway", "port": {"number": 80}}


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ({"auth": {"existingSecret": ""}}, "needs gateway.auth.existingSecret"),
        ({"tls": {"enabled": True, "secretName": ""}}, "needs gateway.tls.secretName"),
        ({"releaseModel": {"enabled": False}}, "no route"),
        (
            {"routes": [{"name": "ping", "service": {"name": "other", "port": 80}}]},
            "listed twice",
        ),
        (
            {"routes": [{"name": "b", "service": {"name": "b", "port": 80}, "default": True}]},
            "only one gateway route may be the default",
        ),
    ],
    ids=["no-secret", "tls-without-secret", "no-route", "duplicate-route", "two-defaults"],
)
def test_inconsistent_gateway_values_are_refused_with_the_fix(
    gateway: dict[str, Any], message: str
) -> None:
    values = {"gateway": {**GATEWAY["gateway"], **gateway}}
    if "auth" in gateway:
        values["gateway"]["auth"] = gateway["auth"]
    with pytest.raises(HelmError, match=message):
        helm_template(values)


@pytest.mark.parametrize(
    ("gateway", "complaint"),
    [
        ({"routes": [{"name": "churn"}]}, "service is required"),
        ({"routes": [{"name": "churn", "service": {"port": 80}}]}, "name is required"),
        (
            {"routes": [{"name": "Churn/v2", "service": {"name": "c", "port": 80}}]},
            "name: Does not match pattern",
        ),
        ({"publishedPaths": ["/predict", "/metrics"]}, "publishedPaths.1: Must not validate"),
        ({"limits": {"clientHeaderTimeout": "10"}}, "clientHeaderTimeout: Does not match"),
        ({"upstream": {"resolvePrefer": "ipv5"}}, "resolvePrefer must be one of"),
        ({"apiKeys": ["k"]}, "Additional property apiKeys is not allowed"),
    ],
    ids=[
        "route-without-service",
        "service-without-name",
        "route-name-not-a-label",
        "metrics-published",
        "timeout-without-unit",
        "address-family",
        "keys-in-values",
    ],
)
def test_the_schema_rejects_bad_gateway_values(gateway: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError, match=complaint):
        helm_template({"gateway": {**GATEWAY["gateway"], **gateway}})
