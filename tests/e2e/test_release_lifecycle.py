"""The chart in a real cluster: install, roll out, helm test, predict, upgrade, uninstall.

The tests run in file order against one release, as a user would: each step needs the one
before. They are deselected with the reason when no cluster is configured (tests/conftest.py);
with kind: `make kind-up image kind-load e2e`.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pykube
import pytest
from pytest_helm_charts.clusters import Cluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

from .conftest import Helm, PortForwards

pytestmark = pytest.mark.e2e

RELEASE = "ping"  # so the objects are named "ping", as in the README's walk-through
SEED = {"features": [5.1, 3.5, 1.4, 0.2]}
ROLLOUT_TIMEOUT = 300


def deployment(kube_cluster: Cluster, namespace: str) -> pykube.Deployment:
    return (
        pykube.Deployment.objects(kube_cluster.kube_client)
        .filter(namespace=namespace)
        .get(name=RELEASE)
    )


def predict_through_port_forward(port_forward: PortForwards) -> httpx.Response:
    local_port = port_forward.open(RELEASE, 80)
    return httpx.post(f"http://127.0.0.1:{local_port}/predict", json=SEED, timeout=10)


def test_install_rolls_out(
    helm: Helm,
    kube_cluster: Cluster,
    namespace: str,
    chart: Path,
    values_file: Path,
    image_ref: tuple[str, str],
) -> None:
    repository, tag = image_ref
    result = helm(
        "install", RELEASE, str(chart),
        "--values", str(values_file),
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (ready,) = wait_for_deployments_to_run(
        kube_cluster.kube_client, [RELEASE], namespace, ROLLOUT_TIMEOUT, missing_ok=False
    )
    assert ready.obj["status"]["readyReplicas"] == ready.replicas >= 1
    image = ready.obj["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{repository}:{tag}"


def test_helm_test_passes(helm: Helm) -> None:
    result = helm("test", RELEASE, "--logs", "--timeout", "180s")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert 'seed: {"prediction":0}' in result.stdout


def test_predict_through_a_port_forward(port_forward: PortForwards) -> None:
    response = predict_through_port_forward(port_forward)
    assert response.status_code == 200
    assert response.content == b'{"prediction":0}'


def test_upgrade_rolls_the_pods_with_the_new_config(
    helm: Helm, kube_cluster: Cluster, namespace: str, chart: Path, port_forward: PortForwards
) -> None:
    before = deployment(kube_cluster, namespace).obj
    old_checksum = before["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    result = helm(
        "upgrade", RELEASE, str(chart),
        "--reuse-values",
        "--set", "config.logLevel=debug",
        "--set", "config.maxRows=500",
        "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (after,) = wait_for_deployments_to_run(
        kube_cluster.kube_client, [RELEASE], namespace, ROLLOUT_TIMEOUT, missing_ok=False
    )
    assert after.obj["metadata"]["generation"] > before["metadata"]["generation"]
    new_checksum = after.obj["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert new_checksum != old_checksum
    configmap = (
        pykube.ConfigMap.objects(kube_cluster.kube_client)
        .filter(namespace=namespace)
        .get(name=RELEASE)
    )
    assert configmap.obj["data"]["PING_LOG_LEVEL"] == "debug"
    assert configmap.obj["data"]["PING_MAX_ROWS"] == "500"
    # Every pod now running was created from the new template.
    pods = pykube.Pod.objects(kube_cluster.kube_client).filter(
        namespace=namespace,
        selector={"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": "ping"},
    )
    running = [
        p
        for p in pods
        if p.obj["status"].get("phase") == "Running"
        and "deletionTimestamp" not in p.obj["metadata"]
    ]
    assert running
    for pod in running:
        assert pod.obj["metadata"]["annotations"]["checksum/config"] == new_checksum
    response = predict_through_port_forward(port_forward)
    assert response.content == b'{"prediction":0}'


def test_uninstall_removes_the_release(helm: Helm, kube_cluster: Cluster, namespace: str) -> None:
    result = helm("uninstall", RELEASE, "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s")
    assert result.returncode == 0, result.stderr
    # The app's objects and pods. Helm keeps test hook pods after uninstall, by design; the
    # test pod's name label differs, so this selector leaves it out.
    selector = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": "ping"}
    kinds = (pykube.Deployment, pykube.Service, pykube.ConfigMap, pykube.ServiceAccount, pykube.Pod)
    deadline = time.monotonic() + ROLLOUT_TIMEOUT
    while time.monotonic() < deadline:
        left = [
            f"{kind.__name__}/{obj.name}"
            for kind in kinds
            for obj in kind.objects(kube_cluster.kube_client).filter(
                namespace=namespace, selector=selector
            )
        ]
        if not left:
            break
        time.sleep(2)
    assert left == [], f"still there after uninstall: {left}"
    assert helm("status", RELEASE).returncode != 0
