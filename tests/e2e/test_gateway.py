"""The gateway tier in a real cluster: keys from a Secret, routing, helm test, key rotation.

Like the release lifecycle, the tests run in file order against one release in a restricted
namespace of their own, and are deselected with the reason when no cluster is configured.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest
from pytest_helm_charts.clusters import Cluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

from .conftest import Helm, PortForwards

pytestmark = pytest.mark.e2e

RELEASE = "ping"
SECRET = "ping-api-keys"
SEED = {"features": [5.1, 3.5, 1.4, 0.2]}
ROLLOUT_TIMEOUT = 300
# A rotated Secret reaches the pod within the kubelet's sync period (about a minute by default),
# and the gateway reads it within gateway.auth.reloadSeconds after that.
ROTATION_TIMEOUT = 180
KEY = secrets.token_hex(24)


def create_keys(helm: Helm, key: str) -> None:
    manifest = helm.kubectl(
        "create", "secret", "generic", SECRET,
        f"--from-literal=api-keys=e2e {key}",
        "--dry-run=client", "--output=yaml",
    )  # fmt: skip
    assert manifest.returncode == 0, manifest.stderr
    applied = helm.kubectl_stdin(manifest.stdout, "apply", "--filename=-")
    assert applied.returncode == 0, applied.stderr


def test_install_with_the_gateway_rolls_out(
    helm: Helm,
    kube_cluster: Cluster,
    namespace: str,
    chart: Path,
    values_file: Path,
    image_ref: tuple[str, str],
) -> None:
    create_keys(helm, KEY)
    repository, tag = image_ref
    result = helm(
        "install", RELEASE, str(chart),
        "--values", str(values_file),
        "--values", str(chart / "ci" / "gateway-values.yaml"),
        "--set", f"gateway.auth.existingSecret={SECRET}",
        "--set", "gateway.auth.reloadSeconds=2",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ready = wait_for_deployments_to_run(
        kube_cluster.kube_client,
        [RELEASE, f"{RELEASE}-gateway"],
        namespace,
        ROLLOUT_TIMEOUT,
        missing_ok=False,
    )
    assert len(ready) == 2


def test_helm_test_goes_through_the_gateway(helm: Helm) -> None:
    result = helm("test", RELEASE, "--logs", "--timeout", "180s")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "gateway without a key: 401" in result.stdout
    assert 'seed: {"prediction":0}' in result.stdout


def test_the_gateway_authenticates_routes_and_hides_metrics(port_forward: PortForwards) -> None:
    url = f"http://127.0.0.1:{port_forward.open(f'{RELEASE}-gateway', 80)}"
    assert httpx.post(f"{url}/predict", json=SEED, timeout=10).status_code == 401
    headers = {"Authorization": f"Bearer {KEY}"}
    for path in ("/predict", f"/models/{RELEASE}/predict"):
        response = httpx.post(f"{url}{path}", json=SEED, headers=headers, timeout=10)
        assert response.content == b'{"prediction":0}'
    assert httpx.get(f"{url}/metrics", headers=headers, timeout=10).status_code == 404


def test_a_rotated_secret_takes_effect_without_a_restart(
    helm: Helm, port_forward: PortForwards
) -> None:
    url = f"http://127.0.0.1:{port_forward.open(f'{RELEASE}-gateway', 80)}"
    new_key = secrets.token_hex(24)
    create_keys(helm, new_key)
    deadline = time.monotonic() + ROTATION_TIMEOUT
    while time.monotonic() < deadline:
        response = httpx.post(
            f"{url}/predict", json=SEED, headers={"X-API-Key": new_key}, timeout=10
        )
        if response.status_code == 200:
            break
        time.sleep(2)
    else:
        pytest.fail(f"the rotated key was not accepted within {ROTATION_TIMEOUT}s")
    old = httpx.post(f"{url}/predict", json=SEED, headers={"X-API-Key": KEY}, timeout=10)
    assert old.status_code == 401


def test_uninstall_removes_the_gateway(helm: Helm) -> None:
    result = helm("uninstall", RELEASE, "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s")
    assert result.returncode == 0, result.stderr
