"""The kind, EKS and GKE values files, and the ct install scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import CI_VALUES
from .helm import CHART_DIR, HelmError, Manifest, by_kind, main_container, one, render_chart

pytestmark = pytest.mark.chart


CLIENTS = ["203.0.113.0/24"]


def render(values_file: str) -> list[Manifest]:
    # eks.yaml needs the clients' CIDRs, as its header says.
    values = {"service": {"loadBalancerSourceRanges": CLIENTS}} if "eks.yaml" in values_file else {}
    return render_chart(values=values, values_files=[values_file])


def pod_spec(objects: list[Manifest]) -> dict:  # type: ignore[type-arg]
    return one(objects, "Deployment")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_kind_runs_the_locally_loaded_image_behind_clusterip() -> None:
    objects = render("values/kind.yaml")
    container = main_container(objects)
    # `kind load docker-image ping:v001` puts the image on the node; IfNotPresent never pulls it.
    assert container["image"] == "ping:v001"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert one(objects, "Service")["spec"]["type"] == "ClusterIP"
    assert by_kind(objects, "Ingress") == []


def test_eks_gets_an_internet_facing_nlb_with_ip_targets_checking_readiness() -> None:
    objects = render("values/eks.yaml")
    service = one(objects, "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    readiness = main_container(objects)["readinessProbe"]["httpGet"]["path"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"] == readiness
    assert service["spec"]["loadBalancerSourceRanges"] == CLIENTS


def test_eks_refuses_to_open_its_internet_facing_nlb_without_client_cidrs() -> None:
    with pytest.raises(HelmError, match=r"loadBalancerSourceRanges is empty.*203\.0\.113\.0/24"):
        render_chart(values_files=["values/eks.yaml"])
    assert "0.0.0.0/0" not in (CHART_DIR / "values/eks.yaml").read_text().split("#")[0]


@pytest.mark.parametrize("values_file", ["values/eks-alb.yaml", "values/gke.yaml"])
def test_cloud_ingresses_publish_only_the_inference_api(values_file: str) -> None:
    (rule,) = one(render(values_file), "Ingress")["spec"]["rules"]
    paths = [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]
    assert paths == [("/predict", "Exact"), ("/v2", "Prefix")]


@pytest.mark.parametrize(
    ("values_file", "balancer_idle_seconds"),
    [("values/eks.yaml", 0), ("values/eks-alb.yaml", 60), ("values/gke.yaml", 600)],
)
def test_cloud_values_turn_docs_off_and_outlast_the_balancer_idle_timeout(
    values_file: str, balancer_idle_seconds: int
) -> None:
    env = {
        key: value
        for key, value in one(render(values_file), "ConfigMap")["data"].items()
        if key.startswith("PING_")
    }
    assert env["PING_DOCS"] == "false"
    assert float(env["PING_KEEP_ALIVE_SECONDS"]) > balancer_idle_seconds


def test_eks_alb_gets_an_alb_ingress_with_ip_targets_checking_readiness() -> None:
    objects = render("values/eks-alb.yaml")
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    readiness = main_container(objects)["readinessProbe"]["httpGet"]["path"]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == readiness
    assert one(objects, "Service")["spec"]["type"] == "ClusterIP"


def test_gke_gets_a_gce_ingress_without_class_name_a_neg_and_a_backend_config() -> None:
    objects = render("values/gke.yaml")
    ingress = one(objects, "Ingress")
    assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "gce"
    assert "ingressClassName" not in ingress["spec"], "GKE ignores an Ingress that names a class"
    service = one(objects, "Service")
    assert service["metadata"]["annotations"]["cloud.google.com/neg"] == '{"ingress": true}'
    backend = one(objects, "BackendConfig")
    assert service["metadata"]["annotations"]["cloud.google.com/backend-config"] == (
        '{"default":"' + backend["metadata"]["name"] + '"}'
    )
    readiness = main_container(objects)["readinessProbe"]["httpGet"]["path"]
    assert backend["spec"]["healthCheck"]["requestPath"] == readiness


@pytest.mark.parametrize(
    "values_file", ["values/eks.yaml", "values/eks-alb.yaml", "values/gke.yaml"]
)
def test_cloud_values_are_highly_available(values_file: str) -> None:
    objects = render(values_file)
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    (spread,) = pod_spec(objects)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"


@pytest.mark.parametrize(
    "values_file", ["values/eks.yaml", "values/eks-alb.yaml", "values/gke.yaml"]
)
def test_cloud_values_drain_longer_than_the_load_balancer_takes_to_notice(values_file: str) -> None:
    objects = render(values_file)
    env = one(objects, "ConfigMap")["data"]
    # Each file's own comment gives its load balancer's detection time; 20s covers the
    # fastest of them (GKE: 5s x 2 plus propagation).
    assert float(env["PING_DRAIN_SECONDS"]) >= 20
    drain_and_grace = float(env["PING_DRAIN_SECONDS"]) + float(env["PING_SHUTDOWN_GRACE_SECONDS"])
    assert pod_spec(objects)["terminationGracePeriodSeconds"] > drain_and_grace


@pytest.mark.parametrize("values_file", [str(p) for p in CI_VALUES])
def test_ct_scenarios_use_clusterip_because_kind_has_no_load_balancer(values_file: str) -> None:
    objects = render(values_file)
    for service in by_kind(objects, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    # ct install needs no CRDs on kind.
    assert not {o["kind"] for o in objects} & {"ServiceMonitor", "BackendConfig"}


def test_ct_scenarios_turn_on_each_installable_feature() -> None:
    kinds = {o["kind"] for path in CI_VALUES for o in render(str(path))}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Ingress"} <= kinds


def test_there_is_a_values_file_per_platform() -> None:
    names = {
        Path(p).stem
        for p in (Path(__file__).resolve().parents[2] / "charts/ping/values").glob("*.yaml")
    }
    assert {"kind", "eks", "gke"} <= names


def test_the_readme_gke_tls_recipe_names_the_certificate_and_ip_on_the_ingress() -> None:
    # The annotations README.md's "Install on GKE" passes with --set-string.
    recipe = {
        "networking.gke.io/managed-certificates": "ping-cert",
        "kubernetes.io/ingress.global-static-ip-name": "ping-ip",
    }
    objects = render_chart(
        values={"ingress": {"annotations": recipe}}, values_files=["values/gke.yaml"]
    )
    annotations = one(objects, "Ingress")["metadata"]["annotations"]
    assert annotations == {"kubernetes.io/ingress.class": "gce", **recipe}
    readme = (CHART_DIR.parent.parent / "README.md").read_text()
    for key in recipe:
        assert key.replace(".", "\\.") in readme
