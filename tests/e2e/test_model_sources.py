"""Each model source that can work on kind, installed for real: pvc, uri over https, oci.

Every case serves a forest artifact trained here (the baked model is a logistic regression), so
`/metadata` proves where the model came from, and `helm test` (python -m ping selftest) must pass
in the restricted namespace. Skipped with the reason without a cluster (tests/conftest.py); the
pvc case also needs a kind node to put files on, and the oci case a model image loaded into the
nodes (`make kind-load-model`, which `make e2e` names in PING_E2E_MODEL_IMAGE).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from training.train import train

from .conftest import Helm, PortForwards

pytestmark = pytest.mark.e2e

ROLLOUT_TIMEOUT = 300
NODE_DIR = "/var/local/ping-e2e-models"
STORE_PORT = 8443
# A tiny https file server in Ping's own image: the artifact from a ConfigMap, TLS from a Secret.
STORE_SERVER = textwrap.dedent(
    """
    import functools, http.server, ssl
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/srv")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    """
)
HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "iris-forest"
    train(path, estimator="forest")
    return path


def install(helm: Helm, release: str, chart: Path, values_file: Path, image_ref: tuple[str, str],
            values: dict[str, Any], tmp_path: Path) -> None:  # fmt: skip
    repository, tag = image_ref
    extra = tmp_path / f"{release}.json"
    extra.write_text(json.dumps(values))
    result = helm(
        "install", release, str(chart),
        "--values", str(values_file), "--values", str(extra),
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def served_metadata(port_forward: PortForwards, release: str) -> dict[str, Any]:
    local_port = port_forward.open(release, 80)
    response = httpx.get(f"http://127.0.0.1:{local_port}/metadata", timeout=10)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def check_release(helm: Helm, port_forward: PortForwards, release: str, forest: Path) -> None:
    """helm test passes, and the release serves the forest, not the baked model."""
    tested = helm("test", release, "--logs", "--timeout", "180s")
    assert tested.returncode == 0, f"{tested.stdout}\n{tested.stderr}"
    assert f"ping selftest: http://{release}:80 passed" in tested.stdout
    metadata = served_metadata(port_forward, release)
    expected = json.loads((forest / "metadata.json").read_text())
    assert metadata["sha256"] == expected["sha256"]
    helm("uninstall", release, "--wait", "--timeout", f"{ROLLOUT_TIMEOUT}s")


def kind_nodes(helm: Helm) -> list[str]:
    """The cluster's nodes, when they are kind's docker containers; else skip."""
    if shutil.which("docker") is None:
        pytest.skip("the pvc case puts files on the node with docker; no docker CLI")
    nodes = helm.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
    names = nodes.stdout.split()
    for name in names:
        probe = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
        if probe.returncode != 0:
            pytest.skip(f"node {name} is not a kind container; cannot prepare a hostPath PV")
    return names


@pytest.fixture
def hostpath_claim(helm: Helm, forest: Path) -> Iterator[str]:
    """A hostPath PV with the artifact under iris/v1 on every node, and a claim bound to it."""
    subdir = f"{NODE_DIR}/{helm.namespace}"
    for node in kind_nodes(helm):
        subprocess.run(["docker", "exec", node, "mkdir", "-p", f"{subdir}/iris"], check=True)
        subprocess.run(["docker", "cp", str(forest), f"{node}:{subdir}/iris/v1"], check=True)
        subprocess.run(["docker", "exec", node, "chmod", "-R", "a+rX", subdir], check=True)
    pv_name = f"{helm.namespace}-models"
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "manual",
                "hostPath": {"path": subdir, "type": "Directory"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    applied = helm.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
    )
    assert applied.returncode == 0, applied.stderr
    yield "models"
    helm.kubectl("delete", "pvc", "models", "--wait=false")
    helm.kubectl("delete", "pv", pv_name, "--wait=false")


def test_pvc_source_serves_the_model_from_a_hostpath_volume(
    helm: Helm, port_forward: PortForwards, chart: Path, values_file: Path,
    image_ref: tuple[str, str], forest: Path, hostpath_claim: str, tmp_path: Path,
) -> None:  # fmt: skip
    values = {"model": {"source": "pvc", "pvc": {"claimName": hostpath_claim, "path": "iris/v1"}}}
    install(helm, "ping-pvc", chart, values_file, image_ref, values, tmp_path)
    check_release(helm, port_forward, "ping-pvc", forest)


@pytest.fixture
def https_store(
    helm: Helm, image_ref: tuple[str, str], forest: Path, tmp_path: Path
) -> Iterator[str]:
    """An in-cluster https server (Ping's image) serving the artifact under /iris/v1/, and a
    ConfigMap `model-store-ca` holding the CA that signed its certificate."""
    host = f"model-store.{helm.namespace}.svc"
    ca_key, ca_crt, key, csr, crt = (tmp_path / n for n in ("ca.key", "ca.crt", "k", "csr", "crt"))
    san = tmp_path / "san.ext"
    san.write_text(f"subjectAltName=DNS:{host},DNS:model-store\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ping-e2e",
         "-keyout", ca_key, "-out", ca_crt],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "1", "-extfile", san, "-out", crt],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    for args in (
        ("create", "secret", "tls", "model-store-tls", "--cert", str(crt), "--key", str(key)),
        ("create", "configmap", "model-store-ca", "--from-file", f"ca.crt={ca_crt}"),
        ("create", "configmap", "model-store-files",
         *[f"--from-file={p.name}={p}" for p in forest.iterdir()]),
    ):  # fmt: skip
        created = helm.kubectl(*args)
        assert created.returncode == 0, created.stderr
    repository, tag = image_ref
    labels = {"app.kubernetes.io/name": "model-store"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "model-store", "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "store",
                    "image": f"{repository}:{tag}",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", STORE_SERVER],
                    "ports": [{"containerPort": STORE_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": STORE_PORT}, "periodSeconds": 1},
                    "securityContext": HARDENED,
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "volumeMounts": [
                        {"name": "files", "mountPath": "/srv/iris/v1", "readOnly": True},
                        {"name": "tls", "mountPath": "/tls", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "files", "configMap": {"name": "model-store-files"}},
                {"name": "tls", "secret": {"secretName": "model-store-tls"}},
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "model-store"},
        "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": STORE_PORT}]},
    }
    applied = helm.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [pod, service]}),
    )
    assert applied.returncode == 0, applied.stderr
    ready = helm.kubectl("wait", "--for=condition=Ready", "pod/model-store", "--timeout=120s")
    assert ready.returncode == 0, ready.stderr
    yield f"https://{host}/iris/v1/"
    helm.kubectl("delete", "pod/model-store", "service/model-store", "--wait=false")


