"""The contract for `model.source: uri`: run the init container's command, then Ping's, as the
pod would, and pass the helm test pod's command against the result.

The same swaps as test_contract.py, plus two for the uri source: the https store becomes a real
HTTP server on 127.0.0.1 serving a trained artifact (fetch allows plain http to loopback only),
and the `model` emptyDir becomes a fresh local directory, seen by the init container at its
mountPath and by Ping at its own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.unit.artifact_server import artifact_server

from .dockerfile import ImageConfig
from .helm import Manifest, container_command, main_container, one, render_chart, run_test_command
from .test_contract import free_port, start_pod, stop, wait_for_probe

pytestmark = pytest.mark.chart

STORE = "https://models.example.test/iris/v1/"


def render_uri_pod(port: int) -> list[Manifest]:
    return render_chart(
        values={
            "containerPort": port,
            "model": {"source": "uri", "uri": {"location": STORE}},
        }
    )


def mount_path(container: dict[str, object], volume: str) -> str:
    mounts = container["volumeMounts"]
    assert isinstance(mounts, list)
    (path,) = [m["mountPath"] for m in mounts if m["name"] == volume]
    return str(path)


def run_init_container(
    pod: list[Manifest], store_url: str, empty_dir: Path
) -> subprocess.CompletedProcess[str]:
    spec = one(pod, "Deployment")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    staging = mount_path(init, "model")
    argv = container_command(init, {})
    assert argv[1:4] == ["-m", "ping", "fetch"], argv
    assert STORE in argv
    assert staging in argv
    argv = [store_url if a == STORE else str(empty_dir) if a == staging else a for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_fetched_model_serves_and_passes_helm_test(
    image: ImageConfig, model_dir: Path, tmp_path: Path
) -> None:
    pod = render_uri_pod(free_port())
    empty_dir = tmp_path / "model-emptydir"
    empty_dir.mkdir()
    with artifact_server(model_dir) as store_url:
        fetched = run_init_container(pod, store_url, empty_dir)
    assert fetched.returncode == 0, fetched.stderr
    assert sorted(p.name for p in empty_dir.iterdir()) == sorted(
        p.name for p in model_dir.iterdir()
    )

    ping = main_container(pod)
    rendered_dir = mount_path(ping, "model")
    started = start_pod(pod, image, empty_dir, tmp_path, rendered_model_dir=rendered_dir)
    try:
        wait_for_probe(started, ping["startupProbe"], "startup")
        wait_for_probe(started, ping["readinessProbe"], "readiness")
        (service_port,) = one(pod, "Service")["spec"]["ports"]
        result = run_test_command(one(pod, "Pod"), started.url(service_port["targetPort"], ""))
    finally:
        stop(started)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{started.output()}"
    assert 'seed: {"prediction":0}' in result.stdout


def test_a_failed_fetch_leaves_nothing_for_ping_to_serve(model_dir: Path, tmp_path: Path) -> None:
    pod = render_uri_pod(free_port())
    empty_dir = tmp_path / "model-emptydir"
    empty_dir.mkdir()
    damaged = tmp_path / "store"
    damaged.mkdir()
    for path in model_dir.iterdir():  # the same files, the model's bytes replaced
        damaged_bytes = path.read_bytes() if path.name == "metadata.json" else b"not the model"
        (damaged / path.name).write_bytes(damaged_bytes)
    with artifact_server(damaged) as store_url:
        fetched = run_init_container(pod, store_url, empty_dir)
    assert fetched.returncode != 0  # the kubelet retries the init container; Ping never starts
    assert "sha256" in fetched.stderr
    assert list(empty_dir.iterdir()) == []
