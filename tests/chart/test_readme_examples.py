"""Every "Your model" example in the chart README renders, validates and passes restricted PSS.

Each example's values block is marked `<!-- example-values: NAME PRESET -->` and rendered with
that platform preset first, as its `helm upgrade` line does; a manifest the example applies with
kubectl is marked `<!-- example-manifest: NAME -->` and validated too. The five examples the
README promises must all be there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR, Manifest, main_container, one, render_chart
from .k8s_validate import K8S_VERSIONS, validate_strict
from .pss import restricted_violations

pytestmark = pytest.mark.chart

README = (CHART_DIR / "README.md").read_text()
SECTION = README[README.index("## Your model") :]
SECTION = SECTION[: SECTION.index("\n## ", 1)]
_BLOCK = r"\s*```yaml\n(?P<body>.*?)```"
VALUES_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    m["name"]: (m["preset"], yaml.safe_load(m["body"]))
    for m in re.finditer(
        r"<!-- example-values: (?P<name>\S+) (?P<preset>\S+) -->" + _BLOCK, SECTION, re.S
    )
}
MANIFEST_EXAMPLES: dict[str, list[Manifest]] = {
    m["name"]: [d for d in yaml.safe_load_all(m["body"]) if d]
    for m in re.finditer(r"<!-- example-manifest: (?P<name>\S+) -->" + _BLOCK, SECTION, re.S)
}
EXPECTED_SOURCES = {
    "pvc-kind": "pvc",
    "s3-eks": "uri",
    "gcs-gke": "uri",
    "https": "uri",
    "oci-kind": "oci",
}


def render_example(name: str) -> list[Manifest]:
    preset, values = VALUES_EXAMPLES[name]
    return render_chart(values=values, values_files=[preset])


def test_the_readme_has_one_worked_example_per_source() -> None:
    assert set(VALUES_EXAMPLES) == set(EXPECTED_SOURCES)
    for name, source in EXPECTED_SOURCES.items():
        assert VALUES_EXAMPLES[name][1]["model"]["source"] == source


def test_each_example_names_its_values_file_in_its_helm_command() -> None:
    for name, (preset, _) in VALUES_EXAMPLES.items():
        assert f"--values charts/ping/{preset} --values {name}.yaml" in SECTION, name
        assert f"# {name}.yaml\n" in SECTION


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(EXPECTED_SOURCES))
def test_each_example_renders_and_validates_strictly(name: str, version: str) -> None:
    for obj in render_example(name):
        if obj["apiVersion"].startswith(("monitoring.coreos.com", "cloud.google.com")):
            continue  # custom resources, checked in test_optional_objects
        validate_strict(obj, version)


@pytest.mark.parametrize("name", sorted(EXPECTED_SOURCES))
def test_each_example_passes_restricted_pod_security(name: str) -> None:
    objects = render_example(name)
    assert restricted_violations(one(objects, "Deployment")["spec"]["template"]["spec"]) == []
    assert restricted_violations(one(objects, "Pod")["spec"]) == []
    assert one(objects, "ConfigMap")["data"]["PING_MODEL_DIR"] == "/model"


def test_the_pvc_example_claims_what_the_chart_mounts() -> None:
    (pv, pvc) = MANIFEST_EXAMPLES["pvc-kind"]
    for version in K8S_VERSIONS:
        validate_strict(pv, version)
        validate_strict(pvc, version)
    claim = VALUES_EXAMPLES["pvc-kind"][1]["model"]["pvc"]
    assert pvc["metadata"]["name"] == claim["claimName"]
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    # docker cp models/iris <node>:/var/local/ping-models/iris/v1 puts the artifact at path.
    assert f"{pv['spec']['hostPath']['path']}/{claim['path']}" in SECTION


def test_the_cloud_examples_take_credentials_from_the_service_account() -> None:
    annotations = {
        "s3-eks": "eks.amazonaws.com/role-arn",
        "gcs-gke": "iam.gke.io/gcp-service-account",
    }
    for name, key in annotations.items():
        objects = render_example(name)
        assert key in one(objects, "ServiceAccount")["metadata"]["annotations"]
        (fetch,) = one(objects, "Deployment")["spec"]["template"]["spec"]["initContainers"]
        assert "envFrom" not in fetch
        assert "secret" not in str(fetch.get("env", "")).lower()


def test_the_oci_example_uses_the_image_make_model_image_builds() -> None:
    image = VALUES_EXAMPLES["oci-kind"][1]["model"]["oci"]["image"]
    ref = f"{image['repository']}:{image['tag']}"
    assert f"MODEL_IMAGE={image['repository']} MODEL_TAG={image['tag']}" in SECTION
    assert f"kind load docker-image {ref}" in SECTION
    objects = render_example("oci-kind")
    (copy,) = one(objects, "Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert copy["image"] == ref
    assert main_container(objects)["volumeMounts"][-1]["mountPath"] == "/model"
