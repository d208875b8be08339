"""model.source: image, pvc, uri (https, s3, gs) and oci (copy, volume), rendered and checked.

Every source validates strictly for 1.29-1.33 in test_validate's sweep (MODEL_SOURCES); here,
each source's wiring: what Ping mounts, which init container fills it, PING_MODEL_DIR, the
restricted Pod Security Standard for every init container, and the schema's refusals.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from .conftest import MODEL_SOURCES, OCI_VOLUME
from .helm import CHART_DIR, HelmError, Manifest, main_container, one, render_chart
from .k8s_validate import validate_strict
from .pss import restricted_violations

pytestmark = pytest.mark.chart

PINNED = re.compile(r"^[a-z0-9./\-]+:[\w.\-]+@sha256:[0-9a-f]{64}$")


def pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def model_dir(objects: list[Manifest]) -> str:
    return str(one(objects, "ConfigMap")["data"]["PING_MODEL_DIR"])


def init_container(objects: list[Manifest]) -> dict[str, Any]:
    (container,) = pod_spec(objects)["initContainers"]
    return container  # type: ignore[no-any-return]


def volume(objects: list[Manifest], name: str) -> dict[str, Any]:
    (found,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == name]
    return found  # type: ignore[no-any-return]


def mount(container: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in container["volumeMounts"] if m["name"] == name]
    return found  # type: ignore[no-any-return]


def test_the_default_source_is_the_image_with_nothing_to_fetch(rendered: list[Manifest]) -> None:
    spec = pod_spec(rendered)
    assert "initContainers" not in spec
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]
    assert model_dir(rendered) == "/app/models/iris"


@pytest.mark.parametrize("source", sorted(MODEL_SOURCES))
def test_every_other_source_points_ping_model_dir_at_the_read_only_mount(source: str) -> None:
    objects = render_chart(values=MODEL_SOURCES[source])
    assert model_dir(objects) == "/model"
    model_mount = mount(main_container(objects), "model")
    assert model_mount["mountPath"] == "/model"
    assert model_mount["readOnly"] is True


def test_config_model_dir_cannot_silently_point_at_the_baked_model_with_another_source() -> None:
    values = {**MODEL_SOURCES["pvc"], "config": {"modelDir": "/app/models/iris-v2"}}
    with pytest.raises(HelmError, match=r"config.modelDir \(/app/models/iris-v2\) applies to"):
        render_chart(values=values)


@pytest.mark.parametrize("source", sorted(MODEL_SOURCES))
def test_every_init_container_passes_restricted_pss_and_requests_resources(source: str) -> None:
    objects = render_chart(values=MODEL_SOURCES[source])
    spec = pod_spec(objects)
    assert restricted_violations(spec) == []
    for container in spec.get("initContainers", []):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 10001
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]


def test_pvc_mounts_the_claim_read_only_at_its_sub_path() -> None:
    objects = render_chart(values=MODEL_SOURCES["pvc"])
    assert "initContainers" not in pod_spec(objects)
    claim = volume(objects, "model")["persistentVolumeClaim"]
    assert claim == {"claimName": "models", "readOnly": True}
    assert mount(main_container(objects), "model")["subPath"] == "iris/v1"


def test_pvc_without_a_path_mounts_the_claims_root() -> None:
    objects = render_chart(values={"model": {"source": "pvc", "pvc": {"claimName": "models"}}})
    assert "subPath" not in mount(main_container(objects), "model")


def test_uri_https_fetches_with_pings_own_image_and_its_limits() -> None:
    objects = render_chart(values=MODEL_SOURCES["uri-https"])
    fetch = init_container(objects)
    assert fetch["image"] == main_container(objects)["image"]
    assert fetch["command"] == [
        "python",
        "-m",
        "ping",
        "fetch",
        "--max-bytes",
        "1073741824",
        "--deadline",
        "600",
        "--ca-file",
        "/etc/ping/model-ca/ca.crt",
        "--",
        "https://models.example.com/iris/v1/",
        "/ping-model",
    ]
    assert mount(fetch, "model")["mountPath"] == "/ping-model"
    assert "readOnly" not in mount(fetch, "model")
    assert volume(objects, "model")["emptyDir"] == {"sizeLimit": "2Gi"}
    assert volume(objects, "model-ca")["configMap"]["name"] == "corp-ca"
    assert mount(fetch, "model-ca")["readOnly"] is True
    assert "envFrom" not in fetch


def test_uri_s3_uses_the_pinned_aws_cli_and_env_from_a_secret() -> None:
    fetch = init_container(render_chart(values=MODEL_SOURCES["uri-s3"]))
    assert fetch["image"].startswith("amazon/aws-cli:")
    assert PINNED.match(fetch["image"]), fetch["image"]
    assert fetch["command"] == [
        "aws",
        "s3",
        "sync",
        "--only-show-errors",
        "s3://ml-models/iris/v1",
        "/ping-model",
    ]
    assert fetch["envFrom"] == [{"secretRef": {"name": "minio"}}]
    assert {"name": "HOME", "value": "/tmp"} in fetch["env"]
    assert mount(fetch, "tmp")["mountPath"] == "/tmp"


def test_uri_gs_uses_the_pinned_google_cloud_cli_with_a_writable_config() -> None:
    fetch = init_container(render_chart(values=MODEL_SOURCES["uri-gs"]))
    assert fetch["image"].startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli:")
    assert PINNED.match(fetch["image"]), fetch["image"]
    assert fetch["command"][:4] == ["gcloud", "storage", "rsync", "--recursive"]
    assert fetch["command"][4:] == ["gs://ml-models/iris/v1", "/ping-model"]
    assert {"name": "CLOUDSDK_CONFIG", "value": "/tmp/gcloud"} in fetch["env"]


def test_credentials_come_from_the_service_account_never_from_values() -> None:
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/ping-models"}
    values = {**MODEL_SOURCES["uri-gs"], "serviceAccount": {"annotations": irsa}}
    objects = render_chart(values=values)
    assert one(objects, "ServiceAccount")["metadata"]["annotations"] == irsa
    assert pod_spec(objects)["serviceAccountName"] == "ping"
    schema_uri = (CHART_DIR / "values.schema.json").read_text()
    assert "secretAccessKey" not in schema_uri
    assert "accessKeyId" not in schema_uri


def test_oci_copy_runs_the_model_images_cp_into_an_empty_dir() -> None:
    objects = render_chart(values=MODEL_SOURCES["oci-copy"])
    copy = init_container(objects)
    assert copy["image"] == "registry.example.com/iris-model:v1"
    assert copy["command"] == ["cp", "-R", "/model/.", "/ping-model"]
    assert volume(objects, "model")["emptyDir"] == {"sizeLimit": "2Gi"}
    assert "subPath" not in mount(main_container(objects), "model")


def test_oci_volume_mounts_the_image_read_only_on_1_33() -> None:
    objects = render_chart(values=OCI_VOLUME, kube_version="1.33.0")
    spec = pod_spec(objects)
    assert "initContainers" not in spec
    reference = "registry.example.com/iris-model@sha256:" + "b" * 64
    assert volume(objects, "model")["image"] == {
        "reference": reference,
        "pullPolicy": "IfNotPresent",
    }
    assert mount(main_container(objects), "model")["subPath"] == "model"
    assert restricted_violations(spec) == []  # allowed since 1.33 (kubernetes#130394)
    for obj in objects:
        if obj["kind"] == "Deployment":
            validate_strict(obj, "1.33")


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.31.0", "1.32.0"])
def test_oci_volume_is_refused_before_1_33(kube_version: str) -> None:
    with pytest.raises(HelmError, match=r"needs Kubernetes 1\.33 or later"):
        render_chart(values=OCI_VOLUME, kube_version=kube_version)


def test_an_image_volume_is_not_valid_kubernetes_1_30() -> None:
    # Why the chart refuses it: the 1.30 API has no image volume source at all.
    objects = render_chart(values=OCI_VOLUME, kube_version="1.33.0")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(one(objects, "Deployment"), "1.30")


def test_uri_with_a_deny_all_network_policy_is_refused_with_the_fix() -> None:
    values = {**MODEL_SOURCES["uri-https"], "networkPolicy": {"enabled": True}}
    with pytest.raises(HelmError, match=r"add networkPolicy\.egress rules"):
        render_chart(values=values)
    egress = [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}]
    values["networkPolicy"] = {"enabled": True, "egress": egress}
    assert render_chart(values=values)


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        # Two sources at once: the chosen one, plus another's fields.
        (
            {"source": "pvc", "pvc": {"claimName": "m"}, "uri": {"location": "https://x/m/"}},
            "uri.location",
        ),
        ({"source": "image", "pvc": {"claimName": "m"}}, "pvc.claimName"),
        (
            {
                "source": "uri",
                "uri": {"location": "s3://bucket/m"},
                "oci": {"image": {"repository": "r/m", "tag": "v1"}},
            },
            "oci.image.repository",
        ),
        (
            {
                "source": "oci",
                "oci": {"image": {"repository": "r/m", "tag": "1"}},
                "pvc": {"path": "x"},
            },
            "pvc.path",
        ),
        # A source without its required fields.
        ({"source": "pvc"}, "pvc.claimName"),
        ({"source": "uri"}, "uri.location"),
        ({"source": "oci"}, "oci.image.repository"),
        ({"source": "oci", "oci": {"image": {"repository": "r/m"}}}, "oci.image"),
        # Malformed fields.
        ({"source": "nfs"}, "model.source must be one of"),
        ({"source": "uri", "uri": {"location": "http://models.internal/m/"}}, "uri.location"),
        ({"source": "uri", "uri": {"location": "ftp://x/m"}}, "uri.location"),
        ({"source": "pvc", "pvc": {"claimName": "m", "path": "../etc"}}, "pvc.path"),
        ({"source": "pvc", "pvc": {"claimName": "m", "path": "/abs"}}, "pvc.path"),
        (
            {"source": "oci", "oci": {"mount": "fuse", "image": {"repository": "r/m", "tag": "1"}}},
            "oci.mount",
        ),
        ({"mountPath": "/tmp"}, "mountPath"),
        ({"mountPath": "model"}, "mountPath"),
        ({"uri": {"s3Image": {"digest": "sha256:short"}}}, "s3Image.digest"),
        ({"uri": {"accessKey": "AKIA..."}}, "Additional property accessKey is not allowed"),
    ],
)
def test_the_schema_refuses_two_sources_or_a_source_missing_its_fields(
    model: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(HelmError) as raised:
        render_chart(values={"model": model})
    message = str(raised.value)
    assert "values don't meet the specifications of the schema" in message
    assert complaint in message
