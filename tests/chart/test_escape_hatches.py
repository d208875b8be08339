"""initContainers, sidecars, extraEnvFrom, commonLabels and commonAnnotations: typed, placed
where users expect them (as Bitnami charts place them), and unable to break the selectors."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ALL_FEATURES, ESCAPE_HATCHES, GATEWAY_FEATURES, MODEL_SOURCES
from .helm import HelmError, Manifest, main_container, one, render_chart

pytestmark = pytest.mark.chart

EVERYTHING = {**ALL_FEATURES, **ESCAPE_HATCHES, **MODEL_SOURCES["uri-https"]}
# uri with a NetworkPolicy needs egress (the chart refuses deny-all egress with a uri source).
EVERYTHING["networkPolicy"] = {**ALL_FEATURES["networkPolicy"]}


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return render_chart(values=EVERYTHING)


@pytest.fixture(scope="module")
def gateway_objects() -> list[Manifest]:
    return render_chart(values={**GATEWAY_FEATURES, **ESCAPE_HATCHES})


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_extra_init_containers_run_after_the_models(objects: list[Manifest]) -> None:
    names = [c["name"] for c in pod_spec(objects)["initContainers"]]
    assert names == ["fetch-model", "warm-cache"]


def test_extra_init_containers_render_without_a_model_init_container() -> None:
    spec = pod_spec(render_chart(values={"initContainers": ESCAPE_HATCHES["initContainers"]}))
    assert [c["name"] for c in spec["initContainers"]] == ["warm-cache"]


def test_sidecars_run_beside_ping(objects: list[Manifest]) -> None:
    names = [c["name"] for c in pod_spec(objects)["containers"]]
    assert names == ["ping", "log-shipper"]


def test_extra_env_from_comes_after_the_chart_config_map(objects: list[Manifest]) -> None:
    spec = pod_spec(objects)
    (ping,) = [c for c in spec["containers"] if c["name"] == "ping"]
    assert ping["envFrom"] == [
        {"configMapRef": {"name": "ping"}},
        {"secretRef": {"name": "ping-extra"}},
        {"configMapRef": {"name": "tuning"}},
    ]


def test_common_labels_reach_every_object_and_the_pods_but_no_selector(
    objects: list[Manifest],
) -> None:
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["team"] == "ml", f"{obj['kind']} lacks commonLabels"
        assert labels["cost-center"] == "42"
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "ml"
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in named(objects, "Service", "ping")["spec"]["selector"]


def test_common_annotations_reach_every_object_and_yield_to_its_own(
    objects: list[Manifest],
) -> None:
    for obj in objects:
        if obj["metadata"]["name"] != "ping" or obj["kind"] != "Service":  # sets it itself
            annotations = obj["metadata"].get("annotations", {})
            assert annotations.get("example.com/owner") == "ml-platform", obj["kind"]
    deployment = one(objects, "Deployment")
    pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["example.com/owner"] == "ml-platform"
    assert pod_annotations["example.com/team"] == "ml"  # podAnnotations kept beside them
    service = named(objects, "Service", "ping")["metadata"]["annotations"]
    assert service["example.com/owner"] == "ping"  # the Service's own annotation wins
    assert one(objects, "Pod")["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_the_gateways_objects_carry_them_too(gateway_objects: list[Manifest]) -> None:
    for obj in gateway_objects:
        assert obj["metadata"]["labels"]["team"] == "ml", obj["kind"]
        annotations = obj["metadata"].get("annotations", {})
        assert annotations.get("example.com/owner") == "ml-platform", obj["kind"]
    gateway = named(gateway_objects, "Deployment", "ping-gateway")
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "edge"  # gateway.podLabels wins over commonLabels, once
    assert pod_labels["cost-center"] == "42"
    assert "team" not in gateway["spec"]["selector"]["matchLabels"]


def test_nothing_changes_without_the_escape_hatches(rendered: list[Manifest]) -> None:
    spec = pod_spec(rendered)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["ping"]
    assert main_container(rendered)["envFrom"] == [{"configMapRef": {"name": "ping"}}]
    assert "annotations" not in one(rendered, "ConfigMap")["metadata"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"initContainers": [{"image": "busybox"}]}, "name is required"),
        ({"initContainers": {"name": "x"}}, "initContainers: Invalid type"),
        ({"sidecars": [{"name": "Bad_Name", "image": "x"}]}, "sidecars.0.name"),
        ({"sidecars": [{"name": "x"}]}, "image is required"),
        ({"extraEnvFrom": [{"secret": {"name": "x"}}]}, "Additional property secret"),
        ({"extraEnvFrom": [{"secretRef": {}}]}, "name is required"),
        ({"commonLabels": {"app.kubernetes.io/instance": "other"}}, "commonLabels"),
        ({"commonLabels": {"team": 1}}, "commonLabels.team: Invalid type"),
        ({"commonAnnotations": {"a": True}}, "commonAnnotations.a: Invalid type"),
    ],
)
def test_the_escape_hatches_are_schema_typed(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as raised:
        render_chart(values=values)
    assert complaint in str(raised.value)
