"""Fixtures for the cluster tier: a restricted namespace, the chart, the image and helm.

pytest-helm-charts supplies `kube_cluster` (from --kubeconfig or $KUBECONFIG), `chart_path`
(--chart-path), `values_file_path` (--app-config-file-path), `test_extra_info` (from
ATS_EXTRA_IMAGE=ping:v001) and `namespace_factory`. `make e2e` passes all of them.
"""

from __future__ import annotations

import random
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_helm_charts.clusters import Cluster

from chart.helm import CHART_DIR, find_helm

DEFAULT_VALUES = CHART_DIR / "values" / "kind.yaml"
DEFAULT_IMAGE = "ping:v001"


@dataclass(frozen=True)
class Helm:
    """helm (and kubectl) bound to the test cluster's kubeconfig and the test namespace."""

    binary: str
    kubeconfig: str
    namespace: str

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, *args, "--namespace", self.namespace, "--kubeconfig", self.kubeconfig]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def kubectl(
        self, *args: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", *args, "--namespace", self.namespace, "--kubeconfig", self.kubeconfig]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, input=input
        )

    def kubectl_stdin(
        self, stdin: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with a manifest on stdin (`apply --filename=-`), so no secret touches disk."""
        cmd = ["kubectl", *args, "--namespace", self.namespace, "--kubeconfig", self.kubeconfig]
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def namespace(namespace_factory) -> str:  # type: ignore[no-untyped-def]
    """A fresh namespace that enforces the restricted Pod Security Standard, deleted afterwards.

    The API server then rejects any pod of the chart (app or helm test) that is not restricted.
    """
    name = "ping-e2e-" + "".join(random.choices(string.ascii_lowercase, k=5))
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    namespace_factory(name, extra_metadata={"labels": labels})
    return name


@pytest.fixture(scope="module")
def helm(kube_cluster: Cluster, namespace: str) -> Helm:
    assert kube_cluster.kube_config_path
    return Helm(find_helm(), kube_cluster.kube_config_path, namespace)


@pytest.fixture(scope="module")
def chart(chart_path: str) -> Path:
    return Path(chart_path) if chart_path else CHART_DIR


@pytest.fixture(scope="module")
def values_file(values_file_path: str) -> Path:
    return Path(values_file_path) if values_file_path else DEFAULT_VALUES


@pytest.fixture(scope="module")
def image_ref(test_extra_info: dict[str, str]) -> tuple[str, str]:
    """(repository, tag) of the image under test, already loaded into the cluster's nodes."""
    repository, _, tag = test_extra_info.get("image", DEFAULT_IMAGE).rpartition(":")
    return repository, tag


@pytest.fixture(scope="module")
def port_forward(helm: Helm) -> Iterator[PortForwards]:
    forwards = PortForwards(helm)
    yield forwards
    forwards.close()


class PortForwards:
    """`kubectl port-forward service/NAME :PORT` processes, each on a local port kubectl picks."""

    def __init__(self, helm: Helm) -> None:
        self.helm = helm
        self.processes: list[subprocess.Popen[str]] = []

    def open(self, service: str, port: int) -> int:
        cmd = [
            "kubectl",
            "port-forward",
            f"service/{service}",
            f":{port}",
            "--address",
            "127.0.0.1",
            "--namespace",
            self.helm.namespace,
            "--kubeconfig",
            self.helm.kubeconfig,
        ]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.processes.append(process)
        assert process.stdout is not None
        # "Forwarding from 127.0.0.1:40123 -> 9696"
        line = process.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), f"kubectl port-forward said: {line!r}"
        return int(line.split("127.0.0.1:", 1)[1].split()[0])

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()