def test_uri_source_fetches_the_model_over_https_in_cluster(
    helm: Helm, port_forward: PortForwards, chart: Path, values_file: Path,
    image_ref: tuple[str, str], forest: Path, https_store: str, tmp_path: Path,
) -> None:  # fmt: skip
    values = {
        "model": {
            "source": "uri",
            "uri": {"location": https_store, "caConfigMap": "model-store-ca"},
        }
    }
    install(helm, "ping-uri", chart, values_file, image_ref, values, tmp_path)
    check_release(helm, port_forward, "ping-uri", forest)


def test_oci_source_copies_the_model_from_a_model_image(
    helm: Helm, port_forward: PortForwards, chart: Path, values_file: Path,
    image_ref: tuple[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    model_image = os.environ.get("PING_E2E_MODEL_IMAGE")
    model_dir = os.environ.get("PING_E2E_MODEL_DIR")
    if not model_image or not model_dir:
        pytest.skip(
            "no model image loaded into the cluster; `make kind-load-model e2e` sets "
            "PING_E2E_MODEL_IMAGE and PING_E2E_MODEL_DIR"
        )
    repository, _, tag = model_image.rpartition(":")
    values = {"model": {"source": "oci", "oci": {"image": {"repository": repository, "tag": tag}}}}
    install(helm, "ping-oci", chart, values_file, image_ref, values, tmp_path)
    check_release(helm, port_forward, "ping-oci", Path(model_dir))
