"""The `helm test` pod: pinned, admitted under restricted Pod Security, strict about the answer."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .helm import Manifest, one, run_test_command
from .pss import restricted_violations
from .stub_server import stub_server

pytestmark = pytest.mark.chart

READY = [(200, '{"status":"ready"}')]


@pytest.fixture(scope="module")
def test_pod(rendered: list[Manifest]) -> Manifest:
    return one(rendered, "Pod")


def test_it_is_a_helm_test_hook_whose_log_survives_for_helm_test_logs(test_pod: Manifest) -> None:
    annotations = test_pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    # hook-succeeded would delete the pod before `helm test --logs` reads it (helm/helm#9098).
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert test_pod["spec"]["restartPolicy"] == "Never"


def test_its_curl_image_is_pinned_by_version_and_digest(test_pod: Manifest) -> None:
    (container,) = test_pod["spec"]["containers"]
    assert re.fullmatch(r"curlimages/curl:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", container["image"])


def test_it_targets_the_service_by_name_and_port(
    test_pod: Manifest, rendered: list[Manifest]
) -> None:
    service = one(rendered, "Service")
    (container,) = test_pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (
        env["TARGET_URL"]
        == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    )


@pytest.mark.parametrize("kind", ["Pod", "Deployment"])
def test_pods_pass_the_restricted_pod_security_standard(
    rendered: list[Manifest], kind: str
) -> None:
    obj = one(rendered, kind)
    spec = obj["spec"] if kind == "Pod" else obj["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []


def test_the_test_pod_has_resources_and_no_token(test_pod: Manifest) -> None:
    (container,) = test_pod["spec"]["containers"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert test_pod["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (lambda s: s["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda s: s["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
            "drop must include ALL",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
                add=["SYS_ADMIN"]
            ),
            "SYS_ADMIN",
        ),
        (lambda s: s.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
        (lambda s: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s: s["securityContext"].update(runAsUser=0), "runAsUser"),
    ],
)
def test_the_pod_security_check_catches_each_violation(
    test_pod: Manifest, mutate: Any, complaint: str
) -> None:
    spec = test_pod["spec"]
    mutate(spec)
    assert any(complaint in problem for problem in restricted_violations(spec))


def test_it_passes_when_ready_and_the_prediction_is_exact(test_pod: Manifest) -> None:
    routes = {"/readyz": READY, "/predict": [(200, '{"prediction":0}')]}
    with stub_server(routes) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode == 0, result.stderr
    assert hits == {"/readyz": 1, "/predict": 1}
    assert 'predict: {"prediction":0}' in result.stdout


@pytest.mark.parametrize(
    "answer",
    [
        '{"prediction":1}',
        '{"prediction": 0}',
        '{"prediction":0,"extra":1}',
        '{"prediction":"0"}',
        "",
    ],
)
def test_it_fails_unless_the_answer_is_exactly_prediction_0(
    test_pod: Manifest, answer: str
) -> None:
    with stub_server({"/readyz": READY, "/predict": [(200, answer)]}) as (url, _):
        result = run_test_command(test_pod, url)
    assert result.returncode != 0
    assert "predict: want" in result.stderr


def test_it_fails_when_predict_errors(test_pod: Manifest) -> None:
    with stub_server({"/readyz": READY, "/predict": [(422, '{"prediction":0}')]}) as (url, _):
        result = run_test_command(test_pod, url)
    assert result.returncode != 0


def test_it_fails_without_a_readiness_endpoint(test_pod: Manifest) -> None:
    with stub_server({"/predict": [(200, '{"prediction":0}')]}) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode != 0
    assert "/predict" not in hits, "predicted before readiness passed"


def test_it_waits_while_readiness_is_503(test_pod: Manifest) -> None:
    routes = {
        "/readyz": [(503, '{"status":"loading"}'), *READY],
        "/predict": [(200, '{"prediction":0}')],
    }
    with stub_server(routes) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode == 0, result.stderr
    assert hits["/readyz"] == 2
