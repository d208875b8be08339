"""The `helm test` pod: Ping's own image running `python -m ping selftest`, admitted under
restricted Pod Security, strict about the answer, and needing no model's answer in values.

The pod's command runs here against scripted stubs (to prove each way it fails) and, in
test_selftest_real.py and the contract test, against real Pings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helm import Manifest, main_container, one, render_chart, run_test_command
from .pss import restricted_violations
from .stub_server import stub_server

pytestmark = pytest.mark.chart

READY = [(200, '{"status":"ready"}')]
IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SAMPLE = {
    "request": {"instances": [[1.0, 2.0], [3.0, 4.0]]},
    "response": {"predictions": [151.25, 87.5]},
}


def metadata(**fields: Any) -> list[tuple[int, str]]:
    return [(200, json.dumps({"name": "house-prices", "feature_names": ["a", "b"], **fields}))]


@pytest.fixture(scope="module")
def test_pod(rendered: list[Manifest]) -> Manifest:
    return one(rendered, "Pod")


def fast_pod(**test: Any) -> Manifest:
    """The test pod with a short readiness wait, so that a failing case fails quickly."""
    return one(render_chart(values={"test": {"waitSeconds": 3, **test}}), "Pod")


def test_it_is_a_helm_test_hook_whose_log_survives_for_helm_test_logs(test_pod: Manifest) -> None:
    annotations = test_pod["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    # hook-succeeded would delete the pod before `helm test --logs` reads it (helm/helm#9098).
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert test_pod["spec"]["restartPolicy"] == "Never"


def test_it_runs_ping_selftest_in_pings_own_image(
    test_pod: Manifest, rendered: list[Manifest]
) -> None:
    (container,) = test_pod["spec"]["containers"]
    app = main_container(rendered)
    assert container["image"] == app["image"]
    assert container["imagePullPolicy"] == app["imagePullPolicy"]
    assert container["command"] == ["python", "-m", "ping", "selftest"]
    assert container["args"] == ["$(TARGET_URL)", "--wait", "120"]


def test_a_digest_pinned_ping_image_pins_the_test_pod_too() -> None:
    digest = "sha256:" + "a" * 64
    objects = render_chart(values={"image": {"digest": digest}})
    (container,) = one(objects, "Pod")["spec"]["containers"]
    assert container["image"].endswith("@" + digest)


def test_test_request_and_expect_reach_the_command_as_json() -> None:
    request = {"instances": [{"city": "Paris", "rooms": 3}]}
    pod = one(
        render_chart(values={"test": {"request": request, "expect": {"predictions": [1.5]}}}), "Pod"
    )
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert json.loads(args[args.index("--request") + 1]) == request
    assert json.loads(args[args.index("--expect") + 1]) == {"predictions": [1.5]}


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
        (
            lambda s: [
                c.pop("runAsNonRoot")
                for c in (s["securityContext"], s["containers"][0]["securityContext"])
            ],
            "runAsNonRoot",
        ),
        (
            lambda s: [
                c.pop("seccompProfile")
                for c in (s["securityContext"], s["containers"][0]["securityContext"])
            ],
            "seccompProfile",
        ),
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


def test_it_passes_when_the_answer_matches_the_recorded_sample(test_pod: Manifest) -> None:
    routes = {
        "/readyz": READY,
        "/metadata": metadata(sample=SAMPLE),
        "/predict": [(200, '{"predictions":[151.25000000000003,87.5]}')],
    }
    with stub_server(routes) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode == 0, result.stderr
    assert hits == {"/readyz": 1, "/metadata": 1, "/predict": 1}
    assert "predict: answer matches" in result.stdout


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ('{"predictions":[151.26,87.5]}', "$.predictions[0]: got 151.26, want 151.25"),
        ('{"predictions":[151.25]}', "$.predictions: 1 items but want 2"),
        ('{"predictions":[151.25,87.5],"extra":1}', "keys"),
        ('{"predictions":["151.25",87.5]}', '$.predictions[0]: got "151.25"'),
        ("not json", "not JSON"),
    ],
)
def test_it_fails_with_one_line_for_a_wrong_answer(
    test_pod: Manifest, answer: str, complaint: str
) -> None:
    routes = {"/readyz": READY, "/metadata": metadata(sample=SAMPLE), "/predict": [(200, answer)]}
    with stub_server(routes) as (url, _):
        result = run_test_command(test_pod, url)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert complaint in line


def test_it_fails_when_predict_errors(test_pod: Manifest) -> None:
    routes = {
        "/readyz": READY,
        "/metadata": metadata(sample=SAMPLE),
        "/predict": [(422, '{"detail":"bad"}')],
    }
    with stub_server(routes) as (url, _):
        result = run_test_command(test_pod, url)
    assert result.returncode == 1
    assert "HTTP 422" in result.stderr


def test_it_fails_for_a_model_without_a_sample_and_says_how_to_fix_it(test_pod: Manifest) -> None:
    routes = {"/readyz": READY, "/metadata": metadata(), "/predict": [(200, "{}")]}
    with stub_server(routes) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode == 1
    assert "records no sample" in result.stderr
    assert "test.request" in result.stderr
    assert "/predict" not in hits


def test_test_request_and_expect_override_the_sample() -> None:
    pod = fast_pod(request={"instances": [[9.0, 9.0]]}, expect={"predictions": [1.0]})
    routes = {
        "/readyz": READY,
        "/metadata": metadata(sample=SAMPLE),
        "/predict": [(200, '{"predictions":[1.0]}')],
    }
    with stub_server(routes) as (url, _):
        result = run_test_command(pod, url)
    assert result.returncode == 0, result.stderr


def test_the_bundled_iris_model_must_also_answer_the_seed_exactly(test_pod: Manifest) -> None:
    iris = metadata(name="iris", feature_names=IRIS_FEATURES)
    with stub_server(
        {"/readyz": READY, "/metadata": iris, "/predict": [(200, '{"prediction":0}')]}
    ) as (
        url,
        _,
    ):
        result = run_test_command(test_pod, url)
    assert result.returncode == 0, result.stderr
    assert 'seed: {"prediction":0}' in result.stdout


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
def test_the_seed_answer_must_be_exactly_prediction_0(test_pod: Manifest, answer: str) -> None:
    iris = metadata(name="iris", feature_names=IRIS_FEATURES)
    with stub_server({"/readyz": READY, "/metadata": iris, "/predict": [(200, answer)]}) as (
        url,
        _,
    ):
        result = run_test_command(test_pod, url)
    assert result.returncode == 1
    assert 'want 200 {"prediction":0}' in result.stderr


def test_it_fails_without_a_readiness_endpoint_and_never_predicts() -> None:
    routes = {"/metadata": metadata(sample=SAMPLE), "/predict": [(200, "{}")]}
    with stub_server(routes) as (url, hits):
        result = run_test_command(fast_pod(), url)
    assert result.returncode == 1
    assert "/readyz: not ready after 3s" in result.stderr
    assert "/predict" not in hits, "predicted before readiness passed"


def test_it_waits_while_readiness_is_503(test_pod: Manifest) -> None:
    routes = {
        "/readyz": [(503, '{"status":"loading"}'), *READY],
        "/metadata": metadata(sample=SAMPLE),
        "/predict": [(200, '{"predictions":[151.25,87.5]}')],
    }
    with stub_server(routes) as (url, hits):
        result = run_test_command(test_pod, url)
    assert result.returncode == 0, result.stderr
    assert hits["/readyz"] == 2
